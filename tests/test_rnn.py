"""Quantized RNNs (Scan over a QCFS cell) → recurrent BIF SNNs: equality with the quantized RNN after
T* sub-steps per element, the running output, the CLI, and the refusals."""
from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import onnx2snn
from onnx2snn.cli.main import main
from onnx2snn.config import ConvertConfig
from onnx2snn.errors import ConfigError, UnsupportedOpError

from conftest import MODELS, run

F32 = np.float32
TOL = 1e-5  # |logit difference| allowed: float32 rounding of the same real-arithmetic result
# In practice the logits are bit-identical (the hidden state is handed on as count·θ, see
# the readout of spike counts, snn/readout.py); a pre-activation within rounding distance of a level boundary could
# still put one level apart on some platform, hence the tolerance and the "most rows" checks.


def _init(name, value, dtype=F32):
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def qcfs_nodes(p: str, z: str, out: str, levels: int, lam: float, act: str = "qcfs"):
    """Nodes and initializers of out = Q(z) (QCFS chain); ``act`` 'relu' / 'tanh' for refusal tests."""
    if act == "relu":
        return [oh.make_node("Relu", [z], [out], name=p + "relu")], []
    if act == "tanh":
        return [oh.make_node("Tanh", [z], [out], name=p + "tanh")], []
    nodes = [oh.make_node("Div", [z, p + "lam"], [p + "a"], name=p + "div"),
             oh.make_node("Clip", [p + "a", p + "zero", p + "one"], [p + "b"], name=p + "clip"),
             oh.make_node("Mul", [p + "b", p + "L"], [p + "c"], name=p + "mul"),
             oh.make_node("Add", [p + "c", p + "half"], [p + "d"], name=p + "add"),
             oh.make_node("Floor", [p + "d"], [p + "e"], name=p + "floor"),
             oh.make_node("Div", [p + "e", p + "L"], [p + "f"], name=p + "div_L"),
             oh.make_node("Mul", [p + "f", p + "lam"], [out], name=p + "mul_lam")]
    inits = [_init(p + "lam", lam), _init(p + "zero", 0), _init(p + "one", 1), _init(p + "L", levels),
             _init(p + "half", 0.5)]
    return nodes, inits


def cell_body(rng, hidden, features, levels, lam, prefix="", act="qcfs", scan_output=False):
    """h_next = Q((x·Wᵀ + h·Uᵀ) + b) as a Scan body (inputs h_prev, x_s)."""
    p = prefix
    q_nodes, q_inits = qcfs_nodes(p + "q_", p + "pre", p + "h_next", levels, lam, act)
    nodes = [oh.make_node("MatMul", [p + "x_s", p + "W"], [p + "xw"], name=p + "input_weights"),
             oh.make_node("MatMul", [p + "h_prev", p + "U"], [p + "hu"], name=p + "recurrent_weights"),
             oh.make_node("Add", [p + "xw", p + "hu"], [p + "s"], name=p + "sum"),
             oh.make_node("Add", [p + "s", p + "b"], [p + "pre"], name=p + "bias")] + q_nodes
    inits = [_init(p + "W", rng.normal(0, 1.0, (features, hidden))),
             _init(p + "U", np.eye(hidden) * 0.6 + rng.normal(0, 0.3, (hidden, hidden))),
             _init(p + "b", rng.normal(0, 0.2, hidden))] + q_inits
    outputs = [oh.make_tensor_value_info(p + "h_next", onnx.TensorProto.FLOAT, ["N", hidden])]
    if scan_output:  # the hidden state of every element, also as a scan output
        nodes.append(oh.make_node("Identity", [p + "h_next"], [p + "h_seq"], name=p + "copy"))
        outputs.append(oh.make_tensor_value_info(p + "h_seq", onnx.TensorProto.FLOAT, ["N", hidden]))
    return oh.make_graph(nodes, p + "cell", [
        oh.make_tensor_value_info(p + "h_prev", onnx.TensorProto.FLOAT, ["N", hidden]),
        oh.make_tensor_value_info(p + "x_s", onnx.TensorProto.FLOAT, ["N", features])], outputs, inits)


def _model(nodes, inits, seq, features, classes, opset=13, output="y"):
    graph = oh.make_graph(nodes, "qrnn", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                    ["N", seq, features])],
                          [oh.make_tensor_value_info(output, onnx.TensorProto.FLOAT, ["N", classes])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _h0(hidden, name="h0", like="x"):
    return ([oh.make_node("Shape", [like], [name + "_xshape"], name=name + "/shape"),
             oh.make_node("Gather", [name + "_xshape", "zero_index"], [name + "_batch"], axis=0, name=name + "/batch"),
             oh.make_node("Concat", [name + "_batch", name + "_hidden"], [name + "_shape"], axis=0,
                          name=name + "/concat"),
             oh.make_node("ConstantOfShape", [name + "_shape"], [name], name=name + "/zeros",
                          value=numpy_helper.from_array(np.zeros(1, F32), "zero"))],
            [_init(name + "_hidden", [hidden], np.int64)])


def qrnn(hidden=6, seq=8, features=2, levels=4, lam=1.3, classes=3, seed=0, act="qcfs", readout=True):
    """x [N, S, F] → Scan over axis 1 with the quantized cell → Gemm readout of h_S (y [N, classes])."""
    rng = np.random.default_rng(seed)
    h0_nodes, h0_inits = _h0(hidden)
    nodes = h0_nodes + [oh.make_node("Scan", ["h0", "x"], ["h_last"], name="rnn", num_scan_inputs=1,
                                     scan_input_axes=[1], body=cell_body(rng, hidden, features, levels, lam, act=act))]
    inits = h0_inits + [_init("zero_index", [0], np.int64)]
    if readout:
        nodes.append(oh.make_node("Gemm", ["h_last", "V", "c"], ["y"], name="readout"))
        inits += [_init("V", rng.normal(0, 1, (hidden, classes))), _init("c", rng.normal(0, 0.5, classes))]
    return _model(nodes, inits, seq, features, classes if readout else hidden, output="y" if readout else "h_last")


def stacked_qrnn(hidden=5, seq=6, features=2, levels=4, seed=1):
    """Two quantized layers: the first Scan's scan output (every h_s) is the second Scan's sequence."""
    rng = np.random.default_rng(seed)
    n1, i1 = _h0(hidden, "h0a")
    n2, i2 = _h0(hidden, "h0b")
    nodes = n1 + n2 + [
        oh.make_node("Scan", ["h0a", "x"], ["h_a", "seq_a"], name="layer1", num_scan_inputs=1,
                     scan_input_axes=[1], scan_output_axes=[1],
                     body=cell_body(rng, hidden, features, levels, 1.5, "l1_", scan_output=True)),
        oh.make_node("Scan", ["h0b", "seq_a"], ["h_b"], name="layer2", num_scan_inputs=1, scan_input_axes=[1],
                     body=cell_body(rng, hidden, hidden, levels, 2.0, "l2_")),
        oh.make_node("Gemm", ["h_b", "V", "c"], ["y"], name="readout")]
    inits = i1 + i2 + [_init("zero_index", [0], np.int64), _init("V", rng.normal(0, 1, (hidden, 3))),
                       _init("c", rng.normal(0, 0.5, 3))]
    return _model(nodes, inits, seq, features, 3)


def _x(n=32, seq=8, features=2, seed=5):
    return np.random.default_rng(seed).uniform(0, 1, (n, seq, features)).astype(F32)


def _snn(result):
    return onnx2snn.InferenceSession(result.model.SerializeToString())


@pytest.mark.parametrize("levels,hidden,seq", [(4, 6, 8), (8, 4, 5), (2, 8, 10)])
def test_recurrent_bif_snn_equals_quantized_rnn(levels, hidden, seq):
    model = qrnn(hidden=hidden, seq=seq, levels=levels, seed=levels)
    x = _x(seq=seq)
    (want,) = run(model, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=levels, neuron="bif"))
    (rec,) = result.recurrences
    assert (rec.node, rec.substeps, rec.exact_substeps, rec.sequence_length, rec.neurons) == \
        ("rnn", levels, levels, seq, 1)
    assert rec.total_steps == seq * levels and result.exact_timesteps == levels
    scan = next(n for n in result.model.graph.node if n.op_type == "Scan")
    body_ops = [n.op_type for n in scan.attribute[0].g.node]
    assert body_ops.count("BIFNeuron") == 1 and "Floor" not in body_ops
    onnx.checker.check_model(result.model)
    got, running = _snn(result).run(None, {"x": x})
    assert (got.argmax(1) == want.argmax(1)).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert (got == want).all(1).mean() >= 0.9
    assert running.shape == (levels, len(x), want.shape[1])
    np.testing.assert_array_equal(running[-1], got)  # the running output ends at the output
    # with T_s = T* - 1 the hidden states are handed on before they settle
    short = onnx2snn.convert(model, None, ConvertConfig(timesteps=levels - 1, neuron="bif")) if levels > 1 else None
    if short is not None:
        assert np.abs(_snn(short).run(None, {"x": x})[0] - want).max() > 1e-3


def test_more_substeps_change_nothing_and_metadata():
    model = qrnn()
    x = _x()
    (want,) = run(model, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=7))  # auto → bif; T* = 4
    got, running = _snn(result).run(None, {"x": x})
    np.testing.assert_allclose(got, want, atol=TOL)
    np.testing.assert_allclose(running[3:], np.broadcast_to(want, running[3:].shape), atol=TOL)
    meta = {p.key: p.value for p in result.model.metadata_props}
    assert meta["onnx2snn.neuron"] == "bif" and meta["onnx2snn.timesteps"] == "7"
    assert meta["onnx2snn.exact_after_timesteps"] == "4"
    (rec,) = json.loads(meta["onnx2snn.recurrent"])
    assert rec["total_steps"] == 8 * 7 and rec["exact_substeps"] == 4
    assert json.loads(meta["onnx2snn.running_mean_outputs"]) == ["y_running_mean"]
    assert set(json.loads(meta["onnx2snn.quantizers"])["rnn"]) == {"h_next"}
    assert set(result.thresholds) == {"rnn/h_next"}
    np.testing.assert_allclose(result.thresholds["rnn/h_next"], F32(1.3) / 4)


def test_stacked_layers_and_scan_outputs():
    model = stacked_qrnn()
    x = _x(seq=6)
    (want,) = run(model, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=4, neuron="bif"))
    assert [r.node for r in result.recurrences] == ["layer1", "layer2"]
    got = _snn(result).run(["y"], {"x": x})[0]
    assert (got.argmax(1) == want.argmax(1)).all()
    np.testing.assert_allclose(got, want, atol=TOL)


def test_scan_output_copy_of_the_hidden_state_is_bit_identical():
    """A scan output that copies the hidden state (Identity, as a stacked layer's sequence) is summed
    as spike counts × θ like the state itself, not as θ + θ + ...: bit-identical, so the next layer
    sees exactly the quantized RNN's sequence."""
    model = stacked_qrnn(hidden=8, seq=6, levels=16)
    for scan, lam in zip(model.graph.node[-3:-1], (1.2345678, 0.987654)):  # θ = λ/16 with a long mantissa
        body = scan.attribute[0].g
        (init,) = [t for t in body.initializer if t.name.endswith("lam")]
        init.CopyFrom(_init(init.name, lam))
    model.graph.output.append(oh.make_empty_tensor_value_info("seq_a"))
    x = _x(n=64, seq=6)
    want = run(model, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=16, neuron="bif"))
    got = _snn(result).run(["y", "seq_a"], {"x": x})
    assert (got[1] == want[1]).all()  # every h_s of layer 1, as the scan output
    assert (got[0] == want[0]).all()


def test_hidden_state_output_without_readout():
    model = qrnn(readout=False)
    x = _x()
    (want,) = run(model, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=4))
    got = _snn(result).run(["h_last"], {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=TOL)  # h_S itself: multiples of θ
    assert (got == want).all(1).mean() >= 0.9
    np.testing.assert_allclose(np.round(got / (F32(1.3) / 4)), got / (F32(1.3) / 4), atol=1e-4)


def test_cli_convert_and_evaluate(tmp_path, capsys):
    ann = tmp_path / "qrnn.onnx"
    onnx.save(qrnn(), ann)
    for neuron in ("bif", "auto"):
        out = tmp_path / f"snn_{neuron}.onnx"
        assert main(["convert", str(ann), "-o", str(out), "--neuron", neuron, "-T", "4", "-q"]) == 0
        text = capsys.readouterr().out
        assert "recurrent BIF SNN, Scan 'rnn'" in text and "8 elements x 4 = 32 steps" in text
    x = _x(16)
    (want,) = run(qrnn(), {"x": x})
    data = tmp_path / "data.npz"
    np.savez(data, x=x, labels=want.argmax(1))
    assert main(["evaluate", str(ann), str(tmp_path / "snn_bif.onnx"), "--data", str(data), "--json", "-q"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["ann_top1"] == 100.0 and res["snn_top1"]["4"] == 100.0
    assert main(["convert", str(ann), "-o", str(tmp_path / "if.onnx"), "--neuron", "if", "-T", "4", "-q"]) == 2
    assert "IF neurons do not convert recurrences" in capsys.readouterr().err


def test_cli_inspect_shows_the_cell(tmp_path, capsys):
    good, bad = tmp_path / "q.onnx", tmp_path / "float_cell.onnx"
    onnx.save(qrnn(), good)
    onnx.save(qrnn(act="relu"), bad)
    assert main(["inspect", str(good)]) == 0
    text = capsys.readouterr().out
    assert "recurrent" in text and "cell of Scan 'rnn'" in text and "quantized activation (4 levels" in text
    assert main(["inspect", str(bad)]) == 1
    text = capsys.readouterr().out
    assert "q_relu: a float activation in the cell" in text


def test_warns_below_the_guaranteed_substeps(caplog):
    with caplog.at_level(logging.WARNING):
        onnx2snn.convert(qrnn(), None, ConvertConfig(timesteps=2))
    assert "not settled" in caplog.text


# -- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("act,node,reason", [
    ("tanh", "q_tanh", "Tanh has no spiking equivalent"),
    ("relu", "q_relu", "not quantized"),
])
def test_cell_with_unsupported_or_float_activation_is_refused(act, node, reason):
    with pytest.raises(UnsupportedOpError, match=reason) as info:
        onnx2snn.convert(qrnn(act=act), None, ConvertConfig(timesteps=4))
    assert [name for name, _, _ in info.value.offenders] == [node]
    assert "in the body of Scan 'rnn'" in str(info.value)


def test_body_reading_an_outer_tensor_is_refused():
    model = qrnn()
    scan = next(n for n in model.graph.node if n.op_type == "Scan")
    body = scan.attribute[0].g
    next(n for n in body.node if n.name == "bias").input[1] = "h0"  # computed outside the Scan
    with pytest.raises(UnsupportedOpError, match="computed outside the Scan") as info:
        onnx2snn.convert(model, None, ConvertConfig(timesteps=4))
    assert info.value.offenders[0][0] == "bias"


def _defined(graph: onnx.GraphProto) -> set[str]:
    """The tensor and node names a graph defines (inputs, initializers, node outputs, node names)."""
    return ({i.name for i in graph.input} | {t.name for t in graph.initializer}
            | {o for n in graph.node for o in n.output} | {n.name for n in graph.node}) - {""}


def test_body_redefines_no_outer_name_and_declares_the_snn_domain():
    """The converted body is a subgraph: none of its names may be one of the outer graph's, even when the
    outer graph uses names the cell's SNN makes too and the body reads outer constants (captured)."""
    model = qrnn()
    g = model.graph
    scan = next(n for n in g.node if n.op_type == "Scan")
    body = scan.attribute[0].g
    for t in list(body.initializer):  # the bias as an outer Constant node, λ as an outer initializer
        if t.name == "b":
            g.node.insert(0, oh.make_node("Constant", [], ["b"], name="sum", value=t))
            body.initializer.remove(t)
        elif t.name == "q_lam":
            g.initializer.append(t)
            body.initializer.remove(t)
    for n in g.node:  # outer names the cell's SNN uses as well
        n.input[:] = ["s_analog_axis0" if i == "zero_index" else i for i in n.input]
    next(t for t in g.initializer if t.name == "zero_index").name = "s_analog_axis0"
    next(n for n in g.node if n.name == "readout").name = "input_weights"
    onnx.checker.check_model(model, full_check=True)
    x = _x()
    (want,) = run(model, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=4))
    snn = result.model
    onnx.checker.check_model(snn, full_check=True)
    assert [(o.domain, o.version) for o in snn.opset_import] == [("", 13), ("onnx2snn", 1)]
    new_scan = next(n for n in snn.graph.node if n.op_type == "Scan")
    new_body = next(a.g for a in new_scan.attribute if a.name == "body")
    assert any(n.op_type == "BIFNeuron" and n.domain == "onnx2snn" for n in new_body.node)
    assert not _defined(new_body) & _defined(snn.graph)
    assert {"rnn/s_analog_axis0", "rnn/input_weights", "rnn/sum", "rnn/b"} <= _defined(new_body)
    got, running = _snn(result).run(None, {"x": x})
    np.testing.assert_allclose(got, want, atol=TOL)
    np.testing.assert_allclose(running[-1], got, atol=TOL)


def _float_rnn(activation):
    H, F, S = 4, 2, 5
    rng = np.random.default_rng(0)
    rnn = oh.make_node("RNN", ["xs", "W", "R", "B"], ["", "h"], name="float_rnn", hidden_size=H,
                       activations=[activation])
    nodes = [oh.make_node("Transpose", ["x"], ["xs"], perm=[1, 0, 2], name="time_major"), rnn,
             oh.make_node("Squeeze", ["h", "axis0"], ["h2"], name="drop_direction"),
             oh.make_node("Gemm", ["h2", "V", "c"], ["y"], name="readout")]
    inits = [_init("W", rng.normal(0, 1, (1, H, F))), _init("R", rng.normal(0, 0.3, (1, H, H))),
             _init("B", np.zeros((1, 2 * H))), _init("axis0", [0], np.int64),
             _init("V", rng.normal(0, 1, (H, 3))), _init("c", np.zeros(3))]
    return _model(nodes, inits, S, F, 3)


@pytest.mark.parametrize("activation,reason", [("Relu", "float ReLU RNN"), ("Tanh", "activation Tanh")])
def test_float_rnn_op_is_refused_with_how_to_export(activation, reason):
    with pytest.raises(UnsupportedOpError, match=reason) as info:
        onnx2snn.convert(_float_rnn(activation), None, ConvertConfig(timesteps=4))
    assert info.value.offenders[0][:2] == ("float_rnn", "RNN")
    assert "Scan" in str(info.value) and "Floor" in str(info.value)


def test_loop_and_outer_activation_are_refused():
    model = qrnn()
    model.graph.node.append(oh.make_node("Relu", ["y"], ["y_relu"], name="outer_relu"))
    model.graph.output[0].name = "y_relu"
    with pytest.raises(UnsupportedOpError, match="outside the recurrence") as info:
        onnx2snn.convert(model, None, ConvertConfig(timesteps=4))
    assert [o[0] for o in info.value.offenders] == ["outer_relu"]
    loop = qrnn()
    scan = next(n for n in loop.graph.node if n.op_type == "Scan")
    scan.op_type = "Loop"  # not a valid Loop, but the refusal comes first
    with pytest.raises(UnsupportedOpError, match="Loop.* is not supported"):
        onnx2snn.convert(loop, None, ConvertConfig(timesteps=4))


def test_if_neurons_refuse_recurrences():
    with pytest.raises(ConfigError, match="recurrences"):
        onnx2snn.convert(qrnn(), {"x": _x()}, ConvertConfig(timesteps=4, neuron="if"))


def test_bundled_sequential_mnist_qrnn():
    model = onnx2snn.load_model(str(MODELS / "seqmnist_qrnn.onnx"))
    x = np.load(MODELS / "data" / "mnist_test.npz")["x"][:16].reshape(16, 784)
    (want,) = run(model, {"image": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=8))
    (rec,) = result.recurrences
    assert rec.exact_substeps == rec.substeps == 8 and rec.total_steps == 784 * 8
    got = _snn(result).run(["logits"], {"image": x})[0]  # 6,272 steps per digit
    assert (got.argmax(1) == want.argmax(1)).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert (got == want).all(1).mean() >= 0.9


def unrolled_rnn(seq=4, hidden=3, features=2, levels=4, lam=1.5, seed=0):
    """The same quantized ReLU RNN written unrolled, as a tracing exporter writes a Python loop:
    per element a Gather of x, the two MatMuls, the bias and the QCFS chain; a Gemm readout."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], [_init("W", rng.normal(0, 1.0, (features, hidden))),
                        _init("U", np.eye(hidden) * 0.6 + rng.normal(0, 0.3, (hidden, hidden))),
                        _init("b", rng.normal(0, 0.2, hidden)), _init("Wo", rng.normal(0, 1, (5, hidden))),
                        _init("bo", rng.normal(0, 0.1, 5))]
    h = None
    for s in range(seq):
        p = f"t{s}_"
        inits.append(_init(p + "idx", s, np.int64))
        nodes += [oh.make_node("Gather", ["x", p + "idx"], [p + "x"], axis=1, name=p + "gather"),
                  oh.make_node("MatMul", [p + "x", "W"], [p + "xw"], name=p + "input_weights")]
        pre = p + "xw"
        if h is not None:
            nodes += [oh.make_node("MatMul", [h, "U"], [p + "hu"], name=p + "recurrent_weights"),
                      oh.make_node("Add", [pre, p + "hu"], [p + "s"], name=p + "sum")]
            pre = p + "s"
        nodes.append(oh.make_node("Add", [pre, "b"], [p + "pre"], name=p + "bias"))
        q_nodes, q_inits = qcfs_nodes(p + "q_", p + "pre", p + "h", levels, lam)
        nodes += q_nodes
        inits += q_inits
        h = p + "h"
    nodes.append(oh.make_node("Gemm", [h, "Wo", "bo"], ["logits"], transB=1, name="readout"))
    graph = oh.make_graph(nodes, "unrolled_rnn",
                          [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", seq, features])],
                          [oh.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 5])], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("form", ["folded", "cumulative"])
def test_unrolled_rnn_converts_as_a_feed_forward_bif_graph(form):
    """The unrolled form is a DAG: it converts with the feed-forward BIF builder, exact from
    T* = S·L (the S quantizers on the longest path, one per element) — correct, but S·L
    steps for all neurons at once, so practical for short sequences (a Scan gets L per element)."""
    model = unrolled_rnn()
    x = np.random.default_rng(1).uniform(0, 1, (16, 4, 2)).astype(F32)
    (want,) = run(model, {"x": x})
    result = onnx2snn.convert(model, None, ConvertConfig(timesteps=16, neuron="auto", form=form))
    assert result.exact_timesteps == 4 * 4 and len(result.thresholds) == 4
    got = onnx2snn.InferenceSession(result.model).run(None, {"x": x})[0]
    assert (got.argmax(1) == want.argmax(1)).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
