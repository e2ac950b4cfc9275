"""Timing helper shared by the benchmark scripts: the best of a few runs (the least disturbed by a noisy machine)."""

import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[..., object], repeats: int = 3, prepare: Callable[[], Any] | None = None) -> float:
    """Seconds of the fastest of `repeats` calls of `fn`; with `prepare`, each call gets a fresh
    `prepare()` (made before the clock starts), as `fn(prepared)`."""
    times = []
    for _ in range(repeats):
        args = (prepare(),) if prepare is not None else ()
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)
