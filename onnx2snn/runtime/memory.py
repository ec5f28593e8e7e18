"""Memory estimate of a run, and the batch size that keeps it under a limit.

A run's memory is about linear in the batch size B:

    peak(B) ≈ weights + B · (bytes of every tensor the graph computes for one sample)

A folded SNN run by :func:`onnx2snn.InferenceSession` splits the batch into runs of
``chunk`` samples (:mod:`onnx2snn.runtime.chunking`): only one chunk's tensors are alive, but
the inputs and outputs of the whole batch are (the outputs twice while the chunks'
outputs are concatenated), so for B > chunk

    peak(B) ≈ weights + chunk · per_sample + 2 · B · (input and output bytes per sample)

The per-sample bytes come from ONNX shape inference on a copy of the model with
batch 1 (the onnx2snn ops keep their input's shape, :func:`tensor_shapes`); for
the folded SNN they include its T steps (every tensor after the time Tile has
T rows per sample). Summing every tensor ignores onnxruntime's buffer reuse, so
the estimate is an upper bound of the planned memory, with room for the
arena's rounding (``benchmarks/memory_check.py`` measures peak RSS against it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx

from ..errors import ConfigError
from ..sizes import format_size

DEFAULT_MAX_MEMORY = 4 * 1024**3
AUTO_BATCH_CAP = 256  # beyond this, a larger batch gains onnxruntime on CPU little
ORT_MAX_TENSOR = 2**32  # bytes: onnxruntime refuses a larger tensor (e.g. Tile's output)


@dataclass(frozen=True)
class MemoryEstimate:
    fixed: int        # weights (initializers), once per session
    per_sample: int   # every computed tensor, for one sample (all T steps of the folded SNN)
    largest: int = 0  # the largest single computed tensor, for one sample
    io_per_sample: int = 0  # graph inputs and outputs, for one sample (part of per_sample)
    chunk: int = 0    # samples per run when the batch is run in chunks (0: one run)

    def peak(self, batch: int) -> int:
        if self.chunk <= 0 or batch <= self.chunk:
            return self.fixed + batch * self.per_sample
        return self.fixed + self.chunk * self.per_sample + 2 * batch * self.io_per_sample

    def chunked(self, chunk: int) -> "MemoryEstimate":
        """This estimate for runs split into chunks of ``chunk`` samples (0: not split)."""
        return replace(self, chunk=chunk)


def _itemsize(dtype) -> int:
    """Bytes per element; graphsurgeon gives the ONNX enum for types numpy has no dtype for (bfloat16,
    float8, int4): their storage size, or 4 when onnx does not know it either."""
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        try:
            return max(1, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(int(dtype))).itemsize)
        except Exception:  # noqa: BLE001 - an estimate: never the reason a conversion fails
            return 4


def estimate(model: onnx.ModelProto) -> MemoryEstimate:
    """Weights and per-sample activation bytes of one run of ``model``."""
    from ..core.shapes import at_sample_batch, tensor_shapes

    graph, fixed_batch = at_sample_batch(model)
    shapes = tensor_shapes(graph)
    weights = sum(int(np.asarray(t.values).nbytes) for t in graph.tensors().values()
                  if hasattr(t, "values"))
    computed = {t.name for n in graph.nodes for t in n.outputs} | {t.name for t in graph.inputs}
    io = {t.name for t in graph.inputs} | {t.name for t in graph.outputs}
    per_run = largest = io_run = 0
    for name in computed:
        tensor = graph.tensors().get(name)
        itemsize = _itemsize(tensor.dtype) if tensor is not None and tensor.dtype is not None else 4
        dims = shapes.get(name)
        if dims is None or not all(isinstance(d, int) for d in dims):
            continue  # unknown: shape arithmetic and scalars, negligible next to activations
        nbytes = int(np.prod(dims, dtype=np.int64)) * itemsize
        per_run += nbytes
        largest = max(largest, nbytes)
        io_run += nbytes if name in io else 0
    return MemoryEstimate(weights, -(-per_run // fixed_batch), -(-largest // fixed_batch), -(-io_run // fixed_batch))


# Temporaries of one activation's histogram update (ActivationStats.update): a float32 copy, a mask,
# int64 group rows and bin indices, per element, next to the 4-byte activation itself.
HISTOGRAM_COPIES = 8


def statistics_batch(ann: onnx.ModelProto, requested: int, limit: int | None, samples: int) -> int:
    """The batch of the statistics phase: the largest ≤ ``requested`` whose run of the ANN with every
    activation an output (each tensor alive at once: :func:`estimate`'s sum) plus the histogram
    update of the largest stays under half of ``limit`` (None: 4 GiB); at least 1."""
    limit = DEFAULT_MAX_MEMORY if limit is None else limit
    e = estimate(ann)
    run = replace(e, per_sample=e.per_sample + HISTOGRAM_COPIES * e.largest)
    return batch_for_memory([run], limit // 2, min(requested, max(1, samples)), samples)[0]


def check_folded_fits(ann: onnx.ModelProto, timesteps: int, limit: int | None) -> None:
    """ConfigError, before any work, when one run of the folded SNN of ``ann`` at its smallest
    batch (1, or the fixed batch B) cannot fit in ``limit`` bytes (None: 4 GiB) or needs a tensor
    over onnxruntime's 4 GiB maximum. Every tensor after the time Tile holds T steps, so that run
    needs at least T × (the ANN's largest per-sample tensor, twice: an op's input and output are
    alive together) — a lower bound, so nothing that would fit is refused. The streaming form runs
    one step at a time and needs no such bound."""
    from ..core.shapes import at_sample_batch

    limit = DEFAULT_MAX_MEMORY if limit is None else limit
    largest = at_sample_batch(ann)[1] * estimate(ann).largest  # bytes per step of one run
    need = 2 * timesteps * largest
    if need <= limit and timesteps * largest < ORT_MAX_TENSOR:
        return
    fits = max(1, min(limit // max(1, 2 * largest), (ORT_MAX_TENSOR - 1) // max(1, largest)))
    raise ConfigError(
        f"at T={timesteps} one run of the folded SNN needs at least {format_size(need)} (its largest tensor, "
        f"{format_size(timesteps * largest)}, as input and output of one op), over "
        + (f"the memory limit {format_size(limit)}" if need > limit else "onnxruntime's 4 GiB per tensor")
        + f": use --form streaming (one step per run, memory independent of T), at most T={fits}, "
        "or raise --max-memory")


def batch_for_memory(estimates: list[MemoryEstimate], limit: int, requested: int | None,
                     samples: int) -> tuple[int, int]:
    """(batch, its summed peak estimate): the largest batch ≤ ``requested`` (default:
    min(samples, AUTO_BATCH_CAP)) whose summed estimate stays ≤ ``limit``; at least 1, so when
    even batch 1 exceeds ``limit`` the estimate returned is above it (``onnx2snn evaluate``
    then warns on stderr that the bound cannot be met)."""
    def peak(batch: int) -> int:
        return sum(e.peak(batch) for e in estimates)

    lo, hi = 1, max(1, requested or min(samples, AUTO_BATCH_CAP))
    while lo < hi:  # peak grows with the batch: the largest that fits, by bisection
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if peak(mid) <= limit else (lo, mid - 1)
    return lo, peak(lo)
