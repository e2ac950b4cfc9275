"""Checks at the public API boundary: one place that says what a bad value is and what was expected.

Each check returns the value it accepted (ids as a list of ints, a path as a Path) or raises:
    TypeError           the wrong kind of value (a float or a bool where an int is expected, a str for ids)
    ValueError          the right kind, a wrong value (a negative size, NaN, an id outside the vocabulary)
    FileNotFoundError   a path that does not exist
    IsADirectoryError   a folder where a file is expected
    NotADirectoryError  a file where a folder is expected (or a path under a file)
    PermissionError     an output that cannot be written
Every message names the value (and its position, for ids) and what was expected:

    >>> ids([72.7, 105.2], size=259)
    TypeError: id 72.7 at position 0 is a float; ids are ints
    >>> positive_int(True, "GistConfig.num_gist_tokens")
    TypeError: GistConfig.num_gist_tokens must be a positive int, got True (bool)

Internal invariants use `assert`; these checks are for what a user hands in.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch


def show(value: Any, limit: int = 60) -> str:
    """A short repr of `value` for an error message."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    return f"{show(value)} ({type(value).__name__})"


def is_int(value: Any) -> bool:
    """An int (Python or numpy), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# --- numbers -----------------------------------------------------------------------------------
def integer(value: Any, name: str, minimum: int | None = None) -> int:
    """An int (not a bool, not a float) at least `minimum`."""
    want = "an int" if minimum is None else {0: "an int >= 0", 1: "a positive int"}.get(minimum, f"an int >= {minimum}")
    if not is_int(value):
        raise TypeError(f"{name} must be {want}, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return int(value)


def positive_int(value: Any, name: str) -> int:
    return integer(value, name, 1)


def non_negative_int(value: Any, name: str) -> int:
    return integer(value, name, 0)


def finite(
    value: Any, name: str, *, positive: bool = False, low: float | None = None, high: float | None = None
) -> float:
    """A finite real number (not a bool); with `positive` > 0; with `low`/`high` strictly between them."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a finite number, got {_kind(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if (low is not None and value <= low) or (high is not None and value >= high):
        raise ValueError(f"{name} must lie in ({low}, {high}), got {value!r}")
    return value


# --- media rates: a header or argument past these is corrupt or a slip, and would exhaust memory --------
MAX_SAMPLE_RATE = 768_000  # Hz: the highest rate audio hardware records at
MAX_FPS = 1000.0  # frames per second: past high-speed cameras


def sample_rate(value: Any, name: str) -> int:
    """A positive int of Hz, at most MAX_SAMPLE_RATE."""
    rate = positive_int(value, name)
    if rate > MAX_SAMPLE_RATE:
        raise ValueError(f"{name} {rate} Hz is over the limit of {MAX_SAMPLE_RATE} Hz (MAX_SAMPLE_RATE)")
    return rate


def frame_rate(value: Any, name: str) -> float:
    """A positive finite number of frames per second, at most MAX_FPS."""
    fps = finite(value, name, positive=True)
    if fps > MAX_FPS:
        raise ValueError(f"{name} {fps:g} is over the limit of {MAX_FPS:g} frames per second (MAX_FPS)")
    return fps


def fraction(value: Any, name: str) -> float:
    """A number strictly between 0 and 1."""
    return finite(value, name, low=0.0, high=1.0)


def one_of(value: Any, name: str, choices: Iterable[Any]) -> Any:
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {show(value)}")
    return value


# --- ids and tensors ---------------------------------------------------------------------------
def ids(value: Any, size: int | None = None, what: str = "ids") -> list[int]:
    """One sequence of token ids as a list of ints, each in [0, size) when `size` is given.

    Takes a list or tuple of ints, or a 1-d integer tensor or numpy array. Floats (even 72.0),
    strings, bools and nested lists are refused, never truncated or parsed.
    """
    if isinstance(value, torch.Tensor) or type(value).__module__ == "numpy":
        dtype = getattr(value, "dtype", None)
        integral = (
            not (value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool)
            if isinstance(value, torch.Tensor)
            else getattr(dtype, "kind", "") in "iu" and getattr(dtype, "kind", "") != ""
        )
        if not integral:
            raise TypeError(f"{what} must be integers, got a {dtype} {type(value).__name__}; ids are never rounded")
        if value.ndim != 1:
            raise ValueError(f"{what} must be one sequence (1-d), got shape {tuple(value.shape)}")
        out = [int(i) for i in value.tolist()]
    elif isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a list of ints or a 1-d integer tensor, got {_kind(value)}")
    else:
        out = []
        for k, item in enumerate(value):
            if not is_int(item):
                kind = "a list" if isinstance(item, (list, tuple)) else f"a {type(item).__name__}"
                raise TypeError(f"id {show(item)} at position {k} of {what} is {kind}; ids are ints")
            out.append(int(item))
    if size is not None:
        for k, i in enumerate(out):
            if not 0 <= i < size:
                raise ValueError(f"id {i} at position {k} of {what} is outside the vocabulary [0, {size})")
    return out


def all_finite(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse floating tensors holding NaN or inf, naming the first such tensor and `where` it came from."""
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.dtype.is_floating_point and not torch.isfinite(t).all():
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f"{where}: {name} holds {bad} NaN or inf value(s) of {t.numel()}; the weights are broken")


def shapes_agree(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], where: str) -> None:
    """Refuse weights that do not fit the config: missing, unexpected or differently shaped tensors."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [
        f"{k} {tuple(found[k])} (config: {tuple(expected[k])})"
        for k in expected
        if k in found and tuple(found[k]) != tuple(expected[k])
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"{label} {names[:4]}" + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            for label, names in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
            if names
        ]
        raise ValueError(f"{where}: the weights do not fit the config: " + "; ".join(parts))


# --- paths -------------------------------------------------------------------------------------
def existing_file(path: Any, what: str = "file") -> Path:
    """A path to an existing regular file."""
    path = _path(path, what)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {str(path)!r} is a folder; expected a file")
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} is not a regular file")
    return path


def existing_dir(path: Any, what: str = "folder") -> Path:
    """A path to an existing folder."""
    path = _path(path, what)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {str(path)!r} is a file; expected a folder")
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    return path


def writable(path: Any, what: str = "output", folder: bool = False) -> Path:
    """A path that can be written (created, or replaced) as a file, or as a folder with `folder=True`.

    Checked before any work starts, so a long run never fails at its very end: the path must not be
    the wrong kind of thing, and its nearest existing parent must be a folder this process can write.
    """
    path = _path(path, what)
    if path.exists():
        if folder and not path.is_dir():
            raise NotADirectoryError(f"{what} {str(path)!r} is a file; expected a folder")
        if not folder and path.is_dir():
            raise IsADirectoryError(f"{what} {str(path)!r} is a folder; expected a file")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"{what} {str(path)!r} cannot be created: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"{what} {str(path)!r} cannot be written: no write permission in {str(parent)!r}")
    return path


def _path(path: Any, what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise TypeError(f"{what} must be a non-empty path (str or os.PathLike), got {_kind(path)}")
    return Path(path)
