"""Behaviour lock: record every converted SNN's behaviour, then check a changed tree is bit-identical.

    PYTHONPATH=. python benchmarks/behaviour_lock.py record OUT.npz [--cases SUBSTR] [--repeat N]
    PYTHONPATH=. python benchmarks/behaviour_lock.py check OUT.npz [--cases SUBSTR] [--repeat N]
    python benchmarks/behaviour_lock.py --list

(run from the tree to lock: the script refuses an onnx2snn imported from elsewhere,
e.g. the installed copy in site-packages, unless --any-package is given).

For each case of the matrix below (bundled models, fixed data) the script converts
the model with the public API only (``onnx2snn.convert`` and the config types) and
records:

- every graph output of the SNN on fixed inputs: folded / cumulative / recurrent
  SNNs through ``onnx2snn.InferenceSession(model)`` (blocked layout + chunking) and
  ``onnx2snn.InferenceSession(model, blocked_layout=False, chunk_bytes=None)``;
  streaming SNNs by a step loop on plain onnxruntime driven by the model's metadata
  (``onnx2snn.state_inputs`` / ``state_outputs`` / ``state_init``); portable SNNs by
  plain onnxruntime without the op library;
- ``result.thresholds``, ``result.v_init``, ``result.exact_timesteps``,
  ``result.layer_reports`` and ``result.recurrences`` (as plain values);
- the SNN's metadata_props (as a dict), the multiset of (domain, op_type) of its
  nodes (top graph, and separately of the subgraphs), its graph input / output names;
- the warnings the conversion and the runs give (onnx2snn log records of level
  WARNING and above, and Python warnings: level/category and message);
- for configurations that must be refused: the exception's class name and message.

``check`` re-runs everything and compares exactly (np.array_equal with dtype and
shape, NaN-aware; JSON values with ==), prints ``identical`` / ``DIFFERENT`` per
case and exits 1 if any case differs (2 on a usage error). Wall times of the
conversion and of the session creation are recorded too but never compared: both
commands print a timing table (``check`` beside the recorded figures), so that
"conversion and start-up time must not grow" can be judged. Whether the serialized
SNN is byte-identical is reported as information only.

Needs only the stdlib, numpy, onnx, onnxruntime and onnx2snn's public API, so that
it survives a restructure of the package's internal modules.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import onnx2snn
from onnx2snn.config import Calibration, Form, Neuron, Reset, VInit, preset_config

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
DATA = MODELS / "data"
FORMAT = 1
CALIB_SAMPLES = 64
CALIB_BATCH = 32
CPU = ["CPUExecutionProvider"]

# ----------------------------------------------------------------------------- cases

MNIST_MODELS = ("mnist_cnn", "mnist_vgg", "mnist_qcnn", "mnist_cnn_qdq")


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    model: str              # file stem in models/
    config: dict            # ConvertConfig keyword arguments (threshold as text); or preset=NAME plus overrides
    calib: bool = True      # 64 samples of mnist_calib.npz, else calibration_data=None
    inputs: str = "mnist16"
    expect: str = "ok"      # "ok" or "error" (a refusal that must stay a refusal)


def _cases() -> list[Case]:
    c: list[Case] = []
    add = c.append
    cnn = "mnist_cnn"
    # --- float CNN, IF neurons: threshold methods, channel-wise, T
    for T in (4, 16):
        for thr in ("max", "percentile:99.99", "mse", "ltb"):
            for cw in (False, True):
                tag = thr.replace("percentile:", "p")
                add(Case(f"cnn-if-{tag}-{'cw' if cw else 'lw'}-T{T}", cnn,
                         dict(timesteps=T, neuron=Neuron.IF, threshold=thr, channel_wise=cw)))
    # v_init, calibration steps, reset
    add(Case("cnn-if-p99.99-cw-vhalf-T16", cnn, dict(timesteps=16, neuron=Neuron.IF, channel_wise=True,
                                                      v_init=VInit.HALF)))
    add(Case("cnn-if-max-lw-vhalf-T4", cnn, dict(timesteps=4, neuron=Neuron.IF, threshold="max", v_init=VInit.HALF)))
    for steps, tag in (((Calibration.BIAS,), "bias"),
                       ((Calibration.BIAS, Calibration.POTENTIAL), "bias+pot"),
                       ((Calibration.WEIGHT, Calibration.BIAS, Calibration.POTENTIAL), "w+bias+pot")):
        add(Case(f"cnn-if-mse-cw-vhalf-cal[{tag}]-T4", cnn,
                 dict(timesteps=4, neuron=Neuron.IF, threshold="mse", channel_wise=True, v_init=VInit.HALF,
                      calibrate=steps)))
    add(Case("cnn-if-p99.99-cw-cal[bias+pot]-T16", cnn,
             dict(timesteps=16, neuron=Neuron.IF, channel_wise=True, calibrate=(Calibration.BIAS, Calibration.POTENTIAL))))
    add(Case("cnn-if-p99.99-cw-reset0-T16", cnn, dict(timesteps=16, neuron=Neuron.IF, channel_wise=True,
                                                       reset=Reset.ZERO)))
    add(Case("cnn-if-max-lw-reset0-T4", cnn, dict(timesteps=4, neuron=Neuron.IF, threshold="max", reset=Reset.ZERO)))
    # runtime forms
    for form in (Form.STREAMING, Form.PORTABLE):
        f = form.value
        add(Case(f"cnn-if-p99.99-cw-{f}-T16", cnn, dict(timesteps=16, neuron=Neuron.IF, channel_wise=True, form=form)))
        add(Case(f"cnn-if-mse-cw-vhalf-{f}-T4", cnn, dict(timesteps=4, neuron=Neuron.IF, threshold="mse",
                                                          channel_wise=True, v_init=VInit.HALF, form=form)))
        add(Case(f"cnn-if-max-lw-reset0-{f}-T4", cnn, dict(timesteps=4, neuron=Neuron.IF, threshold="max",
                                                           reset=Reset.ZERO, form=form)))
        add(Case(f"cnn-if-mse-cw-vhalf-cal[bias+pot]-{f}-T4", cnn,
                 dict(timesteps=4, neuron=Neuron.IF, threshold="mse", channel_wise=True, v_init=VInit.HALF,
                      calibrate=(Calibration.BIAS, Calibration.POTENTIAL), form=form)))
    # bipolar neurons on the float CNN (the preset), and plain bif
    for T in (4, 16):
        add(Case(f"cnn-preset-best-T{T}", cnn, dict(preset="best", timesteps=T)))
    add(Case("cnn-bif-p99.99-cw-T16", cnn, dict(timesteps=16, neuron=Neuron.BIF, channel_wise=True)))
    # temporal separation
    for form in (Form.FOLDED, Form.PORTABLE):
        f = form.value
        for T in (4, 16):
            add(Case(f"cnn-tsep-max-lw-{f}-T{T}", cnn, dict(timesteps=T, neuron=Neuron.TSEP, threshold="max",
                                                            form=form)))
            add(Case(f"cnn-tsep-mse-cw-vhalf-{f}-T{T}", cnn, dict(timesteps=T, neuron=Neuron.TSEP, threshold="mse",
                                                                  channel_wise=True, v_init=VInit.HALF, form=form)))
    # auto (float graph → IF)
    for T in (4, 16):
        add(Case(f"cnn-auto-T{T}", cnn, dict(timesteps=T, neuron=Neuron.AUTO)))
    # refusals
    add(Case("cnn-err-tsep-streaming", cnn, dict(timesteps=4, neuron=Neuron.TSEP, form=Form.STREAMING),
             expect="error"))
    add(Case("cnn-err-bif-streaming", cnn, dict(timesteps=4, neuron=Neuron.BIF, form=Form.STREAMING), expect="error"))
    add(Case("cnn-err-bif-portable", cnn, dict(timesteps=4, neuron=Neuron.BIF, form=Form.PORTABLE), expect="error"))
    add(Case("cnn-err-if-cumulative", cnn, dict(timesteps=4, neuron=Neuron.IF, form=Form.CUMULATIVE),
             expect="error"))
    add(Case("cnn-err-auto-cumulative", cnn, dict(timesteps=4, neuron=Neuron.AUTO, form=Form.CUMULATIVE),
             expect="error"))
    add(Case("cnn-err-tsep-calibrate", cnn, dict(timesteps=4, neuron=Neuron.TSEP, calibrate=(Calibration.BIAS,)),
             expect="error"))
    add(Case("cnn-err-tsep-reset0", cnn, dict(timesteps=4, neuron=Neuron.TSEP, reset=Reset.ZERO), expect="error"))
    add(Case("cnn-err-bif-reset0", cnn, dict(timesteps=4, neuron=Neuron.BIF, reset=Reset.ZERO), expect="error"))
    add(Case("cnn-err-if-nocalib", cnn, dict(timesteps=4, neuron=Neuron.IF), calib=False, expect="error"))
    add(Case("cnn-err-tsep-nocalib", cnn, dict(timesteps=4, neuron=Neuron.TSEP), calib=False, expect="error"))
    add(Case("cnn-err-auto-nocalib", cnn, dict(timesteps=4, neuron=Neuron.AUTO), calib=False, expect="error"))
    add(Case("cnn-err-bif-nocalib", cnn, dict(timesteps=4, neuron=Neuron.BIF), calib=False, expect="error"))
    add(Case("cnn-err-preset-unknown", cnn, dict(preset="fastest", timesteps=4), expect="error"))
    add(Case("cnn-err-threshold-bad", cnn, dict(timesteps=4, threshold="percentile:150"), expect="error"))
    add(Case("cnn-err-T0", cnn, dict(timesteps=0), expect="error"))
    # --- VGG
    add(Case("vgg-if-p99.99-cw-T16", "mnist_vgg", dict(timesteps=16, neuron=Neuron.IF, channel_wise=True)))
    add(Case("vgg-preset-best-T16", "mnist_vgg", dict(preset="best", timesteps=16)))
    add(Case("vgg-if-mse-cw-vhalf-streaming-T4", "mnist_vgg",
             dict(timesteps=4, neuron=Neuron.IF, threshold="mse", channel_wise=True, v_init=VInit.HALF,
                  form=Form.STREAMING)))
    # --- quantized CNNs: lossless BIF, no calibration data (T* = exact steps)
    for stem, tag, exact, fewer, big in (("mnist_qcnn", "qcnn", 12, 5, False), ("mnist_cnn_qdq", "qdq", 1785, 64, True)):
        for neuron in (Neuron.AUTO, Neuron.BIF):
            for form in (Form.FOLDED, Form.CUMULATIVE):
                for T in (exact, fewer):
                    inputs = "mnist4" if big and T == exact else "mnist16"
                    add(Case(f"{tag}-{neuron.value}-{form.value}-T{T}", stem, dict(timesteps=T, neuron=neuron, form=form),
                             calib=False, inputs=inputs))
        add(Case(f"{tag}-err-bif-streaming", stem, dict(timesteps=4, neuron=Neuron.BIF, form=Form.STREAMING),
                 calib=False, expect="error"))
        add(Case(f"{tag}-err-bif-portable", stem, dict(timesteps=4, neuron=Neuron.BIF, form=Form.PORTABLE),
                 calib=False, expect="error"))
        # refused by the method table since the restructure (before: accepted, the reset silently ignored)
        add(Case(f"{tag}-err-bif-reset0", stem, dict(timesteps=4, neuron=Neuron.BIF, reset=Reset.ZERO),
                 calib=False, expect="error"))
    # IF neurons on a quantized graph calibrate (capped at the quantizer's range)
    add(Case("qcnn-if-p99.99-cw-T8", "mnist_qcnn", dict(timesteps=8, neuron=Neuron.IF, channel_wise=True)))
    # --- CIFAR-10 ResNet-32 (QCFS): BIF at a small T, seeded random inputs, batch 2
    add(Case("resnet32-bif-folded-T8", "cifar10_resnet32_qcfs", dict(timesteps=8, neuron=Neuron.BIF),
             calib=False, inputs="cifar2"))
    add(Case("resnet32-auto-cumulative-T8", "cifar10_resnet32_qcfs",
             dict(timesteps=8, neuron=Neuron.AUTO, form=Form.CUMULATIVE), calib=False, inputs="cifar2"))
    # --- sequential-MNIST quantized RNN (Scan): recurrent BIF SNN
    for T in (2, 4):
        add(Case(f"seqrnn-bif-T{T}", "seqmnist_qrnn", dict(timesteps=T, neuron=Neuron.BIF), calib=False,
                 inputs="seq16"))
    add(Case("seqrnn-auto-T2", "seqmnist_qrnn", dict(timesteps=2, neuron=Neuron.AUTO), calib=False, inputs="seq16"))
    add(Case("seqrnn-err-if", "seqmnist_qrnn", dict(timesteps=4, neuron=Neuron.IF), inputs="seq16",
             expect="error"))
    # refused by the method table since the restructure (before: silently a recurrent BIF SNN)
    add(Case("seqrnn-err-tsep", "seqmnist_qrnn", dict(timesteps=2, neuron=Neuron.TSEP), inputs="seq16",
             expect="error"))
    ids = [x.id for x in c]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return c


CASES = _cases()

# ----------------------------------------------------------------------------- data


_cache: dict = {}


def _mnist(name: str) -> np.ndarray:
    if name not in _cache:
        with np.load(DATA / name) as f:
            _cache[name] = np.ascontiguousarray(f["x"], np.float32)
    return _cache[name]


def input_name(model: onnx.ModelProto) -> str:
    inits = {i.name for i in model.graph.initializer}
    (name,) = [i.name for i in model.graph.input if i.name not in inits]
    return name


def fixed_inputs(kind: str, name: str) -> dict[str, np.ndarray]:
    if kind == "mnist16":
        return {name: _mnist("mnist_test.npz")[:16].copy()}
    if kind == "mnist4":
        return {name: _mnist("mnist_test.npz")[:4].copy()}
    if kind == "seq16":  # sequential MNIST: the digits row by row, [N, 784]
        return {name: _mnist("mnist_test.npz")[:16].reshape(16, 784).copy()}
    if kind == "cifar2":  # normalised CIFAR-like inputs, seeded
        return {name: np.random.default_rng(20261201).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    raise ValueError(kind)


def calibration(case: Case, name: str):
    if not case.calib:
        return None
    x = _mnist("mnist_calib.npz")[:CALIB_SAMPLES].copy()
    return {name: x.reshape(len(x), 784) if case.inputs == "seq16" else x}


def make_config(spec: dict):
    spec = dict(spec)
    if "threshold" in spec:
        spec["threshold"] = onnx2snn.ThresholdSpec.parse(spec["threshold"])
    spec.setdefault("batch_size", CALIB_BATCH)
    preset = spec.pop("preset", None)
    return preset_config(preset, **spec) if preset else onnx2snn.ConvertConfig(**spec)


def describe(case: Case) -> str:
    parts = []
    for k, v in case.config.items():
        if isinstance(v, tuple):
            v = ",".join(getattr(x, "value", str(x)) for x in v)
        parts.append(f"{k}={getattr(v, 'value', v)}")
    return f"{case.model}: " + " ".join(parts) + ("" if case.calib else " calibration_data=None") + f" inputs={case.inputs}"

# ----------------------------------------------------------------------------- running SNNs


def _meta(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def run_streaming(model_bytes: bytes, meta: dict, feeds: dict, timings: dict) -> dict[str, np.ndarray]:
    """Step loop of a streaming SNN on plain onnxruntime (what onnx2snn's StreamingSession does)."""
    t = time.perf_counter()
    sess = ort.InferenceSession(model_bytes, providers=CPU)
    timings["session_s"] += time.perf_counter() - t
    state_inputs = json.loads(meta["onnx2snn.state_inputs"])
    state_outputs = json.loads(meta["onnx2snn.state_outputs"])
    init = json.loads(meta.get("onnx2snn.state_init", "{}"))
    init = {k: np.asarray(v["values"], np.float32).reshape(v["shape"]) for k, v in init.items()}
    steps = int(meta.get("onnx2snn.timesteps", "1"))
    shapes = {i.name: i.shape for i in sess.get_inputs()}
    outputs = [o.name for o in sess.get_outputs() if o.name not in set(state_outputs)]
    batch = next(iter(feeds.values())).shape[0]
    state = {}
    for name in state_inputs:
        shape = [batch if k == 0 else int(d) for k, d in enumerate(shapes[name])]
        value = init.get(name)
        state[name] = (np.zeros(shape, np.float32) if value is None
                       else np.ascontiguousarray(np.broadcast_to(value, shape), np.float32))
    per_step = []
    t = time.perf_counter()
    for _ in range(steps):
        values = sess.run(outputs + state_outputs, {**feeds, **state})
        per_step.append(values[:len(outputs)])
        state = dict(zip(state_inputs, values[len(outputs):]))
    timings["run_s"] += time.perf_counter() - t
    out = {f"stream/{name}": np.stack([s[k] for s in per_step]) for k, name in enumerate(outputs)}
    out.update({f"stream-final-state/{k}": v for k, v in state.items()})
    return out


def run_session(make, feeds: dict, label: str, timings: dict) -> dict[str, np.ndarray]:
    t = time.perf_counter()
    sess = make()
    timings["session_s"] += time.perf_counter() - t
    names = [o.name for o in sess.get_outputs()]
    t = time.perf_counter()
    values = sess.run(None, feeds)
    timings["run_s"] += time.perf_counter() - t
    return {f"{label}/{n}": v for n, v in zip(names, values)}


def run_snn(model: onnx.ModelProto, form: str, feeds: dict, timings: dict) -> dict[str, np.ndarray]:
    data = model.SerializeToString()
    meta = _meta(model)
    form = meta.get("onnx2snn.form", form)
    if form == "streaming":
        return run_streaming(data, meta, feeds, timings)
    if form == "portable":  # standard ONNX only: plain onnxruntime, no op library
        return run_session(lambda: ort.InferenceSession(data, providers=CPU), feeds, "portable", timings)
    out = run_session(lambda: onnx2snn.InferenceSession(model), feeds, "default", timings)
    out.update(run_session(lambda: onnx2snn.InferenceSession(model, blocked_layout=False, chunk_bytes=None),
                           feeds, "plain", timings))
    return out

# ----------------------------------------------------------------------------- recording one case


def _plain(value):
    """A JSON-able plain value (dataclasses, enums, numpy scalars; NaN kept as a string)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (np.ndarray, np.generic)):  # enum
        return _plain(value.value)
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return f"float:{value!r}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _ops(graph: onnx.GraphProto, top: collections.Counter, sub: collections.Counter, nested: bool = False):
    for node in graph.node:
        (sub if nested else top)[f"{node.domain or 'ai.onnx'}::{node.op_type}"] += 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _ops(attr.g, top, sub, True)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _ops(g, top, sub, True)


class _Capture(logging.Handler):
    """WARNING and above from the onnx2snn loggers (message and level only: logger names follow modules)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(f"{record.levelname}: {record.getMessage()}")


@contextlib.contextmanager
def captured(into: list[str]):
    handler = _Capture()
    logger = logging.getLogger("onnx2snn")
    logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            logger.removeHandler(handler)
    into.extend(handler.records)
    into.extend(f"{w.category.__name__}: {w.message}" for w in caught)


def record_case(case: Case, repeat: int = 1) -> tuple[dict, dict[str, np.ndarray], dict]:
    """(JSON facts, arrays, timings) of one case, run ``repeat`` times: the facts and arrays of
    the first run, the fastest time of each kind; a repeat that differs is reported in
    ``facts["info_nondeterministic"]``."""
    first = _run_case(case)
    timings = dict(first[2])
    noise = []
    for _ in range(max(1, repeat) - 1):
        again = _run_case(case)
        for k, v in again[2].items():
            timings[k] = min(timings[k], v)
        noise += compare(first, again)
    if noise:
        first[0]["info_nondeterministic"] = sorted(set(noise))
    return first[0], first[1], timings


def _run_case(case: Case) -> tuple[dict, dict[str, np.ndarray], dict]:
    path = MODELS / f"{case.model}.onnx"
    source = onnx2snn.load_model(str(path))
    name = input_name(source)
    calib = calibration(case, name)
    timings = {"convert_s": 0.0, "session_s": 0.0, "run_s": 0.0}
    result = error = None
    convert_messages: list[str] = []
    t = time.perf_counter()
    with captured(convert_messages):
        try:
            config = make_config(case.config)
            result = onnx2snn.convert(source, calib, config)
        except Exception as e:  # noqa: BLE001 -- a refusal (or a new failure) is part of the behaviour
            error = e
    timings["convert_s"] = time.perf_counter() - t
    facts: dict = {"describe": describe(case), "expect": case.expect, "convert_messages": convert_messages}
    arrays: dict[str, np.ndarray] = {}
    if error is not None:
        facts["outcome"] = "error"
        facts["error"] = {"class": type(error).__name__, "message": str(error),
                          "is_onnx2snn_error": isinstance(error, onnx2snn.Onnx2SnnError),
                          "is_conversion_error": isinstance(error, onnx2snn.ConversionError)}
        if not isinstance(error, onnx2snn.Onnx2SnnError):
            facts["error"]["traceback"] = "".join(traceback.format_exception(error))
        return facts, arrays, timings
    snn = result.model
    facts["outcome"] = "ok"
    facts["exact_timesteps"] = _plain(result.exact_timesteps)
    facts["metadata"] = _meta(snn)
    top, sub = collections.Counter(), collections.Counter()
    _ops(snn.graph, top, sub)
    facts["ops"] = dict(sorted(top.items()))
    facts["subgraph_ops"] = dict(sorted(sub.items()))
    inits = {i.name for i in snn.graph.initializer}
    facts["graph_inputs"] = [i.name for i in snn.graph.input if i.name not in inits]
    facts["graph_outputs"] = [o.name for o in snn.graph.output]
    facts["layer_reports"] = _plain(list(getattr(result, "layer_reports", ()) or ()))
    facts["recurrences"] = _plain(list(getattr(result, "recurrences", ()) or ()))
    facts["config"] = _plain(result.config)
    facts["v_init_present"] = result.v_init is not None
    facts["info_model_sha256"] = hashlib.sha256(snn.SerializeToString()).hexdigest()  # information only
    for k, v in dict(result.thresholds).items():
        arrays[f"threshold/{k}"] = np.asarray(v)
    for k, v in dict(result.v_init or {}).items():
        arrays[f"v_init/{k}"] = np.asarray(v)
    facts["run_messages"] = run_messages = []
    try:
        feeds = fixed_inputs(case.inputs, name)
        with captured(run_messages):
            arrays.update(run_snn(snn, result.config.form.value, feeds, timings))
    except Exception as e:  # noqa: BLE001
        facts["outcome"] = "run-error"
        facts["error"] = {"class": type(e).__name__, "message": str(e),
                          "traceback": "".join(traceback.format_exception(e))}
    return facts, arrays, timings

# ----------------------------------------------------------------------------- file format


def save(path: Path, header: dict, cases: dict[str, tuple[dict, dict, dict]]):
    arrays, index = {}, {}
    for cid, (facts, arrs, timings) in cases.items():
        keys = {}
        for name, value in arrs.items():
            key = f"a{len(arrays):05d}"
            arrays[key] = value
            keys[name] = key
        index[cid] = {"facts": facts, "arrays": keys, "timings": timings}
    doc = json.dumps({"format": FORMAT, "header": header, "cases": index})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, __index__=np.array(doc), **arrays)
    tmp.replace(path)


def load(path: Path) -> tuple[dict, dict[str, tuple[dict, dict, dict]]]:
    with np.load(path, allow_pickle=False) as f:
        doc = json.loads(str(f["__index__"]))
        cases = {cid: (e["facts"], {name: f[key] for name, key in e["arrays"].items()}, e["timings"])
                 for cid, e in doc["cases"].items()}
    return doc["header"], cases

# ----------------------------------------------------------------------------- comparison


def _max_abs_diff(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    if a.dtype != b.dtype:
        note = f"dtype {a.dtype} vs {b.dtype}; "
    else:
        note = ""
    try:
        x, y = a.astype(np.float64), b.astype(np.float64)
        nan = np.isnan(x) != np.isnan(y)
        d = np.abs(x - y)
        d = d[np.isfinite(d)]
        count = int(np.sum(~((x == y) | (np.isnan(x) & np.isnan(y)))))
        return (note + f"max|diff| {d.max() if d.size else float('nan'):.3g}, {count}/{a.size} elements differ"
                + (f", NaN pattern differs at {int(nan.sum())}" if nan.any() else ""))
    except (TypeError, ValueError):
        return note + "non-numeric arrays differ"


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def compare(old: tuple[dict, dict, dict], new: tuple[dict, dict, dict]) -> list[str]:
    (fo, ao, _), (fn, an, _) = old, new
    diffs = []
    if fo.get("outcome") != fn.get("outcome"):
        diffs.append(f"outcome {fo.get('outcome')} -> {fn.get('outcome')}"
                     + (f" ({fn['error']['class']}: {fn['error']['message'][:200]})" if "error" in fn else ""))
    for key in sorted(set(fo) | set(fn)):
        if key in ("outcome", "describe", "expect") or key.startswith("info_"):
            continue
        if fo.get(key) != fn.get(key):
            if key == "metadata":
                mo, mn = fo.get(key) or {}, fn.get(key) or {}
                for k in sorted(set(mo) | set(mn)):
                    if mo.get(k) != mn.get(k):
                        diffs.append(f"metadata[{k}]: {str(mo.get(k))[:80]!r} -> {str(mn.get(k))[:80]!r}")
            elif key == "error":  # the traceback (paths, line numbers) is information only
                eo, en = fo.get(key) or {}, fn.get(key) or {}
                for k in sorted((set(eo) | set(en)) - {"traceback"}):
                    if eo.get(k) != en.get(k):
                        diffs.append(f"error {k}: {str(eo.get(k))[:160]!r} -> {str(en.get(k))[:160]!r}")
            elif isinstance(fo.get(key), dict) and isinstance(fn.get(key), dict):
                do, dn = fo[key], fn[key]
                for k in sorted(set(do) | set(dn)):
                    if do.get(k) != dn.get(k):
                        diffs.append(f"{key}[{k}]: {json.dumps(do.get(k))[:100]} -> {json.dumps(dn.get(k))[:100]}")
            else:
                diffs.append(f"{key}: {json.dumps(fo.get(key))[:160]} -> {json.dumps(fn.get(key))[:160]}")
    for name in sorted(set(ao) | set(an)):
        if name not in an:
            diffs.append(f"array {name}: missing now")
        elif name not in ao:
            diffs.append(f"array {name}: new")
        elif not _equal(ao[name], an[name]):
            diffs.append(f"array {name}: {_max_abs_diff(ao[name], an[name])}")
    return diffs

# ----------------------------------------------------------------------------- main


def header() -> dict:
    return {"onnx2snn_file": onnx2snn.__file__, "onnx2snn_version": getattr(onnx2snn, "__version__", "?"),
            "library": onnx2snn.get_library_path(), "onnxruntime": ort.__version__, "onnx": onnx.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0], "repo": str(REPO),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def timing_table(rows: list[tuple[str, dict, dict | None]]):
    with_old = any(old is not None for _, _, old in rows)
    width = max([len(r[0]) for r in rows] + [4])
    if with_old:
        print(f"\n{'case':<{width}}  {'convert_s':>9} {'(recorded)':>10}  {'session_s':>9} {'(recorded)':>10}  "
              f"{'run_s':>7} {'(recorded)':>10}")
    else:
        print(f"\n{'case':<{width}}  {'convert_s':>9}  {'session_s':>9}  {'run_s':>7}")
    tot = collections.Counter()
    for cid, t, old in rows:
        for k in ("convert_s", "session_s", "run_s"):
            tot[k] += t[k]
            if old is not None:
                tot["old_" + k] += old.get(k, 0.0)
        if with_old:
            o = old or {}
            print(f"{cid:<{width}}  {t['convert_s']:9.3f} {o.get('convert_s', float('nan')):10.3f}  "
                  f"{t['session_s']:9.3f} {o.get('session_s', float('nan')):10.3f}  "
                  f"{t['run_s']:7.3f} {o.get('run_s', float('nan')):10.3f}")
        else:
            print(f"{cid:<{width}}  {t['convert_s']:9.3f}  {t['session_s']:9.3f}  {t['run_s']:7.3f}")
    print("-" * (width + 60))
    if with_old:
        print(f"{'TOTAL':<{width}}  {tot['convert_s']:9.3f} {tot['old_convert_s']:10.3f}  "
              f"{tot['session_s']:9.3f} {tot['old_session_s']:10.3f}  {tot['run_s']:7.3f} {tot['old_run_s']:10.3f}")
        for k in ("convert_s", "session_s"):
            if tot["old_" + k] > 0:
                print(f"  {k}: now/recorded = {tot[k] / tot['old_' + k]:.3f}")
    else:
        print(f"{'TOTAL':<{width}}  {tot['convert_s']:9.3f}  {tot['session_s']:9.3f}  {tot['run_s']:7.3f}")


def warm_up():
    """One untimed conversion and session: imports, op library load, onnxruntime start-up."""
    t = time.perf_counter()
    model = onnx2snn.load_model(str(MODELS / "mnist_cnn.onnx"))
    result = onnx2snn.convert(model, {"input": _mnist("mnist_calib.npz")[:8]},
                              onnx2snn.ConvertConfig(timesteps=2, batch_size=8))
    onnx2snn.InferenceSession(result.model).run(None, {"input": _mnist("mnist_test.npz")[:2]})
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", choices=["record", "check"])
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--cases", action="append", metavar="SUBSTR",
                    help="only the cases whose id contains SUBSTR (repeatable: any of them)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--repeat", type=int, default=3,
                    help="run each case N times (default 3): the fastest time of each kind is kept and the repeats "
                         "must agree (else a warning: non-deterministic); the outputs compared are the first run's")
    ap.add_argument("--any-package", action="store_true",
                    help="accept an onnx2snn imported from outside this tree (e.g. site-packages)")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if not args.cases or any(s in c.id for s in args.cases)]
    if args.list:
        for c in cases:
            print(f"{c.id:<44} {'[error] ' if c.expect == 'error' else ''}{describe(c)}")
        print(f"{len(cases)} case(s)")
        return 0
    if args.command is None or args.file is None:
        ap.error("give a command (record or check) and a file, or --list")
    if not cases:
        ap.error(f"no case matches {args.cases}")
    h = header()
    print(f"onnx2snn {h['onnx2snn_version']} from {h['onnx2snn_file']}")
    if REPO not in Path(onnx2snn.__file__).resolve().parents and not args.any_package:
        print(f"error: onnx2snn was imported from {onnx2snn.__file__}, not from this tree ({REPO}); run with "
              f"PYTHONPATH={REPO} (or pass --any-package to lock the package that is importable)", file=sys.stderr)
        return 2
    print(f"op library {h['library']}; onnxruntime {h['onnxruntime']}, onnx {h['onnx']}, numpy {h['numpy']}")
    old_cases = None
    if args.command == "check":
        old_header, old_cases = load(args.file)
        print(f"checking against {args.file} (recorded {old_header.get('time')} from {old_header.get('onnx2snn_file')})")
    start = time.perf_counter()
    print(f"warm-up (untimed conversion + session): {warm_up():.2f} s")
    results, rows, bad, unexpected, all_facts, nondeterministic = {}, [], [], [], {}, []
    for case in cases:
        got = record_case(case, args.repeat)
        facts = all_facts[case.id] = got[0]
        if facts.get("info_nondeterministic"):
            nondeterministic.append(case.id)
            print(f"warning: case {case.id} is not deterministic across repeats: "
                  + "; ".join(facts["info_nondeterministic"][:6]), file=sys.stderr, flush=True)
        if facts["outcome"] != ("error" if case.expect == "error" else "ok") or (
                facts["outcome"] == "error" and not facts["error"]["is_onnx2snn_error"]):
            unexpected.append(case.id)
        if args.command == "record":
            results[case.id] = got
            what = facts["outcome"] if facts["outcome"] != "error" else f"refused: {facts['error']['class']}"
            print(f"recorded   {case.id}  ({what}; {len(got[1])} arrays)", flush=True)
            rows.append((case.id, got[2], None))
        else:
            if case.id not in old_cases:
                print(f"DIFFERENT  {case.id}: not in the recording", flush=True)
                bad.append(case.id)
                rows.append((case.id, got[2], None))
                continue
            diffs = compare(old_cases[case.id], got)
            if diffs:
                bad.append(case.id)
                print(f"DIFFERENT  {case.id}: " + "; ".join(diffs[:12])
                      + (f"; ... {len(diffs) - 12} more" if len(diffs) > 12 else ""), flush=True)
            else:
                print(f"identical  {case.id}", flush=True)
            rows.append((case.id, got[2], old_cases[case.id][2]))
    if args.command == "check" and not args.cases:
        for cid in old_cases:
            if cid not in {c.id for c in cases}:
                print(f"DIFFERENT  {cid}: recorded but no longer in the case matrix")
                bad.append(cid)
    timing_table(rows)
    elapsed = time.perf_counter() - start
    for cid in unexpected:
        f = all_facts[cid]
        print(f"warning: case {cid} did not end as expected (outcome {f['outcome']})", file=sys.stderr)
        if "error" in f:
            print(f"  {f['error']['class']}: {f['error']['message']}\n{f['error'].get('traceback', '')}", file=sys.stderr)
    if nondeterministic:
        print(f"warning: {len(nondeterministic)} case(s) not deterministic across repeats: {nondeterministic}",
              file=sys.stderr)
    if args.command == "record":
        if unexpected:
            print(f"error: {len(unexpected)} case(s) did not end as expected; nothing written: {unexpected}",
                  file=sys.stderr)
            return 1
        save(args.file, {**h, "cases_filter": args.cases}, results)
        print(f"\nrecorded {len(results)} case(s) to {args.file} in {elapsed:.1f} s")
        return 0
    print(f"\n{len(cases) - len([b for b in bad if b in {c.id for c in cases}])}/{len(cases)} identical, "
          f"{len(bad)} DIFFERENT; {elapsed:.1f} s")
    if bad:
        print("DIFFERENT: " + ", ".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
