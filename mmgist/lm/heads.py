"""Heads: what sits before a query in the model's context, and the one forward that reads a query after one.

A head is (h, d) input embeddings (a prefix read as embeddings, or an embeddings gist) or a `KVHead`, every
layer's keys and values at h positions (a prefix's cache, or a KV gist). Scoring, the gist's training and its
report all run queries through `student_forward`, so figures for different heads compare.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from .model import cache_kwargs, output_cache

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary


def kv_of(cache: Any) -> torch.Tensor:
    """A batch-1 KV cache -> (layers, 2, kv_heads, T, head_dim): every layer's keys then values."""
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    shapes = {tuple(k.shape) for k, _ in layers} | {tuple(v.shape) for _, v in layers}
    if len(shapes) != 1 or next(iter(shapes))[0] != 1:
        raise ValueError(
            f"a KV gist needs one (1, heads, T, head_dim) shape for every layer's keys and values, got {shapes}"
        )
    return torch.stack([torch.stack([k[0], v[0]]) for k, v in layers])


def kv_cache(model: PreTrainedModel, kv: torch.Tensor, batch_size: int = 1) -> Any:
    """(layers, 2, kv_heads, T, head_dim) -> a DynamicCache of T positions for `batch_size` rows, in the
    model's dtype and device. Differentiable in `kv` (the cache concatenates onto it)."""
    from transformers import DynamicCache

    w = model.get_input_embeddings().weight
    kv = kv.to(device=w.device, dtype=w.dtype)
    layers = [
        (layer[0].expand(batch_size, -1, -1, -1), layer[1].expand(batch_size, -1, -1, -1)) for layer in kv[:, :, None]
    ]
    return DynamicCache(ddp_cache_data=layers, config=model.config)


@torch.no_grad()
def bos_kv(model: PreTrainedModel, bos_id: int) -> torch.Tensor:
    """(layers, 2, kv_heads, 1, head_dim): the model's own keys and values for <|bos|> at position 0."""
    device = model.get_input_embeddings().weight.device
    return kv_of(output_cache(model(input_ids=torch.tensor([[bos_id]], device=device), use_cache=True)))


@dataclass
class KVHead:
    """A head given as keys and values rather than embeddings: what a KV gist puts before the query."""

    kv: torch.Tensor  # (layers, 2, kv_heads, h, head_dim), <|bos|> first

    def __len__(self) -> int:
        return self.kv.shape[3]


Head = torch.Tensor | KVHead  # (h, d) embeddings, or keys and values of h positions


def student_forward(
    model: PreTrainedModel, head: Head, ids: torch.Tensor, real: torch.Tensor, hidden: bool = False, logits: bool = True
) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
    """(log-probs (n, T, V), hidden states) on the model's device: log-probs of each position's token given
    `head` and the tokens before (None with `logits=False`, which skips most of the output layer); with
    `hidden`, the output of every layer at the rows' own T positions (one (n, T, d) tensor per layer, the last
    after the final norm, as transformers returns them), else None.

    An embeddings head's last position predicts ids[:, 0]. A KVHead has keys and values but no output
    there: its position 0 comes back uniform, so rows after a KV head count from their second token."""
    device = model.get_input_embeddings().weight.device
    attn = torch.cat([torch.ones(len(ids), len(head), dtype=torch.long), real.long()], 1).to(device)
    kw: dict[str, Any] = {"attention_mask": attn, "output_hidden_states": hidden}
    if not logits and "logits_to_keep" in inspect.signature(model.forward).parameters:
        kw["logits_to_keep"] = 1
    if isinstance(head, KVHead):
        cache = kv_cache(model, head.kv, len(ids))
        out = model(input_ids=ids.to(device), **kw, **cache_kwargs(model, cache))
        states = tuple(out.hidden_states[1:]) if hidden else None
        if not logits:
            return None, states
        lg = out.logits.float()
        return torch.cat([torch.zeros_like(lg[:, :1]), lg[:, :-1]], 1).log_softmax(-1), states
    x = torch.cat([head.expand(len(ids), -1, -1), model.get_input_embeddings()(ids.to(device))], dim=1)  # (n, h + T, d)
    out = model(inputs_embeds=x, **kw)
    states = tuple(h[:, len(head) :] for h in out.hidden_states[1:]) if hidden else None
    if not logits:
        return None, states
    return out.logits.float()[:, len(head) - 1 : -1].log_softmax(-1), states  # position h - 1 predicts ids[:, 0]


def student_logprobs(model: PreTrainedModel, head: Head, ids: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(n, T, V) on the model's device: `student_forward`'s log-probs."""
    return student_forward(model, head, ids, real)[0]


def option_logprobs(model: PreTrainedModel, head: Head, query: list[int], options: list[list[int]]) -> torch.Tensor:
    """(n_options,): log P(option | head, query), the sum of its tokens' log-probs; one batch of
    `query option` rows after `head` (mmgist.scoring.option_logprobs, for either kind of head)."""
    if any(len(o) == 0 for o in options):
        raise ValueError("an answer option encodes to no tokens")
    if isinstance(head, KVHead) and not query:
        raise ValueError("scoring options after a KV head needs a query: a KV head predicts no first token")
    ids, real, _ = pad([query + o for o in options])
    logp = student_logprobs(model, head, ids, real).cpu()  # (n_options, T, V)
    return torch.stack([
        logp[b, len(query) + torch.arange(len(o)), torch.tensor(o)].sum() for b, o in enumerate(options)
    ])  # fmt: skip


def pad(rows: list[list[int]], starts: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n, T) ids right-padded with 0, the (n, T) mask of real tokens, and the (n, T) mask of the positions
    that count: from `starts[b]` (the query's length; 0 by default) to the row's end."""
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    real = torch.zeros(len(rows), width, dtype=torch.bool)
    counted = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, r in enumerate(rows):
        ids[b, : len(r)], real[b, : len(r)], counted[b, (starts[b] if starts else 0) : len(r)] = torch.tensor(r), 1, 1
    return ids, real, counted


@runtime_checkable
class ServedGist(Protocol):
    """What serving a gist needs of it (`mmgist.gist.GistPrefix` is one): generation takes any object with
    these members, so this room never imports the gist room above it."""

    @property
    def k(self) -> int: ...  # positions after <|bos|>

    @property
    def target(self) -> str: ...  # "embeddings" or "kv"

    def check(
        self, model: PreTrainedModel, vocab: SharedVocabulary = None
    ) -> None: ...  # refuses another model or vocabulary
    def check_cache(self, model: PreTrainedModel, cache: Any) -> None: ...
    def head(self, model: PreTrainedModel) -> torch.Tensor | KVHead: ...  # what sits before the query

    def cache_for(
        self, model: PreTrainedModel, batch_size: int, cache: Any = None
    ) -> Any: ...  # its KV cache, batch rows
