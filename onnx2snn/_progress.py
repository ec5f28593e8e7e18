"""A minimal progress bar on stderr (no dependency)."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int | None, desc: str, enabled: bool = True, stream=None):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream or sys.stderr
        self.count, self.start = 0, time.perf_counter()
        self._tty = getattr(self.stream, "isatty", lambda: False)()

    def update(self, n: int = 1) -> None:
        self.count += n
        if self.enabled and self._tty:
            self._draw("\r")

    def _draw(self, prefix: str, end: str = "") -> None:
        elapsed = time.perf_counter() - self.start
        if self.total:
            done = int(30 * self.count / self.total)
            bar = "#" * done + "." * (30 - done)
            text = f"{self.desc} [{bar}] {self.count}/{self.total} batches {elapsed:.1f}s"
        else:
            text = f"{self.desc} {self.count} batches {elapsed:.1f}s"
        self.stream.write(prefix + text + end)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw("\r" if self._tty else "", "\n")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
