"""Prompt: an ordered list of text and media segments, the unit the shared vocabulary encodes.

    >>> p = Prompt(["Describe", Image(codes=torch.zeros(2, 3, dtype=torch.long)), "briefly."])
    >>> [s.modality for s in p]
    ['text', 'image', 'text']

Each segment holds its media (a string, pixels, a waveform, frames), its codes (the integer tokens
a modality tokenizer made of it), or both. The vocabulary encodes a segment from its codes when it
has them, so a prompt that came out of `SharedVocabulary.decode` encodes back to exactly the ids it
came from, even though decoding media (pixels from VQ codes, say) is lossy.

Plain values are turned into segments when a Prompt is built:
    str                     -> Text
    PIL.Image.Image         -> Image
    tensor (3, H, W)        -> Image (uint8 0..255 or float 0..1)
    (waveform, sample_rate) -> Audio   waveform (channels, samples) or (samples,)
Video needs its frame rate, so build it explicitly: `Video(frames, fps=25)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .validate import frame_rate, is_int
from .validate import sample_rate as checked_rate

MODALITIES = ("text", "image", "audio", "video")


def _check_codes(codes: Any, ndim: int, what: str) -> torch.Tensor | None:
    if codes is None:
        return None
    if not isinstance(codes, torch.Tensor) or codes.dtype.is_floating_point or codes.dtype == torch.bool:
        raise TypeError(
            f"{what} codes must be an integer tensor, got {type(codes).__name__} {getattr(codes, 'dtype', '')}".rstrip()
        )
    if codes.ndim != ndim or codes.numel() == 0:
        raise ValueError(f"{what} codes must be a non-empty {ndim}-d tensor, got shape {tuple(codes.shape)}")
    return codes.long()


@dataclass(eq=False)
class Text:
    """A run of text. `codes`: (n,) text-tokenizer ids, when known."""

    text: str
    codes: torch.Tensor | None = None
    modality: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"Text.text must be a str, got {type(self.text).__name__}")
        if self.text == "" and self.codes is None:
            raise ValueError("empty text segment: a prompt's text segments must be non-empty")
        self.codes = _check_codes(self.codes, 1, "text")


@dataclass(eq=False)
class Image:
    """An image. `pixels`: PIL image, or tensor (3, H, W) uint8 or float in [0, 1]. `codes`: (h, w)."""

    pixels: Any = None
    codes: torch.Tensor | None = None
    modality: ClassVar[str] = "image"

    def __post_init__(self) -> None:
        if self.pixels is None and self.codes is None:
            raise ValueError("Image needs pixels or codes, got neither")
        if isinstance(self.pixels, torch.Tensor) and (self.pixels.ndim != 3 or self.pixels.shape[0] not in (1, 3, 4)):
            raise ValueError(f"Image pixels tensor must be (C, H, W) with C in 1, 3, 4, got {tuple(self.pixels.shape)}")
        self.codes = _check_codes(self.codes, 2, "image")


@dataclass(eq=False)
class Audio:
    """A sound. `waveform`: (channels, samples) float; `sample_rate` in Hz. `codes`: (codebooks, frames)."""

    waveform: torch.Tensor | None = None
    sample_rate: int | None = None
    codes: torch.Tensor | None = None
    modality: ClassVar[str] = "audio"

    def __post_init__(self) -> None:
        if self.waveform is None and self.codes is None:
            raise ValueError("Audio needs a waveform or codes, got neither")
        if self.waveform is not None:
            if not isinstance(self.waveform, torch.Tensor):
                raise TypeError(f"Audio waveform must be a tensor, got {type(self.waveform).__name__}")
            if self.waveform.ndim == 1:
                self.waveform = self.waveform.unsqueeze(0)
            if self.waveform.ndim != 2 or self.waveform.shape[-1] == 0:
                raise ValueError(
                    f"Audio waveform must be (channels, samples) and non-empty, got {tuple(self.waveform.shape)}"
                )
            if not is_int(self.sample_rate) or self.sample_rate <= 0:
                raise ValueError(f"Audio sample_rate must be a positive int, got {self.sample_rate!r}")
            checked_rate(self.sample_rate, "Audio sample_rate")
        self.codes = _check_codes(self.codes, 2, "audio")


@dataclass(eq=False)
class Video:
    """A clip. `frames`: (T, 3, H, W) uint8 or float in [0, 1]; `fps`. `codes`: (t, h, w)."""

    frames: torch.Tensor | None = None
    fps: float | None = None
    codes: torch.Tensor | None = None
    modality: ClassVar[str] = "video"

    def __post_init__(self) -> None:
        if self.frames is None and self.codes is None:
            raise ValueError("Video needs frames or codes, got neither")
        if self.frames is not None:
            if not isinstance(self.frames, torch.Tensor) or self.frames.ndim != 4 or self.frames.shape[0] == 0:
                shape = (
                    tuple(self.frames.shape) if isinstance(self.frames, torch.Tensor) else type(self.frames).__name__
                )
                raise ValueError(f"Video frames must be a non-empty (T, 3, H, W) tensor, got {shape}")
            if not isinstance(self.fps, (int, float)) or isinstance(self.fps, bool) or not 0 < self.fps < math.inf:
                raise ValueError(f"Video fps must be a positive number, got {self.fps!r}")
            frame_rate(self.fps, "Video fps")
        self.codes = _check_codes(self.codes, 3, "video")


Segment = Text | Image | Audio | Video


def _is_audio_pair(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], torch.Tensor)


def as_segment(item: Any) -> Segment:
    """Turn one plain value into a segment (see the module docstring for the rules)."""
    if isinstance(item, (Text, Image, Audio, Video)):
        return item
    if isinstance(item, str):
        return Text(item)
    if _is_audio_pair(item):
        return Audio(item[0], item[1])
    if isinstance(item, torch.Tensor):
        if item.ndim == 3:
            return Image(item)
        hint = " (a video needs its frame rate: use Video(frames, fps=...))" if item.ndim == 4 else ""
        raise ValueError(
            f"cannot tell which modality a tensor of shape {tuple(item.shape)} is; expected an image (C, H, W){hint}"
        )
    try:
        from PIL import Image as PILImage

        if isinstance(item, PILImage.Image):
            return Image(item)
    except ImportError:  # pragma: no cover - Pillow is a dependency
        pass
    raise TypeError(
        f"cannot make a prompt segment from {type(item).__name__}; expected str, PIL image, "
        "image tensor (C, H, W), (waveform, sample_rate), or a Text/Image/Audio/Video segment"
    )


class Prompt(Sequence[Segment]):
    """An ordered, immutable list of segments: `Prompt(["Describe", image, "briefly."])`."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        if isinstance(items, Prompt):
            items = list(items)
        elif isinstance(items, (str, torch.Tensor)) or not isinstance(items, Iterable) or _is_audio_pair(items):
            items = [items]  # one value: a tensor or a (waveform, rate) pair is one item, not a list
        self._segments: tuple[Segment, ...] = tuple(as_segment(x) for x in items)

    def __getitem__(self, i: Any) -> Any:
        return Prompt(self._segments[i]) if isinstance(i, slice) else self._segments[i]

    def __len__(self) -> int:
        return len(self._segments)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    def __add__(self, other: Iterable[Any]) -> Prompt:
        return Prompt([*self._segments, *Prompt(other)])

    @property
    def modalities(self) -> list[str]:
        """The modality of each segment, in order."""
        return [s.modality for s in self._segments]

    def text(self) -> str:
        """The concatenated text of all text segments."""
        return "".join(s.text for s in self._segments if isinstance(s, Text))

    def __repr__(self) -> str:
        parts = []
        for s in self._segments:
            if isinstance(s, Text):
                parts.append(repr(s.text if len(s.text) <= 40 else s.text[:37] + "..."))
            else:
                parts.append(f"<{_describe(s)}>")
        return f"Prompt([{', '.join(parts)}])"


def _describe(segment: Image | Audio | Video) -> str:
    """A media segment in a few words: its codes' shape once encoded, else the media's own size."""
    if segment.codes is not None:
        return f"{segment.modality} codes {'x'.join(map(str, segment.codes.shape))}"
    if isinstance(segment, Image):
        pixels = segment.pixels
        w, h = (pixels.shape[-1], pixels.shape[-2]) if isinstance(pixels, torch.Tensor) else pixels.size  # PIL: (w, h)
        return f"image {w}x{h}"
    if isinstance(segment, Audio):
        return f"audio {segment.waveform.shape[-1] / segment.sample_rate:.2f} s at {segment.sample_rate} Hz"
    t, _, h, w = segment.frames.shape
    return f"video {t} frames {w}x{h} at {segment.fps:g} fps"
