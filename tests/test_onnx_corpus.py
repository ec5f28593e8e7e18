"""Never crash (issue 15): the onnx backend's test models.

The node test cases (regenerated from the installed onnx's generators), the 140 models of its
older ``pytorch-converted``, ``pytorch-operator`` and ``simple`` data folders (bundled in
``tests/data/onnx_backend_models.zip``) and its model cases: each either converts into an SNN
that loads and runs in ``onnx2snn.InferenceSession`` on the case's inputs, with the ANN's outputs
(their names, shapes and dtypes; their values too where the SNN has no neuron), or is refused with
one :class:`onnx2snn.errors.Onnx2SnnError`; no other exception, from ``convert`` or from
``inspect_model``. The fast tests run fixed subsets (the kinds that once crashed, every 60th node
case sorted by name, every 3rd older model); the targeted tests below pin each defect.

Hand-run mode over every case (not in CI; about 40 s)::

    python tests/test_onnx_corpus.py --all [-v]

prints the counts: converted and runs / refused cleanly / crashed / SNN fails to run / an SNN
without neurons whose outputs differ from the ANN's.
"""
from __future__ import annotations

import contextlib
import functools
import io
import logging
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

if __name__ == "__main__":  # hand-run: import the tree this file belongs to
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(1, str(Path(__file__).resolve().parent))

import numpy as np
import onnx
import onnx.helper as oh
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest

import onnx2snn
from onnx2snn.core.graph import export_graph, import_model
from onnx2snn.errors import ConversionError, Onnx2SnnError, UnsupportedOpError
from onnx2snn.inspection import inspect_model
from onnx2snn.io import compatible_ir_version
from onnx2snn.passes.remove_identity import RemoveIdentityPass
from onnx2snn.recipes.base import neuron_layers
from onnx2snn.snn.readout import ReadoutPass

REPO = Path(__file__).resolve().parents[1]
CONFIG = dict(timesteps=2)

# the kinds issue 15 found crashing, by case name
FORMERLY_CRASHING = (
    # Dropout whose output is a graph output (remove_identity)
    "test_dropout_default", "test_dropout_default_mask", "test_dropout_default_mask_ratio", "test_dropout_default_old",
    "test_dropout_default_ratio", "test_dropout_random_old", "test_training_dropout", "test_training_dropout_default",
    "test_training_dropout_default_mask", "test_training_dropout_mask", "test_training_dropout_zero_ratio",
    "test_training_dropout_zero_ratio_mask",
    # rank-0 inputs (check_support, inspect)
    "test_blackmanwindow_expanded", "test_blackmanwindow_symmetric_expanded", "test_hammingwindow_expanded",
    "test_hammingwindow_symmetric_expanded", "test_hannwindow_expanded", "test_hannwindow_symmetric_expanded",
    "test_dynamicquantizelinear_expanded",
    # a graph without inputs (readout), an optional input (graphsurgeon's export), IR 3 (initializers as inputs)
    "test_constant", "test_identity_opt", "test_scan_sum",
)
EVERY = 60


@contextlib.contextmanager
def _quiet():
    """No warnings, onnxruntime and graphsurgeon errors only (restored after)."""
    from onnx_graphsurgeon.logger import G_LOGGER

    severity, level = G_LOGGER.severity, logging.getLogger("onnx2snn").level
    G_LOGGER.severity = G_LOGGER.ERROR
    logging.getLogger("onnx2snn").setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        ort.set_default_logger_severity(2)
        G_LOGGER.severity = severity
        logging.getLogger("onnx2snn").setLevel(level)


@functools.lru_cache(maxsize=1)
def all_cases() -> dict:
    """name -> (model, first data set's inputs) of every node test case, sorted by name."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    out = {}
    for case in sorted(cases, key=lambda c: c.name):
        if case.model is None:
            continue
        inputs = list(case.data_sets[0][0]) if case.data_sets else []
        out[case.name] = (case.model, inputs)
    return out


def fast_subset() -> list[str]:
    names = list(all_cases())
    picked = [n for n in FORMERLY_CRASHING if n in all_cases()] + names[::EVERY]
    return list(dict.fromkeys(picked))


def prepared(name: str) -> tuple[onnx.ModelProto, dict]:
    """The case's model (IR capped to what onnxruntime loads) and its feeds keyed by input name."""
    source, inputs = all_cases()[name]
    model = onnx.ModelProto()
    model.CopyFrom(source)
    model.ir_version = compatible_ir_version(model)
    inits = {t.name for t in model.graph.initializer}
    names = [vi.name for vi in model.graph.input if vi.name not in inits]
    return model, dict(zip(names, inputs))


CONVERTED, REFUSED, CRASHED, SNN_FAILS, DIFFERS = (
    "converted and runs", "refused cleanly", "crashed", "SNN fails to run", "SNN without neurons differs")
OUTCOMES = (CONVERTED, REFUSED, CRASHED, SNN_FAILS, DIFFERS)


def _ann_outputs(model: onnx.ModelProto, feeds: dict) -> list | None:
    """The ANN's outputs under plain onnxruntime (None: it does not run there)."""
    try:
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    except Exception:  # noqa: BLE001 - an ANN onnxruntime cannot run has nothing to compare with
        return None


def outcome(name: str) -> tuple[str, str]:
    """(one of OUTCOMES, details) of the node case ``name``: see :func:`model_outcome`."""
    return model_outcome(*prepared(name))


def model_outcome(model: onnx.ModelProto, feeds: dict) -> tuple[str, str]:
    """(one of OUTCOMES, details) of ``inspect_model`` then ``convert`` then a run of the SNN.

    An SNN without neurons (a graph with no activation to spike) computes the ANN itself, averaged
    over identical steps: its outputs must equal the ANN's. With neurons, every ANN output is there
    with its shape and dtype.
    """
    try:
        inspect_model(model)
    except Onnx2SnnError:
        pass
    except Exception:  # noqa: BLE001 - what this test hunts
        return CRASHED, "inspect_model: " + traceback.format_exc(limit=-3)
    try:
        result = onnx2snn.convert(model, feeds, onnx2snn.ConvertConfig(**CONFIG))
    except Onnx2SnnError as exc:
        return REFUSED, f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001
        return CRASHED, "convert: " + traceback.format_exc(limit=-3)
    names = [o.name for o in model.graph.output]
    try:
        got = onnx2snn.InferenceSession(result.model).run(names, feeds)
    except Exception:  # noqa: BLE001
        return SNN_FAILS, traceback.format_exc(limit=-2)
    want = _ann_outputs(model, feeds)
    for name, g, w in zip(names, got, want or []):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape or g.dtype != w.dtype:
            return DIFFERS, f"output '{name}': {g.dtype}{list(g.shape)} instead of {w.dtype}{list(w.shape)}"
        if not neuron_layers(result.model) and not np.allclose(g, w, rtol=1e-5, atol=1e-5, equal_nan=True):
            return DIFFERS, f"output '{name}' differs from the ANN's by {np.max(np.abs(g - w)):.3g}"
    return CONVERTED, ""


# --- the older folders: pytorch-converted, pytorch-operator, simple; the model cases ----------

LEGACY = REPO / "tests" / "data" / "onnx_backend_models.zip"


def synthetic_feeds(model: onnx.ModelProto, seed: int = 0) -> dict:
    """Seeded inputs of the declared shapes (a symbolic dimension is 2) and dtypes."""
    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else 2 for d in tt.shape.dim]
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
        feeds[vi.name] = (rng.uniform(-1, 1, shape).astype(dtype) if dtype.kind == "f"
                          else rng.random(shape) < 0.5 if dtype == np.bool_
                          else rng.integers(0, 3, shape).astype(dtype) if dtype.kind in "iu"
                          else np.full(shape, "a", dtype=object))
    return feeds


@functools.lru_cache(maxsize=1)
def legacy_cases() -> dict:
    """name -> (model, feeds): the 140 models of onnx's pytorch-converted, pytorch-operator and
    simple data folders (bundled, see tests/data/README.md; synthetic inputs) and the model
    cases onnx's generators still write (onnx.backend.test.case.model, their own inputs)."""
    import zipfile

    from onnx.backend.test.case.model import collect_testcases

    out = {}
    with zipfile.ZipFile(LEGACY) as z:
        for entry in sorted(z.namelist()):
            model = onnx.load_from_string(z.read(entry))
            model.ir_version = compatible_ir_version(model)
            out[entry.removesuffix(".onnx")] = (model, synthetic_feeds(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    for case in sorted(cases, key=lambda c: c.name):
        if case.model is None:
            continue
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        model.ir_version = compatible_ir_version(model)
        inits = {t.name for t in model.graph.initializer}
        names = [vi.name for vi in model.graph.input if vi.name not in inits]
        inputs = list(case.data_sets[0][0]) if case.data_sets else []
        feeds = dict(zip(names, inputs)) if len(inputs) == len(names) else synthetic_feeds(model)
        out[f"model/{case.name}"] = (model, feeds)
    return out


# --- (a) the fixed subset ---------------------------------------------------------------------

def test_node_cases_convert_or_refuse_cleanly():
    subset = fast_subset()
    assert len(subset) >= 40
    bad = {}
    counts = {CONVERTED: 0, REFUSED: 0}
    for name in subset:
        with _quiet():
            kind, details = outcome(name)
        if kind in (CRASHED, SNN_FAILS, DIFFERS):
            bad[name] = f"{kind}: {details}"
        else:
            counts[kind] += 1
    assert not bad, "\n\n".join(f"{k}: {v}" for k, v in bad.items())
    assert counts[CONVERTED] > 0 and counts[REFUSED] > 0


# --- (b) one test per defect -------------------------------------------------------------------

def _relu_dropout(dropout_outputs=("y",), inputs=(), opset=13) -> onnx.ModelProto:
    nodes = [oh.make_node("Relu", ["x"], ["h"]), oh.make_node("Dropout", ["h", *inputs], list(dropout_outputs))]
    outs = [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])]
    if len(dropout_outputs) > 1:
        outs.append(oh.make_tensor_value_info(dropout_outputs[1], onnx.TensorProto.BOOL, ["N", 4]))
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])], outs,
                          [onnx.numpy_helper.from_array(np.array(True), "train")] if "train" in inputs else [])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _x(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


def test_dropout_writing_a_graph_output_becomes_identity_and_converts():
    model = _relu_dropout()
    graph = import_model(model)
    assert RemoveIdentityPass()(graph).count == 1
    assert [n.op for n in graph.nodes] == ["Relu", "Identity"] and graph.outputs[0].name == "y"
    x = _x(8, 4)
    snn = onnx2snn.convert(model, {"x": x}, onnx2snn.ConvertConfig(timesteps=4)).model
    y = onnx2snn.InferenceSession(snn).run(["y"], {"x": x})[0]
    assert y.shape == (8, 4)


def _inside(model: onnx.ModelProto) -> onnx.ModelProto:
    """The Dropout's output feeds a neuron (after the last layer it would run once on the averages)."""
    model.graph.node.append(oh.make_node("Relu", ["y"], ["z"]))
    model.graph.output[0].name = "z"
    return model


def test_dropout_not_an_identity_is_refused_naming_it():
    mask = _inside(_relu_dropout(("y", "mask")))  # the mask is a graph output
    with pytest.raises(UnsupportedOpError, match=r"\(Dropout\): Dropout whose mask output") as exc:
        onnx2snn.convert(mask, {"x": _x(8, 4)}, onnx2snn.ConvertConfig(**CONFIG))
    assert [op for _, op, _ in exc.value.offenders] == ["Dropout"]
    training = _inside(_relu_dropout(inputs=("", "train")))  # training_mode = True: random, not an identity
    with pytest.raises(UnsupportedOpError, match="Dropout in training mode"):
        onnx2snn.convert(training, {"x": _x(8, 4)}, onnx2snn.ConvertConfig(**CONFIG))
    assert "Dropout in training mode" in " ".join(inspect_model(training).offenders.values())


def _scalar_input_model() -> onnx.ModelProto:
    nodes = [oh.make_node("Mul", ["x", "s"], ["h"]), oh.make_node("Relu", ["h"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4]),
                                       oh.make_tensor_value_info("s", onnx.TensorProto.FLOAT, []),
                                       oh.make_tensor_value_info("unused", onnx.TensorProto.FLOAT, [])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_rank0_inputs_are_refused_naming_each_reader():
    model = _scalar_input_model()
    feeds = {"x": _x(8, 4), "s": np.float32(2.0), "unused": np.float32(0.0)}
    with pytest.raises(UnsupportedOpError, match="rank 0") as exc:
        onnx2snn.convert(model, feeds, onnx2snn.ConvertConfig(**CONFIG))
    assert {(name, op) for name, op, _ in exc.value.offenders} == {("<unnamed Mul>", "Mul"),
                                                                   ("<input unused>", "graph input")}
    report = inspect_model(model)
    assert not report.convertible and "rank 0" in report.offenders["<unnamed Mul>"]


def test_cli_inspect_of_a_window_function_graph_reports_no_traceback(tmp_path):
    model, _ = prepared("test_hannwindow_expanded")
    path = tmp_path / "hann.onnx"
    onnx.save(model, str(path))
    proc = subprocess.run([sys.executable, "-m", "onnx2snn", "inspect", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "rank 0" in proc.stdout


def test_a_graph_without_inputs_is_refused():
    model, feeds = prepared("test_constant")
    assert not feeds
    with pytest.raises(Onnx2SnnError, match="does not depend on any model input"):
        onnx2snn.convert(model, feeds, onnx2snn.ConvertConfig(**CONFIG))
    assert not inspect_model(model).convertible
    graph = gs.Graph(outputs=[gs.Constant("c", np.ones((1, 2), np.float32))], opset=13)  # the readout alone
    with pytest.raises(ConversionError, match="graph output 'c' does not depend on any model input"):
        ReadoutPass(2)(graph)


def test_an_optional_input_is_refused():
    model, feeds = prepared("test_identity_opt")
    with pytest.raises(ConversionError, match=r"graph input 'opt_in' \(optional\)"):
        onnx2snn.convert(model, feeds, onnx2snn.ConvertConfig(**CONFIG))
    with pytest.raises(ConversionError, match="tensors"):
        import_model(model)


def _ir3(model: onnx.ModelProto) -> onnx.ModelProto:
    model.ir_version = 3
    del model.opset_import[:]
    model.opset_import.append(oh.make_opsetid("", 8))
    return model


def test_ir3_keeps_initializers_listed_as_graph_inputs(tmp_path):
    w = _x(4, 3, seed=1)
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Relu", ["h"], ["y"])], "g",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4]),
                           oh.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [4, 3])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
                          [onnx.numpy_helper.from_array(w, "W")])
    model = _ir3(oh.make_model(graph))
    onnx.checker.check_model(model)
    x = _x(8, 4)
    snn = onnx2snn.convert(model, {"x": x}, onnx2snn.ConvertConfig(**CONFIG)).model
    assert snn.ir_version == 3
    inputs = {vi.name for vi in snn.graph.input}
    assert {t.name for t in snn.graph.initializer} <= inputs
    onnx.checker.check_model(snn, full_check=True)
    onnx2snn.save_model(snn, tmp_path / "snn.onnx")
    assert onnx2snn.InferenceSession(str(tmp_path / "snn.onnx")).run(["y"], {"x": x})[0].shape == (8, 3)


def test_ir3_subgraph_initializers_become_constants():
    """A Scan's body cannot list its initializers as inputs (they are the Scan's): Constant nodes instead."""
    body = oh.make_graph([oh.make_node("Mul", ["next", "c"], ["m"]), oh.make_node("Add", ["s_in", "m"], ["s_out"]),
                          oh.make_node("Identity", ["s_out"], ["scan_out"])], "body",
                         [oh.make_tensor_value_info("s_in", onnx.TensorProto.FLOAT, [2]),
                          oh.make_tensor_value_info("next", onnx.TensorProto.FLOAT, [2])],
                         [oh.make_tensor_value_info("s_out", onnx.TensorProto.FLOAT, [2]),
                          oh.make_tensor_value_info("scan_out", onnx.TensorProto.FLOAT, [2])])
    graph = oh.make_graph([oh.make_node("Scan", ["", "init", "x"], ["y", "z"], body=body, num_scan_inputs=1)], "g",
                          [oh.make_tensor_value_info("init", onnx.TensorProto.FLOAT, [1, 2]),
                           oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 2])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2]),
                           oh.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [1, 3, 2])])
    model = _ir3(oh.make_model(graph))
    g = import_model(model)
    g.nodes[0].attrs["body"].nodes[0].inputs[1] = gs.Constant("c", np.full(2, 3.0, np.float32))  # body initializer
    out = export_graph(g, like=model)
    onnx.checker.check_model(out, full_check=True)
    scan_body = out.graph.node[0].attribute[0].g
    assert not scan_body.initializer and scan_body.node[0].op_type == "Constant"
    feeds = {"init": np.zeros((1, 2), np.float32), "x": np.ones((1, 3, 2), np.float32)}
    y = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], feeds)[0]
    np.testing.assert_allclose(y, [[9.0, 9.0]])


def _snn(form: str = "folded") -> onnx.ModelProto:
    w = _x(4, 3, seed=1)
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "W"], ["h"]), oh.make_node("Relu", ["h"], ["y"])], "g",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
                          [onnx.numpy_helper.from_array(w, "W")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    return onnx2snn.convert(model, {"x": _x(8, 4)}, onnx2snn.ConvertConfig(timesteps=2, form=form)).model


@pytest.mark.parametrize("form", ["folded", "streaming"])
def test_an_snn_is_said_to_be_one(form):
    snn = _snn(form)
    for call in (lambda: inspect_model(snn),
                 lambda: onnx2snn.convert(snn, {"x": _x(8, 4)}, onnx2snn.ConvertConfig(**CONFIG))):
        with pytest.raises(ConversionError, match="already an SNN converted by onnx2snn") as exc:
            call()
        assert "Replace these layers" not in str(exc.value)
        if form == "folded":
            assert "(IFNeuron)" in str(exc.value)


def test_inspect_of_a_portable_snn_says_it_is_one():
    """The portable form has standard ops only (a Scan over the steps): its metadata says what it is."""
    snn = _snn("portable")
    assert not any(n.domain == "onnx2snn" for n in snn.graph.node)
    with pytest.raises(ConversionError, match="already an SNN converted by onnx2snn .it carries"):
        inspect_model(snn)


def test_cli_on_an_snn_says_it_is_one(tmp_path):
    path = tmp_path / "snn.onnx"
    onnx2snn.save_model(_snn(), path)
    proc = subprocess.run([sys.executable, "-m", "onnx2snn", "inspect", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "already an SNN converted by onnx2snn" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_older_folders_and_model_cases_convert_or_refuse_cleanly():
    """Every 3rd model of the older folders and model cases (all of them: --all)."""
    cases = legacy_cases()
    assert len([n for n in cases if not n.startswith("model/")]) == 140
    bad, counts = {}, {CONVERTED: 0, REFUSED: 0}
    for name in list(cases)[::3]:
        with _quiet():
            kind, details = model_outcome(*cases[name])
        if kind in counts:
            counts[kind] += 1
        else:
            bad[name] = f"{kind}: {details}"
    assert not bad, "\n\n".join(f"{k}: {v}" for k, v in bad.items())
    assert counts[CONVERTED] > 10 and counts[REFUSED] > 10


def test_a_model_onnxruntime_cannot_run_is_refused_as_such():
    """An opset-6 Gemm (onnxruntime has no kernel for it): the model's fault, named as such, not a bug."""
    model, feeds = legacy_cases()["pytorch-converted/test_Linear"]
    with pytest.raises(ConversionError, match=r"the model itself does not run in onnxruntime .*Gemm\(6\)"):
        onnx2snn.convert(model, feeds, onnx2snn.ConvertConfig(**CONFIG))


# --- hand-run mode -----------------------------------------------------------------------------

def _count(cases: dict, outcome_of, verbose: bool, label: str) -> bool:
    counts = dict.fromkeys(OUTCOMES, 0)
    failures = []
    for name, case in cases.items():
        with _quiet(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            kind, details = outcome_of(name, case)
        counts[kind] += 1
        if kind in (CRASHED, SNN_FAILS, DIFFERS):
            failures.append((name, kind, details))
    for name, kind, details in failures:
        print(f"{kind}: {name}" + (f"\n{details}" if verbose else f": {details.strip().splitlines()[-1]}"))
    print(f"{len(cases)} {label} (onnx {onnx.__version__}): " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    return bool(failures)


def main(argv: list[str]) -> int:
    if "--all" not in argv:
        print(__doc__)
        return 2
    verbose = "-v" in argv
    bad = _count(all_cases(), lambda name, _: outcome(name), verbose, "node test cases")
    bad |= _count(legacy_cases(), lambda _, case: model_outcome(*case), verbose,
                  "models of the pytorch-converted, pytorch-operator and simple folders and model cases")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
