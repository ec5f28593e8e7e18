"""Collect activation statistics with onnxruntime (augment → collect).

The ANN is augmented so that every tensor of interest is a graph output, run
with graph optimisations off (so the names survive) over a data reader
(``get_next() -> feed dict | None``), and each batch updates streaming
:class:`ActivationStats`; no activation is kept after its batch.
"""
from __future__ import annotations

from typing import Iterable

import onnx
import onnxruntime as ort

from .._library import register
from .._progress import Progress
from ..errors import CalibrationError
from .statistics import ActivationStats


def augment_outputs(model: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph also outputs the tensors ``names``."""
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    present = {o.name for o in aug.graph.output}
    for name in names:
        if name not in present:
            aug.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            present.add(name)
    return aug


def calibration_session(model: onnx.ModelProto, providers=None, optimize: bool = False,
                        threads: int = 0, custom_ops: bool = False) -> ort.InferenceSession:
    """A CPU session; graph optimisations off unless ``optimize`` (graph outputs survive
    optimisation, so a session whose every tensor of interest is an output may use it);
    ``threads`` intra-op threads (0: onnxruntime's default, every core); ``custom_ops``: the
    SNN op library registered. Its threads do not spin after a run: calibration alternates runs
    with numpy work on their outputs, which needs the cores."""
    opts = register(ort.SessionOptions()) if custom_ops else ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=providers or ["CPUExecutionProvider"])


def collect_statistics(model: onnx.ModelProto, names: list[str], reader, *, channel_wise: bool,
                       bins: int = 2048, progress: bool = True) -> dict[str, ActivationStats]:
    """Stream ``reader`` through ``model`` and gather statistics of the tensors ``names``."""
    session = calibration_session(augment_outputs(model, names))
    stats = {n: ActivationStats(channel_wise, bins) for n in names}
    total = len(reader) if hasattr(reader, "__len__") else None
    batches = 0
    with Progress(total, "calibrating", enabled=progress) as bar:
        while (feed := reader.get_next()) is not None:
            values = session.run(names, feed)
            for name, value in zip(names, values):
                stats[name].update(value)
            batches += 1
            bar.update()
    if batches == 0:
        raise CalibrationError("the calibration data reader gave no batch; give at least one sample")
    return stats
