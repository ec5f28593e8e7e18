"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import time


def times(fn, repeat: int) -> list[float]:
    """Seconds of each of ``repeat`` calls of ``fn``, after one warm-up call (page faults, thread
    pool start)."""
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def best(fn, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn`` (after a warm-up call)."""
    return min(times(fn, repeat))
