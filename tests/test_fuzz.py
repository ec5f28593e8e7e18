"""Fuzz (issue 15): mutated models give exit 0 or 2 from ``convert`` (0, 1 or 2 from ``inspect``), never a traceback.

Each case applies one or two seeded mutations to the bundled MNIST CNN's proto (an input
dropped or renamed, a node's op or attribute broken, a dimension or dtype changed, an
initializer dropped or resized, nodes out of order, opset or IR version out of range, the
file truncated) and runs the CLI in-process on it. Exit 2 leaves no output file; exit 0
writes an SNN that loads and runs (``convert``'s own run check guarantees it; loading it
again here checks the file).

Hand-run mode with more cases (not in CI)::

    python tests/test_fuzz.py [N]    # default 400
"""
from __future__ import annotations

import contextlib
import io
import sys
import traceback
from pathlib import Path

if __name__ == "__main__":  # hand-run: import the tree this file belongs to
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import onnx
import pytest

import onnx2snn
from onnx2snn.cli.main import main as cli

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "mnist_cnn.onnx"
CASES_IN_CI = 48


def _attr_break(model, rng):
    nodes = [n for n in model.graph.node if n.attribute]
    node = nodes[rng.integers(len(nodes))]
    attr = node.attribute[rng.integers(len(node.attribute))]
    choice = rng.integers(4)
    if choice == 0:
        node.attribute.remove(attr)
    elif choice == 1 and attr.ints:
        attr.ints[rng.integers(len(attr.ints))] = int(rng.choice([0, -1, 7, 10**6]))
    elif choice == 2 and attr.ints:
        attr.ints.append(3)
    else:  # a type the op does not take
        name = attr.name
        node.attribute.remove(attr)
        node.attribute.append(onnx.helper.make_attribute(name, "broken"))
    return f"attribute '{attr.name}' of {node.op_type} broken"


def _drop_input(model, rng):
    nodes = [n for n in model.graph.node if n.input]
    node = nodes[rng.integers(len(nodes))]
    del node.input[rng.integers(len(node.input))]
    return f"an input of {node.op_type} dropped"


def _rename_input(model, rng):
    node = model.graph.node[rng.integers(len(model.graph.node))]
    if not node.input:
        return "nothing"
    node.input[rng.integers(len(node.input))] = "nowhere"
    return f"an input of {node.op_type} renamed"


def _op_type(model, rng):
    node = model.graph.node[rng.integers(len(model.graph.node))]
    old = node.op_type
    node.op_type = str(rng.choice(["Sigmoid", "NoSuchOp", "Relu", "Conv", "Gemm", "Add", "Reshape", "Softmax"]))
    return f"{old} made {node.op_type}"


def _input_dims(model, rng):
    dims = model.graph.input[0].type.tensor_type.shape.dim
    choice = rng.integers(3)
    if choice == 0:
        dims[int(rng.integers(1, len(dims)))].dim_value = int(rng.choice([1, 3, 27, 56]))
    elif choice == 1:
        del dims[int(rng.integers(len(dims)))]
    else:
        dims.add().dim_value = 2
    return "input dims changed"


def _input_dtype(model, rng):
    model.graph.input[0].type.tensor_type.elem_type = int(rng.choice(
        [onnx.TensorProto.INT64, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.STRING]))
    return "input dtype changed"


def _initializer(model, rng):
    inits = model.graph.initializer
    i = int(rng.integers(len(inits)))
    if rng.integers(2):
        name = inits[i].name
        del inits[i]
        return f"initializer '{name}' dropped"
    arr = onnx.numpy_helper.to_array(inits[i])
    flat = arr.reshape(-1)
    new = flat[: max(1, flat.size // 2)] if rng.integers(2) else np.concatenate([flat, flat])
    inits[i].CopyFrom(onnx.numpy_helper.from_array(new.reshape(-1), inits[i].name))
    return f"initializer '{inits[i].name}' resized"


def _order(model, rng):
    nodes = list(model.graph.node)
    rng.shuffle(nodes)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return "nodes shuffled"


def _outputs(model, rng):
    if rng.integers(2):
        del model.graph.output[:]
        return "graph outputs removed"
    model.graph.output.append(model.graph.output[0])
    return "graph output duplicated"


def _versions(model, rng):
    if rng.integers(2):
        model.opset_import[0].version = int(rng.choice([1, 5, 99]))
        return "opset changed"
    model.ir_version = int(rng.choice([0, 2, 99]))
    return "IR version changed"


MUTATIONS = (_attr_break, _drop_input, _rename_input, _op_type, _input_dims, _input_dtype, _initializer,
             _order, _outputs, _versions)


def mutated(seed: int) -> tuple[bytes, str]:
    """The bundled CNN's bytes after one or two mutations (or truncated), and what was done."""
    rng = np.random.default_rng(seed)
    model = onnx.load(str(MODEL))
    if seed % 17 == 16:
        data = model.SerializeToString()
        return data[: int(rng.integers(1, len(data)))], "file truncated"
    done = []
    for _ in range(1 + int(rng.integers(2))):
        try:
            done.append(MUTATIONS[int(rng.integers(len(MUTATIONS)))](model, rng))
        except (IndexError, ValueError):  # nothing left to mutate that way after the first mutation
            done.append("nothing")
    return model.SerializeToString(), "; ".join(done)


def _cli(argv: list[str]) -> tuple[int | str, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
        except BaseException:  # noqa: BLE001 - a traceback is what this test hunts
            return "traceback", traceback.format_exc(limit=-4)
    return code, err.getvalue()


def run_case(seed: int, tmp: Path, data: Path) -> str | None:
    """None when every command behaved; else what went wrong."""
    blob, what = mutated(seed)
    path = tmp / f"m{seed}.onnx"
    path.write_bytes(blob)
    out = tmp / f"s{seed}.onnx"
    code, err = _cli(["inspect", str(path)])
    if code not in (0, 1, 2) or "Traceback" in err:
        return f"seed {seed} ({what}): inspect gave {code}\n{err}"
    code, err = _cli(["convert", str(path), "-o", str(out), "--calibration-data", str(data), "--timesteps", "2", "-q"])
    if code not in (0, 2) or "Traceback" in err or "usage:" in err:
        return f"seed {seed} ({what}): convert gave {code}\n{err}"
    if code == 2 and (out.exists() or any(p.name.startswith(f".s{seed}") for p in tmp.iterdir())):
        return f"seed {seed} ({what}): exit 2 but something was written"
    if code == 0:
        onnx2snn.InferenceSession(str(out))
    if path.read_bytes() != blob:
        return f"seed {seed} ({what}): the input model was modified"
    return None


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    with np.load(REPO / "models" / "data" / "mnist_calib.npz") as npz:
        x = npz["x"][:16]
    path = tmp_path_factory.mktemp("fuzz") / "calib.npz"
    np.savez(path, x=x)
    return path


@pytest.mark.parametrize("chunk", range(4))
def test_mutated_models_never_give_a_traceback(chunk, tmp_path, small_data):
    seeds = range(chunk, CASES_IN_CI, 4)
    bad = [b for b in (run_case(s, tmp_path, small_data) for s in seeds) if b]
    assert not bad, "\n\n".join(bad)


def test_mutations_are_real(tmp_path, small_data):
    """The model converts unmutated (exit 0, the SNN written); the mutations change it, and the
    errors they give are onnx2snn's one line, not the argument parser's."""
    out = tmp_path / "snn.onnx"
    code, err = _cli(["convert", str(MODEL), "-o", str(out), "--calibration-data", str(small_data),
                      "--timesteps", "2", "-q"])
    assert code == 0 and out.exists(), err
    original = MODEL.read_bytes()
    assert all(mutated(s)[0] != original for s in range(20))
    codes = []
    for seed in range(12):
        blob, _ = mutated(seed)
        (tmp_path / "m.onnx").write_bytes(blob)
        code, err = _cli(["convert", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.onnx"),
                          "--calibration-data", str(small_data), "--timesteps", "2", "-q"])
        codes.append(code)
        if code == 2:
            assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert 2 in codes


def _calib():
    with np.load(REPO / "models" / "data" / "mnist_calib.npz") as npz:
        return {"input": npz["x"][:8]}


def test_an_initializer_of_the_wrong_size_is_refused_before_work():
    """Loads in onnxruntime but fails when run: found by the one run before any work."""
    model = onnx.load(str(MODEL))
    init = next(t for t in model.graph.initializer if t.name == "fc.bias")
    init.CopyFrom(onnx.numpy_helper.from_array(np.zeros(5, np.float32), "fc.bias"))
    with pytest.raises(onnx2snn.errors.ConversionError, match=r"the model itself does not run in onnxruntime .*Gemm"):
        onnx2snn.convert(model, _calib(), onnx2snn.ConvertConfig(timesteps=2))


def test_an_input_of_the_wrong_type_is_refused_as_onnxruntime_rejects_it():
    model = onnx.load(str(MODEL))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    with pytest.raises(onnx2snn.errors.ConversionError, match=r"the model itself does not run in onnxruntime .*Conv"):
        onnx2snn.convert(model, _calib(), onnx2snn.ConvertConfig(timesteps=2))


def test_an_op_that_does_not_convert_is_named_even_when_onnxruntime_rejects_the_model():
    """The support check's message (every node, its op) wins over onnxruntime's reason."""
    model = onnx.load(str(MODEL))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    [n for n in model.graph.node if n.op_type == "Relu"][1].op_type = "Tanh"  # between two neurons
    with pytest.raises(onnx2snn.errors.UnsupportedOpError, match=r"\(Tanh\)"):
        onnx2snn.convert(model, _calib(), onnx2snn.ConvertConfig(timesteps=2))


def test_a_graph_output_listed_twice_is_refused():
    model = onnx.load(str(MODEL))
    model.graph.output.append(model.graph.output[0])
    with pytest.raises(onnx2snn.errors.ConversionError, match="graph output 'logits' is listed more than once"):
        onnx2snn.convert(model, _calib(), onnx2snn.ConvertConfig(timesteps=2))


if __name__ == "__main__":
    import tempfile

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        with np.load(REPO / "models" / "data" / "mnist_calib.npz") as npz:
            np.savez(tmp / "calib.npz", x=npz["x"][:16])
        failures = [b for b in (run_case(s, tmp, tmp / "calib.npz") for s in range(n)) if b]
    print("\n\n".join(failures))
    print(f"{n} mutated models: {n - len(failures)} behaved, {len(failures)} did not")
    sys.exit(1 if failures else 0)
