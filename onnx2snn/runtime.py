"""Running converted SNNs: sessions with the op library, and evaluation.

:func:`InferenceSession` is an ``onnxruntime.InferenceSession`` with the
onnx2snn custom-op library registered. :func:`evaluate` runs the ANN and the
SNN on the same labelled data and reads the SNN's accuracy after every time
step from its running-mean output (one run for all t ≤ T).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from ._library import get_library_path
from ._progress import Progress
from .data import InputSpec, iter_batches, model_inputs
from .errors import ConfigError, ConversionError
from .io import compatible_ir_version


def InferenceSession(model, sess_options: ort.SessionOptions | None = None, providers=None,
                     blocked_layout: bool = True, chunk_bytes: int | str | None = "auto",
                     **kwargs) -> ort.InferenceSession:
    """An onnxruntime session for ``model`` (path, bytes or ModelProto) with the
    onnx2snn op library registered (an :class:`onnx2snn.chunking.SNNSession`, a
    subclass of ``onnxruntime.InferenceSession``).

    On the CPU provider at the default optimisation level (ORT_ENABLE_ALL), the
    neurons run in onnxruntime's blocked convolution layout (see
    :mod:`onnx2snn.blocked_layout`; same outputs bit for bit, no layout passes
    around them); ``blocked_layout=False`` keeps onnxruntime's plain graph. The
    session's attribute ``onnx2snn_blocked_neurons`` counts the neurons rewritten.

    On the CPU provider, ``run`` splits the batch of a time-folded onnx2snn SNN into
    runs of ``onnx2snn_chunk`` samples whose largest tensor is about ``chunk_bytes``
    (``"auto"``: 2 MiB per intra-op thread; None: one run for the whole batch), so
    the activations stay in the caches (:mod:`onnx2snn.chunking`; same outputs).
    """
    from .blocked_layout import NEURON_OPS, blocked_session
    from .chunking import SNNSession, chunk_samples, default_chunk_bytes
    from .graph._graph import SNN_DOMAIN

    if chunk_bytes is not None and chunk_bytes != "auto" and (
            not isinstance(chunk_bytes, int) or isinstance(chunk_bytes, bool) or chunk_bytes <= 0):
        raise ConfigError(f"chunk_bytes must be a positive number of bytes, 'auto' or None, got {chunk_bytes!r}")
    opts = sess_options or ort.SessionOptions()
    library = get_library_path()
    opts.register_custom_ops_library(library)
    providers = providers or ["CPUExecutionProvider"]
    on_cpu = list(providers) == ["CPUExecutionProvider"]
    proto, session, failure = None, None, None
    if (blocked_layout or chunk_bytes is not None) and on_cpu:
        try:
            proto = model if isinstance(model, onnx.ModelProto) else (
                onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model)))
        except Exception:  # not a model onnx can read: onnxruntime's own error below says why
            proto = None
    one_protobuf = proto is not None and proto.ByteSize() < 2**31 - 1  # else only a path can carry it
    if (one_protobuf and blocked_layout and not opts.optimized_model_filepath
            and opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        try:
            if any(n.domain == SNN_DOMAIN and n.op_type in NEURON_OPS for n in proto.graph.node):
                session = blocked_session(proto, opts, library, session_class=SNNSession, **kwargs)
        except Exception as e:  # an optimisation only: the plain session below decides
            failure = e
    if session is None:
        # the loaded proto (external data read in), so that onnxruntime's shape inference
        # sees every constant; a path only for a model beyond protobuf's 2 GiB
        source = model
        if one_protobuf:
            source = proto.SerializeToString()
        elif isinstance(model, onnx.ModelProto):
            source = model.SerializeToString()
        session = SNNSession(source if isinstance(source, bytes) else str(source), opts,
                             providers=providers, **kwargs)
        if failure is not None:
            warnings.warn(f"onnx2snn: neurons left in the plain layout (the blocked-layout rewrite failed: "
                          f"{failure}); outputs are the same, only slower. Please report this.", stacklevel=2)
    chunk = 0
    if chunk_bytes is not None and proto is not None:  # proto is loaded on the CPU provider only
        chunk = chunk_samples(proto, default_chunk_bytes(opts) if chunk_bytes == "auto" else chunk_bytes)
    session.set_chunk(chunk)
    return session


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
    batch_size: int = 0          # the batch used (chosen under max_memory when given)
    memory_estimate: int = 0     # estimated peak bytes at that batch (0: not estimated)
    chunk: int = 0               # samples per SNN run inside a batch (0: the whole batch; onnx2snn.chunking)

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
    256) whose estimated peak (:mod:`onnx2snn.memory`, ANN and SNN sessions together, the
    SNN in the chunks its session runs) stays under it; the result records the batch,
    the estimate and the chunk.
    """
    T = snn_timesteps(snn)
    n = labels.shape[0]
    fixed = _fixed_batch(model_inputs(snn))
    estimate = 0
    if max_memory is not None and fixed is None:
        from .memory import batch_for_memory, evaluation_estimates
        batch_size, estimate = batch_for_memory(evaluation_estimates(ann, snn), max_memory, batch_size, n)
    batch_size = batch_size or 64
    runnable = onnx.ModelProto()
    runnable.CopyFrom(ann)
    runnable.ir_version = compatible_ir_version(ann)
    ann_sess = ort.InferenceSession(runnable.SerializeToString(), providers=["CPUExecutionProvider"])
    chunk = 0
    if _form(snn) == "streaming":
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


def _form(model: onnx.ModelProto) -> str:
    return {p.key: p.value for p in model.metadata_props}.get("onnx2snn.form", "folded")
