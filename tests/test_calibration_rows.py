"""calibration.rows: the T·n-row passes split across threads equal the single-threaded numpy bit for bit."""
import numpy as np
import pytest

from onnx2snn.calibration import rows


@pytest.fixture(params=["split", "serial"])
def mode(request, monkeypatch):
    # "split": every tensor, however small, goes through the thread pool in several slices
    monkeypatch.setattr(rows, "SERIAL_BELOW", 1 if request.param == "split" else 1 << 62)
    monkeypatch.setattr(rows, "workers", lambda: 3)   # an odd count: slices of unequal size
    return request.param


# per-row bit counts that are and are not multiples of 8 (slices must start on a byte)
SHAPES = [(16, 8, 4, 4), (9, 3, 5, 7), (33, 5, 13), (7, 1000), (3, 1, 1), (1, 5), (5,)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("signed", [False, True])
def test_pack_and_unpack_round_trip_equal_numpy(mode, shape, signed):
    rng = np.random.default_rng(len(shape) + shape[0])
    spikes = rng.choice([-1, 0, 1] if signed else [0, 1], size=shape).astype(np.float32)
    theta = (rng.random(shape[1]) + 0.5).astype(np.float32) if len(shape) > 1 else np.float32(0.75)
    y = spikes * (theta.reshape([-1] + [1] * (len(shape) - 2)) if theta.ndim else theta)
    up, down = rows.pack(y, signed)
    np.testing.assert_array_equal(up, np.packbits(y > 0))
    if signed:
        np.testing.assert_array_equal(down, np.packbits(y < 0))
    else:
        assert down is None
    back = rows.unpack_spikes(up, down, y.shape, theta)
    assert back.dtype == np.float32 and back.shape == y.shape
    np.testing.assert_array_equal(back, y)


@pytest.mark.parametrize("T, shape", [(4, (8, 3, 5, 5)), (16, (16, 7)), (3, (6, 1000)), (1, (2, 9))])
def test_time_mean_equals_numpys_mean_over_the_steps(mode, T, shape):
    x = np.random.default_rng(T).normal(size=shape).astype(np.float32)
    expected = x.reshape((T, shape[0] // T) + shape[1:]).mean(0)
    got = rows.time_mean(x, T)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_small_tensors_are_one_slice_and_large_ones_split_on_the_multiple():
    assert rows._splits(100, rows.SERIAL_BELOW - 1) == [slice(0, 100)]
    parts = rows._splits(100, rows.SERIAL_BELOW, multiple=8)
    assert len(parts) == min(rows.workers(), 12) and parts[0].start == 0 and parts[-1].stop == 100
    assert all(p.stop == q.start and p.stop % 8 == 0 for p, q in zip(parts, parts[1:]))
