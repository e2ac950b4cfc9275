"""distill_gist: train k gist positions so the frozen model behaves after them as after the full prefix.

    gist = distill_gist(model, vocab, Prompt([photo, "Instruction: ..."]), GistConfig(num_gist_tokens=4))

1. Data (gist/data.py): continuations sampled from the model with the full prefix (the teacher) after
   each given query, or straight after the prefix; split into train and held-out rows, and held-out
   positions whose context also occurs in a training row are left out of the report. `self_study`
   more samples straight after the prefix (up to `self_study_length` tokens: the model writing its
   own questions and answers about it) are all trained on, every sampled token in the loss.
2. Teacher: the prefix runs once (its KV cache is reused for every continuation) and the teacher's
   next-token log-probs on every continuation are computed once and kept: the top `teacher_top_k`
   per position and the mass left over (the KL runs over those ids plus one rest bucket), or dense.
3. Student: `<|bos|> g_1..g_k query continuation`; the loss is the forward KL(teacher || student) over
   the continuation positions plus, with `hidden_weight`, the relative squared error of the student's
   hidden states at every layer and every row position against the model's own after the full prefix
   (the KL alone only constrains what the trained rows ask: on question types never trained on, a gist
   kept the answers but lost the instruction's format until its states had to match the prefix's).
   Only g is trained (Adam, on an fp32 copy whatever the model's dtype): k input embeddings
   (`target="embeddings"`) or every layer's keys and values at the k positions (`target="kv"`, started
   from the model's own on the init embeddings; a KV head has no output at its last position, so rows
   without a query count from their second sampled token, for every head alike). The model's
   parameters are frozen while it runs and restored to their requires_grad flags after; their values
   never change. `stopping="fixed"` returns the gist after all steps; `stopping="validation"` the gist
   of the evaluated step (every `eval_every`) with the lowest KL on validation rows (served rows apart
   from the held-out ones, never trained on). `history` records the curve: training, validation and
   held-out KL at each evaluated step.
4. Report (gist/report.py), never on trained positions: KL(full || gist), KL(full || no prefix), the
   gap closed G = 1 - KL_gist / KL_none, top-1 agreement, for the gist, its initialization, a
   truncated prefix of the same length (the last k prefix tokens) and no prefix, and exact match of
   the greedy continuation after each held-out query: `baselines` on the held-out rows of the served
   queries, `unseen_queries` on the rows after `heldout_queries` (never trained on). `Question`s among
   the held-out queries add task accuracy on unseen questions (`heldout_task`); among the served
   queries (`task`) the answer position itself was trained on, so that section says how well the
   gist kept what it was taught. True answers are never trained on, only the teacher's samples are.
   With `control_prefix`, the control head (another prefix, whole) and G_content; `by_position`
   breaks KL down by position within the continuation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ..lm.heads import KVHead, bos_kv, kv_of
from ..lm.model import check_model, context_length, frozen, output_cache
from ..lm.scoring import Question, context_ids, head_embeddings, prefix_head, to_ids
from . import data, report
from .chunks import ForcedRow
from .config import PREFIX_INITS, GistConfig, learning_rate
from .kv_init import attended_kv, prefix_kv
from .prefix import GistPrefix, model_fingerprint
from .report import Head

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary

HISTORY_ROWS = 32  # training rows whose KL the history records (all of them cost a sixth of the distillation)
HIDDEN_TARGET_BYTES = 2**29  # the hidden-state term's targets are kept for every training row up to this size;
# beyond it (long rows, many layers) they are recomputed for each batch: about a third more time per step


def _train(
    model: PreTrainedModel,
    head: Callable[[torch.Tensor], Head],
    init: torch.Tensor,
    bos: torch.Tensor,
    split: data.Split,
    parts: dict[str, data.Continuations],
    config: GistConfig,
    progress: bool,
    full: KVHead | None = None,
) -> tuple[torch.Tensor, list[dict[str, Any]], int, int]:
    """Adam on an fp32 copy of `init`, the model's head being `head(gist)`: (the chosen gist, the history,
    steps run, the chosen step). The loss is the KL to the teacher, plus with `config.hidden_weight` the hidden
    states' error against those after `full` (the whole prefix read once), computed once per training row
    (`_states`) within HIDDEN_TARGET_BYTES, else per batch. Every `eval_every` steps (and at 0 and the end) the
    history records KL (and the hidden states' error) on HISTORY_ROWS training rows (evenly spread), the
    validation rows and `parts`; the chosen step is the last, or with stopping="validation" the one of lowest
    validation KL."""
    train, validation = split.train, split.validation
    gist = torch.nn.Parameter(init.clone())  # fp32 master copy; cast to the model's dtype in the forward
    opt = torch.optim.Adam([gist], lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: learning_rate(config, step) / config.lr)
    every = max(1, len(train) // HISTORY_ROWS)
    watched = train.subset(torch.arange(len(train))[::every][:HISTORY_ROWS])  # evenly spread, served and self-study
    none_train = report.fidelity(model, bos, watched)["kl"]
    g = torch.Generator().manual_seed(config.seed + 1)
    usable = train.mask.any(1).nonzero()[:, 0]  # rows with a position to learn: a batch of none would give NaN
    weights = None  # per-position loss weights: the positions the prefix decides count more
    if config.divergence_weight > 0:
        prefix_kl = report.kl_positions(model, bos, train)  # (n, T) KL(full || no prefix)
        weights = report.divergence_weights(prefix_kl, train.mask, config.divergence_weight)
    hidden = full is not None and config.hidden_weight > 0
    targets = _states(model, full, train, HIDDEN_TARGET_BYTES) if hidden else None  # None: per batch instead
    watched_targets = _states(model, full, watched) if hidden else None
    history: list[dict[str, Any]] = []
    best, best_step, best_kl = init.clone(), 0, float("inf")
    bar = tqdm(total=config.steps, desc="distilling the gist", unit="step", disable=not progress, dynamic_ncols=True)
    for step in range(config.steps + 1):
        if step % config.eval_every == 0 or step == config.steps:
            h = head(gist.detach())
            row = {"step": step, "train_kl": report.fidelity(model, h, watched)["kl"]}
            row["train_gap_closed"] = 1 - row["train_kl"] / max(none_train, 1e-12)
            if watched_targets is not None:
                with torch.no_grad():
                    states = report.student_forward(model, h, watched.ids, watched.real, hidden=True, logits=False)[1]
                row["train_hidden_error"] = report.hidden_error(states, watched_targets, watched.real).item()
            if validation is not None:
                row["validation_kl"] = report.fidelity(model, h, validation)["kl"]
            row.update({f"{name}_kl": report.fidelity(model, h, part)["kl"] for name, part in parts.items()})
            history.append(row)
            bar.set_postfix({key.replace("_kl", " KL"): f"{v:.3f}" for key, v in row.items() if key.endswith("_kl")})
            score = row["validation_kl"] if validation is not None else -step  # fixed: the last step
            if score < best_kl:
                best, best_step, best_kl = gist.detach().clone(), step, score
        if step == config.steps:
            bar.close()
            return best, history, step, best_step
        picks = usable[torch.randint(0, len(usable), (config.batch_size,), generator=g)]
        batch = train.subset(picks).trimmed()
        student, states = report.student_forward(model, head(gist), batch.ids, batch.real, hidden=hidden)
        weight = None if weights is None else weights[picks, : batch.ids.shape[1]]
        loss = report.kl(batch.teacher, student, batch.mask, weight)
        if hidden:
            if targets is not None:
                want = tuple(t[picks.to(t.device), : batch.ids.shape[1]] for t in targets)
            else:
                want = _states(model, full, batch)
            loss = loss + config.hidden_weight * report.hidden_error(states, want, batch.real)
        opt.zero_grad()
        loss.backward()
        bar.update(1)
        opt.step()
        schedule.step()
        if not (torch.isfinite(loss) and torch.isfinite(gist).all()):
            raise FloatingPointError(
                f"gist distillation loss became {loss.item()} at step {step} (gist finite: "
                f"{bool(torch.isfinite(gist).all())}); nothing was saved (try a lower lr)"
            )
    raise AssertionError("unreachable")


@torch.no_grad()
def _states(
    model: PreTrainedModel, full: KVHead, rows: data.Continuations, budget: int | None = None, chunk: int = 16
) -> tuple[torch.Tensor, ...] | None:
    """The hidden-state term's targets: every layer's output on every row after the whole prefix, one (n, T, d)
    tensor per layer in the model's dtype, on its device. None where they would take more than `budget` bytes
    (layers x n x T x d numbers: about 50 MB in float32 for the demo model's default distillation, 1.7 GB for
    SmolLM2-135M with 224 chat rows): the caller then computes them per batch."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    element = model.get_input_embeddings().weight.element_size()
    size = config.num_hidden_layers * rows.ids.numel() * config.hidden_size * element
    if budget is not None and size > budget:
        return None
    parts = [report.student_forward(model, full, rows.ids[s : s + chunk], rows.real[s : s + chunk], hidden=True,
                                    logits=False)[1]
             for s in range(0, len(rows), chunk)]  # fmt: skip
    return tuple(torch.cat(layer) for layer in zip(*parts))


def _target(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    bos: torch.Tensor,
    init: torch.Tensor,
    target: str,
    start: torch.Tensor | None = None,
) -> tuple[Callable[[torch.Tensor], Head], torch.Tensor]:
    """(head, start): `head(g)` is what the model sees before the query for the trained tensor g, and
    `start` (fp32) is g's starting value: the init embeddings (k, d), or for target "kv" the given `start`
    (the prefix's own keys and values) or else the model's own keys and values (layers, 2, kv_heads, k,
    head_dim) at positions 1..k when it runs on the init embeddings."""
    if target == "embeddings":
        return lambda g: torch.cat([bos, g.to(bos.dtype)]), init
    first = bos_kv(model, vocab.bos_id)  # (layers, 2, kv_heads, 1, head_dim), never trained
    if start is None:
        with torch.no_grad():
            out = model(inputs_embeds=torch.cat([bos, init.to(bos.dtype)])[None], use_cache=True)
        start = kv_of(output_cache(out))[:, :, :, 1:].float()
    return lambda g: KVHead(torch.cat([first, g.to(first.dtype)], dim=3)), start


@torch.no_grad()
def _init(model: PreTrainedModel, vocab: SharedVocabulary, prefix: list[int], config: GistConfig) -> torch.Tensor:
    """(k, d) starting gist embeddings, in the space of the embedding module's output (what inputs_embeds
    takes: some models, such as Gemma, scale their embedding rows inside that module)."""
    emb = model.get_input_embeddings()

    def embed(ids: list[int] | torch.Tensor) -> torch.Tensor:
        return emb(torch.as_tensor(ids, device=emb.weight.device)).float()

    g = torch.Generator().manual_seed(config.seed)
    k = config.num_gist_tokens
    std = embed(torch.arange(min(vocab.layout.text_size, 4096))).std()  # the spread of ordinary token embeddings
    if config.init == "prefix_mean":
        mean = embed(prefix[1:]).mean(0)  # the prefix's own tokens, <|bos|> left out
        return mean + 0.01 * std * torch.randn(k, mean.shape[0], generator=g).to(mean)
    if config.init == "last_tokens" or config.init in PREFIX_INITS:  # the latter start from keys and values
        return embed(prefix[-k:])
    if config.init == "text":
        ids = vocab.encode([config.init_text])
        return embed([ids[i % len(ids)] for i in range(k)])
    if config.init == "vocab_sample":
        return embed(torch.randint(0, vocab.layout.text_size, (k,), generator=g))
    return torch.randn(k, emb.weight.shape[1], generator=g).to(std.device) * std


@dataclass
class _Request:
    """A distillation's inputs as ids, checked: what `distill_gist` was asked for."""

    prefix: list[int]  # <|bos|> first
    queries: list[list[int]]  # served: continuations after each are trained on (most) and held out (some)
    heldout: list[list[int]]  # never trained on
    control: list[int] | None  # another prefix, whole, for G_content
    served_questions: list[Question]  # the Questions among the queries: task accuracy on what was taught
    heldout_questions: list[Question]  # the Questions among the held-out queries: accuracy on unseen ones
    forced: list[ForcedRow]  # rows whose continuation is given


def _request(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prefix: Any,
    config: GistConfig,
    *,
    queries: list[Any] | None,
    heldout_queries: list[Any] | None,
    control_prefix: Any,
    self_study_exclude: list[Any] | None,
    forced: list[ForcedRow] | None,
    start: GistPrefix | None,
) -> _Request:
    """`distill_gist`'s arguments checked and turned into ids; every refusal names the bad value."""
    if not isinstance(config, GistConfig):
        raise TypeError(f"distill_gist's config must be a GistConfig, got {type(config).__name__}")
    lists = {"queries": queries, "heldout_queries": heldout_queries, "self_study_exclude": self_study_exclude}
    for name, given in lists.items():
        if given is not None and not isinstance(given, (list, tuple)):
            raise TypeError(f"distill_gist's {name} must be a list, got {type(given).__name__}")
    check_model(model, vocab)
    prefix_ids = context_ids(vocab, prefix)  # <|bos|> first; ids that do not parse as a prompt are refused
    if start is not None:
        start.check(model, vocab)
        if (start.target, start.k, start.prefix_length) != (config.target, config.num_gist_tokens, len(prefix_ids)):
            raise ValueError(
                f"start is a {start.target} gist of k={start.k} for a {start.prefix_length}-token prefix; this "
                f"distillation makes a {config.target} gist of k={config.num_gist_tokens} for {len(prefix_ids)} tokens"
            )
    if prefix_ids == [vocab.bos_id]:
        raise ValueError("cannot distill an empty prefix")
    if config.num_gist_tokens >= len(prefix_ids) - 1:
        raise ValueError(
            f"num_gist_tokens {config.num_gist_tokens} must be smaller than the prefix "
            f"({len(prefix_ids) - 1} tokens after <|bos|>): there is nothing to compress"
        )
    query_ids = [
        to_ids(vocab, q.query if isinstance(q, Question) else q, what=f"query {n}") for n, q in enumerate(queries or [])
    ]
    heldout_ids = [
        to_ids(vocab, q.query if isinstance(q, Question) else q, what=f"held-out query {n}")
        for n, q in enumerate(heldout_queries or [])
    ]
    for n, row in enumerate(forced or []):
        if not isinstance(row, ForcedRow) or not row.continuation:
            raise ValueError(f"forced row {n} must be a ForcedRow with a non-empty continuation, got {row!r:.80}")
        to_ids(vocab, row.query + row.continuation, what=f"forced row {n}")
    if any(len(q) == 0 for q in heldout_ids):
        raise ValueError("a held-out query must not be empty: the continuation straight after the prefix is served")
    if clash := [q for q in heldout_ids if any(q[: len(s)] == s for s in query_ids)]:
        raise ValueError(
            f"held-out query {vocab.decode(clash[0]).text()!r} is (or extends) a served query: it would be trained on"
        )
    control_ids = None if control_prefix is None else to_ids(vocab, control_prefix, add_bos=True, what="control_prefix")
    if control_ids is not None and control_ids[:1] != [vocab.bos_id]:
        control_ids = [vocab.bos_id, *control_ids]
    if control_ids == prefix_ids:
        raise ValueError("control_prefix is the prefix itself: give another one (the same instruction, other content)")
    head_length = max(len(prefix_ids), len(control_ids or []))
    longest = head_length + max((len(q) for q in query_ids + heldout_ids), default=0) + config.continuation_length
    longest = max(longest, len(prefix_ids) + (config.self_study_length if config.self_study else 0))
    longest = max([longest] + [len(prefix_ids) + len(r.query) + len(r.continuation) for r in forced or []])
    if longest > context_length(model):
        raise ValueError(
            f"prefix ({head_length} tokens, the longer of prefix and control) plus query and continuation "
            f"({longest} in all) exceed the model's context of {context_length(model)}"
        )
    return _Request(
        prefix=prefix_ids,
        queries=query_ids,
        heldout=heldout_ids,
        control=control_ids,
        served_questions=[q for q in queries or [] if isinstance(q, Question)],
        heldout_questions=[q for q in heldout_queries or [] if isinstance(q, Question)],
        forced=list(forced or []),
    )


def _rows(
    model: PreTrainedModel, vocab: SharedVocabulary, request: _Request, config: GistConfig, exclude: list[Any] | None
) -> tuple[data.Split, int, dict[str, float]]:
    """(the split rows with the teacher's log-probs, how many self-study and forced rows train, seconds for
    sampling and the teacher). Rows are laid out [served | self-study | forced | after held-out queries]."""
    t0 = time.perf_counter()
    prefix, n = request.prefix, config.num_continuations
    rows = data.sample(model, vocab, prefix, request.queries, config)
    study = config.self_study
    study_rows = (
        data.sample(model, vocab, prefix, [], config, seed=2, count=study, length=config.self_study_length)
        if study
        else []
    )
    served_starts = [len(q) for q in (request.queries or [[]]) for _ in range(n)]  # each row's query length
    if exclude:
        patterns = [to_ids(vocab, x, what="self_study_exclude") for x in exclude]
        rows = data.cut_at(rows, patterns, served_starts)
        study_rows = [r for r in data.cut_at(study_rows, patterns) if r]
        study = len(study_rows)
    unseen_rows = data.sample(model, vocab, prefix, request.heldout, config, seed=1) if request.heldout else []
    starts = served_starts + [0] * study
    starts += [len(r.query) for r in request.forced]
    study_rows += [r.query + r.continuation for r in request.forced]  # trained on, like self-study
    study += len(request.forced)
    starts += [len(q) for q in request.heldout for _ in range(n)]
    # a KV head has no output at its last position: without a query, the first sampled token is given
    first = 1 if config.target == "kv" else 0
    ids, real, mask = data.pad(rows + study_rows + unseen_rows, [max(s, first) for s in starts])
    t_sampled = time.perf_counter()
    teacher = data.teacher_logprobs(model, prefix, ids, real, config.teacher_top_k)
    everything = data.Continuations(ids, real, mask, teacher, torch.tensor(starts))
    validation_fraction = config.validation_fraction if config.stopping == "validation" else 0.0
    split = data.split(everything, config.heldout_fraction, config.seed, len(unseen_rows), validation_fraction, study)
    if not split.train.mask.any():
        raise ValueError(
            f"the teacher's {len(split.train)} training samples hold no token to learn from: the model ended each "
            "at once (eos) after the prefix and queries; give queries it answers, or self_study samples"
        )
    if split.validation is not None and not split.validation.mask.any():
        raise ValueError("the validation rows hold no sampled token to measure (raise continuation_length)")
    return split, study, {"sampling": t_sampled - t0, "teacher": time.perf_counter() - t_sampled}


def _start(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prefix_ids: list[int],
    config: GistConfig,
    train: data.Continuations,
    bos: torch.Tensor,
    start: GistPrefix | None,
) -> tuple[Callable[[torch.Tensor], Head], torch.Tensor]:
    """(head: gist -> what the model reads before a query, the trained tensor's start): from `start` (a
    gist to refine), else config.init; the attended start reads what the training rows attend to."""
    init = _init(model, vocab, prefix_ids, config)  # (k, d) fp32
    how = config.init.removeprefix("prefix_") if config.init in PREFIX_INITS else None
    if start is not None:  # refine a given gist
        init = start.embeddings.float() if start.target == "embeddings" else init
        start_kv = start.kv.float() if start.target == "kv" else None
    elif how == "attended":  # what the training rows (questions and teacher answers) read in the prefix
        seen = [r[m].tolist() for r, m in zip(train.ids, train.real) if m.any()]
        start_kv = attended_kv(model, prefix_ids, config.num_gist_tokens, seen)
    else:
        start_kv = prefix_kv(model, prefix_ids, config.num_gist_tokens, how) if how else None
    return _target(model, vocab, bos, init, config.target, start_kv)


def _report(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    request: _Request,
    config: GistConfig,
    *,
    split: data.Split,
    parts: dict[str, data.Continuations],
    study: int,
    heads: dict[str, Head],
    history: list[dict[str, Any]],
    steps: tuple[int, int],
    seconds: dict[str, float],
    start: GistPrefix | None,
) -> dict[str, Any]:
    """The distillation's report (the module docstring's step 4), on the held-out rows only: each head's
    fidelity, G and G_content, the curve, where the time went and what the figures cannot say (notes)."""
    held, unseen_part = split.heldout, split.unseen
    if request.control is not None:
        heads = {**heads, "control": head_embeddings(model, vocab, prefix=request.control).detach()}
    everyone = {"full_prefix": head_embeddings(model, vocab, prefix=request.prefix).detach(), **heads}
    n, eos = config.continuation_length, vocab.eos_id
    # greedy decoding starts at the query's last token, trained on for a served query: after held-out ones only
    tables = {
        name: report.table(model, everyone, part, request.heldout if name == "unseen_queries" else None, n, eos)
        for name, part in parts.items()
    }
    for h in history:
        for name, t in tables.items():
            h[f"{name}_gap_closed"] = 1 - h[f"{name}_kl"] / max(t["no_prefix"]["kl"], 1e-12)
    g_content = {  # 1 - KL(full || head) / KL(full || control): 0 for a head no closer than another prefix
        name: {h: 1 - t[h]["kl"] / max(t["control"]["kl"], 1e-12) for h in ("gist", "init", "truncated")}
        for name, t in tables.items()
        if "control" in t
    }
    notes = []
    if split.validation is not None and not split.validation_honest:
        notes.append(
            "every validation position's context also occurs in a training row: the step was chosen on "
            "them all (raise num_continuations or validation_fraction for an honest choice)"
        )
    if "heldout" not in parts:
        notes.append(
            "no held-out row of the served queries has a position whose context was not trained on (the "
            "samples repeat each other, as short answers do): pass heldout_queries to measure the gist"
        )
    k = config.num_gist_tokens
    result = {
        "train_continuations": len(split.train),  # self-study rows included
        "self_study_continuations": study,  # forced rows included
        "forced_rows": len(request.forced),
        "heldout_continuations": len(held),  # served rows held out at random
        "heldout_positions": int(held.mask.sum()),
        "heldout_positions_dropped": split.dropped,  # their context also occurs in a training row
        "heldout_queries": len(request.heldout),
        "unseen_query_continuations": len(unseen_part) if unseen_part is not None else 0,
        "steps": steps[0],
        "best_step": steps[1],  # the step whose gist is returned (all steps with stopping="fixed")
        "validation_continuations": len(split.validation) if split.validation is not None else 0,
        "wall_seconds": round(sum(seconds.values()), 2),
        "seconds": {name: round(v, 2) for name, v in seconds.items()},  # where the wall time went (training:
        # the steps and the history's evaluations)
        "prefix_tokens": len(request.prefix),
        "k": k,
        "compression": (len(request.prefix) - 1) / k,
        "baselines": tables.get("heldout"),  # None when every held-out position was seen in training
        "unseen_queries": tables.get("unseen_queries"),  # None without heldout_queries
        "G_content": g_content or None,  # per part, per head; None without control_prefix
        "by_position": report.by_position(tables),  # per part: mean KL per head at positions 0..7, then 8+
        "history": history,
        "notes": notes,
        "config": asdict(config),
        "method": "distilled" if start is None else f"distilled from a {start.report.get('method', 'given')} gist",
    }
    if request.served_questions:
        result["task"] = report.task(model, vocab, everyone, request.served_questions)
    if request.heldout_questions:
        result["heldout_task"] = report.task(model, vocab, everyone, request.heldout_questions)
    return result


def distill_gist(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prefix: Any,
    config: GistConfig | None = None,
    queries: list[Any] | None = None,
    progress: bool = False,
    heldout_queries: list[Any] | None = None,
    control_prefix: Any = None,
    self_study_exclude: list[Any] | None = None,
    forced: list[ForcedRow] | None = None,
    start: GistPrefix | None = None,
) -> GistPrefix:
    """Compress `prefix` (a Prompt, or ids starting with <|bos|>) into `config.num_gist_tokens` positions
    (input embeddings, or keys and values with `target="kv"`).

    `queries`: what the gist must serve, each a Prompt, a string, ids or a `Question`; teacher
    continuations are sampled after each. `heldout_queries` (of the same kinds) are never trained on:
    what the model does after them is held out to measure how the gist serves queries it never saw.
    `control_prefix` (of the same kinds as `prefix`): another prefix, say another photo with the same
    instruction; the report then measures it whole as the "control" head, and `G_content` says how
    much of the gap between the control and the full prefix the gist closes (what is the prefix's own).
    `self_study_exclude` (strings or ids): every sample trained on (self-study, and the continuations of
    served queries) is cut where one of them first occurs, so that what follows (a question type kept
    for the report, say) is never trained on.
    `forced`: rows whose continuation is given, not sampled (`ForcedRow`s, such as `reconstruction_rows`:
    the prefix's own text after a query that quotes its start); all trained on, every continuation token
    in the loss against the teacher's log-probs after the full prefix.
    `start`: a gist of this prefix to refine (a compressor's, say) instead of `config.init`: its target and k
    must be the config's.
    """
    config = GistConfig() if config is None else config
    request = _request(model, vocab, prefix, config, queries=queries, heldout_queries=heldout_queries,
                       control_prefix=control_prefix, self_study_exclude=self_study_exclude, forced=forced,
                       start=start)  # fmt: skip
    with frozen(model):
        split, study, seconds = _rows(model, vocab, request, config, self_study_exclude)
        t0 = time.perf_counter()
        bos = head_embeddings(model, vocab).detach()  # (1, d) <|bos|> as the embedding module outputs it
        head, init = _start(model, vocab, request.prefix, config, split.train, bos, start)
        full = prefix_head(model, vocab, request.prefix) if config.hidden_weight > 0 else None
        parts = {name: p for name, p in {"heldout": split.heldout, "unseen_queries": split.unseen}.items()
                 if p is not None and p.mask.any()}  # fmt: skip
        t1 = time.perf_counter()
        gist, history, steps_done, best_step = _train(model, head, init, bos, split, parts, config, progress, full)
        seconds.update(setup=t1 - t0, training=time.perf_counter() - t1)
        k = config.num_gist_tokens
        heads = {
            "gist": head(gist.detach()),
            "init": head(init),
            "truncated": head_embeddings(model, vocab, prefix=request.prefix[-k:]).detach(),
            "no_prefix": bos,
        }
        result = _report(model, vocab, request, config, split=split, parts=parts, study=study, heads=heads,
                         history=history, steps=(steps_done, best_step), seconds=seconds, start=start)  # fmt: skip
        trained = gist.detach().to(model.get_input_embeddings().weight.dtype).cpu()
        kv, embeddings = (trained, None) if config.target == "kv" else (None, trained)
        fingerprints = (model_fingerprint(model), vocab.fingerprint())
        return GistPrefix(embeddings, *fingerprints, len(request.prefix), vocab.bos_id, result, kv=kv)
