"""The distillation data: teacher continuations, their log-probs, and an honest train / held-out split.

A row is `query + continuation`: the query is given (never predicted, so never in the loss), the
continuation was sampled from the model after the full prefix and the query. The teacher's
log-probs are computed once with the prefix's KV cache and kept on the CPU.

Held-out rows are only honest where their context was never trained on: every row of a query starts
with the same context (the query itself), and two samples can share their first tokens. So a
held-out position counts only if no training row has the same tokens before it (`split`). Rows
sampled after held-out queries (never trained on) are measured apart, whole: they are what measures
how the gist serves a query it never saw, answer position included (a served query's is always seen).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..lm.constraint import LayoutConstraint
from ..lm.heads import pad  # noqa: F401  (re-exported: it lived here)
from ..lm.model import cache_kwargs, output_cache
from ..validate import positive_int
from .config import GistConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary


@dataclass
class Teacher:
    """The teacher's next-token distribution at each position, dense or as its top K and the rest.

    dense (ids None)   logp (n, T, V): every id's log-prob
    top-K              logp (n, T, K) sorted high to low, ids (n, T, K) their ids, rest (n, T) the log of
                       1 - sum(exp(logp)) (-inf where the K ids hold all the mass)
    """

    logp: torch.Tensor
    ids: torch.Tensor | None = None
    rest: torch.Tensor | None = None

    def __getitem__(self, rows: torch.Tensor) -> Teacher:
        pick = lambda t: None if t is None else t[rows]  # noqa: E731
        return Teacher(self.logp[rows], pick(self.ids), pick(self.rest))

    def first(self, width: int) -> Teacher:
        """The first `width` positions of every row."""
        cut = lambda t: None if t is None else t[:, :width]  # noqa: E731
        return Teacher(self.logp[:, :width], cut(self.ids), cut(self.rest))

    def to(self, device: Any) -> Teacher:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Teacher(self.logp.to(device), move(self.ids), move(self.rest))

    def top1(self) -> torch.Tensor:
        """(n, T) the teacher's most likely id at each position."""
        return self.logp.argmax(-1) if self.ids is None else self.ids[..., 0]


def keep_top_k(logp: torch.Tensor, k: int | None) -> Teacher:
    """(..., V) log-probs -> their `Teacher` form: the top k (None: dense, kept whole)."""
    if k is None:
        return Teacher(logp)
    top, ids = logp.topk(min(k, logp.shape[-1]), dim=-1)  # (..., k) sorted high to low
    rest = logp.scatter(-1, ids, float("-inf")).logsumexp(-1)  # (...) log of the mass outside the top k
    return Teacher(top, ids, rest)


@dataclass
class Continuations:
    ids: torch.Tensor  # (n, T) query then continuation, right-padded with 0
    real: torch.Tensor  # (n, T) bool: True on real tokens (the attention mask)
    mask: torch.Tensor  # (n, T) bool: True on the positions that count (sampled continuation tokens)
    teacher: Teacher  # log-probs of each position's token given the prefix and the tokens before
    start: torch.Tensor | None = None  # (n,) where each row's continuation starts (its query's length); None: 0

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: torch.Tensor) -> Continuations:
        start = None if self.start is None else self.start[rows]
        return Continuations(self.ids[rows], self.real[rows], self.mask[rows], self.teacher[rows], start)

    def index(self) -> torch.Tensor:
        """(n, T) each position's index within its row's continuation (negative on the query)."""
        t = torch.arange(self.ids.shape[1]).expand(len(self), -1)
        return t if self.start is None else t - self.start[:, None]

    def trimmed(self) -> Continuations:
        """The same rows without the padding columns past the longest row (rows of very different lengths,
        such as long self-study samples next to short answers, would otherwise all cost the longest)."""
        w = int(self.real.any(0).nonzero().max()) + 1 if self.real.any() else 1
        return Continuations(self.ids[:, :w], self.real[:, :w], self.mask[:, :w], self.teacher.first(w), self.start)


def sample(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prefix: list[int],
    queries: list[list[int]],
    config: GistConfig,
    seed: int = 0,
    count: int | None = None,
    length: int | None = None,
    max_rows: int = 64,
    max_cached_tokens: int = 2**15,
) -> list[list[int]]:
    """`count` (config.num_continuations) rows per query: query + a continuation of up to `length`
    (config.continuation_length) tokens sampled at config.temperature, deterministic in config.seed and
    `seed`. No queries: rows straight after the prefix.

    The prefix is read once: its keys and values (all but its last token) are shared by every row, and
    the rows of all queries go through `generate` together, up to `max_rows` at a time and as many as
    keep the batch's cache within `max_cached_tokens` positions (rows x (prefix + query + length), for
    memory: SmolLM2-135M holds 46 kB per position, so 2**15 positions are 1.5 GB). Shorter queries
    are padded between the prefix and the query (`prefix[-1] <|pad|>... query`, the pads masked out), so
    every row's tokens keep their positions and all rows continue from the same column."""
    if len(prefix) < 2:
        raise ValueError(f"sampling needs a prefix of at least 2 tokens (<|bos|> and one more), got {len(prefix)}")
    positive_int(max_rows, "max_rows")
    positive_int(max_cached_tokens, "max_cached_tokens")
    count, length = count or config.num_continuations, length or config.continuation_length
    device = model.get_input_embeddings().weight.device
    g = torch.Generator().manual_seed(config.seed * 1000 + seed)
    contexts = [q for q in queries or [[]] for _ in range(count)]
    with torch.no_grad():
        head = output_cache(model(input_ids=torch.tensor([prefix[:-1]], device=device), use_cache=True))
    rows = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the caller's RNG is left alone
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        rows_per_batch = max(1, min(max_rows, max_cached_tokens // (len(prefix) + max(map(len, contexts)) + length)))
        for start in range(0, len(contexts), rows_per_batch):
            chunk = contexts[start : start + rows_per_batch]
            width = max(map(len, chunk))
            ids = torch.tensor([prefix + [vocab.pad_id] * (width - len(q)) + q for q in chunk], device=device)
            mask = torch.tensor([[1] * len(prefix) + [0] * (width - len(q)) + [1] * len(q) for q in chunk])
            cache = copy.deepcopy(head)
            cache.batch_repeat_interleave(len(chunk))
            out = model.generate(
                input_ids=ids,
                attention_mask=mask.to(device),
                max_new_tokens=length,
                do_sample=True,
                top_k=0,
                top_p=1.0,
                temperature=config.temperature,
                logits_processor=[LayoutConstraint(vocab, ids.shape[1] + length)],
                pad_token_id=vocab.pad_id,
                eos_token_id=vocab.eos_id,
                **cache_kwargs(model, cache),
            )
            for q, row in zip(chunk, out[:, ids.shape[1] :].tolist()):
                cut = row.index(vocab.eos_id) + 1 if vocab.eos_id in row else len(row)
                rows.append(q + row[:cut])
    return rows


def cut_at(rows: list[list[int]], patterns: list[list[int]], starts: list[int] | None = None) -> list[list[int]]:
    """Each row up to (not including) the first occurrence of any pattern at or after `starts[b]` (0).

    [[5, 1, 2, 7]], [[1, 2]] -> [[5]]"""
    if any(not p for p in patterns):
        raise ValueError("an excluded pattern encodes to no tokens")
    out = []
    for b, row in enumerate(rows):
        cut = len(row)
        for p in patterns:
            for i in range(starts[b] if starts else 0, cut - len(p) + 1):
                if row[i : i + len(p)] == p:
                    cut = i
                    break
        out.append(row[:cut])
    return out


@torch.no_grad()
def teacher_logprobs(
    model: PreTrainedModel, prefix: list[int], ids: torch.Tensor, real: torch.Tensor, top_k: int | None = None
) -> Teacher:
    """log P(ids[:, t] | prefix, ids[:, :t]) on the CPU, with the prefix's KV cache computed once: (n, T, V)
    dense (top_k None), else the top `top_k` per position and the rest. Rows go through the model in
    chunks of at most 16 and about 2**26 logits, and only the kept form leaves the chunk."""
    device = model.get_input_embeddings().weight.device
    out = model(input_ids=torch.tensor([prefix], device=device), use_cache=True)
    first, cache = out.logits[:, -1:].float(), output_cache(out)  # (1, 1, V): predicts ids[:, 0]
    rows = max(1, min(16, 2**26 // (ids.shape[1] * first.shape[-1])))
    chunks = []
    for start in range(0, len(ids), rows):
        part, preal = ids[start : start + rows], real[start : start + rows]
        c = copy.deepcopy(cache)
        c.batch_repeat_interleave(len(part))
        attn = torch.cat([torch.ones(len(part), len(prefix), dtype=torch.long), preal.long()], 1).to(device)
        logits = model(input_ids=part.to(device), attention_mask=attn, **cache_kwargs(model, c)).logits.float()
        logp = torch.cat([first.expand(len(part), -1, -1), logits[:, :-1]], 1).log_softmax(-1)  # (rows, T, V)
        chunks.append(keep_top_k(logp, top_k).to("cpu"))
    cat = lambda ts: None if ts[0] is None else torch.cat(ts)  # noqa: E731
    return Teacher(torch.cat([c.logp for c in chunks]), cat([c.ids for c in chunks]), cat([c.rest for c in chunks]))


@dataclass
class Split:
    train: Continuations  # what the gist is trained on
    heldout: Continuations  # served rows for the report; positions whose context was trained on masked out
    validation: Continuations | None  # served rows for choosing the step (never trained on); None without
    unseen: Continuations | None  # the rows after held-out queries, whole; None without
    dropped: int  # held-out positions masked out
    validation_honest: bool = True  # False: every validation position's context was trained on, so all are kept


def split(
    data: Continuations,
    heldout_fraction: float,
    seed: int,
    unseen: int = 0,
    validation_fraction: float = 0.0,
    study: int = 0,
) -> Split:
    """Rows are laid out as [served | study | unseen]. The last `unseen` rows (sampled after held-out
    queries) come back whole as `unseen`; the `study` rows before them (self-study) all go to training;
    the served rows are split at random into train, held-out and validation rows (no validation rows
    when `validation_fraction` is 0; the held-out rows depend on neither). Held-out positions whose
    context (every token before them) also occurs in a training row are dropped from the held-out
    mask, which may leave it empty; so are validation positions, unless that would leave none."""
    served = len(data) - unseen - study
    n_held = round(served * heldout_fraction)
    n_val = max(1, round(served * validation_fraction)) if validation_fraction > 0 else 0
    if not (n_held >= 1 and n_held + n_val < served):
        raise ValueError(
            f"{served} continuations with heldout_fraction {heldout_fraction} and validation_fraction "
            f"{validation_fraction} leave {n_held} held out, {n_val} for validation and "
            f"{served - n_held - n_val} to train on; held-out and training rows need at least one each "
            "(raise num_continuations)"
        )
    order = torch.randperm(served, generator=torch.Generator().manual_seed(seed))
    train = data.subset(torch.cat([order[n_held + n_val :], torch.arange(served, served + study)]))
    held, val = data.subset(order[:n_held]), data.subset(order[n_held : n_held + n_val])
    seen = {tuple(row[:t].tolist()) for row, m in zip(train.ids, train.mask) for t in m.nonzero().flatten().tolist()}

    def unseen_only(part: Continuations) -> Continuations:
        keep = part.mask.clone()
        for b, t in part.mask.nonzero().tolist():
            keep[b, t] = tuple(part.ids[b, :t].tolist()) not in seen
        return Continuations(part.ids, part.real, keep, part.teacher, part.start)

    kept = unseen_only(held)
    rest = unseen_only(data.subset(torch.arange(served + study, len(data)))) if unseen else None
    honest = unseen_only(val) if n_val else None
    validation = honest if honest is None or honest.mask.any() else val
    return Split(train, kept, validation, rest, int(held.mask.sum() - kept.mask.sum()), validation is honest)
