"""GistPrefix: k learned embeddings that stand in for a long prefix, for one model and vocabulary.

The model sees `<|bos|> g_1 .. g_k query...`: `inputs_embeds(model, query_ids)` builds exactly that,
`cache(model)` runs the k + 1 positions once so many queries reuse them. One file holds everything:
safetensors with the (k, d) embeddings and a JSON header (format, version, fingerprints, report).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..storage import write_bytes_atomic

FORMAT = "mmgist-gist"
FORMAT_VERSION = 1


_NOT_THE_MODEL = ("_name_or_path", "transformers_version", "_commit_hash", "dtype", "torch_dtype", "architectures")


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (state, fingerprint)


def model_fingerprint(model: Any) -> str:
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
    embeddings: torch.Tensor  # (k, d)
    model_fingerprint: str
    vocab_fingerprint: str
    prefix_length: int  # tokens of the prefix it replaces (bos included)
    bos_id: int
    report: dict[str, Any] = field(default_factory=dict)  # the fidelity report, as measured at distillation

    @property
    def k(self) -> int:
        return self.embeddings.shape[0]

    @property
    def compression(self) -> float:
        return (self.prefix_length - 1) / self.k  # prefix tokens per gist token (<|bos|> stays in both layouts)

    def check(self, model: Any, vocab: Any = None) -> None:
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
        d = model.get_input_embeddings().weight.shape[1]
        if self.embeddings.shape[1] != d:
            raise ValueError(f"gist embeddings have width {self.embeddings.shape[1]}, the model {d}")

    def head(self, model: Any) -> torch.Tensor:
        """(k + 1, d): the bos embedding then the gist tokens, in the model's dtype and device."""
        emb = model.get_input_embeddings()
        bos = emb(torch.tensor([self.bos_id], device=emb.weight.device))
        return torch.cat([bos, self.embeddings.to(emb.weight)], dim=0)

    def inputs_embeds(self, model: Any, query_ids: torch.Tensor) -> torch.Tensor:
        """query_ids (B, T) -> (B, k + 1 + T, d): exactly what the model sees for these queries."""
        emb = model.get_input_embeddings()
        q = emb(query_ids.to(emb.weight.device))
        return torch.cat([self.head(model).expand(q.shape[0], -1, -1), q], dim=1)

    @torch.no_grad()
    def cache(self, model: Any):
        """The KV cache of the k + 1 head positions (batch 1); copy it per use (`copy.deepcopy`)."""
        from ..lm import output_cache

        return output_cache(model(inputs_embeds=self.head(model)[None], use_cache=True))

    def cache_for(self, model: Any, batch_size: int, cache: Any = None):
        """A fresh copy of the head cache repeated for a batch."""
        c = copy.deepcopy(cache if cache is not None else self.cache(model))
        if batch_size > 1:
            c.batch_repeat_interleave(batch_size)
        return c

    # --- file format ------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save

        if not torch.isfinite(self.embeddings.float()).all():
            raise ValueError(f"refusing to save a gist with non-finite embeddings to {str(path)!r}")
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model_fingerprint": self.model_fingerprint,
            "vocab_fingerprint": self.vocab_fingerprint,
            "prefix_length": self.prefix_length,
            "bos_id": self.bos_id,
            "k": self.k,
            "dtype": str(self.embeddings.dtype),
            "report": self.report,
        }
        data = save(
            {"embeddings": self.embeddings.detach().cpu().contiguous()}, metadata={"mmgist": json.dumps(header)}
        )
        write_bytes_atomic(path, data)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any = None, vocab: Any = None) -> GistPrefix:
        """Read a gist file; with `model` (and `vocab`) it is checked against them."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"gist file {str(path)!r} does not exist")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                embeddings = f.get_tensor("embeddings")
            header = json.loads(meta["mmgist"])
            if not isinstance(header, dict):
                raise TypeError(f"header is a {type(header).__name__}, not an object")
        except Exception as e:
            raise ValueError(f"{str(path)!r} is not a readable gist file: {type(e).__name__}: {e}") from e
        if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has format {header.get('format')!r} version {header.get('format_version')!r};"
                f" this mmgist reads {FORMAT!r} version {FORMAT_VERSION}"
            )
        needed = ("model_fingerprint", "vocab_fingerprint", "prefix_length", "bos_id", "k")
        if missing := [key for key in needed if key not in header]:
            raise ValueError(f"{str(path)!r}: the gist header lacks {missing}")
        fields = {key: header[key] for key in needed}
        if embeddings.ndim != 2 or embeddings.shape[0] != fields["k"]:
            raise ValueError(
                f"{str(path)!r}: embeddings of shape {tuple(embeddings.shape)}, expected ({fields['k']}, d)"
            )
        if not torch.isfinite(embeddings.float()).all():
            raise ValueError(f"{str(path)!r}: the embeddings hold NaN or inf")
        if header.get("dtype", str(embeddings.dtype)) != str(embeddings.dtype):
            raise ValueError(f"{str(path)!r}: embeddings are {embeddings.dtype}, the header says {header['dtype']}")
        gist = cls(
            embeddings,
            fields["model_fingerprint"],
            fields["vocab_fingerprint"],
            fields["prefix_length"],
            fields["bos_id"],
            header.get("report", {}),
        )
        if model is not None:
            gist.check(model, vocab)
        return gist
