"""Running converted SNNs: sessions with the op library, and evaluation.

:func:`InferenceSession` is an ``onnxruntime.InferenceSession`` with the
onnx2snn custom-op library registered. :func:`evaluate` runs the ANN and the
SNN on the same labelled data and reads the SNN's accuracy after every time
step from its running-mean output (one run for all t ≤ T).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from ._library import get_library_path
from ._progress import Progress
from .data import InputSpec, iter_batches, model_inputs
from .errors import ConversionError
from .io import compatible_ir_version


def InferenceSession(model, sess_options: ort.SessionOptions | None = None, providers=None,
                     **kwargs) -> ort.InferenceSession:
    """An onnxruntime session for ``model`` (path, bytes or ModelProto) with the
    onnx2snn op library registered."""
    opts = sess_options or ort.SessionOptions()
    opts.register_custom_ops_library(get_library_path())
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=providers or ["CPUExecutionProvider"], **kwargs)


def snn_timesteps(model: onnx.ModelProto) -> int:
    meta = {p.key: p.value for p in model.metadata_props}
    if "onnx2snn.timesteps" not in meta:
        raise ConversionError("the SNN model has no onnx2snn metadata (timesteps); give a model "
                              "written by `onnx2snn convert`")
    return int(meta["onnx2snn.timesteps"])


def running_output_name(model: onnx.ModelProto) -> str:
    meta = {p.key: p.value for p in model.metadata_props}
    names = json.loads(meta.get("onnx2snn.running_mean_outputs", "[]"))
    if not names:
        raise ConversionError("the SNN model lists no running-mean output; convert it with onnx2snn")
    return names[0]


@dataclass(frozen=True)
class EvaluationResult:
    ann_top1: float
    snn_top1: dict[int, float]   # t -> accuracy after t steps
    timesteps: int
    samples: int

    def as_dict(self) -> dict:
        return {"ann_top1": self.ann_top1, "snn_top1": {str(t): a for t, a in self.snn_top1.items()},
                "timesteps": self.timesteps}


def _fixed_batch(specs: list[InputSpec]) -> int | None:
    return specs[0].fixed_batch if specs else None


def evaluate(ann: onnx.ModelProto, snn: onnx.ModelProto, feeds: dict[str, np.ndarray], labels: np.ndarray,
             batch_size: int = 64, progress: bool = False) -> EvaluationResult:
    """Top-1 of the ANN and of the SNN after each step t = 1..T on ``feeds``/``labels``."""
    T = snn_timesteps(snn)
    running = running_output_name(snn)
    runnable = onnx.ModelProto()
    runnable.CopyFrom(ann)
    runnable.ir_version = compatible_ir_version(ann)
    ann_sess = ort.InferenceSession(runnable.SerializeToString(), providers=["CPUExecutionProvider"])
    snn_sess = InferenceSession(snn)
    ann_out = ann_sess.get_outputs()[0].name
    n = labels.shape[0]
    ann_correct, snn_correct = 0, np.zeros(T, np.int64)
    fixed = _fixed_batch(model_inputs(snn))
    batches = -(-n // (fixed or batch_size))
    start = 0
    with Progress(batches, "evaluating", enabled=progress) as bar:
        for feed, valid in iter_batches(feeds, batch_size, fixed):
            y = labels[start:start + valid]
            logits = ann_sess.run([ann_out], feed)[0][:valid]
            ann_correct += int((logits.argmax(-1) == y).sum())
            steps = snn_sess.run([running], feed)[0][:, :valid]       # [T, n, K]
            snn_correct += (steps.argmax(-1) == y[None, :]).sum(axis=1)
            start += valid
            bar.update()
    return EvaluationResult(100.0 * ann_correct / n, {t + 1: 100.0 * float(c) / n for t, c in enumerate(snn_correct)},
                            T, n)
