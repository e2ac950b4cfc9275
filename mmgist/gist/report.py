"""How closely a head (the gist, a baseline, or the full prefix) reproduces the full prefix.

A head is what is placed before a query: (h, d) input embeddings, or a KVHead (keys and values of h
positions, for a KV gist). `<|bos|> g_1..g_k` for a gist,
`<|bos|>` alone for no prefix, `<|bos|>` + the last k prefix tokens for the truncated baseline, the
whole of another prefix for the control (the same instruction, another photo, say: a gist that only
learned what the two share closes none of the content gap G_content = 1 - KL_gist / KL_control). Every
measure runs one path per kind of head (`student_forward`), so the figures of different heads compare:

    fidelity   KL(full || head) and top-1 agreement on held-out continuation positions, and KL by
               position within the continuation (the first 8, then the rest pooled)
    greedy     exact match of the greedy continuation after each query with the full prefix's
    task       multiple-choice accuracy and option KL against the full prefix on `Question`s
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from ..lm.heads import (  # noqa: F401  (Head, student_forward, option_logprobs: re-exported, they lived here)
    Head,
    KVHead,
    kv_cache,
    kv_of,
    option_logprobs,
    student_forward,
    student_logprobs,
)
from ..lm.model import cache_kwargs, output_cache
from ..lm.scoring import Question, option_kl, to_ids
from .data import Continuations, Teacher

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary


def hidden_error(
    student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], real: torch.Tensor
) -> torch.Tensor:
    """Mean over layers of the relative squared error of the student's hidden states against the teacher's
    on the real positions: sum ||h_s - h_t||^2 / sum ||h_t||^2 per layer (0 where they agree; 1 for a
    student whose states are 0). Each layer is scaled by its own size, so no layer's norm dominates."""
    real = real.to(teacher[0].device)
    terms = []
    for s, t in zip(student, teacher):
        s, t = s[real].float(), t[real].float()  # (positions, d), cast before subtracting (float16 overflows)
        terms.append((s - t).pow(2).sum() / t.pow(2).sum().clamp_min(1e-12))
    return torch.stack(terms).mean()


def kl_per_position(teacher: Teacher, student: torch.Tensor) -> torch.Tensor:
    """(n, T) KL(teacher || student) at each position; `student` (n, T, V) log-probs, `teacher` on any device.

    Dense: sum over every id. Top-K: sum over the K kept ids plus one rest bucket (the teacher's mass
    outside them against the student's), which is the dense KL when the K ids hold all the teacher's mass."""
    teacher = teacher.to(student.device)

    def terms(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:  # p log(p / q), 0 where p = 0
        return torch.where(p_log > float("-inf"), p_log.exp() * (p_log - q_log), 0.0)

    if teacher.ids is None:
        return terms(teacher.logp, student).sum(-1)
    kept = terms(teacher.logp, student.gather(-1, teacher.ids)).sum(-1)  # (n, T)
    student_rest = student.scatter(-1, teacher.ids, float("-inf")).logsumexp(-1)  # (n, T)
    return kept + terms(teacher.rest, student_rest)


def kl(teacher: Teacher, student: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the masked positions of KL(teacher || student), weighted by `weight` (n, T) where given: the
    training loss (with the hidden-state term, its first part)."""
    per, mask = kl_per_position(teacher, student), mask.to(student.device)
    if weight is None:
        return per[mask].mean()
    weight = weight.to(per)[mask]
    return (per[mask] * weight).sum() / weight.sum().clamp_min(1e-12)


@torch.no_grad()
def kl_positions(model: PreTrainedModel, head: Head, data: Continuations) -> torch.Tensor:
    """(n, T) KL(teacher || model after `head`) at every masked position, 0 elsewhere, in chunks of 16 rows."""
    out = torch.zeros(data.ids.shape)
    for s in range(0, len(data), 16):
        part = data.subset(torch.arange(s, min(s + 16, len(data)))).trimmed()
        per = kl_per_position(part.teacher, student_logprobs(model, head, part.ids, part.real).cpu())
        out[s : s + len(part), : per.shape[1]] = torch.where(part.mask, per, 0.0)
    return out


def divergence_weights(prefix_kl: torch.Tensor, mask: torch.Tensor, strength: float) -> torch.Tensor:
    """(n, T) loss weights 1 + strength * d / mean(d), d = `prefix_kl` (KL(full || no prefix) per position)
    and its mean over `mask`: a position whose distribution the prefix decides weighs more. 0 off the mask."""
    d = prefix_kl.clamp_min(0) * mask
    mean = d[mask].mean().clamp_min(1e-12) if mask.any() else torch.tensor(1.0)
    return (1 + strength * d / mean) * mask


POSITIONS = [*map(str, range(8)), "8+"]  # the per-position breakdown: the first 8 continuation positions, the rest


@torch.no_grad()
def fidelity(model: PreTrainedModel, head: Head, data: Continuations) -> dict[str, Any]:
    """{"kl", "agreement", "kl_by_position", "count_by_position"} over data.mask, in chunks of 16 rows:
    the mean KL at each index within the continuation (POSITIONS; None where none has that index)
    and how many positions each mean is over."""
    total = agree = 0.0
    sums, counts = torch.zeros(len(POSITIONS), dtype=torch.float64), torch.zeros(len(POSITIONS))
    for s in range(0, len(data), 16):
        part = data.subset(torch.arange(s, min(s + 16, len(data)))).trimmed()
        student = student_logprobs(model, head, part.ids, part.real).cpu()
        per = kl_per_position(part.teacher, student)[part.mask]  # (positions,)
        total += per.sum().item()
        agree += (student.argmax(-1) == part.teacher.top1())[part.mask].sum().item()
        bucket = part.index()[part.mask].clamp(0, len(POSITIONS) - 1)
        sums.index_add_(0, bucket, per.double())
        counts.index_add_(0, bucket, torch.ones(len(per)))
    n = int(data.mask.sum())
    by_position = [None if c == 0 else (t / c).item() for t, c in zip(sums, counts)]
    return {
        "kl": total / n,
        "agreement": agree / n,
        "kl_by_position": by_position,
        "count_by_position": counts.tolist(),
    }


@torch.no_grad()
def greedy(model: PreTrainedModel, head: Head, query: list[int], n: int, eos_id: int) -> list[int]:
    """The greedy continuation (up to n tokens, eos included) after `head` then `query`, with a KV cache."""
    return greedy_batch(model, head, [query], n, eos_id)[0]


@torch.no_grad()
def greedy_batch(model: PreTrainedModel, head: Head, queries: list[list[int]], n: int, eos_id: int) -> list[list[int]]:
    """`greedy` of every query after the same head, decoded together: the head is read once (an embeddings
    head becomes its keys and values) and each new token is one forward for the whole batch. Shorter queries
    are padded on the right and masked; each row keeps its own positions, so a row decodes exactly as it
    would alone (up to float summation order)."""
    if not queries:
        return []
    device = model.get_input_embeddings().weight.device
    if not isinstance(head, KVHead) and all(queries):  # read the head once, as keys and values every row shares
        head = KVHead(kv_of(output_cache(model(inputs_embeds=head[None].to(device), use_cache=True))))
    kv = isinstance(head, KVHead)
    if kv and not all(queries):
        raise ValueError("greedy decoding after a KV head needs a query: a KV head predicts no first token")
    B, h, lengths = len(queries), len(head), torch.tensor([len(q) for q in queries])
    L = int(lengths.max())
    ids = torch.tensor([q + [eos_id] * (L - len(q)) for q in queries], device=device)  # (B, L), pads masked below
    mask = torch.cat([torch.ones(B, h, dtype=torch.long), (torch.arange(L) < lengths[:, None]).long()], 1)
    if kv:
        positions = h + torch.arange(L).expand(B, L)
        first = {"input_ids": ids, **cache_kwargs(model, kv_cache(model, head.kv, B))}
    else:
        positions = torch.arange(h + L).expand(B, h + L)
        x = torch.cat([head.expand(B, -1, -1), model.get_input_embeddings()(ids)], dim=1)  # (B, h + L, d)
        first = {"inputs_embeds": x, "use_cache": True}
    if not kv and "logits_to_keep" in inspect.signature(model.forward).parameters:
        first["logits_to_keep"] = L  # the query columns only: (B, h + L, V) logits after a long head are GBs
    out = model(**first, attention_mask=mask.to(device), position_ids=positions.to(device))
    last = (lengths - 1 + out.logits.shape[1] - L).to(device)  # where each row's query ends, in these logits
    token = out.logits[torch.arange(B, device=device), last].argmax(-1)  # (B,)
    seqs, done = [[int(t)] for t in token], [int(t) == eos_id or n == 1 for t in token]
    position = (h + lengths).to(device)  # each row's next position
    while not all(done):
        mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long)], 1)
        out = model(input_ids=token[:, None], attention_mask=mask.to(device), position_ids=position[:, None],
                    **cache_kwargs(model, output_cache(out)))  # fmt: skip
        token, position = out.logits[:, -1].argmax(-1), position + 1
        for i, t in enumerate(token.tolist()):
            if not done[i]:
                seqs[i].append(t)
                done[i] = t == eos_id or len(seqs[i]) == n
    return seqs


def greedy_match(model: PreTrainedModel, heads: dict[str, Head], queries: list[list[int]], n: int, eos_id: int) -> dict:
    """Per head: the share of queries whose greedy continuation equals the full prefix's (heads["full_prefix"])."""
    runs = {name: greedy_batch(model, head, queries or [[]], n, eos_id) for name, head in heads.items()}
    full = runs["full_prefix"]
    return {name: sum(a == b for a, b in zip(full, seqs)) / len(full) for name, seqs in runs.items()}


def table(
    model: PreTrainedModel,
    heads: dict[str, Head],
    data: Continuations,
    queries: list[list[int]] | None,
    n: int,
    eos_id: int,
) -> dict[str, dict[str, Any]]:
    """Per head but the full prefix: KL, agreement, gap closed G and KL by position on `data`; greedy
    exact match after `queries` (None: not measured)."""
    rows = {name: fidelity(model, h, data) for name, h in heads.items() if name != "full_prefix"}
    none = max(rows["no_prefix"]["kl"], 1e-12)
    exact = greedy_match(model, heads, queries, n, eos_id) if queries else {}
    for name, r in rows.items():
        r["gap_closed"] = 1 - r["kl"] / none
        r["greedy_exact_match"] = exact.get(name)
    return rows


def by_position(tables: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Moves each head's KL by position out of `tables` (per part, per head, as `table` makes them):
    {part: {"positions": POSITIONS, "count": positions per index, head: mean KL per index, ...}}."""
    out = {}
    for part, rows in tables.items():
        counts = [r.pop("count_by_position") for r in rows.values()]  # the same positions for every head
        out[part] = {
            "positions": POSITIONS,
            "count": counts[0],
            **{h: r.pop("kl_by_position") for h, r in rows.items()},
        }
    return out


@torch.no_grad()
def task(
    model: PreTrainedModel, vocab: SharedVocabulary, heads: dict[str, Head], questions: list[Question]
) -> dict[str, Any]:
    """Per head (heads["full_prefix"] among them): accuracy where answers are known, and against the full
    prefix's option probabilities, KL over the options and agreement of the chosen option."""
    probs = {
        name: [
            option_logprobs(model, head, to_ids(vocab, q.query), [to_ids(vocab, o) for o in q.options]).softmax(0)
            for q in questions
        ]
        for name, head in heads.items()
    }
    answered = [n for n, q in enumerate(questions) if q.answer is not None]
    full = probs["full_prefix"]
    rows = {}
    for name, ps in probs.items():
        right = sum(int(ps[n].argmax()) == questions[n].answer for n in answered)
        rows[name] = {
            "accuracy": right / len(answered) if answered else None,
            "option_kl": option_kl(full, ps),
            "agreement": sum(int(p.argmax() == f.argmax()) for f, p in zip(full, ps)) / len(ps),
        }
    return {"questions": len(questions), "answered": len(answered), "rows": rows}


def summary(result: dict[str, Any]) -> str:
    """The report of `distill_gist` as text: the figures that matter first, each said in words, then the
    per-head details. A content figure is left out where the control prefix is itself almost as close as the
    full prefix (its ratio would divide by nearly zero)."""
    lines = [
        f"k={result['k']}: {result['prefix_tokens']} prefix tokens in {result['k']} gist positions "
        f"({result['compression']:.0f}x), {result['steps']} steps, {result['wall_seconds']:.1f} s"
    ]
    parts = {"baselines": f"held-out rows ({result['heldout_positions']} positions never trained on)"}
    if result.get("unseen_queries"):
        parts["unseen_queries"] = f"rows after {result['heldout_queries']} queries it never trained on"
    for key, what in parts.items():
        if result.get(key):
            lines.append(f"  gap closed {result[key]['gist']['gap_closed']:+.3f} on {what}")
    lines.append(
        "    (the share of the difference between no prefix and the full prefix that the gist makes up, by the KL of"
    )
    lines.append("    the next-token distributions: 1 all of it, 0 none)")
    for key, what in parts.items():
        table_ = result.get(key) or {}
        if "control" not in table_ or not result.get("G_content", {}).get(key):
            continue
        if table_["control"]["kl"] < 0.1 * table_["no_prefix"]["kl"]:
            lines.append(f"  content gap closed: not shown for {key}: the control prefix is already within "
                         f"{table_['control']['kl']:.3f} of the full prefix")  # fmt: skip
        else:
            g = result["G_content"][key]["gist"]
            lines.append(f"  content gap closed {g:+.3f} on {what}: the same against another prefix of the kind")
            lines.append("    (the control), so what any such prefix gives is not counted")
    for key, what in (("heldout_task", "questions it never trained on"), ("task", "served questions")):
        if result.get(key):
            acc = {name: r["accuracy"] for name, r in result[key]["rows"].items()}
            shown = ", ".join(f"{name} {a:.2f}" for name, a in acc.items() if a is not None)
            lines.append(f"  accuracy on {result[key]['questions']} {what}: {shown}")
    lines += [f"  note: {note}" for note in result.get("notes", [])]
    lines.append("details: KL(full prefix || head) per position, lower is better; top-1 agreement with the full "
                 "prefix; init is the gist before training, truncated the prefix's last k tokens")  # fmt: skip
    for key, what in parts.items():
        if result.get(key):
            lines.append(f"  on {what}:")
            for name, r in result[key].items():
                greedy_part = "" if r["greedy_exact_match"] is None else f"  greedy match {r['greedy_exact_match']:.2f}"
                lines.append(
                    f"    {name:<11} KL {r['kl']:.4f}  gap closed {r['gap_closed']:+.3f}  "
                    f"top-1 agreement {r['agreement']:.3f}{greedy_part}"
                )
    for key, what in (("task", "served questions (their answer position was trained on; true answers never)"),
                      ("heldout_task", "unseen questions (never trained on)")):  # fmt: skip
        if result.get(key):
            lines.append(f"  task, {result[key]['questions']} {what}:")
            for name, r in result[key]["rows"].items():
                acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.2f}"
                lines.append(
                    f"    {name:<11} accuracy {acc}  option KL vs full {r['option_kl']:.4f}  "
                    f"same answer as full {r['agreement']:.2f}"
                )
    return "\n".join(lines)
