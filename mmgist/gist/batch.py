"""Distill many prefixes from a JSONL file, sharded across processes under torchrun.

    {"id": "cat-1", "prefix": [{"image": "cat.png"}, "Instruction: ..."], "queries": [" Q: top left? A:"],
     "questions": [{"query": " Q: centre? A:", "options": [" dark", " bright"], "answer": 1}],
     "heldout_queries": [" Q: bottom left? A:", {"query": " Q: bottom right? A:", "options": [...], "answer": 0}]}

Everything but id and prefix is optional. Questions are served like queries and add task accuracy
to the gist's report (see mmgist.scoring); held-out queries (strings or questions) are never trained
on and measure how the gist serves queries it did not see.

Each line's gist goes to OUT/<id>.safetensors. Rank r of N takes lines r, r + N, ...; a gist file
that already exists is skipped, so a killed job rerun with the same command picks up where it was.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..lm.manifest import _segment, jsonl_objects
from ..lm.scoring import Question
from ..prompt import Prompt
from ..train import init_distributed
from .config import GistConfig
from .distill import distill_gist

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ..vocab import SharedVocabulary

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def _question(obj: Any, where: str) -> Question:
    if not isinstance(obj, dict) or not isinstance(obj.get("query"), str) or not isinstance(obj.get("options"), list):
        raise ValueError(
            f"{where}: a question is {{'query': str, 'options': [str...], 'answer'?: int}}, got {obj!r:.80}"
        )
    if not all(isinstance(o, str) for o in obj["options"]) or not isinstance(obj.get("answer") or 0, int):
        raise ValueError(f"{where}: question options must be strings and answer an int, got {obj!r:.80}")
    try:
        return Question(obj["query"], obj["options"], obj.get("answer"))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e


def read_prefixes(path: str | os.PathLike) -> list[tuple[str, Prompt, list[str | Question], list[str | Question]]]:
    """(id, prefix, queries and questions, held-out queries) per line; ids must be unique and safe as file names."""
    path = Path(path)
    out, seen = [], set()
    for n, where, obj in jsonl_objects(path, "prefix", "{'id': ..., 'prefix': [segments...], 'queries'?: [str...]}"):
        gid = str(obj.get("id", n))
        if not _SAFE_ID.match(gid) or gid in seen:
            raise ValueError(f"{where}: id {gid!r} must be unique and use only letters, digits, '.', '_', '-'")
        seen.add(gid)
        queries = obj.get("queries") or []
        if not all(isinstance(q, str) for q in queries):
            raise ValueError(f"{where}: queries must be strings, got {queries!r:.80}")
        queries = [*queries, *(_question(q, where) for q in obj.get("questions") or [])]
        heldout = [q if isinstance(q, str) else _question(q, where) for q in obj.get("heldout_queries") or []]
        out.append((gid, Prompt([_segment(s, path.parent, where) for s in obj["prefix"]]), queries, heldout))
    return out


def distill_many(
    model: PreTrainedModel,
    vocab: SharedVocabulary,
    jsonl: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: GistConfig | None = None,
) -> list[Path]:
    """Distill this rank's share of the prefixes in `jsonl`; returns the gist files it wrote."""
    rank, world = init_distributed()
    if world > 1 and torch.cuda.is_available():  # torchrun: each rank on its own GPU (init_distributed chose it)
        model.to(torch.device("cuda", torch.cuda.current_device()))
    out_dir = Path(out_dir)
    written = []
    for gid, prefix, queries, heldout in read_prefixes(jsonl)[rank::world]:
        target = out_dir / f"{gid}.safetensors"
        if target.exists():
            continue
        gist = distill_gist(model, vocab, prefix, config, queries=queries or None, heldout_queries=heldout or None)
        written.append(gist.save(target))
    return written
