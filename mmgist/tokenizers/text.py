"""Text tokenizers: bytes (the embedded default) and any Hugging Face tokenizer on local disk.

    >>> ByteTokenizer().encode("hé")
    tensor([104, 195, 169])

ByteTokenizer needs no files and no training: every UTF-8 string round-trips exactly, at the
cost of one token per byte. HFTextTokenizer wraps a tokenizer saved with `save_pretrained` (the one
that came with a causal LM, typically) so the shared vocabulary's text ids are the LM's own.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import torch

from ..layout import ALIASABLE
from .base import TextTokenizer
from .registry import register_tokenizer


@dataclasses.dataclass
class ByteConfig:
    errors: str = "replace"  # how decode treats byte runs that are not valid UTF-8 (str.decode's errors=)

    def __post_init__(self) -> None:
        if self.errors not in ("strict", "replace", "ignore", "backslashreplace"):
            raise ValueError(
                f"ByteConfig.errors must be one of strict, replace, ignore, backslashreplace; got {self.errors!r}"
            )


@register_tokenizer("byte")
class ByteTokenizer(TextTokenizer):
    """UTF-8 bytes as codes 0-255."""

    config_class = ByteConfig

    @property
    def codebook_size(self) -> int:
        return 256

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise TypeError(f"ByteTokenizer.encode takes a str, got {type(text).__name__}")
        return torch.tensor(list(text.encode("utf-8")), dtype=torch.long)

    def decode(self, codes: torch.Tensor) -> str:
        codes = self.check_codes(codes)
        return bytes(codes.tolist()).decode("utf-8", errors=self.config.errors)


@dataclasses.dataclass
class HFTextConfig:
    source: str = ""  # where the wrapped tokenizer was loaded from (informational)
    size: int | None = None  # text ids reserved; default len(tokenizer). Set it to a model's embedding rows
    # when the model pads its matrix beyond the tokenizer (common), so media ids start after the padding.
    specials: dict[str, str] = dataclasses.field(default_factory=dict)  # the shared vocabulary's <|pad|>,
    # <|bos|>, <|eos|> as tokens of this tokenizer, e.g. {"<|bos|>": "<|endoftext|>", "<|eos|>": "<|im_end|>"}:
    # a pretrained LM then keeps its own begin/end tokens and embedding rows. Those not named are appended.


@register_tokenizer("hf-text")
class HFTextTokenizer(TextTokenizer):
    """A Hugging Face tokenizer from a local folder: `HFTextTokenizer.from_hf("path/to/model")`.

    Text is encoded without the tokenizer's own special tokens (bos/eos belong to the shared
    vocabulary); codes are the tokenizer's ids, so `codebook_size` is `len(tokenizer)`.
    """

    config_class = HFTextConfig
    # specials is left out of the fingerprint when empty: tokenizers saved before the field keep theirs
    legacy_config: ClassVar[dict[str, Any]] = {"specials": {}}
    requires_pretrained = True  # no default: it must wrap a saved Hugging Face tokenizer
    HF_SUBDIR = "hf_tokenizer"
    extra_files = (HF_SUBDIR,)

    def __init__(self, config: HFTextConfig | None = None, hf_tokenizer: Any = None) -> None:
        super().__init__(config)
        if hf_tokenizer is None:
            raise ValueError("HFTextTokenizer wraps a Hugging Face tokenizer: use HFTextTokenizer.from_hf(path)")
        self.hf = hf_tokenizer
        if self.config.size is not None and self.config.size < len(hf_tokenizer):
            raise ValueError(
                f"HFTextConfig.size {self.config.size} is smaller than the tokenizer ({len(hf_tokenizer)})"
            )
        self._special_ids = self._resolve(self.config.specials)

    def _resolve(self, specials: Any) -> dict[str, int]:
        """{"<|bos|>": "<|endoftext|>", ...} -> {"<|bos|>": 0, ...}; an unknown name or token is refused."""
        if not isinstance(specials, dict):
            raise TypeError(f"HFTextConfig.specials must be a dict of names to tokens, got {type(specials).__name__}")
        vocab = self.hf.get_vocab()
        out = {}
        for name, token in specials.items():
            if name not in ALIASABLE:
                raise ValueError(f"HFTextConfig.specials: {name!r} is not one of {list(ALIASABLE)}")
            if not isinstance(token, str) or token not in vocab:
                raise ValueError(
                    f"HFTextConfig.specials[{name!r}] = {token!r} is not a token of this tokenizer "
                    f"(its special tokens: {self.hf.all_special_tokens[:8]})"
                )
            out[name] = vocab[token]
        return out

    def special_ids(self) -> dict[str, int]:
        return dict(self._special_ids)

    @classmethod
    def from_hf(
        cls, path_or_tokenizer: Any, size: int | None = None, specials: dict[str, str] | None = None
    ) -> HFTextTokenizer:
        """Wrap a tokenizer object, or load one from a local folder (never from the network).
        `specials`: see HFTextConfig (which of the vocabulary's specials are this tokenizer's tokens)."""
        specials = dict(specials or {})
        if isinstance(path_or_tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            path = Path(path_or_tokenizer)
            if not path.is_dir():
                raise ValueError(f"HFTextTokenizer.from_hf needs a local folder, got {str(path)!r} (no downloads)")
            hf = AutoTokenizer.from_pretrained(path, local_files_only=True)
            return cls(HFTextConfig(source=str(path), size=size, specials=specials), hf)
        source = getattr(path_or_tokenizer, "name_or_path", "")
        return cls(HFTextConfig(source=source, size=size, specials=specials), path_or_tokenizer)

    @property
    def codebook_size(self) -> int:
        return self.config.size or len(self.hf)

    @property
    def generatable_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise TypeError(f"HFTextTokenizer.encode takes a str, got {type(text).__name__}")
        return torch.tensor(self.hf(text, add_special_tokens=False)["input_ids"], dtype=torch.long)

    def decode(self, codes: torch.Tensor) -> str:
        codes = self.check_codes(codes)
        return self.hf.decode(codes.tolist(), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _save_extra(self, directory: Path) -> None:
        self.hf.save_pretrained(directory / self.HF_SUBDIR)  # the whole folder is swapped in by save_pretrained

    @classmethod
    def _from_saved(cls, config: HFTextConfig, directory: Path) -> HFTextTokenizer:
        from transformers import AutoTokenizer

        return cls(config, AutoTokenizer.from_pretrained(directory / cls.HF_SUBDIR, local_files_only=True))

    def _extra_fingerprint(self) -> str:
        return json.dumps(sorted(self.hf.get_vocab().items()))
