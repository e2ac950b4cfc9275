"""IdLayout: where each modality's codes and each special token sit in the one shared id space.

Pure integer bookkeeping, no tokenizers: ranges are laid out in a fixed order,

    text ids | image codes | audio codebook 0 | audio codebook 1 | ... | video codes | specials

and the special tokens follow in the order of SPECIALS, skipping those of absent modalities.
Worked example: bytes (256) and a 16-code image tokenizer give

    text      0 .. 255      (byte values)
    image   256 .. 271      (image code c is id 256 + c)
    <|image|> 272   <|/image|> 273   <|row|> 274   <|pad|> 275   <|bos|> 276   <|eos|> 277
    len = 278

A pretrained LM already has its own begin, end and padding tokens, and its embedding rows stop at its
text vocabulary. `text_specials` maps any of <|pad|>, <|bos|>, <|eos|> onto such text ids instead of
appending new ones: with SmolLM2's tokenizer {"<|bos|>": 0, "<|eos|>": 2, "<|pad|>": 0} (its
<|endoftext|> and <|im_end|>) gives a text-only vocabulary of exactly 49,152 ids, the model's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .validate import integer, is_int

# (name, which modalities need it); None = always present.
SPECIALS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("<|image|>", ("image",)),
    ("<|/image|>", ("image",)),
    ("<|row|>", ("image", "video")),  # ends each row of an image or video-frame grid: it fixes the width
    ("<|audio|>", ("audio",)),
    ("<|/audio|>", ("audio",)),
    ("<|video|>", ("video",)),
    ("<|/video|>", ("video",)),
    ("<|frame|>", ("video",)),  # ends each frame of a video
    ("<|pad|>", None),
    ("<|bos|>", None),
    ("<|eos|>", None),
)
ALIASABLE = ("<|pad|>", "<|bos|>", "<|eos|>")  # the specials `text_specials` may map onto text ids
OPEN = {"image": "<|image|>", "audio": "<|audio|>", "video": "<|video|>"}
CLOSE = {"image": "<|/image|>", "audio": "<|/audio|>", "video": "<|/video|>"}


@dataclass(frozen=True)
class IdLayout:
    """Sizes of each part of the id space; all ranges and ids derive from these."""

    text_size: int
    image_size: int = 0  # 0: no image tokenizer
    audio_size: int = 0  # per codebook
    audio_codebooks: int = 0
    video_size: int = 0
    text_specials: dict[str, int] = field(default_factory=dict, hash=False)  # special -> the text id it is (above)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name != "text_specials" and (not is_int(value) or value < 0):
                raise ValueError(f"IdLayout.{name} must be a non-negative int, got {value!r}")
        if not isinstance(self.text_specials, dict):
            raise TypeError(f"IdLayout.text_specials must be a dict, got {type(self.text_specials).__name__}")
        object.__setattr__(self, "text_specials", dict(self.text_specials))  # its own copy: the layout is frozen
        for name, value in self.text_specials.items():
            if name not in ALIASABLE:
                raise ValueError(f"IdLayout.text_specials: {name!r} cannot be a text id; only {list(ALIASABLE)} can")
            if not is_int(value) or not 0 <= value < self.text_size:
                raise ValueError(
                    f"IdLayout.text_specials[{name!r}] must be a text id in [0, {self.text_size}), got {value!r}"
                )
        if self.text_size == 0:
            raise ValueError("IdLayout.text_size must be positive: every vocabulary has text")
        if (self.audio_size == 0) != (self.audio_codebooks == 0):
            raise ValueError(
                f"IdLayout: audio_size {self.audio_size} and audio_codebooks {self.audio_codebooks} "
                "must both be zero (no audio) or both positive"
            )
        ranges: dict[str, range] = {}
        start = 0
        parts = [("text", self.text_size), ("image", self.image_size)]
        parts += [(f"audio:{c}", self.audio_size) for c in range(self.audio_codebooks)]
        parts += [("video", self.video_size)]
        for name, size in parts:
            if size:
                ranges[name] = range(start, start + size)
                start += size
        specials = {}
        for name, needs in SPECIALS:
            if name in self.text_specials:
                specials[name] = self.text_specials[name]
            elif needs is None or any(m in self.modalities for m in needs):
                specials[name] = start
                start += 1
        object.__setattr__(self, "_ranges", ranges)
        object.__setattr__(self, "_specials", specials)
        object.__setattr__(self, "_size", start)

    @property
    def modalities(self) -> tuple[str, ...]:
        sizes = {"text": self.text_size, "image": self.image_size, "audio": self.audio_size, "video": self.video_size}
        return tuple(m for m, s in sizes.items() if s)

    @property
    def ranges(self) -> dict[str, range]:
        """Code ranges by name: "text", "image", "audio:0", "audio:1", ..., "video"."""
        return dict(self._ranges)

    @property
    def specials(self) -> dict[str, int]:
        """Special token ids by name, e.g. {"<|image|>": 272, ...} (text ids for those in text_specials)."""
        return dict(self._specials)

    def __len__(self) -> int:
        return self._size

    def special(self, name: str) -> int:
        if name not in self._specials:
            raise ValueError(f"special token {name!r} is not in this vocabulary; it has {list(self._specials)}")
        return self._specials[name]

    def offset(self, modality: str, codebook: int = 0) -> int:
        """The id of code 0 of `modality` (and `codebook`, for audio)."""
        return self._range(modality, codebook).start

    def _range(self, modality: str, codebook: int = 0) -> range:
        key = f"audio:{codebook}" if modality == "audio" else modality
        if key not in self._ranges:
            if modality == "audio" and self.audio_codebooks:
                raise ValueError(f"audio codebook {codebook} does not exist; expected 0..{self.audio_codebooks - 1}")
            raise ValueError(f"this vocabulary has no {modality!r} codes; it has {list(self.modalities)}")
        return self._ranges[key]

    def segment_of(self, token_id: int) -> str:
        """ "text", "image", "audio", "video" for code ids, "special" for special tokens."""
        self.check_id(token_id)
        for name, r in self._ranges.items():
            if token_id in r:
                return name.split(":")[0]
        return "special"

    def codebook_of(self, token_id: int) -> int:
        """Which audio codebook an audio code id belongs to."""
        for c in range(self.audio_codebooks):
            if token_id in self._ranges[f"audio:{c}"]:
                return c
        raise ValueError(f"id {token_id} is not an audio code id")

    def allowed_ids(self, modality: str, codebook: int | None = None) -> torch.Tensor:
        """The code ids of `modality` (all codebooks, or one), as a sorted LongTensor."""
        if modality == "audio" and codebook is None and self.audio_codebooks:
            return torch.cat([self.allowed_ids("audio", c) for c in range(self.audio_codebooks)])
        r = self._range(modality, codebook or 0)
        return torch.arange(r.start, r.stop)

    def check_id(self, token_id: int, position: int | None = None) -> None:
        integer(token_id, "a token id" if position is None else f"the id at position {position}")
        if not 0 <= token_id < self._size:
            where = f" at position {position}" if position is not None else ""
            raise ValueError(f"id {token_id}{where} is outside the vocabulary [0, {self._size})")

    def name_of(self, token_id: int) -> str:
        """A readable name for an id: the special's name or e.g. "image:12"."""
        kind = self.segment_of(token_id)
        if kind == "special":
            return next(n for n, i in self._specials.items() if i == token_id)
        if kind == "audio":
            c = self.codebook_of(token_id)
            return f"audio[{c}]:{token_id - self.offset('audio', c)}"
        return f"{kind}:{token_id - self.offset(kind)}"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.text_specials:  # absent rather than empty: layouts saved before it keep their fingerprint
            del out["text_specials"]
        return out

    def describe(self) -> str:
        """A table of the layout, one line per range or special token."""
        lines = [f"{name:<10} {r.start:>7} .. {r.stop - 1:<7} ({len(r)} ids)" for name, r in self._ranges.items()]
        lines += [
            f"{name:<10} {i:>7}" + ("   (a text id)" if name in self.text_specials else "")
            for name, i in self._specials.items()
        ]
        lines.append(f"{'total':<10} {self._size:>7} ids")
        return "\n".join(lines)
