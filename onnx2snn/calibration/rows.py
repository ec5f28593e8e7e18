"""The passes of layer-wise calibration over its T·n-row tensors, split across the machine's cores.

A layer's simulation holds tensors of T·n rows (every step of every sample of a batch: up to 154 MB
for one EfficientNet sample at T = 32); unpacking stored spike trains, time means and bit packing
each read or write all of them, and one core does so at memory speed only. numpy's ufuncs and bit
packing release the GIL, so each pass here runs on contiguous slices in a small thread pool.

Invariant: every function returns exactly (bit for bit) what its single-threaded numpy expression
in the docstring returns: each output element is computed by the same operations in the same
order, only the slices go to different threads. Tensors under ``SERIAL_BELOW`` elements are not
split (a thread hand-off costs more than the pass).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

SERIAL_BELOW = 1 << 20   # elements: smaller tensors run on the calling thread
_pool: ThreadPoolExecutor | None = None


def workers() -> int:
    """Threads a pass is split into: the cores this process may run on (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _map(fn, parts: list) -> None:
    global _pool
    if len(parts) == 1:
        fn(parts[0])
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(workers(), thread_name_prefix="onnx2snn-rows")
    for f in [_pool.submit(fn, p) for p in parts]:
        f.result()


def _splits(n: int, size: int, multiple: int = 1) -> list[slice]:
    """``workers()`` slices of range(n) (fewer when ``size`` elements are few), each boundary a
    multiple of ``multiple``."""
    k = 1 if size < SERIAL_BELOW else min(workers(), max(1, n // multiple))
    bounds = sorted({min(n, (i * n // k) // multiple * multiple) for i in range(k)} | {n})
    return [slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def unpack_spikes(up: np.ndarray, down: np.ndarray | None, shape: tuple, theta: np.ndarray,
                  out: np.ndarray | None = None) -> np.ndarray:
    """float32 spikes of ``shape`` [rows, C, ...] worth ±θ from bit planes packed by :func:`pack`:
    ``(unpackbits(up) − unpackbits(down))·θ`` (θ a scalar or per channel, axis 1), written into
    ``out`` when it is a float32 array of that shape (a buffer reused between batches: no fresh pages)."""
    shape = tuple(int(s) for s in shape)
    rows, per_row = shape[0], int(np.prod(shape[1:], dtype=np.int64))
    th = theta.reshape([-1] + [1] * (len(shape) - 2)) if theta.ndim else theta
    if out is None or out.shape != shape or out.dtype != np.float32:
        out = np.empty(shape, np.float32)
    # a slice starts on a byte: its first row's bit offset is a multiple of 8
    step = 8 // math.gcd(per_row, 8)

    def one(s: slice) -> None:
        lo, hi = s.start * per_row, s.stop * per_row
        first, count = lo // 8, hi - lo
        bits = np.unpackbits(up[first:first + (count + 7) // 8], count=count).reshape((s.stop - s.start,) + shape[1:])
        if down is not None:   # bipolar neurons: negative spikes in a second bit plane
            neg = np.unpackbits(down[first:first + (count + 7) // 8], count=count).reshape(bits.shape)
            bits = bits.view(np.int8) - neg.view(np.int8)
        np.multiply(bits, th, out=out[s], dtype=np.float32)   # {−1, 0, 1}·θ in one pass

    _map(one, _splits(rows, out.size, step))
    return out


def pack(y: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(``packbits(y > 0)``, ``packbits(y < 0)`` or None) of ``y`` flattened."""
    flat = y.reshape(-1)
    n = flat.size
    parts = [slice(s.start * 8, min(n, s.stop * 8)) for s in _splits((n + 7) // 8, n)]
    up = np.empty((n + 7) // 8, np.uint8)
    down = np.empty_like(up) if signed else None

    def one(s: slice) -> None:
        b = slice(s.start // 8, (s.stop + 7) // 8)
        up[b] = np.packbits(flat[s] > 0)
        if signed:
            down[b] = np.packbits(flat[s] < 0)

    _map(one, parts)
    return up, down


def time_mean(x: np.ndarray, T: int) -> np.ndarray:
    """``x.reshape((T, n) + x.shape[1:]).mean(0)`` for x [T·n, ...]: the mean over the T steps."""
    n = x.shape[0] // T
    flat = x.reshape(T, -1)
    out = np.empty(flat.shape[1], x.dtype)

    def one(s: slice) -> None:
        np.mean(flat[:, s], axis=0, out=out[s])

    _map(one, _splits(flat.shape[1], x.size))
    return out.reshape((n,) + x.shape[1:])
