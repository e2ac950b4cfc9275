"""The prefix cut into chunks, and the rows that make a gist carry the prefix's own text.

    ids, span, pieces = system_span(vocab, document)   # mmgist.chat: the message's ids within its turn
    chunks = chunk_prefix(pieces, span, max_tokens=48)  # [Chunk(start=4, end=40), ...]: sentences, merged
    rows = reconstruction_rows(vocab, ids, pieces, chunks, lambda cue: user_turn(vocab, f'Repeat ... "{cue}"'))

A gist trained only on answers to questions learns what those answers need; a fact no question asks
is lost. Reconstruction rows ask for the text itself: the query quotes a chunk's first words, the
continuation is the chunk's own ids, teacher-forced (never sampled), and every one of its positions is
in the loss against the model reading the full prefix. Chunks are whole sentences or lines, so a cue
is a natural place to start quoting from, and together they cover the message once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..lm.scoring import to_ids
from ..validate import positive_int

if TYPE_CHECKING:
    from ..vocab import SharedVocabulary

SENTENCE_ENDS = (".", "!", "?", ":", ";")


@dataclass(frozen=True)
class Chunk:
    start: int  # first id of the chunk, an index into the prefix ids
    end: int  # one past its last id

    def __len__(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ForcedRow:
    """A distillation row whose continuation is given rather than sampled from the teacher."""

    query: list[int]  # what the user asks (never in the loss)
    continuation: list[int]  # the tokens that follow, all in the loss


def _ends_sentence(piece: str, following: str) -> bool:
    """True after a line break, or after a sentence mark that the next piece does not continue ("3.2")."""
    if "\n" in piece:
        return True
    return piece.rstrip().endswith(SENTENCE_ENDS) and (not following or following[0].isspace())


def chunk_prefix(pieces: list[str], span: tuple[int, int], max_tokens: int = 48) -> list[Chunk]:
    """Ids span[0]..span[1] of a prefix (each id's text in `pieces`) cut into chunks of whole sentences:
    sentences (and lines) merged while they fit `max_tokens`, a longer sentence cut every `max_tokens`.
    Chunks cover the span exactly once, in order; pieces that are only whitespace join the chunk before.

    pieces ["", "A", " b", ".", " C", " d", "."], span (1, 7), max_tokens 3 -> [Chunk(1, 4), Chunk(4, 7)]"""
    positive_int(max_tokens, "max_tokens")
    start, end = span
    if not 0 <= start < end <= len(pieces):
        raise ValueError(f"span {span} must be a non-empty range within the {len(pieces)} pieces")
    sentences, first = [], start  # (start, end) of each sentence
    for i in range(start, end):
        following = pieces[i + 1] if i + 1 < end else ""
        if i + 1 == end or (_ends_sentence(pieces[i], following) and following.strip()):
            sentences.append((first, i + 1))
            first = i + 1
    chunks: list[Chunk] = []
    for a, b in sentences:
        for s in range(a, b, max_tokens):  # a sentence longer than max_tokens: cut into pieces of that size
            e = min(b, s + max_tokens)
            if chunks and chunks[-1].end == s and e - chunks[-1].start <= max_tokens:
                chunks[-1] = Chunk(chunks[-1].start, e)  # merge with the chunk before while it fits
            else:
                chunks.append(Chunk(s, e))
    return chunks


def cue(pieces: list[str], chunk: Chunk, words: int = 6) -> str:
    """The chunk's first `words` words as text (its first line at most): what a reconstruction query quotes."""
    text = "".join(pieces[chunk.start : chunk.end]).strip().split("\n")[0]
    return " ".join(text.split()[:words])


def reconstruction_rows(
    vocab: SharedVocabulary,
    ids: list[int],
    pieces: list[str],
    chunks: list[Chunk],
    ask: Callable[[str], Any],
    words: int = 6,
) -> list[ForcedRow]:
    """One row per chunk: the query `ask(cue)` (text, a Prompt or ids), the continuation `ids[chunk]`, the
    prefix's own tokens. A chunk with no words to quote (only marks) gets no row."""
    rows = []
    for c in chunks:
        start = cue(pieces, c, words)
        if any(ch.isalnum() for ch in start):
            rows.append(ForcedRow(to_ids(vocab, ask(start), what="a reconstruction query"), list(ids[c.start : c.end])))
    return rows
