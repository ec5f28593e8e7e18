"""Per-batch arrays that layer-wise calibration holds across batches, within a memory budget.

Invariant: ``held[b]`` gives back, bit for bit, the arrays of the ``b``-th ``append``. While the
shared :class:`Budget` has room they stay in memory; beyond it they are written to an anonymous
temporary file (created already unlinked, in ``tempfile.gettempdir()``: nothing remains on disk
once the list is closed or the process ends, however it ends) and read back on each access, so the
resident memory stays at the budget whatever the number of samples. Closing returns the list's
in-memory bytes to the budget.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

from ..errors import CalibrationError
from ..sizes import format_size


@dataclass
class Budget:
    """Bytes the held arrays may keep in memory, shared by every list; what was written to disk."""

    left: int
    spilled: int = 0
    peak_disk: int = 0
    on_disk: int = 0

    def _wrote(self, nbytes: int) -> None:
        self.spilled += nbytes
        self.on_disk += nbytes
        self.peak_disk = max(self.peak_disk, self.on_disk)


@dataclass(frozen=True)
class _OnDisk:
    offset: int
    dtype: np.dtype
    shape: tuple


def disk_free() -> int:
    """Free bytes where the temporary files go."""
    return shutil.disk_usage(tempfile.gettempdir()).free


class HeldList:
    """A list of tuples whose ndarray items live in memory or, beyond the budget, on disk."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.items: list[tuple] = []
        self._file = None
        self._size = 0       # bytes written to the file
        self._memory = 0     # bytes of this list held in memory

    def append(self, *values) -> None:
        nbytes = sum(v.nbytes for v in values if isinstance(v, np.ndarray))
        if nbytes <= self.budget.left:
            self.budget.left -= nbytes
            self._memory += nbytes
            self.items.append(values)
            return
        self.items.append(tuple(self._write(v) if isinstance(v, np.ndarray) else v for v in values))

    def _write(self, array: np.ndarray) -> _OnDisk:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="onnx2snn-calibration-")
        data = np.ascontiguousarray(array)
        try:
            written = os.pwrite(self._file.fileno(), memoryview(data.reshape(-1)).cast("B"), self._size)
            problem = None if written == data.nbytes else f"only {written} bytes written"  # a disk filling up
        except OSError as exc:
            problem = exc.strerror or str(exc)
        if problem is not None:
            raise CalibrationError(
                f"layer-wise calibration could not write {format_size(data.nbytes)} to its temporary file in "
                f"{tempfile.gettempdir()} ({problem}): free disk there, set TMPDIR to a directory "
                "with room, or raise --max-memory so that more stays in memory")
        handle = _OnDisk(self._size, data.dtype, data.shape)
        self._size += data.nbytes
        self.budget._wrote(data.nbytes)
        return handle

    def _read(self, h: _OnDisk) -> np.ndarray:
        nbytes = int(np.prod(h.shape, dtype=np.int64)) * h.dtype.itemsize
        buf = os.pread(self._file.fileno(), nbytes, h.offset)
        if len(buf) != nbytes:
            raise OSError(f"short read from the calibration's temporary file ({len(buf)} of {nbytes} bytes)")
        return np.frombuffer(buf, h.dtype).reshape(h.shape)

    def __getitem__(self, b: int) -> tuple:
        return tuple(self._read(v) if isinstance(v, _OnDisk) else v for v in self.items[b])

    def __len__(self) -> int:
        return len(self.items)

    def close(self) -> None:
        self.budget.left += self._memory
        self._memory = 0
        self.items = []
        if self._file is not None:
            self.budget.on_disk -= self._size
            self._file.close()
            self._file = None
