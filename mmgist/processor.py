"""MultimodalProcessor: text with placeholders plus media -> padded `input_ids` and `attention_mask`.

Called the way Hugging Face processors are:

    processor = MultimodalProcessor(vocab)
    batch = processor(text=["Look: <image> What animal?", "Hi"], images=[photo], return_tensors="pt")
    batch["input_ids"]        # (B, L) LongTensor, padded with <|pad|>
    batch["attention_mask"]   # (B, L), 1 on real tokens

`<image>`, `<audio>` and `<video>` in the text mark where each media item goes, in order across the
batch (as in Hugging Face's processors); a mismatch between placeholders and media names both counts.
Audio items are (waveform, sample_rate) or Audio segments; videos are Video segments (frames + fps).
A Prompt (or a list of them) can be passed instead of text and media.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import torch

from .prompt import Audio, Image, Prompt, Video, as_segment
from .validate import positive_int, show
from .vocab import SharedVocabulary

PLACEHOLDERS = {"<image>": "image", "<audio>": "audio", "<video>": "video"}
_SPLIT = re.compile("(" + "|".join(map(re.escape, PLACEHOLDERS)) + ")")


class MultimodalProcessor:
    def __init__(
        self, vocab: SharedVocabulary, add_bos: bool = True, padding_side: str = "right", max_length: int | None = None
    ) -> None:
        if not isinstance(vocab, SharedVocabulary):
            raise TypeError(f"MultimodalProcessor needs a SharedVocabulary, got {type(vocab).__name__}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if max_length is not None:
            positive_int(max_length, "MultimodalProcessor max_length")
        self.vocab, self.add_bos, self.padding_side, self.max_length = vocab, add_bos, padding_side, max_length

    def prompts(
        self,
        text: str | Sequence[str],
        images: Sequence[Any] | None = None,
        audio: Sequence[Any] | None = None,
        videos: Sequence[Any] | None = None,
    ) -> list[Prompt]:
        """The Prompts that placeholders and media describe (one per text)."""
        texts = [text] if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else None
        if not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"text must be a string or a non-empty list of strings, got {text!r:.80}")
        media = {"image": _items(images, "images"), "audio": _items(audio, "audio"), "video": _items(videos, "videos")}
        for modality, items in media.items():
            media[modality] = [_media(modality, item, k) for k, item in enumerate(items)]
        for modality, items in media.items():
            wanted = sum(t.count(f"<{modality}>") for t in texts)
            if wanted != len(items):
                raise ValueError(
                    f"text has {wanted} <{modality}> placeholder(s) but {len(items)} {modality} item(s) were given"
                )
        prompts = []
        for t in texts:
            segments: list[Any] = []
            for part in _SPLIT.split(t):
                if part in PLACEHOLDERS:
                    segments.append(media[PLACEHOLDERS[part]].pop(0))
                elif part:
                    segments.append(part)
            if not segments:
                raise ValueError("cannot process an empty text with no media")
            prompts.append(Prompt(segments))
        return prompts

    def __call__(
        self,
        text: Any = None,
        images: Sequence[Any] | None = None,
        audio: Sequence[Any] | None = None,
        videos: Sequence[Any] | None = None,
        return_tensors: str | None = "pt",
        padding: bool = True,
        padding_side: str | None = None,
    ):
        from transformers import BatchFeature

        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        if padding_side not in (None, "left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if isinstance(text, Prompt) or (isinstance(text, list) and text and isinstance(text[0], Prompt)):
            if images or audio or videos:
                raise ValueError("pass media inside the Prompt, not beside it")
            prompts = [text] if isinstance(text, Prompt) else list(text)
        else:
            prompts = self.prompts(text, images, audio, videos)
        rows = [self.vocab.encode(p, add_bos=self.add_bos) for p in prompts]
        if self.max_length is not None:
            for k, row in enumerate(rows):
                if len(row) > self.max_length:
                    raise ValueError(f"prompt {k} is {len(row)} tokens, over max_length {self.max_length}")
        if not padding and len({len(r) for r in rows}) > 1:
            raise ValueError(f"prompts have lengths {[len(r) for r in rows]}; pass padding=True to batch them")
        return BatchFeature(self.pad(rows, padding_side), tensor_type=return_tensors)

    def pad(self, rows: list[list[int]], padding_side: str | None = None) -> dict[str, torch.Tensor]:
        """Pad id lists to one length: {"input_ids": (B, L), "attention_mask": (B, L)}."""
        side = padding_side or self.padding_side
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.vocab.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, row in enumerate(rows):
            span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
            ids[k, span] = torch.tensor(row, dtype=torch.long)
            mask[k, span] = 1
        return {"input_ids": ids, "attention_mask": mask}


def _items(given: Any, name: str) -> list[Any]:
    """The media list a caller passed (None = none); one bare item or a string is refused by name."""
    if given is None:
        return []
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
        raise TypeError(f"{name} must be a list of items, got {type(given).__name__} {show(given)}")
    return list(given)


def _media(modality: str, item: Any, k: int) -> Any:
    """One media item as its prompt segment; a path or another kind of value is refused, never read as text."""
    name = {"image": "images", "audio": "audio", "video": "videos"}[modality]
    if isinstance(item, (str, os.PathLike)):
        loader = {"image": "mmgist.io.load_image(path)", "audio": "mmgist.io.load_audio(path)",
                  "video": "a loader"}[modality]  # fmt: skip
        raise TypeError(f"{name}[{k}] is the path {str(item)!r}, not {modality} data; load it first with {loader}")
    if modality == "video" and isinstance(item, tuple):
        item = Video(*item)
    try:
        segment = as_segment(item)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name}[{k}]: {e}") from e
    want = {"image": Image, "audio": Audio, "video": Video}[modality]
    if not isinstance(segment, want):
        raise TypeError(f"{name}[{k}] is {segment.modality} data ({type(item).__name__}), not {modality}")
    return segment
