"""Multiple-choice scoring: which of a few answers the model prefers after a context.

    q = Question(" Q: centre? A:", [" dark", " medium", " bright"], answer=2)
    score_options(model, vocab, q.query, q.options, prefix=photo_prompt).probs   # after the full prefix
    score_options(model, vocab, q.query, q.options, gist=gist).probs             # after the gist instead
    head = prefix_head(model, vocab, photo_prompt)                               # many questions, one prefix:
    score_options(model, vocab, q.query, q.options, head=head).probs             # read it once, as keys/values
    accuracy(model, vocab, [q, ...], gist=gist)

The context is one of: the full prefix (a Prompt or ids; <|bos|> is added when missing), a GistPrefix
(<|bos|> then its k embeddings), or nothing (<|bos|> alone); then the query, then each option. An
option's score is the sum of its tokens' log-probs; `probs` renormalizes over the options. Every
context is handed to the model as embeddings, so the prefix, the gist and any baseline go through
one code path and can be compared exactly. Open-ended answers are left to `mmgist.generate`.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..prompt import Prompt
from ..validate import ids as check_ids
from ..validate import is_int
from . import heads
from .heads import KVHead, kv_of
from .model import output_cache

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary


@dataclass
class Question:
    query: Any  # what follows the prefix: a Prompt, a string or ids
    options: list[Any]  # the candidate answers, each a Prompt, a string or ids
    answer: int | None = None  # index of the right option, where the task knows it

    def __post_init__(self) -> None:
        if not isinstance(self.options, (list, tuple)):
            raise TypeError(f"Question.options must be a list of answers, got {type(self.options).__name__}")
        if len(self.options) < 2:
            raise ValueError(f"a Question needs at least 2 options, got {len(self.options)}")
        if self.answer is not None and not is_int(self.answer):
            raise TypeError(f"Question.answer must be an int index or None, got {self.answer!r}")
        if self.answer is not None and not 0 <= self.answer < len(self.options):
            raise ValueError(f"Question.answer must index the {len(self.options)} options, got {self.answer}")


@dataclass
class OptionScores:
    logprobs: torch.Tensor  # (n_options,) sum of each option's token log-probs given the context
    probs: torch.Tensor  # (n_options,) the same renormalized over the options

    @property
    def best(self) -> int:
        return int(self.logprobs.argmax())


def to_ids(vocab: SharedVocabulary, x: Any, add_bos: bool = False, what: str = "ids") -> list[int]:
    """A Prompt, a string, a list of segments, a list of ids or an id tensor -> ids.

    Ids are checked against the vocabulary: a float, a bool or an id out of range is refused by name."""
    if isinstance(x, torch.Tensor) or type(x).__module__ == "numpy":
        return check_ids(x, len(vocab), what)
    if isinstance(x, (list, tuple)) and x and all(isinstance(i, numbers.Number) for i in x):
        return check_ids(x, len(vocab), what)
    return vocab.encode(x if isinstance(x, Prompt) else Prompt(x), add_bos=add_bos)


def context_ids(vocab: SharedVocabulary, prefix: Any) -> list[int]:
    """<|bos|> + the prefix's ids (<|bos|> added where the prefix does not start with it). Ids must parse as
    a prompt: a stray marker (a <|/image|> that closes nothing, an unclosed <|audio|>) is refused."""
    ids = to_ids(vocab, prefix, add_bos=True, what="the prefix")
    try:
        vocab.decode(ids, media=False)
    except ValueError as e:
        raise ValueError(f"the prefix's ids do not parse as a prompt: {e}") from e
    return ids if ids[0] == vocab.bos_id else [vocab.bos_id, *ids]


def head_embeddings(model: PreTrainedModel, vocab: SharedVocabulary, prefix: Any = None, gist: Any = None) -> Any:
    """What the model sees before the query: (h, d) embeddings of <|bos|> + prefix, <|bos|> + gist, or
    <|bos|> alone; for a KV gist, its keys and values (a KVHead)."""
    if prefix is not None and gist is not None:
        raise ValueError("give a prefix or a gist, not both: the gist stands in for the prefix")
    if gist is not None:
        gist.check(model, vocab)
        return gist.head(model)
    ids = context_ids(vocab, prefix) if prefix is not None else [vocab.bos_id]
    emb = model.get_input_embeddings()
    return emb(torch.tensor(ids, device=emb.weight.device))


@torch.no_grad()
def prefix_head(model: PreTrainedModel, vocab: SharedVocabulary, prefix: Any) -> Any:
    """<|bos|> + `prefix` read once, as every layer's keys and values (a KVHead of len(prefix) + 1 positions).
    Scoring after it equals scoring after the prefix, float rounding aside, without re-reading the prefix
    for every question; the query must not be empty (the head holds no prediction for its first token)."""
    ids = context_ids(vocab, prefix)
    device = model.get_input_embeddings().weight.device
    return KVHead(kv_of(output_cache(model(input_ids=torch.tensor([ids], device=device), use_cache=True))))


@torch.no_grad()
def option_logprobs(model: PreTrainedModel, head: Any, query: list[int], options: list[list[int]]) -> torch.Tensor:
    """(n_options,): log P(option | head, query), one batch of `head query option` rows, right-padded.
    `head`: (h, d) embeddings, or the keys and values of a KV gist (a `KVHead`)."""
    return heads.option_logprobs(model, head, query, options)  # one path for both kinds of head, as the report


def option_kl(reference: list[torch.Tensor], probs: list[torch.Tensor]) -> float:
    """Mean over questions of KL(reference || probs), each over its own options' probabilities."""
    if not reference:
        raise ValueError("option_kl needs at least one question")
    kls = [(p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum().item() for p, q in zip(reference, probs)]
    return sum(kls) / len(kls)


def score_options(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    query: Any,
    options: list[Any],
    *,
    prefix: Any = None,
    gist: Any = None,
    head: Any = None,
) -> OptionScores:
    """Score each option after `prefix` (or `gist`, or a `head` from `prefix_head`, or none) and `query`."""
    if not isinstance(options, (list, tuple)) or len(options) < 1:
        raise ValueError(f"score_options needs a non-empty list of options, got {options!r:.60}")
    query_ids = to_ids(vocab, query, what="the query")
    option_ids = [to_ids(vocab, o, what=f"option {k}") for k, o in enumerate(options)]
    if not all(option_ids):
        raise ValueError(f"option {[len(o) for o in option_ids].index(0)} is empty: every option needs a token")
    if head is None:
        head = head_embeddings(model, vocab, prefix, gist)
    elif prefix is not None or gist is not None:
        raise ValueError("give one context: a prefix, a gist or a head")
    logprobs = option_logprobs(model, head, query_ids, option_ids)
    return OptionScores(logprobs, logprobs.softmax(0))


def accuracy(
    model: PreTrainedModel, vocab: SharedVocabulary, questions: list[Question], *, prefix: Any = None, gist: Any = None
) -> float:
    """Share of the questions with a known answer whose best option is that answer."""
    known = [q for q in questions if q.answer is not None]
    if not known:
        raise ValueError("none of the questions has a known answer")
    right = sum(
        score_options(model, vocab, q.query, q.options, prefix=prefix, gist=gist).best == q.answer for q in known
    )
    return right / len(known)
