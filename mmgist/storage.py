"""Atomic writes and versioned JSON: the one on-disk convention every mmgist artifact uses.

A file is written to a temporary name in the same folder and then renamed over the target
(`os.replace` is atomic on POSIX), so a crash leaves either the old file or the new one, never
half of one. A folder (a tokenizer, a vocabulary, a model) is written whole into a temporary folder
beside it (`atomic_folder`), which is then swapped in with one atomic exchange of names: a load
always finds one complete version, the old or the new. Files in the old folder that the save does
not own (a README card, a training log) are carried over. Temporary files and folders that a
killed save left behind are removed by the next save of the same path. The JSON header still
records the SHA-256 of the files beside it, so a folder mixed by hand is refused on load.

Every JSON header carries `format` (what kind of file it is) and `format_version`; readers refuse
an unknown format or a newer version with a message naming both. Weights are safetensors; nothing
here ever pickles.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .validate import existing_file

PathLike = str | os.PathLike[str]


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
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


def _remove_leftovers(path: Path) -> None:
    """Delete the temporary files (`.NAME.XXXXXXXX.tmp`) that killed writes of `path` left beside it."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if pattern.match(entry.name) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)


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

    path = existing_file(path, "weights file")
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


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a model folder (its index's, else every *.safetensors), each checked to open
    whole. Refused, naming the folder or the file: no weights, weights only as pickle (never unpickled), an
    index without a weight_map, a truncated or corrupt file (transformers' own error names none)."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.exists():
        header = read_json(index, "weights index")
        mapping = header.get("weight_map") if isinstance(header, dict) else None
        files = [folder / n for n in sorted(set(mapping.values()))] if isinstance(mapping, dict) else []
        if not files:
            raise ValueError(f"weights index {str(index)!r} has no weight_map")
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in folder.iterdir() if p.name.endswith((".bin", ".pt", ".pth", ".ckpt")))
        if pickled:
            raise ValueError(
                f"model folder {str(folder)!r} holds weights only as pickle ({pickled}); mmgist never unpickles: "
                "convert them to safetensors (model.save_pretrained(folder, safe_serialization=True))"
            )
        raise FileNotFoundError(f"model folder {str(folder)!r} holds no weights (no .safetensors file)")
    for path in files:
        existing_file(path, "weights file")
        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except Exception as e:  # safetensors raises its own error types for a truncated or garbage file
            raise ValueError(f"weights file {str(path)!r} is not a valid safetensors file: {e}") from e
    return files


def read_json(path: PathLike, what: str = "JSON file") -> Any:
    """Parse a JSON file; a missing file, a folder or text that is not JSON is refused naming the file."""
    path = existing_file(path, what)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON: {e}") from e


def versioned(format_name: str, version: int, **fields: Any) -> dict[str, Any]:
    """A JSON header: `{"format": ..., "format_version": ..., **fields}`."""
    return {"format": format_name, "format_version": version, **fields}


def read_versioned_json(path: PathLike, format_name: str, supported: tuple[int, ...]) -> dict[str, Any]:
    """Read a header written by `versioned`, refusing a missing, corrupt, foreign or too-new file."""
    path = Path(path)
    obj = read_json(path, f"{format_name} header")
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


# --- whole folders ---------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_folder(directory: PathLike, owns: Callable[[str], bool] = lambda name: True) -> Iterator[Path]:
    """Write a folder beside `directory` and swap it in when the block ends without an exception.

        with atomic_folder(out, owns=lambda name: name in ("config.json", "model.safetensors")) as tmp:
            ...write every file into tmp...

    `owns(name)` says which entries of the old folder this save replaces; the others (a README card,
    say) are carried into the new folder (hard-linked where possible). The swap is one atomic
    exchange of the two names (Linux renameat2); elsewhere two renames, and a save killed between
    them is repaired by the next save (the old folder is put back before anything else is done).
    Leftovers of killed saves (`.NAME.tmp-*`, `.NAME.old-*`) are removed first.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"cannot save a folder to {str(directory)!r}: it is a file")
    directory.parent.mkdir(parents=True, exist_ok=True)
    _repair(directory)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a saved folder gets the usual mode
        yield tmp
        if directory.exists():
            for entry in os.scandir(directory):
                if not owns(entry.name) and not (tmp / entry.name).exists():
                    _carry(Path(entry.path), tmp / entry.name)
        _fsync_tree(tmp)
        if directory.exists() and _exchange(tmp, directory):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old version
        elif directory.exists():
            old = directory.parent / f".{directory.name}.old-{tmp.name.rsplit('-', 1)[-1]}"
            os.rename(directory, old)
            os.rename(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _repair(directory: Path) -> None:
    """Undo what a killed `atomic_folder` left: restore an old folder whose swap was cut short, drop the rest."""
    prefix = re.escape(directory.name)
    leftovers = sorted(
        (p for p in directory.parent.iterdir() if re.match(rf"^\.{prefix}\.(tmp|old)-[A-Za-z0-9_]+$", p.name)),
        key=lambda p: p.stat().st_mtime,
    )
    olds = [p for p in leftovers if p.name.startswith(f".{directory.name}.old-")]
    if olds and not directory.exists():
        os.rename(olds[-1], directory)  # killed between the two renames: the old version is the complete one
    for p in leftovers:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    # nonzero (EINVAL, ENOSYS: a file system or kernel without it): the caller falls back to two renames
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _carry(src: Path, dst: Path) -> None:
    """Bring an entry the save does not own into the new folder: hard links, or a copy across devices."""
    if src.is_dir() and not src.is_symlink():
        try:
            shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
        except OSError:
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, symlinks=True)
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _fsync_tree(root: Path) -> None:
    """Flush every file under `root` (and the folders) so the swap never exposes unwritten data."""
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
