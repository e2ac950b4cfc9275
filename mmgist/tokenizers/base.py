"""ModalityTokenizer: the protocol every tokenizer follows, and one small base per modality.

A tokenizer turns one kind of media into integer codes and back:

    modality   codes of one item         what encode takes / decode gives
    text       (n,)                      str
    image      (h, w)  or (B, h, w)      PIL image(s) or (B, 3, H, W) tensor -> (B, 3, H, W) float in [0, 1]
    audio      (codebooks, frames)       waveform (channels, samples) + sample rate -> waveform
    video      (t, h, w)                 frames (T, 3, H, W) + fps -> frames

Every code lies in [0, codebook_size); multi-codebook tokenizers (audio) use one range per codebook,
which the shared vocabulary lays side by side. A subclass sets `modality`, a config dataclass in
`config_class`, and implements `codebook_size`, `encode` and `decode`; `save_pretrained` /
`from_pretrained` (config.json + model.safetensors, no pickle) come from here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..prompt import Audio, Image, Segment, Text, Video
from ..storage import (
    PathLike,
    atomic_folder,
    load_tensors,
    read_versioned_json,
    save_tensors_atomic,
    versioned,
    write_json_atomic,
)
from ..validate import all_finite, existing_dir, shapes_agree
from .inputs import FITS, FRAME_FITS

FORMAT = "mmgist-tokenizer"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclasses.dataclass
class NoConfig:
    """For tokenizers with nothing to configure."""


class ModalityTokenizer(nn.Module):
    """Base of all tokenizers. See the module docstring for the code shapes."""

    name: ClassVar[str] = ""  # set by @register_tokenizer
    # name -> the registered class: installed by tokenizers/registry.py, which sits above this module
    class_named: ClassVar[Callable[[str], type[ModalityTokenizer]] | None] = None
    modality: ClassVar[str] = ""
    code_ndim: ClassVar[int] = 1  # dimensions of one item's codes
    config_class: ClassVar[type] = NoConfig
    legacy_config: ClassVar[dict[str, Any]] = {}  # fields added to the config since its first saved version, at the
    # value a config saved without them means: left out of the fingerprint at that value (`fingerprint_config`)
    requires_pretrained: ClassVar[bool] = (
        False  # True: no usable defaults (trained weights, files): load a saved folder
    )
    extra_files: ClassVar[tuple[str, ...]] = ()  # what `_save_extra` writes: replaced by a save, not carried over
    stores_weights: ClassVar[bool] = True  # False: the weights live elsewhere (a pretrained model folder the
    # config names, see hf_folder): save_pretrained writes config.json only
    opens_folders: ClassVar[bool] = False  # True: load_tokenizer(name, path=..., **options) builds one
    storage_dtype: ClassVar[torch.dtype | None] = None  # float tensors saved in this dtype (float16 halves a
    # large tokenizer's folder); loading casts them back to the parameters' dtype
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}  # encode/decode option -> its valid values

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every subclass's own encode and decode refuse unknown options and values outside `option_choices`."""
        super().__init_subclass__(**kwargs)
        for method in ("encode", "decode"):
            if method in vars(cls):
                setattr(cls, method, checked_options(vars(cls)[method]))

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        self.zoo_name: str | None = None  # set by load_tokenizer for a tokenizer from the zoo
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(self.config).__name__}"
            )

    @classmethod
    def open(cls, **options: Any) -> ModalityTokenizer:
        """A ready tokenizer from options alone (`opens_folders` classes: `path=` a pretrained model)."""
        return cls(cls.make_config(**options))

    @classmethod
    def make_config(cls, **kwargs: Any) -> Any:
        """The config dataclass from keyword arguments; an unknown key lists the valid ones."""
        fields = [f.name for f in dataclasses.fields(cls.config_class)]
        unknown = sorted(set(kwargs) - set(fields))
        if unknown:
            raise TypeError(f"{cls.__name__} has no config option(s) {unknown}; valid options: {fields}")
        return cls.config_class(**kwargs)

    # --- the protocol -------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        """Codes lie in [0, codebook_size) (per codebook)."""
        raise NotImplementedError

    @property
    def num_codebooks(self) -> int:
        return 1

    @property
    def generatable_size(self) -> int:
        """Codes [0, generatable_size) decode to something; ids past it are reserved (padding), never generated."""
        return self.codebook_size

    def encode(self, x: Any, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, codes: torch.Tensor, **kwargs: Any) -> Any:
        raise NotImplementedError

    def encode_segment(self, segment: Segment) -> torch.Tensor:
        """Codes of one prompt segment of this tokenizer's modality."""
        raise NotImplementedError

    def decode_segment(self, codes: torch.Tensor) -> Segment:
        """A prompt segment holding `codes` and the media decoded from them."""
        raise NotImplementedError

    def check_codes(
        self, codes: torch.Tensor, batched: bool | None = False, fewer_codebooks: bool = False
    ) -> torch.Tensor:
        """`codes` as a LongTensor, or a TypeError/ValueError naming the bad type, shape, dtype or value.

        `batched=None` takes one item or a batch of them (code_ndim or code_ndim + 1 dimensions).
        `fewer_codebooks`: 1 to num_codebooks codebooks are allowed (an audio codec decodes any prefix)."""
        who = self.name or type(self).__name__
        if not isinstance(codes, torch.Tensor) or codes.dtype.is_floating_point or codes.dtype == torch.bool:
            hint = " (build one with torch.tensor(..., dtype=torch.long))" if isinstance(codes, (list, tuple)) else ""
            raise TypeError(
                f"{who}: codes must be an integer tensor, got {type(codes).__name__} {getattr(codes, 'dtype', '')}"
                f"{hint}".replace("  ", " ")
            )
        wants = (self.code_ndim, self.code_ndim + 1) if batched is None else (self.code_ndim + int(batched),)
        if codes.ndim not in wants or codes.numel() == 0:
            want = " or ".join(f"{w}-d" for w in wants)
            raise ValueError(f"{who}: codes must be a non-empty {want} tensor, got shape {tuple(codes.shape)}")
        n = codes.shape[-2] if self.num_codebooks > 1 else 1
        if n != self.num_codebooks and not (fewer_codebooks and 1 <= n <= self.num_codebooks):
            want = f"1 to {self.num_codebooks}" if fewer_codebooks else str(self.num_codebooks)
            raise ValueError(
                f"{self.name}: codes have {n} codebooks (shape {tuple(codes.shape)}); expected {want} codebooks"
            )
        lo, hi = int(codes.min()), int(codes.max())
        if lo < 0 or hi >= self.codebook_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{self.name or type(self).__name__}: code {bad} is outside the codebook [0, {self.codebook_size})"
            )
        return codes.long()

    # --- persistence --------------------------------------------------------------------------
    def save_pretrained(self, directory: PathLike) -> Path:
        """Write config.json and model.safetensors (plus any extra files) as the folder `directory`.

        The folder is written beside the old one and swapped in whole (`mmgist.storage.atomic_folder`):
        a save killed at any point leaves the previous version loadable. Other files in the folder (a
        README card) are kept."""
        directory = Path(directory)
        owned = {CONFIG_FILE, WEIGHTS_FILE, *self.extra_files}
        with atomic_folder(directory, owns=owned.__contains__) as tmp:
            self.write_files(tmp)
        return directory

    def write_files(self, directory: Path) -> None:
        """Write this tokenizer's files into `directory` in place (callers make that atomic)."""
        directory.mkdir(parents=True, exist_ok=True)
        self._save_extra(directory)
        weights = {}
        if self.stores_weights:
            state = self.state_dict()
            if self.storage_dtype is not None:
                state = {k: v.to(self.storage_dtype) if v.is_floating_point() else v for k, v in state.items()}
            weights["weights_sha256"] = save_tensors_atomic(state, directory / WEIGHTS_FILE)
        header = versioned(
            FORMAT,
            FORMAT_VERSION,
            tokenizer=self.name,
            modality=self.modality,
            config=dataclasses.asdict(self.config),
            **weights,
        )
        write_json_atomic(directory / CONFIG_FILE, header)  # last: the folder only loads once this is in place

    @classmethod
    def from_pretrained(cls, directory: PathLike, **overrides: Any) -> ModalityTokenizer:
        """Load a saved tokenizer. On the base class the registered type in config.json is used.
        `overrides`: config fields to change on load, only those the class's `reopen_options` allows
        (a wrapped pretrained model's path and device)."""
        directory = existing_dir(directory, "tokenizer folder")
        header = read_versioned_json(directory / CONFIG_FILE, FORMAT, (FORMAT_VERSION,))
        if ModalityTokenizer.class_named is None:
            raise RuntimeError("no tokenizer registry: import mmgist.tokenizers before loading a tokenizer folder")
        klass = ModalityTokenizer.class_named(header.get("tokenizer", ""))
        if cls is not ModalityTokenizer and not issubclass(klass, cls):
            raise ValueError(f"{str(directory)!r} holds a {header['tokenizer']!r} tokenizer, not a {cls.__name__}")
        saved = header.get("config", {})
        if not isinstance(saved, dict):
            raise ValueError(f"{str(directory / CONFIG_FILE)!r}: config must be a JSON object, got {saved!r:.60}")
        if bad := sorted(set(overrides) - set(klass.reopen_options())):
            raise TypeError(
                f"a saved {header['tokenizer']!r} tokenizer loads with the options {list(klass.reopen_options())} "
                f"only; got {bad}"
            )
        saved = {**saved, **overrides}
        try:
            tok = klass._from_saved(klass.make_config(**klass.upgrade_config(saved)), directory)
        except (TypeError, ValueError) as e:  # a config field of the wrong type or value: say which folder
            raise type(e)(f"{str(directory / CONFIG_FILE)!r}: {e}") from e
        if not klass.stores_weights:  # it loaded (and checked) its weights from the folder its config names
            return tok.eval()
        state = load_tensors(directory / WEIGHTS_FILE, header.get("weights_sha256"))
        where = str(directory / WEIGHTS_FILE)
        own = {k: tuple(v.shape) for k, v in tok.state_dict().items()}
        shapes_agree(own, {k: tuple(v.shape) for k, v in state.items()}, repr(where))
        all_finite(state, repr(where))
        tok.load_state_dict(state, strict=True)
        return tok.eval()

    @classmethod
    def reopen_options(cls) -> tuple[str, ...]:
        """Config fields `load_tokenizer(saved_folder, **options)` may change: none for tokenizers with weights."""
        return ()

    @classmethod
    def upgrade_config(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A saved config as today's fields: override to fill fields added since it was written."""
        return saved

    @classmethod
    def _from_saved(cls, config: Any, directory: Path) -> ModalityTokenizer:
        """Build an instance before its weights are loaded; override to read extra files."""
        return cls(config)

    def _save_extra(self, directory: Path) -> None:
        """Write files beyond config and weights (an HF tokenizer's vocabulary, say)."""

    def fingerprint(self) -> str:
        """SHA-256 over the type, config and weights: equal fingerprints encode identically."""
        h = hashlib.sha256(json.dumps([self.name, self.fingerprint_config()], sort_keys=True).encode())
        for k, v in sorted(self.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(self._extra_fingerprint().encode())
        return h.hexdigest()

    def fingerprint_config(self) -> dict[str, Any]:
        """The config as the fingerprint sees it: fields at their `legacy_config` value (what a config saved before
        the field existed means) are left out, so old fingerprints stay valid when fields are added."""
        legacy = self.legacy_config
        return {k: v for k, v in dataclasses.asdict(self.config).items() if not (k in legacy and v == legacy[k])}

    def _extra_fingerprint(self) -> str:
        return ""

    def extra_repr(self) -> str:
        return f"name={self.name!r}, codebook_size={self.codebook_size}, num_codebooks={self.num_codebooks}"

    def __repr__(self) -> str:
        """One line (name, sizes), not nn.Module's tree of every layer: `print(tokenizer)` in a notebook."""
        return f"{type(self).__name__}({self.extra_repr()})"


def checked_options(method: Any) -> Any:
    """`method` (an encode or decode) refusing keyword options it does not name, with a message listing the
    ones it does, and values outside the tokenizer's `option_choices` (None keeps the config's). A method
    that takes **kwargs is left as it is: it checks its own options."""
    params = list(inspect.signature(method).parameters.values())
    if getattr(method, "checks_options", False) or any(p.kind is p.VAR_KEYWORD for p in params):
        return method
    options = [p.name for p in params[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @functools.wraps(method)
    def checked(self: ModalityTokenizer, x: Any, *args: Any, **kwargs: Any) -> Any:
        who = f"{self.name or type(self).__name__}.{method.__name__}"
        if unknown := sorted(set(kwargs) - set(options)):
            raise TypeError(f"{who} has no option(s) {unknown}; its options: {options}")
        given = {**dict(zip(options, args)), **kwargs}
        for name, value in given.items():
            choices = self.option_choices.get(name)
            if value is not None and choices is not None and value not in choices:
                raise ValueError(f"{who}: {name}={value!r} is not one of {list(choices)}")
        return method(self, x, *args, **kwargs)

    checked.checks_options = True  # type: ignore[attr-defined]
    return checked


class TextTokenizer(ModalityTokenizer):
    """str <-> codes (n,)."""

    modality = "text"
    code_ndim = 1

    def special_ids(self) -> dict[str, int]:
        """Which of the shared vocabulary's <|pad|>, <|bos|>, <|eos|> are this tokenizer's own codes
        (a pretrained LM's begin and end tokens); the others get new ids after every code range."""
        return {}

    def encode_segment(self, segment: Segment) -> torch.Tensor:
        assert isinstance(segment, Text)
        return self.encode(segment.text)

    def decode_segment(self, codes: torch.Tensor) -> Segment:
        return Text(self.decode(codes), codes=codes)


class ImageTokenizer(ModalityTokenizer):
    """Images <-> codes (h, w); decode mirrors encode: (h, w) -> (3, H, W), (B, h, w) -> (B, 3, H, W) in [0, 1]."""

    modality = "image"
    code_ndim = 2
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"fit": FITS}

    def encode_segment(self, segment: Segment) -> torch.Tensor:
        assert isinstance(segment, Image)
        return self.encode(segment.pixels)

    def decode_segment(self, codes: torch.Tensor) -> Segment:
        return Image(self.decode(codes), codes=codes)


class AudioTokenizer(ModalityTokenizer):
    """Waveforms <-> codes (codebooks, frames)."""

    modality = "audio"
    code_ndim = 2

    @property
    def sample_rate(self) -> int:
        raise NotImplementedError

    @property
    def hop(self) -> int:
        """Samples per frame (code vector)."""
        raise NotImplementedError

    @property
    def frame_rate(self) -> float:
        """Frames (code vectors) per second."""
        return self.sample_rate / self.hop

    def bitrate(self, num_codebooks: int | None = None) -> float:
        """Bits per second of an encoding with this many codebooks (all by default)."""
        n = self.num_codebooks if num_codebooks is None else num_codebooks
        return self.frame_rate * n * math.log2(self.codebook_size)

    def encode_segment(self, segment: Segment) -> torch.Tensor:
        assert isinstance(segment, Audio)
        return self.encode(segment.waveform, sample_rate=segment.sample_rate)

    def decode_segment(self, codes: torch.Tensor) -> Segment:
        return Audio(self.decode(codes), self.sample_rate, codes=codes)


class VideoTokenizer(ModalityTokenizer):
    """Clips <-> codes (t, h, w)."""

    modality = "video"
    code_ndim = 3
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {"fit": FRAME_FITS, "spatial_fit": FITS}

    @property
    def fps(self) -> float:
        raise NotImplementedError

    def encode_segment(self, segment: Segment) -> torch.Tensor:
        assert isinstance(segment, Video)
        return self.encode(segment.frames, fps=segment.fps)

    def decode_segment(self, codes: torch.Tensor) -> Segment:
        return Video(self.decode(codes), self.fps, codes=codes)
