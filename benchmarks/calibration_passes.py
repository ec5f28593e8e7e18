"""The passes layer-wise calibration makes over its T·n-row tensors: one thread against the split ones of
`onnx2snn.calibration.rows`, side by side in one run, on the shapes of EfficientNet-lite0's largest layers
at T = 32 (one sample: 96×112×112 neurons, 154 MB per float32 tensor).

    python benchmarks/calibration_passes.py [--repeat 7]

Rows: unpacking a stored (bipolar, two bit planes) spike train into float32 currents, fresh and into a
reused buffer; the time mean; bit packing; the weight fit's sums of one depthwise layer (im2col patches
transposed to the per-group layout, as before, against patches built in that layout). Each figure is the
median of --repeat runs; the ratio is what to compare (the machine is shared and noisy). Every split
result is checked equal to the single-threaded one.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import times  # noqa: E402  (the script's folder is on sys.path)
from onnx2snn.calibration import rows  # noqa: E402
from onnx2snn.calibration.layerwise import _im2col, _LeastSquares  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    return 1e3 * statistics.median(times(fn, repeat))


def serial(fn):
    """``fn`` with every pass on the calling thread."""
    def run():
        saved, rows.SERIAL_BELOW = rows.SERIAL_BELOW, 1 << 62
        try:
            return fn()
        finally:
            rows.SERIAL_BELOW = saved
    return run


def im2col_rows_first(x: np.ndarray) -> np.ndarray:
    """3×3 patches, pad 1, as [positions, C·9] float32 (the layout the fit read before)."""
    n, c, h, w = x.shape
    win = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c * 9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    T, C, H, W = 32, 96, 112, 112
    theta = (rng.random(C) + 0.5).astype(np.float32)
    y = rng.choice(np.array([-1, 0, 1], np.float32), size=(T, C, H, W), p=[0.05, 0.85, 0.1])
    y *= theta.reshape(-1, 1, 1)
    up, down = rows.pack(y, signed=True)
    buffer = np.empty(y.shape, np.float32)

    def fresh():
        return rows.unpack_spikes(up, down, y.shape, theta)

    def reused():
        return rows.unpack_spikes(up, down, y.shape, theta, buffer)

    def mean():
        return rows.time_mean(y, T)

    def packed():
        return rows.pack(y, signed=True)

    for a, b in [(fresh, serial(fresh)), (mean, serial(mean)), (packed, serial(packed))]:
        ra, rb = a(), b()
        for u, v in zip(ra if isinstance(ra, tuple) else (ra,), rb if isinstance(rb, tuple) else (rb,)):
            assert np.array_equal(u, v), "a split pass differs from the single-threaded one"
    assert np.array_equal(fresh(), y)

    # one depthwise layer's fit (144 channels at 56×56, as EfficientNet-lite0's second stage), one sample
    xbar = rng.random((1, 144, 56, 56), dtype=np.float32)
    resid = rng.standard_normal((1, 144, 56, 56), dtype=np.float32)

    def fit_before():
        fit = _LeastSquares(144)
        fit.add(im2col_rows_first(xbar), resid.transpose(0, 2, 3, 1).reshape(-1, 144), 1, 0)
        return fit

    depthwise = onnx.helper.make_node("Conv", ["x", "w"], ["z"], group=144, pads=[1, 1, 1, 1])

    def fit_now():  # the patches as layer-wise calibration builds them
        fit = _LeastSquares(144)
        fit.add_grouped(_im2col(xbar, depthwise, (144, 1, 3, 3), 144), resid.reshape(144, -1, 1).astype(np.float64),
                        1, 0)
        return fit

    np.testing.assert_allclose(fit_now().gram, fit_before().gram, rtol=1e-12)

    table = [
        ("unpack spike train (2 planes) → float32, fresh array", serial(fresh), fresh),
        ("unpack into a reused buffer", serial(reused), reused),
        ("time mean over T", serial(mean), mean),
        ("bit packing (2 planes)", serial(packed), packed),
        ("depthwise fit sums, one sample (before: rows-first im2col / now: grouped)", fit_before, fit_now),
    ]
    print(f"# {platform.node()} {rows.workers()} worker threads, numpy {np.__version__}, "
          f"tensor [{T}, {C}, {H}, {W}] float32 ({y.nbytes / 2**20:.0f} MiB), median of {args.repeat}")
    print("| pass | before / one thread (ms) | now / split (ms) | ratio |")
    print("|---|---|---|---|")
    for name, before, now in table:
        b, n = median_ms(before, args.repeat), median_ms(now, args.repeat)
        print(f"| {name} | {b:.1f} | {n:.1f} | {b / n:.2f}x |")


if __name__ == "__main__":
    main()
