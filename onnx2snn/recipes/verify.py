"""Run a finished SNN once before it leaves the converter (never hand out an SNN that cannot run).

:func:`check_runs` loads the SNN in a plain onnxruntime session (the op library
registered) and runs it on one sample: the first rows of the calibration data,
or, without data, seeded random values of the declared input shapes. The batch
is the model's fixed batch B, or 1. A streaming SNN runs one step from its
initial state (the loop :class:`onnx2snn.StreamingSession` runs, with the state
read from the metadata). A failure is one :class:`ConversionError` that names
the node onnxruntime names and says it is a bug to report.

Cost: one session and one run of one sample (a few ms on the bundled MNIST CNN).
"""
from __future__ import annotations

import re
import warnings
from typing import Mapping

import numpy as np
import onnx

from .. import metadata
from .._library import get_library_path
from ..core.graph import quiet_onnxruntime
from ..errors import ConversionError

__all__ = ["check_loads", "check_runs", "sample_feeds"]

_NODE = (re.compile(r"Node \(([^)]*)\)"), re.compile(r"Name:'([^']*)'"), re.compile(r"node '?([^'\s]+)'?"))


def _inputs(model: onnx.ModelProto) -> list[tuple[str, list, np.dtype]]:
    inits = {i.name for i in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]  # 0: empty
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except Exception:
            dtype = np.dtype(np.float32)
        out.append((vi.name, dims, dtype))
    return out


def sample_feeds(data) -> dict[str, np.ndarray] | None:
    """A few rows of the calibration ``data`` keyed by input name, without consuming it
    (None: no data, or a reader that cannot be rewound)."""
    if data is None:
        return None
    if hasattr(data, "get_next"):
        if not hasattr(data, "rewind"):
            return None
        data.rewind()
        feed = data.get_next()
        data.rewind()
        return None if feed is None else _arrays(feed)
    if isinstance(data, Mapping):
        return _arrays(data)
    try:
        with np.load(str(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception:
        return None


def _arrays(values: Mapping) -> dict[str, np.ndarray]:
    """The values that are arrays (a sequence or map input is left to the synthetic feed, or refused)."""
    out = {}
    for k, v in values.items():
        try:
            out[k] = np.asarray(v)
        except (ValueError, TypeError):
            continue
        if out[k].dtype == object:
            del out[k]
    return out


def _feeds(snn: onnx.ModelProto, sample: Mapping[str, np.ndarray] | None, skip: set) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    inputs = [(n, d, t) for n, d, t in _inputs(snn) if n not in skip]
    arrays = dict(sample or {})
    if len(inputs) == 1 and inputs[0][0] not in arrays:
        others = [k for k in arrays if k != "labels"]
        arrays = {inputs[0][0]: arrays[others[0]]} if len(others) == 1 else {}
    feeds = {}
    for name, dims, dtype in inputs:
        batch = dims[0] if dims else None
        rows = 1 if batch is None else batch
        value = arrays.get(name)
        if value is not None and value.ndim == len(dims) and value.shape[0] > 0 and all(
                d is None or d == s for d, s in zip(dims[1:], value.shape[1:])):
            value = value[:rows]
            if value.shape[0] < rows:
                value = np.concatenate([value, np.repeat(value[-1:], rows - value.shape[0], axis=0)])
            feeds[name] = np.ascontiguousarray(value.astype(dtype, copy=False))
            continue
        if any(d is None for d in dims[1:]) or dtype.num >= 256:  # ml_dtypes (bfloat16, float8): no feed
            raise _Unknown(name, dims)
        shape = [rows] + [int(d) for d in dims[1:]] if dims else []
        feeds[name] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f"
                       else np.zeros(shape, dtype))
    return feeds


_NUMPY_TYPES = {f"tensor({t})" for t in ("float", "double", "float16", "bool", "string", "int8", "int16", "int32",
                                            "int64", "uint8", "uint16", "uint32", "uint64")}


class _Unknown(Exception):
    def __init__(self, name, dims):
        super().__init__(f"input '{name}' has dynamic dimensions {dims} and no sample was given")


def _node(message: str, snn: onnx.ModelProto) -> str:
    names = {n.name: n.op_type for n in snn.graph.node}
    for pattern in _NODE:
        for found in pattern.findall(message):
            if found in names:
                return f"node '{found}' ({names[found]})"
    for pattern in _NODE[:2]:
        found = pattern.findall(message)
        if found:
            return f"node '{found[0]}'"
    return "a node onnxruntime does not name"


def check_runs(snn: onnx.ModelProto, sample: Mapping[str, np.ndarray] | None = None,
               source: onnx.ModelProto | None = None) -> None:
    """Run ``snn`` once on ``sample`` (or synthetic inputs); ConversionError if it fails to load or run.

    When it fails and the user's model ``source`` fails on the same inputs too, the error says
    that the model itself does not run in this onnxruntime (e.g. an opset whose kernels it no
    longer has), not that onnx2snn has a bug.
    """
    form = metadata.form(snn) if metadata.is_snn(snn) else None
    meta = metadata.read(snn) if form == "streaming" else None
    state_in = list(meta.state_inputs) if meta is not None else []
    try:
        feeds = _feeds(snn, sample, set(state_in))
    except _Unknown as e:
        warnings.warn(f"onnx2snn: the converted SNN was not test-run: {e}", stacklevel=3)
        return
    batch = next(iter(feeds.values())).shape[0] if feeds else 1
    shapes = {n: d for n, d, _ in _inputs(snn)}
    model_feeds = dict(feeds)
    if meta is not None:  # the state before the first step, as StreamingSession starts it
        feeds.update(metadata.initial_state(meta, {n: [d or 1 for d in shapes.get(n, [])] for n in state_in}, batch))
    if snn.ByteSize() >= 2**31 - 1:
        warnings.warn("onnx2snn: the converted SNN was not test-run (over 2 GiB as one protobuf)", stacklevel=3)
        return
    message = _run_error(snn, feeds)
    if message is None:
        return
    if source is not None and _run_error(source, model_feeds, library=False) is not None:
        raise _not_runnable(message)
    raise ConversionError(
        f"the converted SNN does not run in onnxruntime: {_node(message, snn)} fails ({message}). "
        "This is a bug in onnx2snn, not in your model: please report it with the model and the "
        "flags; no SNN was written")


def check_loads(model: onnx.ModelProto) -> None:
    """ConversionError when onnxruntime cannot load the user's ``model`` (a type or shape error,
    an attribute it rejects, an opset whose kernels it does not have) or run it once on seeded
    inputs of its declared shapes (an initializer of the wrong size); checked before any work, as
    every later step runs the model in onnxruntime. With a dynamic dimension beyond the batch it
    is only loaded (the calibration data's shapes are checked where they are read); a model over
    2 GiB is not checked here."""
    if model.ByteSize() >= 2**31 - 1:
        return
    try:
        feeds = _feeds(model, None, set())
    except _Unknown:
        feeds = None
    message = _run_error(model, feeds, library=False)
    if message is not None:
        raise _not_runnable(message)


def _not_runnable(message: str) -> ConversionError:
    import onnxruntime as ort

    return ConversionError(
        f"the model itself does not run in onnxruntime {ort.__version__} ({message}). onnx2snn builds "
        "on what onnxruntime runs: repair or export the model again, or convert it to an opset "
        "onnxruntime implements (onnx.version_converter.convert_version(model, 13)); nothing was written")


def _run_error(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray] | None,
               library: bool = True) -> str | None:
    """onnxruntime's error loading ``model`` and running it once on ``feeds`` (None: no run;
    returns None when it worked)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # its errors are in the message this returns
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if library:
        try:
            opts.register_custom_ops_library(get_library_path())
        except FileNotFoundError:
            if any(n.domain == "onnx2snn" for n in model.graph.node):
                raise
    names = {i.name for i in model.graph.input}
    try:
        with quiet_onnxruntime():
            session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            wanted = [o.name for o in session.get_outputs() if o.type in _NUMPY_TYPES]
            if feeds is not None and wanted:  # onnxruntime's Python API cannot return bfloat16, float8, int4...
                session.run(wanted, {k: v for k, v in feeds.items() if k in names})
    except Exception as e:  # onnxruntime's errors have no common base class
        return " ".join(str(e).split())[:600] or type(e).__name__
    return None
