"""Self-study for an instruct model: it writes the questions about its own prefix (as Cartridges does).

    prefix = system_turn(vocab, document)
    questions = chat_questions(model, vocab, prefix)  # CHAT_QUESTIONS of them: [StudyQuestion('summarize', ...), ...]
    gist = distill_gist(model, vocab, prefix, chat_config(num_gist_tokens=8),
                        queries=[user_turn(vocab, q.text) for q in questions])

The teacher's answers after each question (sampled by `distill_gist`, with the full prefix) are then
what the gist is trained to reproduce, so a gist learns the prefix from the questions the model itself
finds worth asking. A family of seed prompts steers the questions towards different uses of the
prefix (summarize, quote, ask about a detail, restate as a list, use the content).

Cartridges seeds each question with a meta-instruction in the user turn ("write a question a user
might ask about the document"); a 135M model mostly answers such an instruction instead of following
it (tried on SmolLM2-135M-Instruct: 'I'm ready to assist. Go ahead and ask me a question.'). Here a seed
is instead the *start of the user's own turn* ("Summarize", "List", "What does the document say
about"), and the model, with the whole prefix before it, writes the rest of the user's message; that
asks of it only what its chat tuning already does. The message ends at the template's end of turn
or its first line break.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lm.chat import system_span, user_turn
from ..lm.scoring import context_ids, to_ids
from ..validate import finite, non_negative_int, positive_int
from . import data
from .chunks import Chunk, ForcedRow, chunk_prefix, reconstruction_rows
from .config import GistConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary

# family -> openers of a user message; questions are spread evenly over the families, then their openers
SEED_FAMILIES: dict[str, tuple[str, ...]] = {
    "summarize": ("Summarize", "Give me a short summary of", "In a few words, what is"),
    "quote": ("Quote the sentence", "What exactly does it say about", "Quote the part"),
    "detail": ("What is the", "Who", "How many", "When", "Which", "What does the document say about"),
    "list": ("List", "What are the", "Make a list of"),
    "use": ("I want to", "How do I", "Can I", "I need to"),
}
# a sixth family whose openers ask for specifics (numbers, times, prices, names, conditions): `StudyConfig.specifics`
SPECIFICS = ("How much", "What time", "What is the name of", "How long", "What number", "What happens if")
# openers of the questions written about one chunk at a time (`chunk_questions`): short answers, details
CHUNK_OPENERS = ("What is the", "How much", "Who", "When", "How many", "Which", "Where", "What happens if")
CHAT_QUESTIONS = 128  # self-study questions per prefix that chat_config's figures were measured with
_MARK = "\uffff"  # a stand-in message, to split the user turn into its opening and its end


def chat_config(**overrides: Any) -> GistConfig:
    """The GistConfig for a chat prefix studied by `chat_study`: one teacher answer of up to 32 tokens per
    question, 1 in 8 held out for the report, no samples straight after the system turn (there the model
    writes the user's turn, not an answer), a KV gist of 32 positions started, per layer and head, from the
    prompt positions the training rows attend to most (init prefix_attended), 100 steps of 4 rows at a
    constant lr 3e-2, the KL alone.
    `gist_tokens_for` chooses k from the prompt's length instead. `overrides` are GistConfig fields.
    The measurements behind these choices, with their commands: docs/gists.md (SmolLM2 section)."""
    defaults = {"num_continuations": 1, "continuation_length": 32, "heldout_fraction": 0.125, "self_study": 0,
                "steps": 100, "lr": 3e-2, "batch_size": 4, "hidden_weight": 0.0, "init": "prefix_attended",
                "num_gist_tokens": 32}  # fmt: skip
    return GistConfig(**{**defaults, **overrides})


@dataclass(frozen=True)
class StudyQuestion:
    family: str  # which seed family it was drawn from
    text: str  # the user's message, opener included


def chat_questions(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prefix: Any,
    count: int = CHAT_QUESTIONS,
    *,
    families: dict[str, tuple[str, ...]] | None = None,
    temperature: float = 0.8,
    max_tokens: int = 40,
    seed: int = 0,
) -> list[StudyQuestion]:
    """`count` user messages written by the model after `prefix` (a system turn, as text, a Prompt or ids),
    each begun with an opener of `families` (default SEED_FAMILIES, cycled evenly) and sampled at
    `temperature` for at most `max_tokens`; deterministic in `seed`. Duplicates are kept (a question asked
    twice weighs twice, as it would in use)."""
    positive_int(count, "count")
    positive_int(max_tokens, "max_tokens")
    finite(temperature, "temperature", positive=True)
    families = dict(SEED_FAMILIES if families is None else families)
    if not families or any(not isinstance(o, (list, tuple)) or not o for o in families.values()):
        raise ValueError(f"families must map each family name to a non-empty tuple of openers, got {families!r:.80}")
    opening, _ = user_turn(vocab, _MARK).split(_MARK)  # '<|im_start|>user\n' for SmolLM2's template
    names = list(families)
    seeds = []  # (family, opener): families in turn, each cycling through its own openers
    for i in range(count):
        family = names[i % len(names)]
        openers = families[family]
        seeds.append((family, openers[(i // len(names)) % len(openers)]))
    prefix_ids = context_ids(vocab, prefix)
    starts = [to_ids(vocab, opening + opener, what=f"opener {opener!r}") for _, opener in seeds]
    config = GistConfig(temperature=temperature, seed=seed)
    rows = data.sample(model, vocab, prefix_ids, starts, config, seed=7, count=1, length=max_tokens)
    out = []
    for (family, opener), start, row in zip(seeds, starts, rows):
        written = [t for t in row[len(start) :] if t != vocab.eos_id]
        rest = vocab.decode(written).text() if written else ""
        text = (opener + rest).split("\n")[0].strip()
        out.append(StudyQuestion(family, text))
    return out


def chunk_questions(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    prefix_ids: list[int],
    pieces: list[str],
    chunks: list[Chunk],
    per_chunk: int = 2,
    *,
    openers: tuple[str, ...] = CHUNK_OPENERS,
    temperature: float = 0.8,
    max_tokens: int = 40,
    seed: int = 0,
) -> list[StudyQuestion]:
    """`per_chunk` user messages about each chunk (Cartridges' chunked seeding): the model, after the whole
    prefix, starts a user turn that quotes the chunk and then an opener, and writes the rest of the question.
    The question is the opener and what follows, without the quote: the chunk is shown only while the
    question is written, never in the teacher's context (the prefix already holds it). Family "chunk:i"."""
    positive_int(per_chunk, "per_chunk")
    positive_int(max_tokens, "max_tokens")
    finite(temperature, "temperature", positive=True)
    if not openers:
        raise ValueError("openers must hold at least one opener, got none")
    opening, _ = user_turn(vocab, _MARK).split(_MARK)
    seeds = []  # (chunk index, opener, ids to continue)
    for i, c in enumerate(chunks):
        excerpt = " ".join("".join(pieces[c.start : c.end]).split())
        for j in range(per_chunk):
            opener = openers[(i * per_chunk + j) % len(openers)]
            text = f'{opening}About this part of your instructions: "{excerpt}"\n{opener}'
            seeds.append((i, opener, to_ids(vocab, text, what="a chunk question's start")))
    config = GistConfig(temperature=temperature, seed=seed)
    rows = data.sample(model, vocab, prefix_ids, [s for *_, s in seeds], config, seed=11, count=1, length=max_tokens)
    out = []
    for (i, opener, start), row in zip(seeds, rows):
        written = [t for t in row[len(start) :] if t != vocab.eos_id]
        rest = vocab.decode(written).text() if written else ""
        out.append(StudyQuestion(f"chunk:{i}", (opener + rest).split("\n")[0].strip()))
    return out


@dataclass(frozen=True)
class StudyConfig:
    """What a chat prefix is studied with before distillation (`chat_study`): questions the model writes
    from openers (`chat_questions`), questions about each chunk (`chunk_questions`) and reconstruction rows."""

    questions: int = 64  # questions from the seed families' openers, spread over the families
    specifics: bool = True  # add the SPECIFICS family (numbers, times, prices, names) to the seed families
    chunk_questions: int = 1  # questions written about each chunk, the chunk shown while writing (0: none)
    reconstruction: bool = True  # one reconstruction row per chunk: its first words quoted, its text forced
    chunk_tokens: int = 48  # a chunk's size at most: whole sentences or lines merged up to it
    temperature: float = 0.8  # sampling temperature of the written questions
    seed: int = 0

    def __post_init__(self) -> None:
        non_negative_int(self.questions, "StudyConfig.questions")
        non_negative_int(self.chunk_questions, "StudyConfig.chunk_questions")
        positive_int(self.chunk_tokens, "StudyConfig.chunk_tokens")
        finite(self.temperature, "StudyConfig.temperature", positive=True)
        if not (self.questions or self.chunk_questions or self.reconstruction):
            raise ValueError("StudyConfig asks for no study at all: give questions, chunk_questions or reconstruction")


@dataclass
class ChatStudy:
    """The distillation data of one system prompt: `queries` and `forced` go to `distill_gist` as they are."""

    prefix: list[int]  # <|bos|> + the system turn's ids
    questions: list[StudyQuestion]  # written by the model: seed families first, then chunk questions
    queries: list[list[int]]  # each question as a user turn (ids)
    forced: list[ForcedRow]  # reconstruction rows
    chunks: list[Chunk]
    seconds: float  # wall time of writing the questions


RECONSTRUCT = 'Repeat the part of your instructions that begins "{cue}", word for word.'


def chat_study(
    model: PreTrainedModel, vocab: SharedVocabulary, system: str, config: StudyConfig | None = None
) -> ChatStudy:
    """Everything `distill_gist` needs to learn the system prompt `system` (its text): see StudyConfig."""
    config = StudyConfig() if config is None else config
    t0 = time.perf_counter()
    ids, span, pieces = system_span(vocab, system)
    chunks = chunk_prefix(pieces, span, config.chunk_tokens)
    families = {**SEED_FAMILIES, "specifics": SPECIFICS} if config.specifics else SEED_FAMILIES
    questions = []
    if config.questions:
        questions += chat_questions(model, vocab, ids, config.questions, families=families,
                                    temperature=config.temperature, seed=config.seed)  # fmt: skip
    if config.chunk_questions:
        questions += chunk_questions(model, vocab, ids, pieces, chunks, config.chunk_questions,
                                     temperature=config.temperature, seed=config.seed)  # fmt: skip
    forced = []
    if config.reconstruction:
        ask = lambda c: user_turn(vocab, RECONSTRUCT.format(cue=c))  # noqa: E731
        forced = reconstruction_rows(vocab, ids, pieces, chunks, ask)
    queries = [to_ids(vocab, user_turn(vocab, q.text), what="a study question") for q in questions]
    return ChatStudy(ids, questions, queries, forced, chunks, time.perf_counter() - t0)
