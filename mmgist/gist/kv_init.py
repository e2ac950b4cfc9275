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
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ..validate import one_of, positive_int
from .prefix import kv_of

HOWS = ("first", "even", "chunks", "salient")


def _rotary(model: Any) -> Any:
    """The model's rotary embedding module (transformers' `model.model.rotary_emb`), or a clear error."""
    inner = getattr(model, "model", model)
    rotary = getattr(inner, "rotary_emb", None)
    if rotary is None:
        raise ValueError(
            f"{type(model).__name__} has no single rotary embedding (model.model.rotary_emb): keys cannot be moved "
            "to other positions; start the gist from embeddings instead (GistConfig.init='last_tokens')"
        )
    return rotary


def rotate_keys(model: Any, keys: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
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
    "salient" needs `surprisal` (prefix_tokens - 1,): -log p of tokens 1 .. prefix_tokens - 1."""
    one_of(how, "how", HOWS)
    positive_int(k, "k")
    n = prefix_tokens - 1
    if k > n:
        raise ValueError(f"k = {k} gist positions cannot start from a prefix of {n} tokens after <|bos|>")
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
def prefix_kv(model: Any, prefix_ids: list[int], k: int, how: str = "even") -> torch.Tensor:
    """(layers, 2, kv_heads, k, head_dim) float32: the keys and values the model computes on `prefix_ids`
    (<|bos|> first) at the positions `positions(...)` chooses, keys moved to slots 1..k."""
    from ..lm import output_cache

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
