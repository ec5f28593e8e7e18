"""Folded SNN runs split into chunks of samples whose tensors stay in the caches.

A folded SNN holds T rows per sample in every tensor after its time axis: at batch
32 and T = 16 the first-stage tensors of a CIFAR-10 ResNet are 32 MiB each, beyond
the caches, while the ANN it came from keeps 2 MiB tensors in L2/L3 (and applies
its ReLU inside the convolution). Every neuron then costs a pass over main memory,
and so does every convolution's input and output. :class:`SNNSession` (what
:func:`onnx2snn.InferenceSession` returns) runs a large batch as consecutive runs
of ``chunk`` samples, ``chunk`` chosen so that the largest tensor of one run is
about ``chunk_bytes`` (:func:`chunk_samples`), and concatenates the outputs along
each output's batch axis.

Invariant: a chunked run returns what one run over the whole batch returns. The
samples of a folded SNN never mix (time is folded into the batch axis per sample,
the layers act per sample, the neurons per element), so each sample's outputs come
from the same operations on the same values; ``tests/test_chunking.py`` checks the
outputs are bit-identical. Only time-folded feed-forward SNNs are chunked
(:func:`chunk_samples`), and a run only when it can be split without guessing:
every input has the same symbolic batch dimension on axis 0, all feeds are numpy
arrays with that many rows, and every requested output has that symbol on exactly
one axis (outputs added by hand, without a declared shape, run the whole batch at
once).
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort

from .. import metadata
from ..data import model_inputs
from .memory import estimate

__all__ = ["SNNSession", "chunk_samples", "default_chunk_bytes"]

# Bytes of the largest tensor of one chunk per intra-op thread (the L2 of one core,
# twice over: measured on a 2-core AMD EPYC VM with 1 MiB L2 per core and 32 MiB L3,
# where chunks of 2-8 images at T = 16 ran the ResNet-32 and MNIST SNNs 10-25% faster
# than one run of 32 images; benchmarks/model_speed.py).
CHUNK_BYTES_PER_THREAD = 2 * 1024**2


def default_chunk_bytes(sess_options: ort.SessionOptions | None) -> int:
    threads = sess_options.intra_op_num_threads if sess_options is not None else 0
    return CHUNK_BYTES_PER_THREAD * (threads if threads > 0 else (os.cpu_count() or 1))


def chunk_samples(model: onnx.ModelProto, chunk_bytes: int, largest: int | None = None) -> int:
    """Samples per run so that the model's largest tensor takes about ``chunk_bytes``
    (at least 1); 0 (never split) unless ``model`` is a time-folded feed-forward
    onnx2snn SNN with a free batch size. Those have the batch on axis 0 of every input
    (the converter folds time into it). A recurrent SNN's input may be sequence-major
    (axis 0 the sequence, which must never be split), and a streaming model carries
    state between runs: neither is chunked. ``largest``: the model's
    ``memory.estimate(model).largest`` when the caller has it already."""
    if not metadata.is_snn(model):
        return 0
    meta = metadata.read(model)
    if meta.streaming or meta.is_recurrent:
        return 0
    if any(spec.fixed_batch is not None for spec in model_inputs(model)):
        return 0
    if largest is None:
        largest = estimate(model).largest
    return max(1, chunk_bytes // largest) if largest > 0 else 0


class SNNSession(ort.InferenceSession):
    """An ``onnxruntime.InferenceSession`` whose :meth:`run` splits a large batch
    into runs of ``onnx2snn_chunk`` samples (0: never split); see the module docstring.
    Everything else (IOBinding, OrtValues, metadata) is onnxruntime's own."""

    onnx2snn_blocked_neurons = 0
    onnx2snn_chunk = 0

    def set_chunk(self, chunk: int) -> None:
        """Samples per run (0: one run per call). Finds the batch axis of every output."""
        self.onnx2snn_chunk = 0
        self._batch_axes: dict[str, int] = {}
        inputs = self.get_inputs()
        self._input_names = [i.name for i in inputs]
        heads = {tuple(i.shape)[0] if i.shape else None for i in inputs}
        symbol = heads.pop() if len(heads) == 1 else None
        if chunk <= 0 or not isinstance(symbol, str) or not symbol:
            return
        for out in self.get_outputs():
            shape = list(out.shape or [])
            if shape.count(symbol) == 1:
                self._batch_axes[out.name] = shape.index(symbol)
        self.onnx2snn_chunk = int(chunk)

    def _rows(self, names: list[str], feeds: dict) -> int:
        """The batch of ``feeds`` if this run can be chunked, else 0."""
        if self.onnx2snn_chunk <= 0 or not names or any(n not in self._batch_axes for n in names):
            return 0
        rows = set()
        for name in self._input_names:
            value = feeds.get(name)
            if not isinstance(value, np.ndarray) or value.ndim == 0:
                return 0
            rows.add(value.shape[0])
        if len(rows) != 1 or len(feeds) != len(self._input_names):
            return 0
        n = rows.pop()
        return n if n > self.onnx2snn_chunk else 0

    def run(self, output_names, input_feed, run_options=None):
        names = list(output_names) if output_names else [o.name for o in self.get_outputs()]
        n = self._rows(names, input_feed)
        if n == 0:
            return super().run(output_names, input_feed, run_options)
        c = self.onnx2snn_chunk
        parts = [super(SNNSession, self).run(names, {k: v[i:i + c] for k, v in input_feed.items()}, run_options)
                 for i in range(0, n, c)]
        return [np.concatenate([p[j] for p in parts], axis=self._batch_axes[name]) for j, name in enumerate(names)]
