"""Linear ops between neurons (issue 16): Resize/Upsample, ConvTranspose, DepthToSpace/SpaceToDepth,
Pad in every linear mode, Einsum and MatMul with one constant operand, Mul/Div by broadcast constants.

Each is a fixed linear (or affine) map of one sample's tensor, so it commutes with the average over
the T steps: without neurons the SNN is the ANN (each of the T·N rows of the folded batch is computed
alone), and between two neuron layers the SNN approaches the ANN as T grows. Tiny graphs, opsets
where the op's signature changed (Upsample 7/9, Resize 10/11/13/18/19, Pad 2/11/18/19, Einsum 12),
fixed and dynamic batches, names with '/'; what mixes samples is refused naming the node.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import onnx2snn
from conftest import rng_array, run
from onnx2snn import UnsupportedOpError
from onnx2snn.core.graph import import_model
from onnx2snn.passes.check_support import find_unsupported

C, H, W = 4, 3, 3
F = onnx.TensorProto.FLOAT


def _model(nodes, inits, opset, batch, in_shape=(C, H, W), out_shape=None, ir_version=7):
    """x [batch, *in_shape] → nodes → y (the output's shape taken from one onnxruntime run)."""
    inits = [onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]

    def build(shape):
        graph = oh.make_graph(nodes, "linear_ops", [oh.make_tensor_value_info("x", F, [batch, *in_shape])],
                              [oh.make_tensor_value_info("y", F, shape)], inits)
        model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
        model.ir_version = ir_version
        return model

    if out_shape is None:
        n = batch if isinstance(batch, int) else 2
        y = run(build(None), {"x": rng_array(n, *in_shape)})[0]
        out_shape = list(y.shape[1:])
    model = build([batch, *out_shape])
    onnx.checker.check_model(model)
    return model


def _offenders(model):
    """What the support check refuses, on the shapes onnx infers (as ``canonicalize`` runs it)."""
    return find_unsupported(import_model(onnx.shape_inference.infer_shapes(model, strict_mode=False)))


def _feeds(model, n=6, seed=0, low=-1.0):
    dim = model.graph.input[0].type.tensor_type.shape.dim
    batch = dim[0].dim_value or n
    shape = [d.dim_value for d in dim[1:]]
    return rng_array(batch, *shape, seed=seed, low=low)


def _assert_exact(model, timesteps=3):
    """No neuron: the SNN gives the ANN's output (up to the readout's float averaging of T equal values)."""
    x = _feeds(model)
    result = onnx2snn.convert(model, {"x": x}, onnx2snn.ConvertConfig(timesteps=timesteps))
    got = onnx2snn.InferenceSession(result.model).run(["y"], {"x": x})[0]
    want = run(model, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    return result.model


def _spiking_errors(model, timesteps=(16, 256), seed=1):
    """Max |SNN − ANN| / max |ANN| at each T (calibrated on the same non-negative inputs)."""
    x = _feeds(model, n=8, seed=seed, low=0.0)
    want = run(model, {"x": x})[0]
    errors = []
    for t in timesteps:
        snn = onnx2snn.convert(model, {"x": x}, onnx2snn.ConvertConfig(timesteps=t)).model
        got = onnx2snn.InferenceSession(snn).run(["y"], {"x": x})[0]
        errors.append(float(np.abs(got - want).max() / np.abs(want).max()))
    return errors


def _around(op_nodes, inits, opset, batch, channels_out=C, **kw):
    """x → Relu (neuron) → op (reads 'a', writes 'h') → 1×1 Conv (mixed signs, bias) → Relu (neuron)
    → 1×1 Conv → y: the op sits between two neuron layers."""
    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((C, channels_out, 1, 1)) * 0.6).astype(np.float32)
    b1 = rng.uniform(0.05, 0.3, C).astype(np.float32)
    w2 = (rng.standard_normal((2, C, 1, 1)) * 0.6).astype(np.float32)
    nodes = [oh.make_node("Relu", ["x"], ["a"], name="/in/Relu")] + op_nodes + [
        oh.make_node("Conv", ["h", "/mix/w", "/mix/b"], ["c"], name="/mix/Conv"),
        oh.make_node("Relu", ["c"], ["r"], name="/mix/Relu"),
        oh.make_node("Conv", ["r", "/out/w"], ["y"], name="/out/Conv")]
    return _model(nodes, {**inits, "/mix/w": w1, "/mix/b": b1, "/out/w": w2}, opset, batch, **kw)


def _assert_converges(model):
    """The rate-coding error falls about as 1/T (measured 0.09-0.12 at T = 16, 0.005-0.008 at T = 256)."""
    coarse, fine = _spiking_errors(model)
    assert fine < 0.02 and 4 * fine < coarse, (coarse, fine)


# -- Resize / Upsample ------------------------------------------------------------------------------

def _resize(opset, mode="nearest", scales=(1, 1, 2, 2), sizes=None, roi=None, ctm=None, **attrs):
    """(nodes, initializers) of one Resize reading 'a' and writing 'h', in the opset's signature."""
    inits, ins = {}, ["a"]
    if ctm is not None:
        attrs["coordinate_transformation_mode"] = ctm
    if opset < 11:
        inits["/up/scales"] = np.array(scales, np.float32)
        ins.append("/up/scales")
    else:
        if roi is not None:
            inits["/up/roi"] = np.array(roi, np.float32)
        ins.append("/up/roi" if roi is not None else ("" if opset >= 13 else "/up/roi_empty"))
        if opset < 13 and roi is None:
            inits["/up/roi_empty"] = np.zeros(0, np.float32)
        if sizes is None:
            inits["/up/scales"] = np.array(scales, np.float32)
            ins.append("/up/scales")
        else:
            if opset < 13:
                inits["/up/scales"] = np.zeros(0, np.float32)
                ins.append("/up/scales")
            else:
                ins.append("")
            inits["/up/sizes"] = np.array(sizes, np.int64)
            ins.append("/up/sizes")
    return [oh.make_node("Resize", ins, ["h"], name="/up/Resize", mode=mode, **attrs)], inits


RESIZE_CASES = {
    "opset10-nearest": dict(opset=10),
    "opset11-linear-align_corners": dict(opset=11, mode="linear", ctm="align_corners"),
    "opset11-sizes-fixed-batch": dict(opset=11, mode="linear", sizes=(2, C, 5, 7), batch=2),
    "opset13-linear-half_pixel": dict(opset=13, mode="linear", scales=(1, 1, 2.5, 1.5)),
    "opset13-cubic-exclude_outside": dict(opset=13, mode="cubic", exclude_outside=1, cubic_coeff_a=-0.5),
    "opset13-nearest-floor-asymmetric": dict(opset=13, nearest_mode="floor", ctm="asymmetric"),
    "opset13-tf_half_pixel_for_nn": dict(opset=13, nearest_mode="ceil", ctm="tf_half_pixel_for_nn"),
    "opset13-downsample-pytorch_half_pixel": dict(opset=13, mode="linear", scales=(1, 1, 0.67, 0.67),
                                                  ctm="pytorch_half_pixel"),
    "opset13-sizes-batch-1": dict(opset=13, sizes=(1, C, 6, 4), batch=1),
    "opset13-tf_crop_and_resize": dict(opset=13, mode="linear", ctm="tf_crop_and_resize", extrapolation_value=0.5,
                                       roi=(0, 0, -0.2, 0.1, 1, 1, 0.8, 1.3)),
    "opset18-axes-sizes-dynamic-batch": dict(opset=18, mode="linear", sizes=(6, 5), axes=[2, 3]),
    "opset18-antialias-not_larger": dict(opset=18, mode="linear", sizes=(2, 2), axes=[-2, -1], antialias=1,
                                         keep_aspect_ratio_policy="not_larger"),
    "opset19-half_pixel_symmetric": dict(opset=19, mode="linear", ctm="half_pixel_symmetric",
                                         scales=(1, 1, 1.7, 2.0)),
}


@pytest.mark.parametrize("case", list(RESIZE_CASES))
def test_resize_without_neurons_is_the_ann(case):
    spec = dict(RESIZE_CASES[case])
    opset, batch = spec.pop("opset"), spec.pop("batch", "N")
    nodes, inits = _resize(opset, **spec)
    model = _model([oh.make_node("Identity", ["x"], ["a"])] + nodes + [oh.make_node("Identity", ["h"], ["y"])],
                   inits, opset, batch)
    snn = _assert_exact(model)
    if "sizes" in spec and "axes" not in spec:  # the batch entry k became T·k
        sizes = [onnx.numpy_helper.to_array(t) for t in snn.graph.initializer if "/up/sizes" in t.name]
        assert any(int(s[0]) == 3 * spec["sizes"][0] for s in sizes), sizes


@pytest.mark.parametrize("opset", [7, 9])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_without_neurons_is_the_ann(opset, mode):
    scales = np.array([1, 1, 2, 3], np.float32)
    if opset == 7:
        node, inits = oh.make_node("Upsample", ["x"], ["y"], name="/up/Upsample", mode=mode, scales=list(scales)), {}
    else:
        node, inits = oh.make_node("Upsample", ["x", "/up/scales"], ["y"], name="/up/Upsample", mode=mode), \
            {"/up/scales": scales}
    _assert_exact(_model([node], inits, opset, "N"))


def test_resize_with_sizes_computed_from_the_runtime_shape_follows_the_folded_batch():
    """torch's interpolate(size=...) with a dynamic batch: sizes = Concat(Shape(x)[0:2], [H', W'])."""
    nodes = [oh.make_node("Shape", ["x"], ["/up/shape"]),
             oh.make_node("Slice", ["/up/shape", "/up/zero", "/up/two"], ["/up/nc"]),
             oh.make_node("Concat", ["/up/nc", "/up/hw"], ["/up/sizes"], axis=0),
             oh.make_node("Resize", ["x", "", "", "/up/sizes"], ["y"], name="/up/Resize", mode="linear")]
    inits = {"/up/zero": np.array([0], np.int64), "/up/two": np.array([2], np.int64),
             "/up/hw": np.array([7, 5], np.int64)}
    _assert_exact(_model(nodes, inits, 13, "N"))


@pytest.mark.parametrize("case", ["opset11-linear-align_corners", "opset13-cubic-exclude_outside",
                                  "opset11-sizes-fixed-batch", "opset19-half_pixel_symmetric"])
def test_resize_between_neurons_approaches_the_ann(case):
    spec = dict(RESIZE_CASES[case])
    opset, batch = spec.pop("opset"), spec.pop("batch", "N")
    nodes, inits = _resize(opset, **spec)
    _assert_converges(_around(nodes, inits, opset, batch))


@pytest.mark.parametrize("spec, reason", [
    (dict(opset=13, scales=(2, 1, 2, 2)), "scale other than 1 along the batch axis"),
    (dict(opset=13, sizes=(3, C, 6, 6), batch=2), "batch entry (3) is not the model's fixed batch (2)"),
    (dict(opset=13, sizes=(1, C, 6, 6)), "batch entry (1) is not the model's fixed batch (dynamic)"),
    (dict(opset=13, mode="linear", ctm="tf_crop_and_resize", roi=(0.5, 0, 0, 0, 1, 1, 1, 1)), "crops the batch axis"),
    (dict(opset=18, sizes=(2, 6, 6), axes=[0, 2, 3], keep_aspect_ratio_policy="not_smaller", batch=2),
     "keep_aspect_ratio_policy"),
], ids=["batch-scale", "sizes-other-batch", "sizes-dynamic-batch", "roi-crops-batch", "aspect-policy-on-batch"])
def test_resize_that_touches_the_batch_axis_is_refused(spec, reason):
    spec = dict(spec)
    opset, batch = spec.pop("opset"), spec.pop("batch", "N")
    nodes, inits = _resize(opset, **spec)
    graph = oh.make_graph([oh.make_node("Relu", ["x"], ["a"], name="/in/Relu")] + nodes + [oh.make_node("Relu", ["h"], ["y"])],
                          "g", [oh.make_tensor_value_info("x", F, [batch, C, H, W])],
                          [oh.make_tensor_value_info("y", F, None)],
                          [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    offenders = _offenders(model)
    assert [o[:2] for o in offenders] == [("/up/Resize", "Resize")] and reason in offenders[0][2], offenders


def test_resize_with_scales_computed_from_an_activation_is_refused():
    nodes = [oh.make_node("Relu", ["x"], ["a"], name="/in/Relu"),
             oh.make_node("ReduceMean", ["a"], ["m"], axes=[1, 2, 3], keepdims=0),
             oh.make_node("Concat", ["m", "m", "m", "m"], ["s"], axis=0),
             oh.make_node("Resize", ["a", "", "s"], ["h"], name="/up/Resize"), oh.make_node("Relu", ["h"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", F, [1, C, H, W])],
                          [oh.make_tensor_value_info("y", F, None)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    offenders = _offenders(model)
    assert any(o[0] == "/up/Resize" and "computed from activations" in o[2] for o in offenders), offenders


def test_resize_is_hoisted_before_the_first_neuron():
    """Constant scales with batch scale 1: row-wise, so the time-invariant head runs it once per sample."""
    nodes, inits = _resize(13, mode="linear")
    snn = _assert_exact(_model([oh.make_node("Identity", ["x"], ["a"])] + nodes
                               + [oh.make_node("Identity", ["h"], ["y"])], inits, 13, "N"), timesteps=4)
    order = [n.op_type for n in snn.graph.node]
    assert order.index("Resize") < order.index("Tile")


# -- ConvTranspose ----------------------------------------------------------------------------------

CONV_T_CASES = {
    "group2-output_padding": dict(group=2, strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 1]),
    "output_shape": dict(strides=[2, 3], output_shape=[7, 8]),
    "dilations-same_upper": dict(strides=[2, 2], dilations=[2, 1], auto_pad="SAME_UPPER"),
}


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("batch", ["N", 2])
@pytest.mark.parametrize("case", list(CONV_T_CASES))
def test_conv_transpose_without_neurons_is_the_ann(case, batch, opset):
    attrs = CONV_T_CASES[case]
    group = attrs.get("group", 1)
    w = rng_array(C, 6 // group, 3, 3, seed=4)
    node = oh.make_node("ConvTranspose", ["x", "/up/w", "/up/b"], ["y"], name="/up/ConvTranspose", **attrs)
    _assert_exact(_model([node], {"/up/w": w, "/up/b": rng_array(6, seed=5)}, opset, batch))


@pytest.mark.parametrize("case", ["group2-output_padding", "output_shape"])
def test_conv_transpose_between_neurons_approaches_the_ann(case):
    attrs = CONV_T_CASES[case]
    group = attrs.get("group", 1)
    w = (rng_array(C, 6 // group, 3, 3, seed=4) * 0.7).astype(np.float32)
    node = oh.make_node("ConvTranspose", ["a", "/up/w"], ["h"], name="/up/ConvTranspose", **attrs)
    _assert_converges(_around([node], {"/up/w": w}, 13, "N", channels_out=6))


# -- DepthToSpace / SpaceToDepth --------------------------------------------------------------------

@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("batch", ["N", 3])
@pytest.mark.parametrize("op, attrs, shape", [
    ("DepthToSpace", dict(blocksize=2, mode="DCR"), (8, 3, 3)),
    ("DepthToSpace", dict(blocksize=2, mode="CRD"), (8, 3, 3)),
    ("SpaceToDepth", dict(blocksize=2), (2, 4, 6)),
], ids=["d2s-DCR", "d2s-CRD", "s2d"])
def test_depth_space_rearrangements_without_neurons_are_the_ann(op, attrs, shape, batch, opset):
    _assert_exact(_model([oh.make_node(op, ["x"], ["y"], name=f"/block/{op}", **attrs)], {}, opset, batch,
                         in_shape=shape))


def test_depth_to_space_between_neurons_approaches_the_ann():
    nodes = [oh.make_node("DepthToSpace", ["a"], ["d"], name="/block/DepthToSpace", blocksize=2, mode="CRD"),
             oh.make_node("SpaceToDepth", ["d"], ["h"], name="/block/SpaceToDepth", blocksize=2)]
    _assert_converges(_around(nodes, {}, 13, "N", in_shape=(C, 4, 4)))


# -- Pad --------------------------------------------------------------------------------------------

def _pad(opset, mode, pads, value=None, axes=None):
    if opset < 11:
        attrs = dict(mode=mode, pads=list(pads))
        if value is not None:
            attrs["value"] = float(value)
        return [oh.make_node("Pad", ["a"], ["h"], name="/pad/Pad", **attrs)], {}
    inits = {"/pad/pads": np.array(pads, np.int64)}
    ins = ["a", "/pad/pads"]
    if value is not None or axes is not None:
        ins.append("" if value is None else "/pad/value")
        if value is not None:
            inits["/pad/value"] = np.array(value, np.float32)
    if axes is not None:
        ins.append("/pad/axes")
        inits["/pad/axes"] = np.array(axes, np.int64)
    return [oh.make_node("Pad", ins, ["h"], name="/pad/Pad", mode=mode)], inits


PAD_CASES = {
    "opset9-constant-attr": dict(opset=9, mode="constant", pads=[0, 1, 1, 0, 0, 0, 2, 1]),
    "opset9-reflect-attr": dict(opset=9, mode="reflect", pads=[0, 0, 2, 1, 0, 0, 1, 2]),
    "opset11-edge": dict(opset=11, mode="edge", pads=[0, 0, 1, 2, 0, 0, 3, 0]),
    "opset13-constant-nonzero": dict(opset=13, mode="constant", pads=[0, 1, 1, 1, 0, 2, 0, 1], value=0.75),
    "opset13-reflect-crop": dict(opset=13, mode="reflect", pads=[0, 0, 1, -1, 0, 0, -1, 1]),
    "opset18-axes": dict(opset=18, mode="constant", pads=[1, 2, 0, 1], axes=[-1, 1]),
    "opset19-wrap": dict(opset=19, mode="wrap", pads=[0, 0, 2, 3, 0, 0, 1, 2]),
    "opset19-wrap-axes": dict(opset=19, mode="wrap", pads=[1, 1, 0, 2], axes=[2, 3]),
}


@pytest.mark.parametrize("batch", ["N", 2])
@pytest.mark.parametrize("case", list(PAD_CASES))
def test_pad_without_neurons_is_the_ann(case, batch):
    spec = dict(PAD_CASES[case])
    opset = spec.pop("opset")
    nodes, inits = _pad(opset, **spec)
    _assert_exact(_model([oh.make_node("Identity", ["x"], ["a"])] + nodes + [oh.make_node("Identity", ["h"], ["y"])],
                         inits, opset, batch))


@pytest.mark.parametrize("case", ["opset13-constant-nonzero", "opset13-reflect-crop", "opset19-wrap"])
def test_pad_between_neurons_approaches_the_ann(case):
    """A non-zero constant border is the same every step: it commutes with the average like a bias."""
    spec = dict(PAD_CASES[case])
    opset = spec.pop("opset")
    nodes, inits = _pad(opset, **spec)
    _assert_converges(_around(nodes, inits, opset, "N", channels_out=C + (3 if "nonzero" in case else 0)))


@pytest.mark.parametrize("spec", [dict(opset=13, mode="constant", pads=[1, 0, 0, 0, 0, 0, 0, 0]),
                                  dict(opset=18, mode="edge", pads=[0, 1, 1, 0], axes=[2, 0])],
                         ids=["pads", "axes"])
def test_pad_along_the_batch_axis_is_refused(spec):
    spec = dict(spec)
    opset = spec.pop("opset")
    nodes, inits = _pad(opset, **spec)
    model = _model([oh.make_node("Relu", ["x"], ["a"], name="/in/Relu")] + nodes + [oh.make_node("Relu", ["h"], ["y"])],
                   inits, opset, 2)
    offenders = _offenders(model)
    assert [o[:2] for o in offenders] == [("/pad/Pad", "Pad")] and "batch axis" in offenders[0][2]


# -- Einsum and MatMul with one constant operand ----------------------------------------------------

EINSUM_CASES = ["bchw,dc->bdhw", "dc,bchw->bdhw", "...hw,wv->...hv",
                "bchw,hk",  # implicit output: b c k w (b first: alphabetical)
                "bchw,c->bhw"]


def _einsum_operand(equation):
    lhs = equation.split("->")[0].split(",")
    const = lhs[0] if lhs[1].startswith(("b", "...")) else lhs[1]
    dims = {"c": C, "h": H, "w": W, "d": 5, "k": 2, "v": 4}
    return rng_array(*[dims[c] for c in const], seed=8), lhs[0] == const


@pytest.mark.parametrize("opset", [12, 13])
@pytest.mark.parametrize("batch", ["N", 2])
@pytest.mark.parametrize("equation", EINSUM_CASES)
def test_einsum_with_one_constant_operand_without_neurons_is_the_ann(equation, batch, opset):
    w, first = _einsum_operand(equation)
    ins = ["/e/w", "x"] if first else ["x", "/e/w"]
    model = _model([oh.make_node("Einsum", ins, ["y"], name="/e/Einsum", equation=equation)], {"/e/w": w}, opset,
                   batch)
    snn = _assert_exact(model)
    assert "Einsum" in {n.op_type for n in snn.graph.node}


def test_einsum_between_neurons_approaches_the_ann():
    w = (rng_array(C, C, seed=9) * 0.8).astype(np.float32)
    node = oh.make_node("Einsum", ["/e/w", "a"], ["h"], name="/e/Einsum", equation="dc,bchw->bdhw")
    _assert_converges(_around([node], {"/e/w": w}, 12, "N"))


@pytest.mark.parametrize("equation, const_shape, reason", [
    ("bchw,hk->kbcw", (H, 2), "does not keep the activation's batch axis"),
    ("bchw,c->chw", (C,), "does not keep the activation's batch axis"),
    ("bchw,bc->bhw", (2, C), "constant operand has an axis along the batch axis"),
    ("bbhw,hw->bhw", (H, W), "diagonal over the batch axis"),
])
def test_einsum_that_mixes_samples_is_refused(equation, const_shape, reason):
    in_shape = (2, H, W) if equation.startswith("bb") else (C, H, W)
    graph = oh.make_graph([oh.make_node("Relu", ["x"], ["a"], name="/in/Relu"),
                           oh.make_node("Einsum", ["a", "/e/w"], ["h"], name="/e/Einsum", equation=equation),
                           oh.make_node("Relu", ["h"], ["y"])], "g",
                          [oh.make_tensor_value_info("x", F, [2, *in_shape])], [oh.make_tensor_value_info("y", F, None)],
                          [onnx.numpy_helper.from_array(rng_array(*const_shape), "/e/w")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    offenders = _offenders(model)
    assert len(offenders) == 1 and reason in offenders[0][2], offenders


@pytest.mark.parametrize("batch", ["N", 2])
@pytest.mark.parametrize("const_shape", [(5, H), (1, 5, H), (1, 1, 5, H)], ids=str)
def test_matmul_with_a_constant_left_operand_without_neurons_is_the_ann(const_shape, batch):
    model = _model([oh.make_node("MatMul", ["/m/w", "x"], ["y"], name="/m/MatMul")],
                   {"/m/w": rng_array(*const_shape, seed=10)}, 13, batch)
    _assert_exact(model)


def test_matmul_with_a_constant_left_operand_between_neurons_approaches_the_ann():
    node = oh.make_node("MatMul", ["/m/w", "a"], ["h"], name="/m/MatMul")
    _assert_converges(_around([node], {"/m/w": (rng_array(H, H, seed=11) * 0.8).astype(np.float32)}, 13, "N"))


@pytest.mark.parametrize("left, x_shape, w_shape, reason", [
    (True, [2, 4], (3, 2), "contracts its batch axis"),
    (True, [2, C, H], (3, 5, C), "rows along the batch axis"),
    (False, [2, 4], (2, 4, 3), "moves the batch axis"),
    (False, [2, C, H], (2, H, 3), "rows along the batch axis"),
])
def test_matmul_that_mixes_samples_is_refused(left, x_shape, w_shape, reason):
    ins = ["/m/w", "a"] if left else ["a", "/m/w"]
    nodes = [oh.make_node("Relu", ["x"], ["a"], name="/in/Relu"), oh.make_node("MatMul", ins, ["h"], name="/m/MatMul"),
             oh.make_node("Relu", ["h"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", F, x_shape)], [oh.make_tensor_value_info("y", F, None)],
                          [onnx.numpy_helper.from_array(rng_array(*w_shape), "/m/w")])
    offenders = _offenders(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)]))
    assert [o[:2] for o in offenders] == [("/m/MatMul", "MatMul")] and reason in offenders[0][2], offenders


# -- Mul / Div by broadcast constants ---------------------------------------------------------------

@pytest.mark.parametrize("op", ["Mul", "Div"])
@pytest.mark.parametrize("shape", [(), (W,), (C, 1, 1), (1, C, 1, 1), (1, 1, H, W), (C, H, W), (2, C, 1, 1)],
                         ids=str)
@pytest.mark.parametrize("batch", ["N", 2])
def test_mul_div_by_a_broadcast_constant_without_neurons_is_the_ann(op, shape, batch):
    if shape[:1] == (2,) and batch == "N":
        pytest.skip("one row per sample needs the fixed batch")
    c = rng_array(*shape, seed=12, low=0.5, high=2.0)
    _assert_exact(_model([oh.make_node(op, ["x", "/s/c"], ["y"], name=f"/s/{op}")], {"/s/c": c}, 13, batch))


def test_mul_by_a_broadcast_constant_between_neurons_approaches_the_ann():
    c = rng_array(1, 1, H, W, seed=13, low=0.2, high=1.5)
    _assert_converges(_around([oh.make_node("Mul", ["/s/c", "a"], ["h"], name="/s/Mul")], {"/s/c": c}, 13, "N"))


@pytest.mark.parametrize("op", ["Mul", "Div", "Add"])
def test_a_constant_of_higher_rank_than_the_activation_is_refused(op):
    """Broadcasting x[N, C, H, W] with c[2, 1, C, H, W] adds a leading axis: the batch axis becomes axis 1."""
    nodes = [oh.make_node("Relu", ["x"], ["a"], name="/in/Relu"), oh.make_node(op, ["a", "/s/c"], ["h"], name=f"/s/{op}"),
             oh.make_node("Relu", ["h"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", F, ["N", C, H, W])],
                          [oh.make_tensor_value_info("y", F, None)],
                          [onnx.numpy_helper.from_array(rng_array(2, 1, C, H, W), "/s/c")])
    offenders = _offenders(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)]))
    assert len(offenders) == 1 and "the batch axis moves" in offenders[0][2], offenders


def test_refusals_still_name_every_node():
    """Everything that mixes samples in one graph: one error naming each node."""
    nodes, inits = _resize(13, scales=(2, 1, 1, 1))
    pad, pad_inits = _pad(13, "constant", [1, 0, 0, 0, 0, 0, 0, 0])
    pad[0].input[0], pad[0].output[0] = "h", "p"
    nodes += pad + [oh.make_node("Relu", ["p"], ["y"])]
    graph = oh.make_graph([oh.make_node("Relu", ["x"], ["a"], name="/in/Relu")] + nodes, "g",
                          [oh.make_tensor_value_info("x", F, [2, C, H, W])], [oh.make_tensor_value_info("y", F, None)],
                          [onnx.numpy_helper.from_array(v, k) for k, v in {**inits, **pad_inits}.items()])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    with pytest.raises(UnsupportedOpError) as info:
        onnx2snn.convert(model, {"x": rng_array(2, C, H, W)}, onnx2snn.ConvertConfig(timesteps=2))
    assert {o[0] for o in info.value.offenders} == {"/up/Resize", "/pad/Pad"}


def test_einsum_and_left_matmul_count_as_weighted_layers_in_the_cost_report():
    """Einsum fan-out: the sizes of the axes only the constant has (its sum over the input is the dense MAC
    count); in an SNN it is a weighted layer whose spiking input costs SynOps, like a MatMul C·x."""
    import onnx_graphsurgeon as gs

    from onnx2snn.cost import report
    from onnx2snn.cost.fanout import dense_macs, fanout

    node = gs.Node("Einsum", attrs={"equation": "dc,bchw->bdhw"})
    f = fanout(node, [1, C, H, W], [1, 5, H, W], [5, C], data_index=1)
    assert int(np.broadcast_to(f, (C, H, W)).sum()) == dense_macs(node, [1, C, H, W], [1, 5, H, W], [5, C], 1) \
        == 5 * C * H * W
    node = gs.Node("Einsum", attrs={"equation": "...hw,wv->...hv"})
    assert int(fanout(node, [2, C, H, W], [2, C, H, 4], [W, 4])[0]) == 4
    for op_node, inits in [
            (oh.make_node("Einsum", ["/e/w", "a"], ["h"], name="/e/Einsum", equation="dc,bchw->bdhw"),
             {"/e/w": (rng_array(C, C, seed=9) * 0.8).astype(np.float32)}),
            (oh.make_node("MatMul", ["/m/w", "a"], ["h"], name="/m/MatMul"),
             {"/m/w": (rng_array(H, H, seed=11) * 0.8).astype(np.float32)})]:
        ann = _around([op_node], inits, 13, "N")
        x = _feeds(ann, n=4, low=0.0)
        snn = onnx2snn.convert(ann, {"x": x}, onnx2snn.ConvertConfig(timesteps=8)).model
        cost = report(ann, snn, {"x": x})
        (layer,) = [w for w in cost.weighted_layers if w.op == op_node.op_type]
        assert layer.spiking_input and layer.synops_per_sample > 0
        assert layer.ann_macs_per_sample == (C * C * H * W if op_node.op_type == "Einsum" else H * C * H * W)


def _unet(torch, how):
    """A tiny U-Net: conv, strided conv, upsampling (interpolate by scale or to a size), a grouped
    ConvTranspose, a constant scale, Concat, a reflection pad, a crop."""
    nn, fn = torch.nn, torch.nn.functional

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.up, self.c3 = nn.ConvTranspose2d(8, 8, 2, stride=2, groups=2), nn.Conv2d(24, 4, 1)
            self.pad = nn.ReflectionPad2d(1)

        def forward(self, x):
            a = torch.relu(self.c1(x))
            b = torch.relu(self.c2(a))
            u = (fn.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False) if how == "size"
                 else fn.interpolate(b, scale_factor=2, mode="nearest"))
            t = torch.relu(self.up(b)) * 0.5
            return self.c3(torch.relu(torch.cat([a, u, t], 1)))[:, :, 1:-1, 1:-1] + self.pad(a)[:, :4, 2:-2, 2:-2]

    torch.manual_seed(0)
    return UNet().eval()


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("how", ["scale", "size"])
def test_a_torch_unet_with_interpolate_converts_with_both_exporters(how, dynamo, tmp_path):
    """Dynamic batch; interpolate(scale_factor) gives constant scales, interpolate(size) sizes from
    Shape(x) (TorchScript) or constants: the SNN approaches the network (measured 0.8-4% at T = 256)."""
    torch = pytest.importorskip("torch")
    if dynamo:
        pytest.importorskip("onnxscript")
    net, x = _unet(torch, how), torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "unet.onnx"
    if dynamo:
        torch.onnx.export(net, (x,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                          dynamic_shapes={"x": {0: torch.export.Dim("N")}})
    else:
        torch.onnx.export(net, (x,), str(path), dynamo=False, opset_version=13, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
    model = onnx.load(str(path))
    assert "Resize" in {n.op_type for n in model.graph.node}
    snn = onnx2snn.convert(model, {"x": x.numpy()}, onnx2snn.ConvertConfig(timesteps=256)).model
    got = onnx2snn.InferenceSession(snn).run(["y"], {"x": x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 0.08
