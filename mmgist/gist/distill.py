"""distill_gist: train k embeddings so the frozen model behaves after them as after the full prefix.

    gist = distill_gist(model, vocab, Prompt([photo, "Instruction: ..."]), GistConfig(num_gist_tokens=4))

1. Data: continuations sampled from the model with the full prefix (the teacher), after each given
   query or straight after the prefix; split into train and held-out parts.
2. Teacher: the prefix runs once (its KV cache is reused for every continuation) and the teacher's
   next-token log-probs on every continuation are computed once and kept.
3. Student: `<|bos|> g_1..g_k continuation`; the loss is the forward KL(teacher || student) over the
   continuation positions, and only g is trained (Adam). The model's parameters are frozen while it
   runs and restored to their requires_grad flags after; their values never change.
4. Report (held-out continuations only): KL(full || gist), KL(full || no prefix), the gap closed
   G = 1 - KL_gist / KL_none, top-1 agreement, for the gist, its initialization, a truncated prefix
   of the same length (the last k prefix tokens) and no prefix. Queries given as `Question`s (options,
   and the answer where known) add a task section: accuracy, and KL(full || each) over the options,
   for the full prefix and every baseline. The answers are never trained on: only the teacher's
   sampled continuations are.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..scoring import Question, head_embeddings, option_logprobs, to_ids
from .config import GistConfig
from .prefix import GistPrefix, model_fingerprint


@dataclass
class Continuations:
    ids: torch.Tensor  # (n, T) right-padded with 0
    mask: torch.Tensor  # (n, T) bool, True on real tokens
    teacher: torch.Tensor  # (n, T, V) teacher log-probs of the token at each position, given everything before


@torch.no_grad()
def _teacher_logprobs(model: Any, prefix: list[int], ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n, T, V): log P(ids[:, t] | prefix, ids[:, :t]) with the prefix's KV cache computed once."""
    device = model.get_input_embeddings().weight.device
    from ..lm import cache_kwargs, output_cache

    out = model(input_ids=torch.tensor([prefix], device=device), use_cache=True)
    first, cache = out.logits[:, -1:].float(), output_cache(out)  # (1, 1, V): predicts ids[:, 0]
    chunks = []
    for start in range(0, len(ids), 16):
        part, pmask = ids[start : start + 16].to(device), mask[start : start + 16].to(device)
        c = copy.deepcopy(cache)
        c.batch_repeat_interleave(len(part))
        attn = torch.cat([torch.ones(len(part), len(prefix), dtype=torch.long, device=device), pmask.long()], 1)
        logits = model(input_ids=part, attention_mask=attn, **cache_kwargs(model, c)).logits.float()
        chunks.append(torch.cat([first.expand(len(part), -1, -1), logits[:, :-1]], 1).log_softmax(-1).cpu())
    return torch.cat(chunks)


def _student_logprobs(model: Any, head: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n, T, V) log-probs of each position's token given `head` (h, d) embeddings then the tokens before it."""
    emb = model.get_input_embeddings()
    x = torch.cat([head.expand(len(ids), -1, -1), emb(ids.to(emb.weight.device))], dim=1)
    attn = torch.cat(
        [torch.ones(len(ids), head.shape[0], dtype=torch.long, device=x.device), mask.long().to(x.device)], 1
    )
    logits = model(inputs_embeds=x, attention_mask=attn).logits.float()
    return logits[:, head.shape[0] - 1 : -1].log_softmax(-1).cpu()  # position h - 1 predicts ids[:, 0]


def _kl(teacher: torch.Tensor, student: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real positions of KL(teacher || student); both (n, T, V) log-probs."""
    kl = (teacher.exp() * (teacher - student)).sum(-1)
    return kl[mask].mean()


@torch.no_grad()
def _score(model: Any, head: torch.Tensor, data: Continuations) -> dict[str, float]:
    student = torch.cat([_student_logprobs(model, head, data.ids[s : s + 16], data.mask[s : s + 16])
                         for s in range(0, len(data.ids), 16)])  # fmt: skip
    agree = (student.argmax(-1) == data.teacher.argmax(-1))[data.mask].float().mean()
    return {"kl": _kl(data.teacher, student, data.mask).item(), "agreement": agree.item()}


def _sample(model: Any, vocab: Any, prefix: list[int], queries: list[list[int]], config: GistConfig) -> list[list[int]]:
    from ..generate import LayoutConstraint

    device = model.get_input_embeddings().weight.device
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
    seqs = []
    for q in queries or [[]]:
        ctx = prefix + q
        constraint = LayoutConstraint(vocab, len(ctx) + config.continuation_length)
        out = model.generate(
            input_ids=torch.tensor([ctx] * config.num_continuations, device=device),
            attention_mask=torch.ones(config.num_continuations, len(ctx), dtype=torch.long, device=device),
            max_new_tokens=config.continuation_length,
            do_sample=True,
            top_k=0,
            top_p=1.0,
            temperature=config.temperature,
            logits_processor=[constraint],
            pad_token_id=vocab.pad_id,
            eos_token_id=vocab.eos_id,
        )
        for row in out[:, len(ctx) :].tolist():
            cut = row.index(vocab.eos_id) + 1 if vocab.eos_id in row else len(row)
            seqs.append(q + row[:cut])
    return seqs


def _task_report(model: Any, vocab: Any, heads: dict[str, torch.Tensor], questions: list[Question]) -> dict[str, Any]:
    """Per head (heads["full_prefix"] first): accuracy where answers are known, option KL and agreement vs full."""
    probs = {
        name: [
            option_logprobs(model, head, to_ids(vocab, q.query), [to_ids(vocab, o) for o in q.options]).softmax(0)
            for q in questions
        ]
        for name, head in heads.items()
    }
    answered = [n for n, q in enumerate(questions) if q.answer is not None]
    rows = {}
    for name, ps in probs.items():
        full = probs["full_prefix"]
        kl = [(f * (f.clamp_min(1e-12).log() - p.clamp_min(1e-12).log())).sum().item() for f, p in zip(full, ps)]
        rows[name] = {
            "accuracy": sum(int(ps[n].argmax()) == questions[n].answer for n in answered) / len(answered)
            if answered
            else None,
            "option_kl": sum(kl) / len(kl),
            "agreement": sum(int(p.argmax() == f.argmax()) for f, p in zip(full, ps)) / len(ps),
        }
    return {"questions": len(questions), "answered": len(answered), "rows": rows}


def _pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, seqs))
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for b, s in enumerate(seqs):
        ids[b, : len(s)], mask[b, : len(s)] = torch.tensor(s), True
    return ids, mask


@torch.no_grad()
def _init(model: Any, vocab: Any, prefix: list[int], config: GistConfig) -> torch.Tensor:
    """(k, d) starting gist embeddings, in the space of the embedding module's output (what inputs_embeds
    takes: some models, such as Gemma, scale their embedding rows inside that module)."""
    emb = model.get_input_embeddings()

    def embed(ids: list[int] | torch.Tensor) -> torch.Tensor:
        return emb(torch.as_tensor(ids, device=emb.weight.device)).float()

    g = torch.Generator().manual_seed(config.seed)
    k = config.num_gist_tokens
    std = embed(torch.arange(min(vocab.layout.text_size, 4096))).std()  # the spread of ordinary token embeddings
    if config.init == "prefix_mean":
        mean = embed(prefix).mean(0)
        return mean + 0.01 * std * torch.randn(k, mean.shape[0], generator=g).to(mean)
    if config.init == "text":
        ids = vocab.encode([config.init_text])
        return embed([ids[i % len(ids)] for i in range(k)])
    if config.init == "vocab_sample":
        return embed(torch.randint(0, vocab.layout.text_size, (k,), generator=g))
    return torch.randn(k, emb.weight.shape[1], generator=g).to(std.device) * std


def distill_gist(
    model: Any,
    vocab: Any,
    prefix: Any,
    config: GistConfig | None = None,
    queries: list[Any] | None = None,
    progress: bool = False,
) -> GistPrefix:
    """Compress `prefix` (a Prompt, or ids starting with <|bos|>) into `config.num_gist_tokens` embeddings.

    `queries`: what the gist must serve, each a Prompt, a string, ids or a `Question` (whose options
    and answer add task accuracy to the report); teacher continuations are sampled after each.
    """
    from ..lm import check_model, context_length

    config = config or GistConfig()
    check_model(model, vocab)
    prefix_ids = to_ids(vocab, prefix, add_bos=True)
    if not prefix_ids or prefix_ids == [vocab.bos_id]:
        raise ValueError("cannot distill an empty prefix")
    if prefix_ids[0] != vocab.bos_id:
        prefix_ids = [vocab.bos_id, *prefix_ids]
    if config.num_gist_tokens >= len(prefix_ids) - 1:
        raise ValueError(
            f"num_gist_tokens {config.num_gist_tokens} must be smaller than the prefix "
            f"({len(prefix_ids) - 1} tokens after <|bos|>): there is nothing to compress"
        )
    questions = [q for q in queries or [] if isinstance(q, Question)]
    query_ids = [to_ids(vocab, q.query if isinstance(q, Question) else q) for q in queries or []]
    longest = len(prefix_ids) + max((len(q) for q in query_ids), default=0) + config.continuation_length
    if longest > context_length(model):
        raise ValueError(
            f"prefix ({len(prefix_ids)} tokens) plus query and continuation ({longest} in all) exceed "
            f"the model's context of {context_length(model)}"
        )
    flags = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval().requires_grad_(False)
    t0 = time.perf_counter()
    try:
        seqs = _sample(model, vocab, prefix_ids, query_ids, config)
        ids, mask = _pad(seqs)
        order = torch.randperm(len(seqs), generator=torch.Generator().manual_seed(config.seed))
        n_held = max(1, round(len(seqs) * config.heldout_fraction))
        teacher = _teacher_logprobs(model, prefix_ids, ids, mask)
        held = Continuations(ids[order[:n_held]], mask[order[:n_held]], teacher[order[:n_held]])
        train = Continuations(ids[order[n_held:]], mask[order[n_held:]], teacher[order[n_held:]])
        emb = model.get_input_embeddings()
        bos = head_embeddings(model, vocab).detach()  # (1, d) <|bos|> as the embedding module outputs it
        init = _init(model, vocab, prefix_ids, config)
        gist = torch.nn.Parameter(init.clone().to(emb.weight))
        opt = torch.optim.Adam([gist], lr=config.lr)
        none_train = _score(model, bos, train)["kl"]
        g = torch.Generator().manual_seed(config.seed + 1)
        steps_done, history = 0, []
        for step in range(config.steps):
            pick = torch.randint(0, len(train.ids), (config.batch_size,), generator=g)
            student = _student_logprobs(model, torch.cat([bos, gist]), train.ids[pick], train.mask[pick])
            loss = _kl(train.teacher[pick], student, train.mask[pick])
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"gist distillation loss became {loss.item()} at step {step}; nothing was saved (try a lower lr)"
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps_done = step + 1
            if steps_done % config.eval_every == 0 or steps_done == config.steps:
                kl = _score(model, torch.cat([bos, gist.detach()]), train)["kl"]
                history.append(
                    {"step": steps_done, "train_kl": kl, "train_gap_closed": 1 - kl / max(none_train, 1e-12)}
                )
                if progress:
                    print(
                        f"gist step {steps_done}: train KL {kl:.4f}, gap closed {history[-1]['train_gap_closed']:.3f}"
                    )
                if config.early_stopping is not None and history[-1]["train_gap_closed"] >= config.early_stopping:
                    break
        wall = time.perf_counter() - t0
        k = config.num_gist_tokens
        heads = {
            "gist": torch.cat([bos, gist.detach()]),
            "init": torch.cat([bos, init.to(bos)]),
            "truncated": head_embeddings(model, vocab, prefix=prefix_ids[-k:]).detach(),
            "no_prefix": bos,
        }
        rows = {name: _score(model, head, held) for name, head in heads.items()}
        for r in rows.values():
            r["gap_closed"] = 1 - r["kl"] / max(rows["no_prefix"]["kl"], 1e-12)
        report = {
            "heldout_continuations": n_held,
            "train_continuations": len(train.ids),
            "steps": steps_done,
            "wall_seconds": round(wall, 2),
            "prefix_tokens": len(prefix_ids),
            "k": k,
            "compression": (len(prefix_ids) - 1) / k,
            "baselines": rows,
            "history": history,
            "config": asdict(config),
        }
        if questions:
            full = head_embeddings(model, vocab, prefix=prefix_ids).detach()
            report["task"] = _task_report(model, vocab, {"full_prefix": full, **heads}, questions)
        return GistPrefix(
            gist.detach().cpu(), model_fingerprint(model), vocab.fingerprint(), len(prefix_ids), vocab.bos_id, report
        )
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)
