"""Each recipe and pass ensures what its docstring says, on the bundled real models.

- canonicalize: no BatchNormalization, Identity or Dropout left; outputs equal the model's.
- rate / bipolar / temporal (folded): every ReLU-like node became the recipe's neuron op
  (no Relu left in the spiking region), the metadata reads back as written.
- portable and streaming forms: no onnx2snn op left (they run in plain onnxruntime).
- quantized: no quantizer left unconverted (every marker became a BIFNeuron / BIFCount).
- every invalid combination is refused by methods.check with the table's message.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS
from onnx2snn import metadata, methods
from onnx2snn.config import ConvertConfig, Form, Neuron, Reset
from onnx2snn.errors import ConfigError
from onnx2snn.passes.activations import relu_cap
from onnx2snn.recipes import select

CALIB = {"input": np.load(MODELS / "data" / "mnist_calib.npz")["x"][:32]}
X = np.load(MODELS / "data" / "mnist_test.npz")["x"][:4]
FLOAT = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
QUANTIZED = onnx2snn.load_model(MODELS / "mnist_qcnn.onnx")


def _ops(model) -> Counter:
    return Counter((n.domain or "", n.op_type) for n in model.graph.node)


def _relu_like(model) -> list[str]:
    import onnx_graphsurgeon as gs
    graph = gs.import_onnx(model)
    return [n.name for n in graph.nodes if n.op in ("Relu", "Clip") and relu_cap(n)[0]]


def test_canonical_ann_has_no_batchnorm_identity_dropout_and_same_outputs():
    ann = onnx2snn.prepare(FLOAT)
    assert not {op for _, op in _ops(ann)} & {"BatchNormalization", "Identity", "Dropout"}
    run = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (FLOAT, ann)]
    a, b = (s.run(None, {"input": X})[0] for s in run)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("neuron,op", [("if", "IFNeuron"), ("bif", "BIFNeuron"), ("tsep", "TSNeuron")])
def test_float_recipes_replace_every_activation(neuron, op):
    relus = len(_relu_like(onnx2snn.prepare(FLOAT)))
    result = onnx2snn.convert(FLOAT, CALIB, ConvertConfig(timesteps=4, neuron=neuron))
    ops = _ops(result.model)
    assert _relu_like(result.model) == []
    assert ops[("onnx2snn", op)] == relus == len(result.thresholds) and result.neuron_op == op
    meta = metadata.read(result.model)
    assert meta.timesteps == 4 and meta.form == "folded" and meta.running_outputs == ("logits_running_mean",)
    assert metadata.read(metadata.write(result.model, meta)) == meta


@pytest.mark.parametrize("neuron,form", [("if", "portable"), ("if", "streaming"), ("tsep", "portable")])
def test_portable_and_streaming_forms_have_no_custom_op(neuron, form):
    result = onnx2snn.convert(FLOAT, CALIB, ConvertConfig(timesteps=3, neuron=neuron, form=form))
    assert not [op for domain, op in _ops(result.model) if domain == "onnx2snn"]
    assert _relu_like(result.model) == []
    ort.InferenceSession(result.model.SerializeToString(), providers=["CPUExecutionProvider"])  # no library


@pytest.mark.parametrize("form,op", [("folded", "BIFNeuron"), ("cumulative", "BIFCount")])
def test_quantized_recipe_converts_every_quantizer(form, op):
    recipe, ann = select(QUANTIZED, ConvertConfig(timesteps=4, form=form))
    assert recipe.method is methods.Method.QUANTIZED
    quantizers = len(onnx2snn.passes.quantizers.quantizers_from_metadata(ann))
    result = onnx2snn.convert(QUANTIZED, None, ConvertConfig(timesteps=4, form=form))
    assert _ops(result.model)[("onnx2snn", op)] == quantizers > 0
    assert metadata.read(result.model).exact_after_timesteps == result.exact_timesteps


def test_selection_follows_the_model_and_the_flags():
    cases = [(FLOAT, "auto", methods.Method.RATE), (FLOAT, "if", methods.Method.RATE),
             (FLOAT, "bif", methods.Method.BIPOLAR), (FLOAT, "tsep", methods.Method.TEMPORAL),
             (QUANTIZED, "auto", methods.Method.QUANTIZED), (QUANTIZED, "bif", methods.Method.QUANTIZED),
             (onnx2snn.load_model(MODELS / "seqmnist_qrnn.onnx"), "auto", methods.Method.RECURRENT)]
    for model, neuron, method in cases:
        assert select(model, ConvertConfig(timesteps=2, neuron=neuron))[0].method is method


def test_every_combination_the_table_refuses_is_refused_by_convert():
    """The table is the single source: for each method, each form and reset it does not take
    gives exactly its message from convert."""
    models = {methods.Method.RATE: (FLOAT, "if"), methods.Method.BIPOLAR: (FLOAT, "bif"),
              methods.Method.QUANTIZED: (QUANTIZED, "bif")}
    for method, (model, neuron) in models.items():
        accepts = methods.TABLE[method]
        for form in Form:
            for reset in Reset:
                if form.value in accepts.forms and reset.value in accepts.resets:
                    continue
                config = ConvertConfig(timesteps=2, neuron=neuron, form=form, reset=reset)
                with pytest.raises(ConfigError) as err:
                    onnx2snn.convert(model, CALIB, config)
                want = accepts.form_messages.get(form.value, accepts.refuse_form) if form.value not in \
                    accepts.forms else accepts.refuse_reset
                assert str(err.value) == want.format(value=form.value if form.value not in accepts.forms
                                                     else reset.value)
    for form in Form:  # tsep: refused when the config is made (the flags alone decide the method)
        if form.value not in methods.TABLE[methods.Method.TEMPORAL].forms:
            with pytest.raises(ConfigError):
                ConvertConfig(timesteps=2, neuron=Neuron.TSEP, form=form)
