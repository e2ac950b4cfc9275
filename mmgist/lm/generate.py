"""Generation after a prompt (or a gist), constrained by the vocabulary's layout (`LayoutConstraint`).

out = generate(model, vocab, Prompt(["Draw a cat:"]), max_new_tokens=1100, sizes={"image": (32, 32)})
out                     # a Prompt: text, and media decoded from the generated codes
generate(model, vocab, "Q: colour? A:", stop="Q:")   # the answer only: cut where the next question starts
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..layout import OPEN
from ..prompt import Prompt, Text
from ..validate import finite, positive_int
from ..vocab import SharedVocabulary
from .constraint import LayoutConstraint
from .heads import ServedGist
from .model import cache_kwargs, check_model, context_length

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _prepared(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prompt: Prompt | list[Any] | str,
    max_new_tokens: int,
    *,
    modality: str | None,
    sizes: dict[str, Any] | None,
    temperature: float,
    top_k: int | None,
    gist: Any,
    gist_cache: Any,
    stop: str | list[str] | None,
) -> tuple[list[int], list[str], LayoutConstraint]:
    """`generate`'s arguments checked: (the ids fed to the model, <|pad|> standing in for a gist's positions;
    the stop strings; the layout constraint over the new tokens). Every refusal names the bad value."""
    check_model(model, vocab)
    positive_int(max_new_tokens, "max_new_tokens")
    finite(temperature, "temperature", positive=True)
    if top_k is not None:
        positive_int(top_k, "top_k (or None)")
    if gist is not None and not isinstance(gist, ServedGist):
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
    return ids, stops, constraint


def generate(
    model: PreTrainedModel,
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

    ids, stops, constraint = _prepared(model, vocab, prompt, max_new_tokens, modality=modality, sizes=sizes,
                                       temperature=temperature, top_k=top_k, gist=gist, gist_cache=gist_cache,
                                       stop=stop)  # fmt: skip
    from_embeds = gist is not None and len(ids) == gist.k + 1
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
