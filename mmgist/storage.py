"""Atomic writes and versioned JSON: the one on-disk convention every mmgist artifact uses.

A file is written to a temporary name in the same folder and then renamed over the target
(`os.replace` is atomic on POSIX), so a crash leaves either the old file or the new one, never
half of one. Folders are written file by file in that way, with the JSON header last: the header
records the SHA-256 of the files beside it, so a folder interrupted mid-save is refused on load
rather than silently mixing old and new parts.

Every JSON header carries `format` (what kind of file it is) and `format_version`; readers refuse
an unknown format or a newer version with a message naming both. Weights are safetensors; nothing
here ever pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike[str]


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a saved artifact gets the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: PathLike, obj: Any) -> None:
    """Write `obj` as indented, key-sorted JSON (stable bytes, readable diffs)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def save_tensors_atomic(tensors: dict[str, Any], path: PathLike, metadata: dict[str, str] | None = None) -> str:
    """Save a flat dict of tensors as safetensors, atomically; returns the file's SHA-256."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def load_tensors(path: PathLike, expected_sha256: str | None = None) -> dict[str, Any]:
    """Load a safetensors file, checking its hash when one is given."""
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist")
    data = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ValueError(
            f"weights file {str(path)!r} does not match the SHA-256 recorded in its header "
            f"(expected {expected_sha256[:12]}..., got {hashlib.sha256(data).hexdigest()[:12]}...): "
            "the folder was modified or its save was interrupted"
        )
    try:
        return load(data)
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"weights file {str(path)!r} is not a valid safetensors file: {e}") from e


def versioned(format_name: str, version: int, **fields: Any) -> dict[str, Any]:
    """A JSON header: `{"format": ..., "format_version": ..., **fields}`."""
    return {"format": format_name, "format_version": version, **fields}


def read_versioned_json(path: PathLike, format_name: str, supported: tuple[int, ...]) -> dict[str, Any]:
    """Read a header written by `versioned`, refusing a missing, corrupt, foreign or too-new file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{format_name} header {str(path)!r} does not exist")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not valid JSON: {e}") from e
    if not isinstance(obj, dict) or obj.get("format") != format_name:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{str(path)!r} has format {got!r}, expected {format_name!r}")
    version = obj.get("format_version")
    if version not in supported:
        raise ValueError(
            f"{str(path)!r} has {format_name} format_version {version!r}; this mmgist reads versions "
            f"{list(supported)} (a newer file needs a newer mmgist)"
        )
    return obj


def sha256_json(obj: Any) -> str:
    """A stable hash of a JSON-serializable value (key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
