"""Training data for the LM: a JSONL manifest of interleaved samples, tokenized once into shards on disk.

One sample per line; segments are strings or {"image"|"audio"|"video": "path"} (relative to the file):

    {"prompt": [{"image": "img/cat.png"}, "Instruction: name the colour. Q: the ears?"], "completion": [" orange"]}
    {"prompt": ["plain text, trained on every token"]}

With a "completion" the loss is taken on the completion only; without, on every token of the prompt.

`TokenShards.build(manifest, vocab, cache_dir)` tokenizes every sample (media go through the
vocabulary's tokenizers) and writes safetensors shards keyed by the manifest's bytes and the
vocabulary's fingerprint; building again with the same inputs only loads them, so epochs after the
first never run a media encoder.

    shard-00000.safetensors:  ids (total,) int32 | offsets (n + 1,) int64 | prompt_lengths (n,) int64
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import io
from ..io import image_to_tensor, load_image
from ..prompt import Image, Prompt
from ..storage import load_tensors, read_versioned_json, save_tensors_atomic, versioned, write_json_atomic
from ..validate import existing_file
from ..vocab import SharedVocabulary

FORMAT = "mmgist-token-shards"
FORMAT_VERSION = 1
SHARD_SIZE = 10_000  # samples per shard


def _segment(item: Any, base: Path, where: str, loaded: dict | None = None) -> Any:
    """A prompt item from a manifest segment; `loaded` shares one segment per media file across lines."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and len(item) == 1:
        ((kind, path),) = item.items()
        key = (kind, str(base / path))
        if loaded is not None and key in loaded:
            return loaded[key]
        if kind == "image":
            segment = Image(image_to_tensor(load_image(base / path)))
            if loaded is not None:
                loaded[key] = segment
            return segment
        if kind in ("audio", "video"):
            loader = getattr(io, f"load_{kind}", None)
            if loader is None:
                raise ValueError(f"{where}: {kind} files cannot be loaded by this version of mmgist")
            return loader(base / path)
    raise ValueError(f"{where}: segment {item!r} must be a string or {{'image'|'audio'|'video': path}}")


def _encode_images(
    samples: list[tuple[Prompt, Prompt | None]], vocab: SharedVocabulary, batch_size: int
) -> dict[int, list[int]]:
    """{id(segment): ids} for the RGB tensor image segments without codes, in batches of one size and dtype."""
    if "image" not in vocab.modalities:
        return {}
    pending: dict[tuple, dict[int, Image]] = {}  # (shape, dtype) -> {id: segment}, each segment once
    for prompt, completion in samples:
        for seg in [*prompt, *(completion or [])]:
            px = getattr(seg, "pixels", None)
            if isinstance(seg, Image) and seg.codes is None and isinstance(px, torch.Tensor) and px.shape[0] == 3:
                pending.setdefault((tuple(px.shape), px.dtype), {})[id(seg)] = seg  # others: one at a time
    tok, memo = vocab.tokenizer("image"), {}
    for group in pending.values():
        keys, segs = list(group), list(group.values())
        for start in range(0, len(segs), batch_size):
            pixels = torch.stack([s.pixels for s in segs[start : start + batch_size]])  # (B, 3, H, W)
            for key, codes in zip(keys[start : start + batch_size], tok.encode(pixels)):
                memo[key] = vocab.codes_to_ids("image", tok.check_codes(codes))
    return memo


def media_files(path: str | os.PathLike) -> set[Path]:
    """Every media file a manifest names (those that exist)."""
    path = Path(path)
    files = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:
            continue  # read_manifest reports it
        segments = [*obj.get("prompt", []), *(obj.get("completion") or [])] if isinstance(obj, dict) else []
        for seg in segments:
            if isinstance(seg, dict) and len(seg) == 1 and isinstance(next(iter(seg.values())), str):
                f = path.parent / next(iter(seg.values()))
                if f.is_file():
                    files.add(f)
    return files


def jsonl_objects(path: Path, key: str, shape: str) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, "file:line", object) for each non-empty line whose object has a non-empty list `key`."""
    path = existing_file(path, "JSONL file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{str(path)!r} is not UTF-8 text: {e}") from e
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: not valid JSON ({e})") from e
        if not isinstance(obj, dict) or not isinstance(obj.get(key), list) or not obj[key]:
            raise ValueError(f"{where}: expected {shape}")
        yield n, where, obj


def read_manifest(path: str | os.PathLike) -> list[tuple[Prompt, Prompt | None]]:
    """(prompt, completion or None) per line, media loaded. Errors name the line."""
    path = Path(path)
    samples, loaded = [], {}  # a media file named on many lines is loaded (and later tokenized) once
    shape = "{'prompt': [segments...], 'completion'?: [segments...]}"
    for _, where, obj in jsonl_objects(path, "prompt", shape):
        prompt = Prompt([_segment(s, path.parent, where, loaded) for s in obj["prompt"]])
        completion = obj.get("completion")
        if completion is not None and (not isinstance(completion, list) or not completion):
            raise ValueError(f"{where}: 'completion' must be a non-empty list of segments")
        samples.append(
            (prompt, Prompt([_segment(s, path.parent, where, loaded) for s in completion]) if completion else None)
        )
    if not samples:
        raise ValueError(f"manifest {str(path)!r} has no samples")
    return samples


@dataclass
class TokenShards:
    """Tokenized samples: `ids[k]` is sample k's ids; loss is taken from `prompt_lengths[k]` on."""

    ids: torch.Tensor  # (total,) int32, every sample's ids back to back
    offsets: torch.Tensor  # (n + 1,) sample k is ids[offsets[k]:offsets[k + 1]]
    prompt_lengths: torch.Tensor  # (n,) tokens without loss at the start of each sample (0: loss on all)

    def __len__(self) -> int:
        return len(self.prompt_lengths)

    def sample(self, k: int) -> tuple[list[int], int]:
        return self.ids[self.offsets[k] : self.offsets[k + 1]].tolist(), int(self.prompt_lengths[k])

    @staticmethod
    def tokenize(
        samples: list[tuple[Prompt, Prompt | None]], vocab: SharedVocabulary, batch_size: int = 256
    ) -> TokenShards:
        """Tokenize `samples` (prompt, completion or None). Images of one size are encoded `batch_size` at
        a time on the image tokenizer's device; a media segment shared between samples is encoded once."""
        memo = _encode_images(samples, vocab, batch_size)  # id(segment) -> ids

        def encode(p: Prompt) -> list[int]:
            out = []
            for seg in p:
                if seg.modality == "text":
                    out += vocab.encode_segment(seg)
                else:
                    if id(seg) not in memo:
                        memo[id(seg)] = vocab.encode_segment(seg)
                    out += memo[id(seg)]
            return out

        ids, offsets, prompt_lengths = [], [0], []
        for prompt, completion in samples:
            row = [vocab.bos_id, *encode(prompt)]
            prompt_lengths.append(len(row) if completion is not None else 0)
            if completion is not None:
                row += encode(completion)
            row.append(vocab.eos_id)
            ids += row
            offsets.append(len(ids))
        return TokenShards(torch.tensor(ids, dtype=torch.int32), torch.tensor(offsets), torch.tensor(prompt_lengths))

    def fingerprint(self) -> str:
        """sha256 of the ids, offsets and prompt lengths: equal shards, equal fingerprint."""
        h = hashlib.sha256()
        for t in (self.ids, self.offsets, self.prompt_lengths):
            h.update(t.to(torch.int64).numpy().tobytes())
        return h.hexdigest()

    @staticmethod
    def build(manifest: str | os.PathLike, vocab: SharedVocabulary, cache_dir: str | os.PathLike) -> TokenShards:
        """Load the shards for (manifest, vocab) from `cache_dir`, tokenizing and saving them first if absent."""
        key = hashlib.sha256(Path(manifest).read_bytes() + vocab.fingerprint().encode())
        for media in sorted(media_files(manifest)):  # an edited image must not reuse stale tokens
            key.update(media.read_bytes())
        folder = Path(cache_dir) / key.hexdigest()[:16]
        if (folder / "index.json").is_file():
            return TokenShards.load(folder)
        shards = TokenShards.tokenize(read_manifest(manifest), vocab)
        shards.save(folder, source=str(manifest))
        return shards

    def save(self, folder: str | os.PathLike, source: str = "") -> None:
        folder = Path(folder)
        files = []
        for start in range(0, len(self), SHARD_SIZE):
            stop = min(start + SHARD_SIZE, len(self))
            lo, hi = int(self.offsets[start]), int(self.offsets[stop])
            name = f"shard-{start // SHARD_SIZE:05d}.safetensors"
            sha = save_tensors_atomic(
                {
                    "ids": self.ids[lo:hi],
                    "offsets": self.offsets[start : stop + 1] - lo,
                    "prompt_lengths": self.prompt_lengths[start:stop],
                },
                folder / name,
            )
            files.append({"file": name, "sha256": sha})
        write_json_atomic(
            folder / "index.json", versioned(FORMAT, FORMAT_VERSION, source=source, samples=len(self), shards=files)
        )

    @staticmethod
    def load(folder: str | os.PathLike) -> TokenShards:
        folder = Path(folder)
        index = read_versioned_json(folder / "index.json", FORMAT, (FORMAT_VERSION,))
        ids, offsets, lengths, base = [], [torch.zeros(1, dtype=torch.long)], [], 0
        for entry in index["shards"]:
            t = load_tensors(folder / entry["file"], entry["sha256"])
            ids.append(t["ids"])
            offsets.append(t["offsets"][1:] + base)
            lengths.append(t["prompt_lengths"])
            base += len(t["ids"])
        return TokenShards(torch.cat(ids), torch.cat(offsets), torch.cat(lengths))
