"""HeldList: what layer-wise calibration holds across batches, in memory up to a budget, beyond it on disk."""
import errno
import os
import tempfile

import numpy as np
import pytest

from onnx2snn.calibration.spill import Budget, HeldList
from onnx2snn.errors import CalibrationError


def test_arrays_come_back_bit_for_bit_from_memory_and_from_disk():
    rng = np.random.default_rng(0)
    budget = Budget(1000)
    held = HeldList(budget)
    arrays = [rng.integers(0, 255, 600, dtype=np.uint8), rng.normal(size=(3, 50)).astype(np.float32),
              np.packbits(rng.random((4, 9)) > 0.5)]
    for a in arrays:
        held.append(a, None, a.shape)
    # the first in memory, the second (600 bytes) over what is left: on disk, the third (5 bytes) in memory
    assert budget.left == 1000 - 600 - 5 and budget.spilled == arrays[1].nbytes
    assert len(held) == 3
    for b, a in enumerate(arrays):
        back, none, shape = held[b]
        assert none is None and shape == a.shape and back.dtype == a.dtype
        np.testing.assert_array_equal(back, a)
    assert budget.on_disk == budget.peak_disk == budget.spilled
    held.close()
    assert budget.left == 1000 and budget.on_disk == 0


def test_the_temporary_file_is_never_visible_and_closing_releases_it():
    before = set(os.listdir(tempfile.gettempdir()))
    held = HeldList(Budget(0))
    held.append(np.arange(1000, dtype=np.float32))
    fd = held._file.fileno()
    assert os.readlink(f"/proc/self/fd/{fd}").endswith("(deleted)")   # unlinked from the start
    assert set(os.listdir(tempfile.gettempdir())) - before == set()
    np.testing.assert_array_equal(held[0][0], np.arange(1000, dtype=np.float32))
    held.close()
    assert held._file is None and len(held) == 0


def test_a_full_disk_is_one_error_naming_the_directory_and_what_to_do(monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    held = HeldList(Budget(0))
    with pytest.raises(CalibrationError, match=r"could not write .* temporary file in .*No space left on device.*"
                                               r"TMPDIR.*--max-memory"):
        held.append(np.arange(10, dtype=np.float32))
    held.close()


def test_a_short_write_is_the_same_error(monkeypatch):
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: len(data) // 2)
    held = HeldList(Budget(0))
    with pytest.raises(CalibrationError, match=r"could not write .*only 20 bytes written.*TMPDIR.*--max-memory"):
        held.append(np.arange(10, dtype=np.float32))
    held.close()
