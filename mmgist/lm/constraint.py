"""`LayoutConstraint`: generation that always parses, as a Hugging Face logits processor.

It masks every step's logits so the ids always parse:
    outside a segment   text ids, the opener of any modality that fits in the budget left, <|eos|>
    image               codes, <|row|> after exactly w codes, <|/image|> after exactly h rows;
                        with no size given, the first row fixes the width and the model picks h
    audio               frame by frame, codebook 0 .. C-1 in order; <|/audio|> only between frames
    video               frames of an h x w grid, each ended by <|frame|>, t frames (size required)
A segment without a fixed size is forced closed when the tokens left are just enough to close it,
and one with a fixed size is only opened if it fits, so a generation never ends inside a segment.
"""

from __future__ import annotations

from typing import Any

import torch

from ..layout import CLOSE, OPEN
from ..validate import is_int
from ..vocab import SharedVocabulary


class LayoutConstraint:
    """A `transformers.LogitsProcessor`: (input_ids (B, T), scores (B, V)) -> scores, -inf where not allowed."""

    def __init__(self, vocab: SharedVocabulary, max_length: int, sizes: dict[str, Any] | None = None) -> None:
        self.vocab, self.max_length = vocab, max_length
        self.sizes = dict(sizes or {})
        unknown = set(self.sizes) - {"image", "audio", "video"}
        if unknown:
            raise ValueError(f"sizes has unknown modalities {sorted(unknown)}; expected image, audio, video")
        for m, size in self.sizes.items():
            dims = (size,) if m == "audio" else tuple(size) if isinstance(size, (tuple, list)) else ()
            ok = len(dims) == {"image": 2, "audio": 1, "video": 3}[m] and all(is_int(d) and d > 0 for d in dims)
            if not ok:
                want = {"image": "(h, w)", "audio": "frames", "video": "(t, h, w)"}[m]
                raise ValueError(f"sizes[{m!r}] must be {want} of positive ints, got {size!r}")
            if m != "audio":
                self.sizes[m] = dims
        L = vocab.layout
        self.row, self.frame = L.specials.get("<|row|>"), L.specials.get("<|frame|>")
        self.openers = {L.special(OPEN[m]): m for m in OPEN if m in vocab.tokenizers}
        self.closers = {L.special(CLOSE[m]): m for m in OPEN if m in vocab.tokenizers}
        self.masks: dict[str, torch.Tensor] = {}
        for m in vocab.modalities:
            ids = (
                [vocab.allowed_ids(m, c) for c in range(L.audio_codebooks)] if m == "audio" else [vocab.allowed_ids(m)]
            )
            if m == "text":  # ids a text tokenizer reserves but cannot decode (a model's padded rows): never generated
                ids = [ids[0][: vocab.tokenizers["text"].generatable_size]]
            for c, group in enumerate(ids):
                mask = torch.zeros(len(vocab), dtype=torch.bool)
                mask[group] = True
                self.masks[f"{m}:{c}" if m == "audio" else m] = mask
        # <|bos|> and <|pad|> are never generated, also where they are text ids (a pretrained LM's own
        # <|endoftext|>, `IdLayout.text_specials`); <|eos|> is allowed where text is, below
        for name in ("<|bos|>", "<|pad|>"):
            if L.specials[name] != vocab.eos_id:
                self.masks["text"][L.specials[name]] = False

    def _one(self, token_id: int) -> torch.Tensor:
        mask = torch.zeros(len(self.vocab), dtype=torch.bool)
        mask[token_id] = True
        return mask

    def segment_cost(self, modality: str) -> int | None:
        """Tokens a whole fixed-size segment takes (markers included); None if its size is free."""
        size = self.sizes.get(modality)
        if size is None:
            return None
        if modality == "image":
            h, w = size
            return h * (w + 1) + 2
        if modality == "audio":
            return size * self.vocab.layout.audio_codebooks + 2
        t, h, w = size
        return t * (h * (w + 1) + 1) + 2

    def allowed(self, ids: list[int]) -> torch.Tensor:
        """Boolean mask (V,) of the ids allowed after `ids`."""
        left = self.max_length - len(ids)  # tokens that can still be generated, this one included
        start = next((k for k in range(len(ids) - 1, -1, -1) if ids[k] in self.openers or ids[k] in self.closers), None)
        if start is None or ids[start] in self.closers:
            mask = self.masks["text"].clone()
            mask[self.vocab.eos_id] = True
            for token, m in self.openers.items():
                cost = self.segment_cost(m)
                free_ok = m != "video" and left >= {"image": 4, "audio": 2 + self.vocab.layout.audio_codebooks}[m]
                mask[token] = (cost is not None and cost <= left) or (cost is None and free_ok)
            return mask
        m, body = self.openers[ids[start]], ids[start + 1 :]
        if m == "audio":
            return self._audio(body, left)
        if m == "image":
            return self._grid(body, self.sizes.get("image"), self.closers_by("image"), left)
        t, h, w = self.sizes["video"]
        frames = body.count(self.frame)
        if frames == t:
            return self._one(self.closers_by("video"))
        last = max((k for k, x in enumerate(body) if x == self.frame), default=-1)
        return self._grid(body[last + 1 :], (h, w), self.frame, left, codes="video")

    def closers_by(self, modality: str) -> int:
        return self.vocab.layout.special(CLOSE[modality])

    def _grid(self, body: list[int], size: tuple[int, int] | None, end: int, left: int, codes: str = "image"):
        rows = body.count(self.row)
        last = max((k for k, x in enumerate(body) if x == self.row), default=-1)
        cur = len(body) - last - 1  # codes in the row being written
        if size is not None:
            h, w = size
            if rows == h:
                return self._one(end)
            return self._one(self.row) if cur == w else self.masks[codes]
        w = body.index(self.row) if rows else None  # the first row fixed the width
        if w is None:  # first row: any width >= 1; forced to end when only row + close still fit
            if cur > 0 and left <= 2:
                return self._one(self.row)
            mask = self.masks[codes].clone()
            mask[self.row] = cur > 0
            return mask
        if cur == w:
            return self._one(self.row)
        if cur == 0:
            if left < w + 2:  # another row and the close no longer fit
                return self._one(end)
            mask = self.masks[codes].clone()
            mask[end] = True
            return mask
        return self.masks[codes]

    def _audio(self, body: list[int], left: int) -> torch.Tensor:
        C = self.vocab.layout.audio_codebooks
        k, frames = len(body), self.sizes.get("audio")
        if k % C == 0 and k > 0 and (frames == k // C or (frames is None and left < C + 1)):
            return self._one(self.closers_by("audio"))
        mask = self.masks[f"audio:{k % C}"].clone()
        if frames is None and k % C == 0 and k > 0:
            mask[self.closers_by("audio")] = True
        return mask

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        masks = torch.stack([self.allowed(row.tolist()) for row in input_ids]).to(scores.device)
        return scores.masked_fill(~masks, float("-inf"))
