"""Timing shared by the benchmark scripts."""
from __future__ import annotations

import time


def best(fn, repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn``, after one warm-up call
    (page faults, thread pool start)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
