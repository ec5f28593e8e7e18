"""Cost report (onnx2snn.cost): SynOps, spikes and MACs against brute-force counts on tiny SNNs.

Every count here is recomputed independently of ``onnx2snn/cost``: the SNN is run in a plain
onnxruntime session (op library registered, no graph optimisation) with the tensors of interest
made graph outputs, and SynOps are counted by explicit loops over output positions and kernel
taps (not the fan-out helper); spikes come from the numpy neuron references.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx.helper as oh
import onnx_graphsurgeon as gs
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS, make_model
from onnx2snn.cli import main
from onnx2snn.config import ConvertConfig
from onnx2snn.cost import report
from onnx2snn.cost.fanout import dense_macs, fanout
from onnx2snn.errors import ConversionError, DataError, Onnx2SnnError

T = 4
SAMPLES = 7      # not a multiple of the report's batch size
BATCH = 3
IN_SHAPE = [2, 9, 7]


# -- tiny ANNs --------------------------------------------------------------------------------------

@dataclass
class Case:
    """The layer under test, fed by Conv(3×3, pads 1) → Relu on x [N, 2, 9, 7]; 4 channels in.

    ``kernel``/``strides``/``begin``/``dilations``/``group`` are the geometry the brute force uses,
    written out by hand (``begin``: the top/left pads, resolved by hand for auto_pad)."""

    id: str
    op: str
    out_ch: int
    kernel: tuple
    attrs: dict
    strides: tuple = (1, 1)
    begin: tuple = (0, 0)
    dilations: tuple = (1, 1)
    group: int = 1
    extra: dict = field(default_factory=dict)


CONV_CASES = [
    Case("stride2_asym_pads", "Conv", 3, (3, 3), dict(strides=[2, 2], pads=[0, 1, 2, 0]),
         strides=(2, 2), begin=(0, 1)),
    Case("dilation2", "Conv", 3, (3, 3), dict(dilations=[2, 2], pads=[2, 1, 0, 1]), begin=(2, 1),
         dilations=(2, 2)),
    Case("group2", "Conv", 6, (3, 3), dict(group=2, pads=[1, 1, 1, 1]), begin=(1, 1), group=2),
    # SAME_UPPER, stride (2, 1), kernel (3, 4) on 9×7: out 5×7; total pads H (5-1)·2+3-9 = 2 → begin 1,
    # W (7-1)·1+4-7 = 3 → begin 1, end 2 (SAME_LOWER would begin with 2: the edges differ)
    Case("same_upper", "Conv", 3, (3, 4), dict(auto_pad="SAME_UPPER", strides=[2, 1]), strides=(2, 1),
         begin=(1, 1)),
    Case("conv_transpose", "ConvTranspose", 3, (3, 3), dict(strides=[2, 2], pads=[1, 0, 0, 1]),
         strides=(2, 2), begin=(1, 0)),
    # output_shape 18×14 from 9×7, stride 2, kernel 3: total pads 2·8+3-18 = 1 and 2·6+3-14 = 1, begin 1 (the
    # larger half, NOTSET)
    Case("conv_transpose_output_shape", "ConvTranspose", 3, (3, 3), dict(strides=[2, 2], output_shape=[18, 14]),
         strides=(2, 2), begin=(1, 1)),
]


def _rand(rng, *shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _bias(rng, n):
    return rng.uniform(0.1, 0.5, n).astype(np.float32)  # positive: the neurons fire


def _with_head(nodes, inits, x_shape, last, rng):
    """nodes → Flatten → Gemm(→ 5) named 'fc'; the flattened size from shape inference."""
    probe = make_model(nodes, [("x", ["N", *x_shape])], [(last, ["N", None, None, None])], inits)
    inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True)
    shape = next(v for v in inferred.graph.output if v.name == last)
    features = int(np.prod([d.dim_value for d in shape.type.tensor_type.shape.dim[1:]]))
    assert features > 0
    nodes = nodes + [oh.make_node("Flatten", [last], ["flat"], axis=1),
                     oh.make_node("Gemm", ["flat", "w_fc", "b_fc"], ["y"], transB=1, name="fc")]
    inits = {**inits, "w_fc": _rand(rng, 5, features, scale=0.2), "b_fc": _bias(rng, 5)}
    return make_model(nodes, [("x", ["N", *x_shape])], [("y", ["N", 5])], inits)


def conv_ann(case: Case, x_shape=IN_SHAPE, seed=0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    c_in = 4
    if case.op == "Conv":
        w = _rand(rng, case.out_ch, c_in // case.group, *case.kernel)
    else:  # ConvTranspose: W [C_in, C_out / group, kH, kW]
        w = _rand(rng, c_in, case.out_ch // case.group, *case.kernel)
    nodes = [oh.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="first"),
             oh.make_node("Relu", ["c1"], ["r1"]),
             oh.make_node(case.op, ["r1", "w2", "b2"], ["c2"], kernel_shape=list(case.kernel), name="under_test",
                          **case.attrs),
             oh.make_node("Relu", ["c2"], ["r2"])]
    inits = {"w1": _rand(rng, c_in, x_shape[0], 3, 3), "b1": _bias(rng, c_in), "w2": w, "b2": _bias(rng, case.out_ch)}
    return _with_head(nodes, inits, x_shape, "r2", rng)


def dense_ann(middle: str, seed=0) -> onnx.ModelProto:
    """x [N, 6] → Gemm(→ 8) → Relu → middle(→ 7) → Relu → Gemm(→ 5); the middle layer is a Gemm
    (transB=0) or a MatMul with constant weights and an Add."""
    rng = np.random.default_rng(seed)
    nodes = [oh.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1, name="first"),
             oh.make_node("Relu", ["h1"], ["r1"])]
    inits = {"w1": _rand(rng, 8, 6), "b1": _bias(rng, 8), "w2": _rand(rng, 8, 7), "b2": _bias(rng, 7)}
    if middle == "Gemm":
        nodes.append(oh.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], name="under_test"))
    else:
        nodes += [oh.make_node("MatMul", ["r1", "w2"], ["m2"], name="under_test"),
                  oh.make_node("Add", ["m2", "b2"], ["h2"])]
    nodes += [oh.make_node("Relu", ["h2"], ["r2"]),
              oh.make_node("Gemm", ["r2", "w3", "b3"], ["y"], transB=1, name="fc")]
    inits.update(w3=_rand(rng, 5, 7), b3=_bias(rng, 5))
    return make_model(nodes, [("x", ["N", 6])], [("y", ["N", 5])], inits)


def _data(shape, n, seed):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, *shape)).astype(np.float32)


def convert(ann, x_shape, **cfg):
    calib = _data(x_shape, 16, seed=1)
    return onnx2snn.convert(ann, {"x": calib}, ConvertConfig(timesteps=T, channel_wise=True, **cfg)).model


def run_with(model: onnx.ModelProto, names: list[str], feeds: dict) -> dict[str, np.ndarray]:
    """The named tensors of one run (graph outputs added by hand; op library, no optimisation)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(oh.make_empty_tensor_value_info(name))
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(onnx2snn.get_library_path())
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip(names, sess.run(names, feeds)))


# -- brute force ------------------------------------------------------------------------------------

def conv_connections(case: Case, in_chw, out_chw) -> np.ndarray:
    """Per input element [C, H, W]: how many (output element, kernel tap) pairs read it, by walking
    every output position and tap and keeping the in-range ones."""
    C, H, W = in_chw
    M, OH, OW = out_chw
    KH, KW = case.kernel
    (sh, sw), (ph, pw), (dh, dw) = case.strides, case.begin, case.dilations
    conn = np.zeros((C, H, W), np.int64)
    if case.op == "Conv":  # y[m, oh, ow] += w · x[c, oh·s − p + kh·d, ...] for c in m's group
        cpg, mpg = C // case.group, M // case.group
        for m in range(M):
            for ci in range(cpg):
                c = (m // mpg) * cpg + ci
                for oh_ in range(OH):
                    for ow_ in range(OW):
                        for kh in range(KH):
                            ih = oh_ * sh - ph + kh * dh
                            if not 0 <= ih < H:
                                continue
                            for kw in range(KW):
                                iw = ow_ * sw - pw + kw * dw
                                if 0 <= iw < W:
                                    conn[c, ih, iw] += 1
        return conn
    # ConvTranspose: x[c, ih, iw] tap (kh, kw) writes y[m, ih·s − p + kh·d, ...] for m in c's group
    cpg, mpg = C // case.group, M // case.group
    for m in range(M):
        for ci in range(cpg):
            c = (m // mpg) * cpg + ci
            for oh_ in range(OH):
                for ow_ in range(OW):
                    for kh in range(KH):
                        nh = oh_ + ph - kh * dh
                        if nh % sh or not 0 <= nh // sh < H:
                            continue
                        for kw in range(KW):
                            nw = ow_ + pw - kw * dw
                            if nw % sw == 0 and 0 <= nw // sw < W:
                                conn[c, nh // sh, nw // sw] += 1
    return conn


def dense_connections(k: int, outputs: int) -> np.ndarray:
    """Gemm / MatMul: every (output, input) pair is one connection."""
    conn = np.zeros(k, np.int64)
    for _ in range(outputs):
        for i in range(k):
            conn[i] += 1
    return conn


def brute_synops(x_steps: np.ndarray, conn: np.ndarray) -> int:
    """Σ over steps, samples and nonzero input elements of their connections."""
    total = 0
    for t in range(x_steps.shape[0]):
        for n in range(x_steps.shape[1]):
            for idx in zip(*np.nonzero(x_steps[t, n])):
                total += int(conn[idx])
    return total


FIRST_CONV = Case("first", "Conv", 4, (3, 3), {}, begin=(1, 1))


def _layer_shapes(ann, names, x_shape=IN_SHAPE):
    """Per-sample shapes of ANN tensors, from one onnxruntime run."""
    values = run_with(ann, names, {"x": _data(x_shape, 1, seed=3)})
    return {k: list(v.shape[1:]) for k, v in values.items()}


# -- 1. SynOps, analog MACs and ANN MACs by brute force --------------------------------------------

@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.id)
def test_conv_synops_brute_force(case):
    ann = conv_ann(case)
    snn = convert(ann, IN_SHAPE)
    data = _data(IN_SHAPE, SAMPLES, seed=2)
    res = report(ann, snn, {"x": data}, batch_size=BATCH)
    by_name = {w.name: w for w in res.weighted_layers}
    assert [w.name for w in res.weighted_layers] == ["first", "under_test", "fc"]

    shapes = _layer_shapes(ann, ["x", "r1", "c2", "c1", "flat"])
    conn_test = conv_connections(case, shapes["r1"], shapes["c2"])
    conn_first = conv_connections(FIRST_CONV, shapes["x"], shapes["c1"])
    conn_fc = dense_connections(shapes["flat"][0], 5)

    nodes = {n.name: n for n in snn.graph.node}
    inputs = {name: nodes[name].input[0] for name in ("under_test", "fc")}
    values = run_with(snn, list(inputs.values()), {"x": data})
    for name, conn in (("under_test", conn_test), ("fc", conn_fc)):
        x = values[inputs[name]].reshape(T, SAMPLES, *conn.shape)  # time-folded, time-major
        assert by_name[name].spiking_input
        assert by_name[name].synops_per_sample * SAMPLES == pytest.approx(brute_synops(x, conn), rel=0, abs=1e-6)
        assert by_name[name].analog_macs_per_sample == 0
    # the edges matter: the naive count (every nonzero element reaches every tap) is wrong
    x = values[inputs["under_test"]].reshape(T, SAMPLES, *conn_test.shape)
    naive = int((x != 0).sum()) * (case.out_ch // case.group) * int(np.prod(case.kernel))
    assert naive != brute_synops(x, conn_test)

    # the first layer runs on analog values, once per sample (hoisted out of the T steps)
    first = by_name["first"]
    assert not first.spiking_input and first.synops_per_sample == 0
    assert first.analog_macs_per_sample == conn_first.sum() == first.ann_macs_per_sample
    assert res.analog_macs_per_sample == conn_first.sum()
    assert res.analog_macs_per_step == [float(conn_first.sum())] * T
    # ANN MACs: the dense MACs of every weighted layer of the ANN
    assert res.ann_macs_per_sample == conn_first.sum() + conn_test.sum() + conn_fc.sum()
    assert by_name["under_test"].ann_macs_per_sample == conn_test.sum()
    # totals: the per-layer SynOps add up, and per step they accumulate to the total
    assert res.synops_per_sample == pytest.approx(sum(w.synops_per_sample for w in res.weighted_layers))
    assert res.synops_per_sample == pytest.approx(sum(layer.synops_per_sample for layer in res.layers))
    assert res.synops_per_step[-1] == pytest.approx(res.synops_per_sample)
    assert all(a <= b for a, b in zip(res.synops_per_step, res.synops_per_step[1:]))


@pytest.mark.parametrize("middle", ["Gemm", "MatMul"])
def test_dense_synops_brute_force(middle):
    ann = dense_ann(middle)
    snn = convert(ann, [6])
    data = _data([6], SAMPLES, seed=2)
    res = report(ann, snn, {"x": data}, batch_size=BATCH)
    by_name = {w.name: w for w in res.weighted_layers}
    assert [(w.name, w.op) for w in res.weighted_layers] == [("first", "Gemm"), ("under_test", middle), ("fc", "Gemm")]
    nodes = {n.name: n for n in snn.graph.node}
    inputs = {name: nodes[name].input[0] for name in ("under_test", "fc")}
    values = run_with(snn, list(inputs.values()), {"x": data})
    for name, (k, outputs) in (("under_test", (8, 7)), ("fc", (7, 5))):
        x = values[inputs[name]].reshape(T, SAMPLES, k)
        assert (x != 0).any() and (x == 0).any()
        brute = brute_synops(x, dense_connections(k, outputs))
        assert by_name[name].synops_per_sample * SAMPLES == pytest.approx(brute, rel=0, abs=1e-6)
        assert by_name[name].ann_macs_per_sample == k * outputs
    assert by_name["first"].analog_macs_per_sample == 6 * 8 == by_name["first"].ann_macs_per_sample
    assert res.ann_macs_per_sample == 6 * 8 + 8 * 7 + 7 * 5


# -- 2. spikes and firing rates against the numpy neurons -------------------------------------------

def _init(model, name):
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    if name in inits:
        return inits[name]
    node = next(n for n in model.graph.node if n.op_type == "Constant" and n.output[0] == name)
    return onnx.numpy_helper.to_array(node.attribute[0].t)


def _reference_spikes(snn, data):
    """{neuron tensor: reference spikes [T, N, ...]} from the SNN's own input currents."""
    neurons = [n for n in snn.graph.node if n.domain == "onnx2snn" and n.op_type in ("IFNeuron", "BIFNeuron")]
    assert neurons
    values = run_with(snn, [n.input[0] for n in neurons] + [n.output[0] for n in neurons], {"x": data})
    out = {}
    for node in neurons:
        attrs = {a.name: oh.get_attribute_value(a) for a in node.attribute}
        theta = _init(snn, node.input[1])
        v_init = _init(snn, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        current = values[node.input[0]]
        if node.op_type == "IFNeuron":
            reset = attrs.get("reset", b"subtract")
            y = onnx2snn.neurons.if_neuron(current, theta, v_init, timesteps=attrs["timesteps"],
                                           reset=reset.decode() if isinstance(reset, bytes) else reset)
        else:
            y = onnx2snn.neurons.bif_neuron(current, theta, v_init, timesteps=attrs["timesteps"],
                                            levels=attrs["levels"], min_level=attrs.get("min_level", 0))
        np.testing.assert_array_equal(y, values[node.output[0]])  # the op is the reference, bit for bit
        out[node.output[0]] = y.reshape(T, data.shape[0], *y.shape[1:])
    return out


@pytest.mark.parametrize("neuron", ["if", "bif"])
def test_spikes_match_reference(neuron):
    ann = conv_ann(CONV_CASES[0])
    snn = convert(ann, IN_SHAPE, neuron=neuron)
    data = _data(IN_SHAPE, SAMPLES, seed=2)
    res = report(ann, snn, {"x": data}, batch_size=BATCH)
    ref = _reference_spikes(snn, data)
    assert [layer.name for layer in res.layers] == list(ref)
    for layer in res.layers:
        y = ref[layer.name]
        pos, neg = int((y > 0).sum()), int((y < 0).sum())
        count = int(np.prod(y.shape[2:]))
        silent = int((~(y != 0).any(axis=0)).sum())
        assert layer.op == ("IFNeuron" if neuron == "if" else "BIFNeuron")
        assert layer.neurons == count
        assert layer.positive_spikes_per_sample == pos / SAMPLES
        assert layer.negative_spikes_per_sample == neg / SAMPLES
        assert layer.spikes_per_sample == pos / SAMPLES + neg / SAMPLES
        assert round(layer.spikes_per_sample * SAMPLES) == pos + neg
        assert layer.firing_rate == pytest.approx((pos + neg) / (count * T * SAMPLES), rel=1e-12)
        assert layer.silent_fraction == pytest.approx(silent / (count * SAMPLES), rel=1e-12)
        assert 0 < layer.firing_rate < 1 and 0 < silent < count * SAMPLES
        if neuron == "if":
            assert neg == 0
    if neuron == "bif":  # the second layer sees negative currents: it takes spikes back
        assert res.layers[1].negative_spikes_per_sample > 0


# -- 3. runtime forms ---------------------------------------------------------------------------------

def test_forms_count_the_same():
    ann = conv_ann(CONV_CASES[0])
    data = _data(IN_SHAPE, SAMPLES, seed=2)
    reports = {form: report(ann, convert(ann, IN_SHAPE, form=form), {"x": data}, batch_size=BATCH)
               for form in ("folded", "portable", "streaming")}
    folded = reports["folded"]
    assert folded.synops_per_sample > 0
    for form, res in reports.items():
        assert res.form == form and res.timesteps == T and res.samples == SAMPLES
        assert [(layer.name, layer.neurons, layer.positive_spikes_per_sample, layer.negative_spikes_per_sample,
                 layer.silent_fraction, layer.synops_per_sample) for layer in res.layers] == \
            [(layer.name, layer.neurons, layer.positive_spikes_per_sample, layer.negative_spikes_per_sample,
              layer.silent_fraction, layer.synops_per_sample) for layer in folded.layers], form
        assert [(w.name, w.synops_per_sample, w.ann_macs_per_sample) for w in res.weighted_layers] == \
            [(w.name, w.synops_per_sample, w.ann_macs_per_sample) for w in folded.weighted_layers], form
        assert res.synops_per_step == folded.synops_per_step
        assert res.ann_macs_per_sample == folded.ann_macs_per_sample
    once = folded.weighted_layers[0].analog_macs_per_sample
    assert reports["portable"].analog_macs_per_sample == once
    # the streaming form runs the first layer at every step: T times the hoisted MACs
    streaming = reports["streaming"]
    assert streaming.weighted_layers[0].analog_macs_per_sample == T * once
    assert streaming.analog_macs_per_sample == T * folded.analog_macs_per_sample
    assert streaming.analog_macs_per_step == [once * t for t in range(1, T + 1)]
    assert streaming.snn_uj > folded.snn_uj


def test_quantized_folded_and_cumulative_count_the_same():
    q = onnx.load(str(MODELS / "mnist_qcnn.onnx"))
    x = np.load(MODELS / "data" / "mnist_test.npz")["x"][:5]
    feeds = {q.graph.input[0].name: x}
    res = {form: report(q, onnx2snn.convert(q, None, ConvertConfig(timesteps=12, form=form)).model, feeds,
                        batch_size=2)
           for form in ("folded", "cumulative")}
    folded, cumulative = res["folded"], res["cumulative"]
    assert cumulative.form == "cumulative" and cumulative.notes
    assert len(folded.layers) == len(cumulative.layers) == 3
    for a, b in zip(folded.layers, cumulative.layers):
        assert (a.neurons, a.positive_spikes_per_sample, a.negative_spikes_per_sample, a.silent_fraction) == \
            (b.neurons, b.positive_spikes_per_sample, b.negative_spikes_per_sample, b.silent_fraction)
    assert any(layer.negative_spikes_per_sample > 0 for layer in folded.layers)
    # the cumulative form's SynOps are those of the spiking form it computes (no rounding noise of the
    # differences of its float sums, e.g. after the average pool, counted as spikes)
    assert [(w.name, w.synops_per_sample) for w in cumulative.weighted_layers] == \
        [(w.name, w.synops_per_sample) for w in folded.weighted_layers]
    assert cumulative.analog_macs_per_sample == folded.analog_macs_per_sample
    assert cumulative.ann_macs_per_sample == folded.ann_macs_per_sample


# -- 4. bad input -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair():
    ann = conv_ann(CONV_CASES[0])
    return ann, convert(ann, IN_SHAPE)


def _renamed_input(ann):
    m = onnx.ModelProto()
    m.CopyFrom(ann)
    m.graph.input[0].name = "z"
    for node in m.graph.node:
        node.input[:] = ["z" if i == "x" else i for i in node.input]
    onnx.checker.check_model(m)
    return m


def test_report_rejects_an_snn_without_metadata(pair):
    ann, _ = pair
    with pytest.raises(ConversionError, match="no onnx2snn metadata"):
        report(ann, ann, {"x": _data(IN_SHAPE, 2, seed=2)})


@pytest.mark.parametrize("which", ["name", "shape"])
def test_report_rejects_a_different_ann(pair, which):
    _, snn = pair
    other = _renamed_input(pair[0]) if which == "name" else conv_ann(CONV_CASES[0], x_shape=[2, 9, 8])
    with pytest.raises(Onnx2SnnError, match="do not match") as info:
        report(other, snn, {"x": _data(IN_SHAPE, 2, seed=2)})
    named = ("'z'", "'x'") if which == "name" else ("[N, 2, 9, 8]", "[N, 2, 9, 7]")
    assert all(n in str(info.value) for n in named), info.value


@pytest.mark.parametrize("bad", [_data([2, 9, 8], 3, seed=2), _data([2, 9], 3, seed=2),
                                 np.zeros((0, 2, 9, 7), np.float32)], ids=["axis", "rank", "empty"])
def test_report_rejects_data_of_the_wrong_shape(pair, bad):
    ann, snn = pair
    with pytest.raises(DataError, match=r"report data for input 'x'.*(\[N, 2, 9, 7\]|empty)"):
        report(ann, snn, {"x": bad})


def test_report_rejects_labels_of_the_wrong_length(pair):
    ann, snn = pair
    with pytest.raises(DataError, match="labels"):
        report(ann, snn, {"x": _data(IN_SHAPE, 3, seed=2)}, labels=np.zeros(2, np.int64))


def test_report_rejects_labels_outside_the_classes(pair):
    """The same rule as evaluate's: class indices in [0, K) of the scored output."""
    ann, snn = pair
    classes = ann.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    with pytest.raises(DataError, match=rf"class index {classes}, outside the range \[0, {classes}\)"):
        report(ann, snn, {"x": _data(IN_SHAPE, 3, seed=2)}, labels=np.array([0, 1, classes], np.int64))


def _save(tmp_path, ann, snn, data, labels=None):
    paths = tmp_path / "ann.onnx", tmp_path / "snn.onnx", tmp_path / "data.npz"
    onnx.save(ann, paths[0])
    onnx.save(snn, paths[1])
    np.savez(paths[2], x=data, **({} if labels is None else {"labels": labels}))
    return [str(p) for p in paths]


@pytest.mark.parametrize("bad", ["not_an_snn", "other_ann", "data_shape"])
def test_cli_report_errors(tmp_path, capsys, pair, bad):
    ann, snn = pair
    data = _data([2, 9, 8], 3, seed=2) if bad == "data_shape" else _data(IN_SHAPE, 3, seed=2)
    a, s, d = _save(tmp_path, _renamed_input(ann) if bad == "other_ann" else ann,
                    ann if bad == "not_an_snn" else snn, data)
    before = sorted(p.name for p in tmp_path.iterdir())
    html = str(tmp_path / "report.html")
    assert main(["report", a, s, "--data", d, "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    html_args = ["-o", html] if importlib.util.find_spec("onnx2snn.cost.html") else []  # the HTML writer, if here
    assert main(["report", a, s, "--data", d, "--json", *html_args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("error: ") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_report_json(tmp_path, capsys, pair):
    ann, snn = pair
    data = _data(IN_SHAPE, SAMPLES, seed=2)
    labels = np.arange(SAMPLES, dtype=np.int64) % 5
    a, s, d = _save(tmp_path, ann, snn, data, labels)
    assert main(["report", a, s, "--data", d, "--json", "--batch-size", str(BATCH)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["timesteps"] == T and out["samples"] == SAMPLES
    for key in ("synops_per_sample", "analog_macs_per_sample", "ann_macs_per_sample"):
        assert isinstance(out[key], float)
    assert [layer["name"] for layer in out["layers"]] == ["r1", "r2"]
    for layer in out["layers"]:
        assert {"name", "op", "neurons", "spikes_per_sample", "firing_rate", "silent_fraction", "synops_per_sample",
                "ann_macs_per_sample"} <= set(layer)
    assert {"e_mac_pj", "e_ac_pj", "ann_uj", "snn_uj"} <= set(out["energy"])
    assert set(out["accuracy"]) == {"ann_top1", "snn_top1"}
    assert list(out["accuracy"]["snn_top1"]) == [str(t) for t in range(1, T + 1)]
    direct = report(ann, snn, {"x": data}, labels, batch_size=BATCH)
    assert out["synops_per_sample"] == direct.synops_per_sample
    assert out["energy"]["snn_uj"] == pytest.approx(direct.snn_uj)
    ann_pred = run_with(ann, ["y"], {"x": data})["y"].argmax(-1)
    assert out["accuracy"]["ann_top1"] == pytest.approx(100.0 * (ann_pred == labels).mean())


# -- 5. the fan-out invariant ---------------------------------------------------------------------

@pytest.mark.parametrize("case", CONV_CASES + [FIRST_CONV], ids=lambda c: c.id)
def test_fanout_sums_to_dense_macs(case):
    ann = conv_ann(CONV_CASES[0] if case is FIRST_CONV else case)
    name, src, dst = ("first", "x", "c1") if case is FIRST_CONV else ("under_test", "r1", "c2")
    shapes = _layer_shapes(ann, [src, dst])
    graph = gs.import_onnx(ann)
    node = next(n for n in graph.nodes if n.name == name)
    weight = list(node.inputs[1].values.shape)
    conn = conv_connections(case, shapes[src], shapes[dst])
    f = fanout(node, [1] + shapes[src], [1] + shapes[dst], weight)
    np.testing.assert_array_equal(np.broadcast_to(f, conn.shape), conn)
    assert np.broadcast_to(f, conn.shape).sum() == conn.sum()
    for batch in (1, 3):
        assert dense_macs(node, [batch] + shapes[src], [batch] + shapes[dst], weight) == batch * conn.sum()
    # padding taps are no MACs: fewer than the all-taps count, whenever a tap falls off the edge
    all_taps = int(np.prod(shapes[dst])) * (shapes[src][0] // case.group) * int(np.prod(case.kernel))
    if case.op == "Conv":
        assert conn.sum() < all_taps


ORACLE_CASES = [
    ("Conv", (3, 3), dict(strides=[2, 2], pads=[0, 1, 2, 0])),
    ("Conv", (2, 4), dict(strides=[2, 3], auto_pad="SAME_UPPER")),
    ("Conv", (2, 4), dict(strides=[2, 3], auto_pad="SAME_LOWER")),
    ("Conv", (3, 3), dict(dilations=[2, 1], auto_pad="VALID", strides=[1, 2])),
    ("ConvTranspose", (3, 3), dict(strides=[2, 3], pads=[1, 0, 0, 1], output_padding=[1, 1])),
    ("ConvTranspose", (2, 4), dict(strides=[2, 3], dilations=[2, 1], output_shape=[18, 21])),
    ("ConvTranspose", (3, 3), dict(strides=[2, 3], auto_pad="SAME_UPPER", output_shape=[19, 20])),
    ("ConvTranspose", (2, 4), dict(strides=[2, 3], auto_pad="SAME_LOWER")),
]


@pytest.mark.parametrize("op, kernel, attrs", ORACLE_CASES, ids=[f"{o}-{sorted(a)}" for o, _, a in ORACLE_CASES])
def test_fanout_matches_onnxruntime(op, kernel, attrs):
    """One channel, a kernel of ones, one one-hot input per position: the outputs onnxruntime writes are
    the (output, tap) pairs that reach that position (a position meets each output through one tap at most)."""
    H, W = 9, 7
    model = make_model([oh.make_node(op, ["x", "w"], ["y"], kernel_shape=list(kernel), name="layer", **attrs)],
                       [("x", [H * W, 1, H, W])], [("y", [H * W, 1, None, None])],
                       {"w": np.ones((1, 1, *kernel), np.float32)})
    y = run_with(model, ["y"], {"x": np.eye(H * W, dtype=np.float32).reshape(H * W, 1, H, W)})["y"]
    reached = (y != 0).reshape(H * W, -1).sum(axis=1).reshape(1, H, W)
    node = gs.import_onnx(model).nodes[0]
    f = fanout(node, [1, 1, H, W], [1, 1, *y.shape[2:]], [1, 1, *kernel])
    np.testing.assert_array_equal(np.broadcast_to(f, reached.shape), reached)


def test_unnamed_nodes_are_counted_apart():
    """Exporters may leave node names empty (UltraFace does): layers are told apart by their outputs."""
    ann = conv_ann(CONV_CASES[0])
    data = _data(IN_SHAPE, SAMPLES, seed=2)
    named = report(ann, convert(ann, IN_SHAPE), {"x": data}, batch_size=BATCH)
    anonymous = onnx.ModelProto()
    anonymous.CopyFrom(ann)
    for node in anonymous.graph.node:
        node.name = ""
    unnamed = report(anonymous, convert(anonymous, IN_SHAPE), {"x": data}, batch_size=BATCH)
    assert [w.synops_per_sample for w in unnamed.weighted_layers] == \
        [w.synops_per_sample for w in named.weighted_layers]
    assert len({w.name for w in unnamed.weighted_layers}) == len(unnamed.weighted_layers)
    assert unnamed.synops_per_sample == named.synops_per_sample > 0


def test_recurrent_snn_is_counted_over_every_element():
    """The Scan's cell neurons over S elements × T_s sub-steps; the cell's layers on the analog hidden
    state count as MACs at every sub-step; the ANN runs them once per element."""
    from conftest import MODELS
    rnn = onnx2snn.load_model(MODELS / "seqmnist_qrnn.onnx")
    snn = onnx2snn.convert(rnn, None, ConvertConfig(timesteps=2)).model
    x = np.load(MODELS / "data" / "mnist_test.npz")["x"][:3].reshape(3, -1)
    res = report(rnn, snn, {"image": x}, batch_size=2)
    S, T_s = 784, 2
    assert res.timesteps == S * T_s and len(res.layers) == 1 and res.layers[0].op == "BIFNeuron"
    layer = res.layers[0]
    assert layer.neurons > 0 and layer.firing_rate == pytest.approx(layer.spikes_per_sample / (layer.neurons * S * T_s))
    cell = {w.name: w for w in res.weighted_layers if not w.spiking_input and w.analog_macs_per_sample > 0}
    assert cell, res.weighted_layers
    for w in res.weighted_layers:
        if w.name in ("input_weights", "recurrent_weights"):
            assert w.analog_macs_per_sample == pytest.approx(T_s * w.ann_macs_per_sample)
    assert any("recurrent SNN" in note for note in res.notes)


def test_report_of_a_recurrent_snn_whose_scans_list_their_output_axes():
    """A Scan with an explicit scan_output_axes gets one more axis for each cell tensor the report exposes."""
    model = onnx.load(str(MODELS / "smnist_qrnn.onnx"))
    for scan in [n for n in model.graph.node if n.op_type == "Scan"]:
        scans = next(a.i for a in scan.attribute if a.name == "num_scan_inputs")
        outputs = len(scan.output) - (len(scan.input) - scans)
        if outputs:
            scan.attribute.append(onnx.helper.make_attribute("scan_output_axes", [0] * outputs))
    assert any(a.name == "scan_output_axes" for n in model.graph.node for a in n.attribute)
    x = np.load(MODELS / "data" / "smnist_test.npz")
    x = x[x.files[0]][:2].reshape(2, 784).astype(np.float32)
    snn = onnx2snn.convert(model, None, onnx2snn.ConvertConfig(timesteps=16)).model
    result = report(model, snn, {model.graph.input[0].name: x}).as_dict()
    assert result["analog_macs_per_sample"] > 0 and len(result["layers"]) >= 3
