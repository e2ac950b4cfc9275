"""Generation constrained by the vocabulary's layout, as a Hugging Face logits processor.

    out = generate(model, vocab, Prompt(["Draw a cat:"]), max_new_tokens=1100, sizes={"image": (32, 32)})
    out                     # a Prompt: text, and media decoded from the generated codes
    generate(model, vocab, "Q: colour? A:", stop="Q:")   # the answer only: cut where the next question starts

`LayoutConstraint` masks every step's logits so the ids always parse:
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

from .layout import CLOSE, OPEN
from .prompt import Prompt
from .validate import finite, is_int, positive_int
from .vocab import SharedVocabulary


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


def generate(
    model: Any,
    vocab: SharedVocabulary,
    prompt: Prompt | list[Any] | str,
    max_new_tokens: int = 64,
    *,
    modality: str | None = None,
    sizes: dict[str, Any] | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    media: bool = True,
    gist: Any = None,
    gist_cache: Any = None,
    stop: str | list[str] | None = None,
) -> Prompt:
    """Continue `prompt` with the model; returns the generated segments as a Prompt.

    `modality="image"` (or "audio", "video") makes the continuation start with a segment of that
    modality; `sizes` fixes segment sizes: {"image": (h, w), "audio": frames, "video": (t, h, w)}
    (video needs one). With `media=False` media segments hold codes only.

    With `gist` (a GistPrefix) the model sees `<|bos|> gist query` instead of `<|bos|> query`: the
    gist's k + 1 positions come from its KV cache (`gist_cache`, from `gist.cache(model)`, to reuse it
    across calls), and `prompt` is the query that follows them. It may be empty for an embeddings gist:
    its embeddings are then fed directly (there is no token to feed after a cache) and `gist_cache` is
    not used. A KV gist (`gist.target == "kv"`) needs a query or a modality.

    Generation ends at <|eos|>, after `max_new_tokens`, or where the new text first holds one of the `stop`
    strings; the answer is cut before it (for a model that marks no end, such as the demo's "A: dark. Q: ...").
    """
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper

    from .gist.prefix import GistPrefix
    from .lm import cache_kwargs, check_model, context_length

    check_model(model, vocab)
    positive_int(max_new_tokens, "max_new_tokens")
    finite(temperature, "temperature", positive=True)
    if top_k is not None:
        positive_int(top_k, "top_k (or None)")
    if gist is not None and not isinstance(gist, GistPrefix):
        raise TypeError(f"gist must be a GistPrefix, got {type(gist).__name__}")
    if gist_cache is not None and gist is None:
        raise ValueError("gist_cache was given without its gist: pass gist=... too")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if not all(isinstance(s, str) and s for s in stops):
        raise ValueError(f"stop must be a non-empty string or a list of them, got {stop!r:.60}")
    empty = prompt is None or (isinstance(prompt, str) and prompt == "")
    query = prompt if isinstance(prompt, Prompt) else Prompt([] if empty else prompt)
    if gist is None:
        ids = vocab.encode(query, add_bos=True)
    else:
        gist.check(model, vocab)
        gist.check_cache(model, gist_cache)
        # <|pad|> stands in for the k gist positions, which come from the cache and are never embedded
        ids = [vocab.bos_id] + [vocab.pad_id] * gist.k + (vocab.encode(query) if len(query) else [])
    if modality is not None:
        if modality not in OPEN or modality not in vocab.tokenizers:
            raise ValueError(f"modality {modality!r} cannot be generated; this vocabulary has {list(vocab.tokenizers)}")
        ids.append(vocab.layout.special(OPEN[modality]))
    if len(ids) + max_new_tokens > context_length(model):
        raise ValueError(
            f"prompt ({len(ids)} tokens) plus max_new_tokens ({max_new_tokens}) exceeds the model's "
            f"context of {context_length(model)}"
        )
    # With a gist and nothing after it there is no token to feed on top of the gist's cache: the k + 1
    # head embeddings go in as inputs_embeds instead, and Hugging Face then returns the new tokens only.
    from_embeds = gist is not None and len(ids) == gist.k + 1
    if from_embeds and gist.target == "kv":
        raise ValueError(
            "generating straight after a KV gist needs a query (or a modality): its positions hold keys and "
            "values, with no output to predict the first token from"
        )
    constraint = LayoutConstraint(vocab, (0 if from_embeds else len(ids)) + max_new_tokens, sizes)
    if modality is not None:
        cost = constraint.segment_cost(modality)
        if modality == "video" and cost is None:
            raise ValueError("generating video needs sizes={'video': (t, h, w)}")
        # the smallest segment: the whole fixed size, or one code + <|row|> + close / one frame + close
        need = cost - 1 if cost is not None else {"image": 3, "audio": vocab.layout.audio_codebooks + 1}[modality]
        if need > max_new_tokens:
            size = f" of size {sizes[modality]}" if cost is not None else ""
            raise ValueError(f"a {modality}{size} needs {need} new tokens; max_new_tokens is {max_new_tokens}")
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    # The constraint runs first and our own warpers after it: a top-k taken before masking could
    # keep only ids the layout forbids. So Hugging Face's own warpers are switched off (top_k=0, temperature=1).
    processors = LogitsProcessorList([constraint])
    if do_sample and temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if do_sample and top_k:
        processors.append(TopKLogitsWarper(top_k))
    sampling = {"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if do_sample else {"do_sample": False}
    if from_embeds:
        feed = {"inputs_embeds": gist.head(model)[None], "attention_mask": torch.ones_like(input_ids)}
    else:
        feed = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
        if gist is not None:
            feed.update(cache_kwargs(model, gist.cache_for(model, 1, gist_cache)))
    start = 0 if from_embeds else len(ids)
    stopper = StopStrings(vocab, stops, start)
    out = model.generate(
        **feed,
        max_new_tokens=max_new_tokens,
        logits_processor=processors,
        stopping_criteria=[stopper] if stops else None,
        **sampling,
        eos_token_id=vocab.eos_id,
        pad_token_id=vocab.pad_id,
    )
    new = out[0, start:].tolist()
    if vocab.eos_id in new:  # the end, not text: an <|eos|> that is a text id (text_specials) would decode as text
        new = new[: new.index(vocab.eos_id)]
    if modality is not None:
        new = [ids[-1], *new]
    result = vocab.decode(new, media=media)
    return stopper.cut(result) if stops else result


class StopStrings:
    """A `transformers.StoppingCriteria`: True once the text generated after column `start` holds a stop string
    (media segments are skipped; a segment still open is not decoded). `cut` ends a result before the first one."""

    def __init__(self, vocab: SharedVocabulary, stops: list[str], start: int) -> None:
        self.vocab, self.stops, self.start = vocab, stops, start

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        done = [self._stopped(row[self.start :].tolist()) for row in input_ids]
        return torch.tensor(done, device=input_ids.device)

    def _stopped(self, new: list[int]) -> bool:
        try:
            text = "".join(s.text for s in self.vocab.decode(new, media=False) if s.modality == "text")
        except ValueError:  # inside a media segment: it cannot hold text
            return False
        return any(stop in text for stop in self.stops)

    def cut(self, prompt: Prompt) -> Prompt:
        """`prompt` up to the first stop string: segments after it dropped, its text segment shortened."""
        from .prompt import Text

        out = []
        for segment in prompt:
            if segment.modality != "text":
                out.append(segment)
                continue
            at = min((i for i in (segment.text.find(s) for s in self.stops) if i >= 0), default=-1)
            if at < 0:
                out.append(segment)
                continue
            if segment.text[:at]:
                out.append(Text(segment.text[:at]))
            break
        return Prompt(out)
