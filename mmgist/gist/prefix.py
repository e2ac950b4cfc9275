"""GistPrefix: k learned positions that stand in for a long prefix, for one model and vocabulary.

The model sees `<|bos|> g_1 .. g_k query...`, the k gist positions at positions 1..k. A gist is one of
    target "embeddings"   (k, d) input embeddings (prompt tuning): `inputs_embeds(model, query_ids)`
                          builds exactly what the model sees; `cache(model)` runs the k + 1 positions once
    target "kv"           (layers, 2, kv_heads, k, head_dim) keys then values of every layer at those k
                          positions (prefix tuning, as Cartridges does); the <|bos|> keys and values come
                          from the model. `cache(model)` is a transformers DynamicCache of the k + 1
                          positions, passed as the model's cache; there are no embeddings to feed
Either way `cache(model)` lets many queries reuse the head. One file holds everything: safetensors
with the tensor and a JSON header (format, version, target, fingerprints, report). Version 1 files
(embeddings only, before the KV target) still load.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..lm.heads import KVHead, bos_kv, kv_cache, kv_of  # noqa: F401  (kv_of: re-exported, it lived here)
from ..lm.model import output_cache
from ..storage import write_bytes_atomic
from ..validate import existing_file, is_int, writable

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary

FORMAT = "mmgist-gist"
FORMAT_VERSION = 2  # 2: a "target" field and the kv tensor; 1: embeddings only
READABLE_VERSIONS = (1, 2)
TARGETS = ("embeddings", "kv")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)  # what a gist's tensor may be


_NOT_THE_MODEL = ("_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype", "architectures")


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (state, fingerprint)


def model_fingerprint(model: PreTrainedModel) -> str:
    """SHA-256 of the model's config and a strided sample of every parameter (cheap even for large models).

    Where the model was loaded from, the transformers version and the dtype are left out, and the
    sampled values are rounded to bfloat16: the same weights loaded from another folder or cast to
    bf16 keep their fingerprint, other weights do not. The result is remembered per model until a
    parameter is replaced or changed in place (its storage or version counter moves), so checking a
    gist before each query costs no device round trips. Writes through `p.data` bypass the version
    counter: after those, `_FINGERPRINTS.pop(model, None)` forgets the remembered value."""
    config = {k: v for k, v in model.config.to_dict().items() if k not in _NOT_THE_MODEL}
    config_json = json.dumps(config, sort_keys=True, default=str)
    state = (config_json, tuple((p.data_ptr(), p._version, p.dtype) for p in model.parameters()))
    cached = _FINGERPRINTS.get(model)
    if cached is not None and cached[0] == state:
        return cached[1]
    h = hashlib.sha256(config_json.encode())
    for name, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 4096)].to(torch.bfloat16).float().cpu()
        h.update(name.encode() + sample.numpy().tobytes())
    _FINGERPRINTS[model] = (state, h.hexdigest())
    return h.hexdigest()


@dataclass
class GistPrefix:
    embeddings: torch.Tensor | None  # (k, d) for target "embeddings"; None for a KV gist
    model_fingerprint: str
    vocab_fingerprint: str
    prefix_length: int  # tokens of the prefix it replaces (bos included)
    bos_id: int
    report: dict[str, Any] = field(default_factory=dict)  # the fidelity report, as measured at distillation
    kv: torch.Tensor | None = None  # (layers, 2, kv_heads, k, head_dim) for target "kv": keys, values at 1..k

    def __post_init__(self) -> None:
        if problem := self.problem():
            raise ValueError(problem)

    def problem(self) -> str | None:
        """What makes this gist one that `load` would refuse (the file's header and tensor), or None. `save`
        asks it too, so a saved gist always loads; NaN and inf are checked on save and load only."""
        if (self.embeddings is None) == (self.kv is None):
            return "a GistPrefix holds exactly one of embeddings (k, d) and kv (layers, 2, heads, k, head_dim)"
        if self.kv is not None and (self.kv.ndim != 5 or self.kv.shape[1] != 2):
            return f"a KV gist is (layers, 2, kv_heads, k, head_dim), got {tuple(self.kv.shape)}"
        if self.embeddings is not None and self.embeddings.ndim != 2:
            return f"gist embeddings are (k, d), got {tuple(self.embeddings.shape)}"
        if self.tensor.dtype not in FLOAT_DTYPES:
            return f"the gist's {self.target} are {self.tensor.dtype}; expected one of {[str(d) for d in FLOAT_DTYPES]}"
        for name in ("model_fingerprint", "vocab_fingerprint"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
                return f"{name} must be a SHA-256 hex string (64 characters), got {value!r:.70}"
        for name, low in (("prefix_length", 2), ("bos_id", 0)):
            if not is_int(getattr(self, name)) or getattr(self, name) < low:
                return f"{name} must be an int >= {low}, got {getattr(self, name)!r:.40}"
        if self.k >= self.prefix_length:
            return f"k {self.k} must be smaller than prefix_length {self.prefix_length}"
        if not isinstance(self.report, dict):
            return f"report must be a dict, got {self.report!r:.40}"
        return None

    @property
    def target(self) -> str:
        return "embeddings" if self.kv is None else "kv"

    @property
    def tensor(self) -> torch.Tensor:
        """What was trained: the embeddings or the keys and values."""
        return self.embeddings if self.kv is None else self.kv

    @property
    def k(self) -> int:
        return self.embeddings.shape[0] if self.kv is None else self.kv.shape[3]

    @property
    def compression(self) -> float:
        return (self.prefix_length - 1) / self.k  # prefix tokens per gist token (<|bos|> stays in both layouts)

    def identity(self) -> str:
        """SHA-256 of what this gist puts before a query (its tensor, <|bos|> and fingerprints): a cache
        made by `cache(model)` carries it, and `cache_for` refuses a cache that carries another."""
        t = self.tensor.detach().cpu().contiguous()
        h = hashlib.sha256(json.dumps([self.target, self.bos_id, self.model_fingerprint, list(t.shape)]).encode())
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    def check(self, model: PreTrainedModel, vocab: SharedVocabulary = None) -> None:
        """Refuse a model (or vocabulary) other than the one this gist was distilled for."""
        if model_fingerprint(model) != self.model_fingerprint:
            raise ValueError(
                f"this gist was distilled for model {self.model_fingerprint[:12]}..., not this one "
                f"({model_fingerprint(model)[:12]}...)"
            )
        if vocab is not None and vocab.fingerprint() != self.vocab_fingerprint:
            raise ValueError(
                f"this gist was distilled for vocabulary {self.vocab_fingerprint[:12]}..., not this one "
                f"({vocab.fingerprint()[:12]}...)"
            )
        rows = model.get_input_embeddings().weight.shape[0]
        if not 0 <= self.bos_id < rows:
            raise ValueError(f"this gist's bos_id {self.bos_id} is outside the model's {rows} embedding rows")
        if vocab is not None and self.bos_id != vocab.bos_id:
            raise ValueError(f"this gist's bos_id {self.bos_id} is not the vocabulary's <|bos|> id {vocab.bos_id}")
        if self.kv is not None:
            own = bos_kv(model, self.bos_id).shape  # (layers, 2, kv_heads, 1, head_dim)
            layers, _, heads, _, dim = self.kv.shape
            if (layers, heads, dim) != (own[0], own[2], own[4]):
                raise ValueError(
                    f"this KV gist has {layers} layers of {heads} key/value heads x {dim} dims; "
                    f"the model has {own[0]} layers of {own[2]} x {own[4]}"
                )
            return
        d = model.get_input_embeddings().weight.shape[1]
        if self.embeddings.shape[1] != d:
            raise ValueError(f"gist embeddings have width {self.embeddings.shape[1]}, the model {d}")

    def head(self, model: PreTrainedModel) -> torch.Tensor | KVHead:
        """What goes before the query, in the model's dtype and device: (k + 1, d) embeddings (<|bos|>'s,
        then the gist's), or for a KV gist a KVHead of k + 1 positions (<|bos|>'s from the model)."""
        w = model.get_input_embeddings().weight
        if self.kv is not None:
            return KVHead(torch.cat([bos_kv(model, self.bos_id), self.kv.to(w)], dim=3))
        bos = model.get_input_embeddings()(torch.tensor([self.bos_id], device=w.device))
        return torch.cat([bos, self.embeddings.to(w)], dim=0)

    def inputs_embeds(self, model: PreTrainedModel, query_ids: torch.Tensor) -> torch.Tensor:
        """query_ids (B, T) -> (B, k + 1 + T, d): exactly what the model sees for these queries
        (embeddings gists only: a KV gist has no embeddings; use `cache_for`)."""
        if self.kv is not None:
            raise ValueError("a KV gist has keys and values, not input embeddings: use gist.cache_for(model, batch)")
        emb = model.get_input_embeddings()
        q = emb(query_ids.to(emb.weight.device))
        return torch.cat([self.head(model).expand(q.shape[0], -1, -1), q], dim=1)

    @torch.no_grad()
    def cache(self, model: PreTrainedModel):
        """The KV cache of the k + 1 head positions (batch 1); copy it per use (`copy.deepcopy`)."""
        head = self.head(model)
        if isinstance(head, KVHead):
            cache = kv_cache(model, head.kv)
        else:
            cache = output_cache(model(inputs_embeds=head[None], use_cache=True))
        cache.mmgist_gist = (self.identity(), model_fingerprint(model))  # what cache_for checks
        return cache

    def check_cache(self, model: PreTrainedModel, cache: Any) -> None:
        """Refuse a cache that this gist's `cache(model)` did not make for this model (another gist's,
        even of the same k, or one built by hand)."""
        if cache is not None:
            made_by = getattr(cache, "mmgist_gist", None)
            if made_by is None:
                raise ValueError(
                    f"gist_cache ({type(cache).__name__}) was not made by GistPrefix.cache(model); "
                    "pass gist.cache(model)"
                )
            if made_by[0] != self.identity():
                raise ValueError(
                    f"gist_cache was made by another gist ({made_by[0][:12]}...), not this one "
                    f"({self.identity()[:12]}...); pass this gist's own gist.cache(model)"
                )
            if made_by[1] != model_fingerprint(model):
                raise ValueError("gist_cache was made for another model; pass gist.cache(model) for this one")

    def cache_for(self, model: PreTrainedModel, batch_size: int, cache: Any = None):
        """A fresh copy of the head cache repeated for a batch; a given `cache` is checked (`check_cache`)."""
        self.check_cache(model, cache)
        c = copy.deepcopy(cache if cache is not None else self.cache(model))
        if batch_size > 1:
            c.batch_repeat_interleave(batch_size)
        return c

    # --- file format ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save

        path = writable(path, "gist file")
        if problem := self.problem():
            raise ValueError(f"refusing to save to {str(path)!r} a gist that would not load: {problem}")
        if not torch.isfinite(self.tensor.float()).all():
            raise ValueError(f"refusing to save a gist with non-finite {self.target} to {str(path)!r}")
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "target": self.target,
            "model_fingerprint": self.model_fingerprint,
            "vocab_fingerprint": self.vocab_fingerprint,
            "prefix_length": self.prefix_length,
            "bos_id": self.bos_id,
            "k": self.k,
            "dtype": str(self.tensor.dtype),
            "report": self.report,
        }
        try:
            metadata = {"mmgist": json.dumps(header, allow_nan=False)}
        except (TypeError, ValueError) as e:  # a report value JSON cannot hold (a tensor, NaN)
            raise ValueError(f"refusing to save to {str(path)!r} a gist whose report is not JSON: {e}") from e
        data = save({self.target: self.tensor.detach().cpu().contiguous()}, metadata=metadata)
        write_bytes_atomic(path, data)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: PreTrainedModel = None, vocab: SharedVocabulary = None) -> GistPrefix:
        """Read a gist file; with `model` (and `vocab`) it is checked against them."""
        from safetensors import safe_open

        path = existing_file(path, "gist file")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118  (a safe_open is not iterable)
            header = json.loads(meta["mmgist"])
            if not isinstance(header, dict):
                raise TypeError(f"header is a {type(header).__name__}, not an object")
        except Exception as e:
            raise ValueError(f"{str(path)!r} is not a readable gist file: {type(e).__name__}: {e}") from e
        if header.get("format") != FORMAT or header.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(
                f"{str(path)!r} has format {header.get('format')!r} version {header.get('format_version')!r};"
                f" this mmgist reads {FORMAT!r} versions {list(READABLE_VERSIONS)}"
            )
        target = header.get("target", "embeddings")  # version 1: embeddings
        if target not in TARGETS or target not in tensors:
            raise ValueError(f"{str(path)!r}: target {target!r} (one of {list(TARGETS)}) with tensors {list(tensors)}")
        needed = ("model_fingerprint", "vocab_fingerprint", "prefix_length", "bos_id", "k")
        if missing := [key for key in needed if key not in header]:
            raise ValueError(f"{str(path)!r}: the gist header lacks {missing}")
        fields = {key: header[key] for key in needed}
        if not is_int(fields["k"]) or fields["k"] < 1:  # the rest of the header is checked by the constructor
            raise ValueError(f"{str(path)!r}: header k must be an int >= 1, got {fields['k']!r:.40}")
        tensor = tensors[target]
        shape_ok = (
            tensor.ndim == 2 and tensor.shape[0] == fields["k"]
            if target == "embeddings"
            else tensor.ndim == 5 and tensor.shape[1] == 2 and tensor.shape[3] == fields["k"]
        )
        if not shape_ok:
            want = "(k, d)" if target == "embeddings" else "(layers, 2, kv_heads, k, head_dim)"
            raise ValueError(
                f"{str(path)!r}: {target} of shape {tuple(tensor.shape)}, expected {want} with k={fields['k']}"
            )
        try:
            gist = cls(
                tensor if target == "embeddings" else None,
                fields["model_fingerprint"],
                fields["vocab_fingerprint"],
                fields["prefix_length"],
                fields["bos_id"],
                header.get("report", {}),
                tensor if target == "kv" else None,
            )
        except ValueError as e:
            raise ValueError(f"{str(path)!r}: {e}") from e
        if not torch.isfinite(tensor.float()).all():
            raise ValueError(f"{str(path)!r}: the {target} hold NaN or inf")
        if header.get("dtype", str(tensor.dtype)) != str(tensor.dtype):
            raise ValueError(f"{str(path)!r}: {target} are {tensor.dtype}, the header says {header['dtype']}")
        if model is not None:
            gist.check(model, vocab)
        return gist
