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
from ..snn.readout import RUNNING_SUFFIX
from .._progress import Progress
from ..data import InputSpec, batch_at, iter_batches, model_inputs
from ..errors import ConfigError, DataError
from ..io import compatible_ir_version
from .chunking import chunk_samples, default_chunk_bytes
from .memory import MemoryEstimate, batch_for_memory, estimate
from .providers import session_providers
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
    output: str = ""             # the output scored (the first [N, K] one)
    ignored_outputs: tuple[str, ...] = ()  # the ANN's other outputs, not scored

    def as_dict(self) -> dict:
        return {"ann_top1": self.ann_top1, "snn_top1": {str(t): a for t, a in self.snn_top1.items()},
                "timesteps": self.timesteps, "batch_size": self.batch_size, "chunk": self.chunk}


def _dims(value_info) -> list:
    """A graph value's dims: ints where static, None where not (None: no shape at all)."""
    tt = value_info.type.tensor_type
    if not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]


def _fmt_dims(dims) -> str:
    return "?" if dims is None else "[" + ", ".join("N" if d is None else str(d) for d in dims) + "]"


def _same_features(a, b) -> bool:
    """Equal rank and equal static dims beyond the batch axis (a dynamic dim matches any)."""
    if a is None or b is None:
        return True
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a[1:], b[1:]))


def check_pair(ann: onnx.ModelProto, snn: onnx.ModelProto, scored: bool = True) -> tuple[str, str] | None:
    """Check that ``snn`` is a conversion of ``ann`` (same inputs: names and feature shapes; same
    outputs) and pick the output top-1 is scored on: the ANN's first output of rank 2 ``[N, K]``.
    Returns (that output's name, the SNN's running-mean output for it); None with ``scored=False``
    (only the match is checked). ConfigError otherwise."""
    meta = metadata.read(snn)
    inits = {i.name for i in ann.graph.initializer}
    states_in = set(meta.state_inputs or ())
    states_out = set(meta.state_outputs or ())
    running = list(meta.running_outputs)
    snn_inits = {i.name for i in snn.graph.initializer}
    ann_in = [(v.name, _dims(v)) for v in ann.graph.input if v.name not in inits]
    snn_in = [(v.name, _dims(v)) for v in snn.graph.input if v.name not in snn_inits and v.name not in states_in]
    ann_out = [(v.name, _dims(v)) for v in ann.graph.output]
    snn_out = [(v.name, _dims(v)) for v in snn.graph.output if v.name not in states_out and v.name not in running]

    def same(a, b):
        return [n for n, _ in a] == [n for n, _ in b] and all(_same_features(x, y) for (_, x), (_, y) in zip(a, b))

    snn_by_name = dict(snn_out)  # the SNN may add outputs (the streaming form's per-step one)
    outputs_ok = all(n in snn_by_name and _same_features(d, snn_by_name[n]) for n, d in ann_out)
    if not same(ann_in, snn_in) or not outputs_ok:
        def fmt(vals):
            return ", ".join(f"'{n}' {_fmt_dims(d)}" for n, d in vals) or "none"
        raise ConfigError(
            f"the ANN and the SNN do not match: ANN inputs {fmt(ann_in)}, outputs {fmt(ann_out)}; SNN inputs "
            f"{fmt(snn_in)}, outputs {fmt(snn_out)}; give the ANN the SNN was converted from")
    if not scored:
        return None
    scored = [i for i, (_, d) in enumerate(ann_out) if d is not None and len(d) == 2]
    if not scored:
        raise ConfigError(
            "top-1 needs a classification output [N, K], and the model has none: outputs "
            + ", ".join(f"'{n}' {_fmt_dims(d)}" for n, d in ann_out)
            + "; evaluate a classifier (or export the model with its class scores [N, K] as an output)")
    index = scored[0]
    name = ann_out[index][0]
    if metadata.form(snn) == "streaming":
        return name, name
    if name + RUNNING_SUFFIX in running:
        return name, name + RUNNING_SUFFIX
    raise ConfigError(f"the SNN lists no running-mean output for output '{name}' (it lists {running}: an output "
                      "computed after the readout by ops that do not act on each sample alone has none); "
                      "convert the model again with onnx2snn, or score an output that has one")


def classes_of(ann: onnx.ModelProto, output: str) -> int | None:
    """K of the ANN's output ``output`` [N, K] (None: dynamic)."""
    return next(_dims(v) for v in ann.graph.output if v.name == output)[1]


def check_label_range(labels: np.ndarray, classes: int | None, output: str) -> None:
    """DataError when a label is outside [0, K) of the scored output."""
    if classes is None or labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise DataError(f"labels hold class index {bad}, outside the range [0, {classes}) of output '{output}' "
                        f"[N, {classes}]; labels must be class indices 0..{classes - 1}")


def _fixed_batch(specs: list[InputSpec]) -> int | None:
    return specs[0].fixed_batch if specs else None


class Scorer:
    """The two sessions of an evaluation and the integer counts of one batch: what :func:`evaluate`
    runs on each batch, and each Ray actor of :mod:`onnx2snn.distributed.evaluate` too (so the two
    count alike, bit for bit, on the same batches).

    ``threads``: intra-op threads of each session (0: onnxruntime's default, every core);
    ``providers``: from :func:`onnx2snn.runtime.providers.session_providers`.
    """

    def __init__(self, ann: onnx.ModelProto, snn: onnx.ModelProto, *, threads: int = 0, providers=None):
        self.timesteps = snn_timesteps(snn)
        self.output, self.running = check_pair(ann, snn)
        self.fixed = _fixed_batch(model_inputs(snn))
        providers = providers or ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        runnable = onnx.ModelProto()
        runnable.CopyFrom(ann)
        runnable.ir_version = compatible_ir_version(ann)
        self.ann = ort.InferenceSession(runnable.SerializeToString(), opts, providers=providers)
        self.chunk = 0
        if metadata.form(snn) == "streaming":
            from .streaming import StreamingSession
            self.stream = StreamingSession(snn)
        else:
            self.stream = None
            snn_opts = ort.SessionOptions()
            snn_opts.intra_op_num_threads = threads
            self.snn = InferenceSession(snn, snn_opts if threads else None, providers=providers)
            self.chunk = self.snn.onnx2snn_chunk

    def score(self, feed: dict[str, np.ndarray], labels: np.ndarray) -> tuple[int, np.ndarray]:
        """(ANN correct, SNN correct after each step [T], int64) on the ``len(labels)`` samples of ``feed``
        (padded here to a fixed batch by repeating the last sample)."""
        valid = labels.shape[0]
        if self.fixed and valid < self.fixed:
            feed = batch_at(feed, 0, self.fixed, pad=True)
        logits = self.ann.run([self.output], feed)[0][:valid]
        check_label_range(labels, logits.shape[-1], self.output)  # K when the model leaves it dynamic
        if self.stream is not None:
            steps = self.stream.run(feed, self.timesteps)[self.output]
        else:
            steps = self.snn.run([self.running], feed)[0]
        steps = steps[:, :valid]                                                  # [T, n, K]
        return int((logits.argmax(-1) == labels).sum()), (steps.argmax(-1) == labels[None, :]).sum(axis=1)


def evaluation_batch(ann: onnx.ModelProto, snn: onnx.ModelProto, samples: int, batch_size: int | None,
                     max_memory: int | None) -> tuple[int, int]:
    """(batch, estimated peak bytes) of an evaluation of ``samples`` samples: the model's fixed batch,
    else the largest ≤ ``batch_size`` under ``max_memory`` (None: no bound; estimate 0)."""
    fixed = _fixed_batch(model_inputs(snn))
    estimate = 0
    if max_memory is not None and fixed is None:
        batch_size, estimate = batch_for_memory(evaluation_estimates(ann, snn), max_memory, batch_size, samples)
    return fixed or batch_size or 64, estimate


def check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"labels must be integer class indices [N], got {labels.dtype} {labels.shape}")
    return labels


def evaluate(ann: onnx.ModelProto, snn: onnx.ModelProto, feeds: dict[str, np.ndarray], labels: np.ndarray,
             batch_size: int | None = 64, progress: bool = False,
             max_memory: int | None = None, provider: str = "auto") -> EvaluationResult:
    """Top-1 of the ANN and of the SNN after each step t = 1..T on ``feeds``/``labels``.

    With ``max_memory`` (bytes), the batch is the largest ≤ ``batch_size`` (None: up to
    256) whose estimated peak (:mod:`onnx2snn.runtime.memory`, ANN and SNN sessions together, the
    SNN in the chunks its session runs) stays under it; the result records the batch,
    the estimate and the chunk. ``provider``: cpu, cuda or auto (:mod:`onnx2snn.runtime.providers`).
    """
    providers = session_providers(provider)
    output, _ = check_pair(ann, snn)
    labels = check_labels(labels)
    n = labels.shape[0]
    check_label_range(labels, classes_of(ann, output), output)
    batch, estimate = evaluation_batch(ann, snn, n, batch_size, max_memory)
    scorer = Scorer(ann, snn, providers=providers)
    T = scorer.timesteps
    ann_correct, snn_correct = 0, np.zeros(T, np.int64)
    start = 0
    with Progress(-(-n // batch), "evaluating", enabled=progress) as bar:
        for feed, valid in iter_batches(feeds, batch):
            a, s = scorer.score(feed, labels[start:start + valid])
            ann_correct, snn_correct = ann_correct + a, snn_correct + s
            start += valid
            bar.update()
    return evaluation_result(ann, output, T, ann_correct, snn_correct, n, batch=batch, estimate=estimate,
                             chunk=scorer.chunk)


def evaluation_result(ann: onnx.ModelProto, output: str, timesteps: int, ann_correct: int, snn_correct: np.ndarray,
                      samples: int, *, batch: int, estimate: int, chunk: int) -> EvaluationResult:
    """The accuracies from the integer counts summed over every batch (scored on ``output``)."""
    return EvaluationResult(100.0 * ann_correct / samples,
                            {t + 1: 100.0 * float(c) / samples for t, c in enumerate(snn_correct)},
                            timesteps, samples, batch, estimate, chunk, output,
                            tuple(o.name for o in ann.graph.output if o.name != output))
