"""Evaluation: top-1 of the ANN and of the SNN after every time step, in one SNN run.

:func:`evaluate` runs the ANN and the SNN on the same labelled data and reads the
SNN's accuracy after every step t = 1..T from its running-mean output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from .. import metadata
from .._progress import Progress
from ..data import InputSpec, iter_batches, model_inputs
from ..io import compatible_ir_version
from .chunking import chunk_samples, default_chunk_bytes
from .memory import MemoryEstimate, batch_for_memory, estimate
from .session import InferenceSession


def evaluation_estimates(ann: onnx.ModelProto, snn: onnx.ModelProto) -> list[MemoryEstimate]:
    """The estimates of the two sessions :func:`onnx2snn.evaluate` runs, the SNN's with
    the chunk its :func:`onnx2snn.InferenceSession` (default options) runs it in."""
    snn_estimate = estimate(snn)
    chunk = chunk_samples(snn, default_chunk_bytes(None), snn_estimate.largest)
    return [estimate(ann), snn_estimate.chunked(chunk)]


def snn_timesteps(model: onnx.ModelProto) -> int:
    return metadata.read(model).timesteps


def running_output_name(model: onnx.ModelProto) -> str:
    return metadata.running_output(model)


@dataclass(frozen=True)
class EvaluationResult:
    ann_top1: float
    snn_top1: dict[int, float]   # t -> accuracy after t steps
    timesteps: int
    samples: int
    batch_size: int = 0          # the batch used (chosen under max_memory when given)
    memory_estimate: int = 0     # estimated peak bytes at that batch (0: not estimated)
    chunk: int = 0               # samples per SNN run inside a batch (0: the whole batch; runtime/chunking.py)

    def as_dict(self) -> dict:
        return {"ann_top1": self.ann_top1, "snn_top1": {str(t): a for t, a in self.snn_top1.items()},
                "timesteps": self.timesteps, "batch_size": self.batch_size, "chunk": self.chunk}


def _fixed_batch(specs: list[InputSpec]) -> int | None:
    return specs[0].fixed_batch if specs else None


def evaluate(ann: onnx.ModelProto, snn: onnx.ModelProto, feeds: dict[str, np.ndarray], labels: np.ndarray,
             batch_size: int | None = 64, progress: bool = False,
             max_memory: int | None = None) -> EvaluationResult:
    """Top-1 of the ANN and of the SNN after each step t = 1..T on ``feeds``/``labels``.

    With ``max_memory`` (bytes), the batch is the largest ≤ ``batch_size`` (None: up to
    256) whose estimated peak (:mod:`onnx2snn.runtime.memory`, ANN and SNN sessions together, the
    SNN in the chunks its session runs) stays under it; the result records the batch,
    the estimate and the chunk.
    """
    T = snn_timesteps(snn)
    n = labels.shape[0]
    fixed = _fixed_batch(model_inputs(snn))
    estimate = 0
    if max_memory is not None and fixed is None:
        batch_size, estimate = batch_for_memory(evaluation_estimates(ann, snn), max_memory, batch_size, n)
    batch_size = batch_size or 64
    runnable = onnx.ModelProto()
    runnable.CopyFrom(ann)
    runnable.ir_version = compatible_ir_version(ann)
    ann_sess = ort.InferenceSession(runnable.SerializeToString(), providers=["CPUExecutionProvider"])
    chunk = 0
    if metadata.form(snn) == "streaming":
        from .streaming import StreamingSession
        stream = StreamingSession(snn)
        mean_name = stream.outputs[0]

        def run_steps(feed):
            return stream.run(feed, T)[mean_name]
    else:
        snn_sess = InferenceSession(snn)
        chunk = snn_sess.onnx2snn_chunk
        running = running_output_name(snn)

        def run_steps(feed):
            return snn_sess.run([running], feed)[0]
    ann_out = ann_sess.get_outputs()[0].name
    ann_correct, snn_correct = 0, np.zeros(T, np.int64)
    batches = -(-n // (fixed or batch_size))
    start = 0
    with Progress(batches, "evaluating", enabled=progress) as bar:
        for feed, valid in iter_batches(feeds, batch_size, fixed):
            y = labels[start:start + valid]
            logits = ann_sess.run([ann_out], feed)[0][:valid]
            ann_correct += int((logits.argmax(-1) == y).sum())
            steps = run_steps(feed)[:, :valid]                        # [T, n, K]
            snn_correct += (steps.argmax(-1) == y[None, :]).sum(axis=1)
            start += valid
            bar.update()
    return EvaluationResult(100.0 * ann_correct / n, {t + 1: 100.0 * float(c) / n for t, c in enumerate(snn_correct)},
                            T, n, fixed or batch_size, estimate, chunk)
