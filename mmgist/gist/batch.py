"""Distill many prefixes from a JSONL file, sharded across processes under torchrun.

    {"id": "cat-1", "prefix": [{"image": "cat.png"}, "Instruction: ..."], "queries": [" Q: top left? A:"]}

Each line's gist goes to OUT/<id>.safetensors. Rank r of N takes lines r, r + N, ...; a gist file
that already exists is skipped, so a killed job rerun with the same command picks up where it was.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..manifest import _segment, jsonl_objects
from ..prompt import Prompt
from ..train import init_distributed
from .config import GistConfig
from .distill import distill_gist

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def read_prefixes(path: str | os.PathLike) -> list[tuple[str, Prompt, list[str]]]:
    """(id, prefix, queries) per line; ids must be unique and safe as file names."""
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
        out.append((gid, Prompt([_segment(s, path.parent, where) for s in obj["prefix"]]), queries))
    return out


def distill_many(
    model: Any, vocab: Any, jsonl: str | os.PathLike, out_dir: str | os.PathLike, config: GistConfig | None = None
) -> list[Path]:
    """Distill this rank's share of the prefixes in `jsonl`; returns the gist files it wrote."""
    rank, world = init_distributed()
    out_dir = Path(out_dir)
    written = []
    for gid, prefix, queries in read_prefixes(jsonl)[rank::world]:
        target = out_dir / f"{gid}.safetensors"
        if target.exists():
            continue
        gist = distill_gist(model, vocab, prefix, config, queries=[Prompt([q]) for q in queries] or None)
        written.append(gist.save(target))
    return written
