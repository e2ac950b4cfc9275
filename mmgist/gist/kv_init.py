"""KV gists started from the prefix's own keys and values, moved to the gist's positions.

    kv = prefix_kv(model, prefix_ids, k=8, how="even")  # (layers, 2, kv_heads, 8, head_dim)

A KV gist sits at positions 1..k after <|bos|>. The prefix's keys at position p carry the rotary
rotation of p; `rotate_keys` turns them by (slot - p) so each one looks as if its token had been read
at the gist slot it is placed in (rotary rotations compose: R(a) R(b) = R(a + b)). Values carry no
position and are copied as they are. Which positions:
    first   the first k tokens after <|bos|> (Cartridges' start)
    even    k positions spread evenly over the prefix, its last token included
    chunks  the prefix cut into k runs of consecutive tokens, each run's keys (moved to its slot) and
            values averaged
    salient the k most surprising tokens under the model itself (-log p given what comes before: numbers,
            names, the facts), in their order; their keys and values already hold what their context said
            (KV eviction in the manner of H2O and SnapKV, by LLMLingua's rule of which tokens matter)
    attended  per layer and per key-value head, the k positions that the given rows (questions and answers
            read after the full prefix) attend to most, as SnapKV chooses them; each head keeps its own
            positions, and every key is turned by the same k + 1 - N, so a query at k + 1 + t sees each kept
            key at the distance it had after the whole N-token prefix
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from ..lm.heads import kv_cache, kv_of
from ..lm.model import cache_kwargs, output_cache
from ..validate import one_of, positive_int

if TYPE_CHECKING:
    from transformers import PreTrainedModel

HOWS = ("first", "even", "chunks", "salient", "attended")


def _rotary(model: PreTrainedModel) -> Any:
    """The model's rotary embedding module (transformers' `model.model.rotary_emb`), or a clear error."""
    inner = getattr(model, "model", model)
    rotary = getattr(inner, "rotary_emb", None)
    if rotary is None:
        raise ValueError(
            f"{type(model).__name__} has no single rotary embedding (model.model.rotary_emb): keys cannot be moved "
            "to other positions; start the gist from embeddings instead (GistConfig.init='last_tokens')"
        )
    return rotary


def rotate_keys(model: PreTrainedModel, keys: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """(..., T, head_dim) keys, each turned by the rotary rotation of `delta` (T,) positions (negative: back).
    Uses the model's own rotary frequencies and its rotate-half convention (Llama, Qwen, Mistral, SmolLM2)."""
    rotary = _rotary(model)
    if delta.shape != keys.shape[-2:-1]:
        raise ValueError(
            f"delta must hold one offset per key position ({keys.shape[-2]}), got shape {tuple(delta.shape)}"
        )
    x = keys.float()
    cos, sin = rotary(x, delta.to(x.device).long()[None])  # (1, T, head_dim) each
    cos, sin = cos[0].float(), sin[0].float()
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # rotate_half, as transformers' Llama
    return (x * cos + rotated * sin).to(keys.dtype)


def positions(prefix_tokens: int, k: int, how: str, surprisal: torch.Tensor | None = None) -> list[list[int]]:
    """For each of the k gist slots, the prefix positions (1 .. prefix_tokens - 1; 0 is <|bos|>) it starts from.
    "salient" needs `surprisal` (prefix_tokens - 1,): -log p of tokens 1 .. prefix_tokens - 1. "attended" chooses
    per head (`attended_positions`), not here."""
    one_of(how, "how", HOWS)
    positive_int(k, "k")
    n = prefix_tokens - 1
    if k > n:
        raise ValueError(f"k = {k} gist positions cannot start from a prefix of {n} tokens after <|bos|>")
    if how == "attended":
        raise ValueError("how='attended' chooses positions per layer and head: use attended_positions")
    if how == "salient":
        if surprisal is None or surprisal.shape != (n,):
            raise ValueError(f"how='salient' needs the surprisal of the {n} tokens after <|bos|>, got "
                             f"{None if surprisal is None else tuple(surprisal.shape)}")  # fmt: skip
        return [[1 + i] for i in sorted(surprisal.topk(k).indices.tolist())]
    if how == "first":
        return [[1 + i] for i in range(k)]
    if how == "even":
        return [[1 + round(i * (n - 1) / max(k - 1, 1))] if k > 1 else [n] for i in range(k)]
    bounds = [1 + round(i * n / k) for i in range(k + 1)]
    return [list(range(bounds[i], bounds[i + 1])) for i in range(k)]


@torch.no_grad()
def attention_received(
    model: PreTrainedModel,
    prefix_ids: list[int],
    rows: list[list[int]],
    batch_size: int = 8,
    kv: torch.Tensor | None = None,
) -> torch.Tensor:
    """(layers, kv_heads, N) the attention each of the N prefix positions receives from `rows` (ids read
    after the whole prefix), summed over the rows' tokens and the query heads that share each key-value head.
    `kv`: the prefix's own cache (layers, 2, kv_heads, N, head_dim), when the caller has it already.
    Runs the rows with eager attention (the only kind that returns its weights), then restores the model's."""
    if not rows or not all(rows):
        raise ValueError(f"attention_received needs non-empty rows of ids, got {len(rows)} rows")
    device = model.get_input_embeddings().weight.device
    n = len(prefix_ids)
    if kv is None:
        kv = kv_of(output_cache(model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)))
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        total = None
        for b in range(0, len(rows), batch_size):
            part = rows[b : b + batch_size]
            width = max(map(len, part))
            ids = torch.tensor([r + [0] * (width - len(r)) for r in part], device=device)
            real = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in part], device=device)
            out = model(input_ids=ids, **cache_kwargs(model, kv_cache(model, kv, len(part))), output_attentions=True,
                        attention_mask=torch.cat([torch.ones(len(part), n, device=device, dtype=real.dtype), real], 1),
                        position_ids=torch.arange(n, n + width, device=device).expand(len(part), -1))  # fmt: skip
            got = torch.stack([a[..., :n].float() for a in out.attentions])  # (layers, B, q_heads, width, N)
            got = (got * real[None, :, None, :, None]).sum((1, 3))  # (layers, q_heads, N)
            total = got if total is None else total + got
    finally:
        model.set_attn_implementation(before)
    layers, heads = kv.shape[0], kv.shape[2]
    return total.reshape(layers, heads, -1, n).sum(2).cpu()


@torch.no_grad()
def attended_kv(model: PreTrainedModel, prefix_ids: list[int], k: int, rows: list[list[int]]) -> torch.Tensor:
    """(layers, 2, kv_heads, k, head_dim) float32: per layer and key-value head, the keys and values of the k
    prefix positions (after <|bos|>) that `rows` attend to most (`attention_received`), in their order; every
    key turned by k + 1 - N so that each keeps its distance to a query that follows the gist."""
    positive_int(k, "k")
    n = len(prefix_ids)
    if k > n - 1:
        raise ValueError(f"k = {k} gist positions cannot start from a prefix of {n - 1} tokens after <|bos|>")
    device = model.get_input_embeddings().weight.device
    kv = kv_of(output_cache(model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)))
    score = attention_received(model, prefix_ids, rows, kv=kv)[..., 1:]  # (layers, kv_heads, N - 1): no <|bos|>
    where = score.topk(k, -1).indices.sort(-1).values + 1  # (layers, kv_heads, k) prefix positions
    kv = kv.float()
    picked = kv.gather(3, where[:, None, :, :, None].to(device).expand(-1, 2, -1, -1, kv.shape[-1]))
    keys = rotate_keys(model, picked[:, 0], torch.full((k,), k + 1 - n))
    return torch.stack([keys, picked[:, 1]], dim=1)


@torch.no_grad()
def prefix_kv(model: PreTrainedModel, prefix_ids: list[int], k: int, how: str = "even") -> torch.Tensor:
    """(layers, 2, kv_heads, k, head_dim) float32: the keys and values the model computes on `prefix_ids`
    (<|bos|> first) at the positions `positions(...)` chooses, keys moved to slots 1..k."""
    device = model.get_input_embeddings().weight.device
    ids = torch.tensor([prefix_ids], device=device)
    cheap = how != "salient" and "logits_to_keep" in inspect.signature(model.forward).parameters
    out = model(input_ids=ids, use_cache=True, **({"logits_to_keep": 1} if cheap else {}))  # logits: surprisal
    kv = kv_of(output_cache(out)).float()
    surprisal = None
    if how == "salient":  # -log p(token t | tokens before), t = 1 .. N - 1
        logp = out.logits[0, :-1].float().log_softmax(-1)
        surprisal = -logp.gather(1, ids[0, 1:, None])[:, 0].cpu()
    slots = []
    for slot, where in enumerate(positions(len(prefix_ids), k, how, surprisal), start=1):
        picked = kv[:, :, :, where]  # (layers, 2, kv_heads, m, head_dim)
        keys = rotate_keys(model, picked[:, 0], torch.tensor([slot - p for p in where]))
        slots.append(torch.stack([keys, picked[:, 1]], dim=1).mean(3))
    return torch.stack(slots, dim=3)
