"""scikit-learn's MLPClassifier through skl2onnx: Softmax → Identity → probabilities and the label
head (ArgMax → ArrayFeatureExtractor → Reshape → Cast) run once after the readout."""
import numpy as np
import onnxruntime as ort
import pytest

import onnx2snn
from conftest import MODELS
from onnx2snn.errors import ConversionError

sklearn = pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")


@pytest.fixture(scope="module")
def mlp():
    from sklearn.neural_network import MLPClassifier

    d, t = np.load(MODELS / "data" / "mnist_calib.npz"), np.load(MODELS / "data" / "mnist_test.npz")
    x, xt = d["x"].reshape(len(d["x"]), -1), t["x"][:300].reshape(300, -1)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=60, random_state=0).fit(x, d["labels"])
    return clf, x, xt, t["labels"][:300]


def _onnx(clf, x, zipmap):
    model = skl2onnx.to_onnx(clf, x[:1], options={id(clf): {"zipmap": zipmap}},
                             target_opset={"": 13, "ai.onnx.ml": 3})
    model.ir_version = min(model.ir_version, 9)
    return model


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_mlp_classifier_keeps_its_label_and_probabilities(mlp):
    clf, x, xt, yt = mlp
    model = _onnx(clf, x, zipmap=False)
    name = model.graph.input[0].name
    snn = onnx2snn.convert(model, {name: x}, onnx2snn.ConvertConfig(timesteps=64)).model
    assert [o.name for o in snn.graph.output] == ["label", "probabilities", "label_running_mean",
                                                  "probabilities_running_mean"]
    label, probs, _, running = onnx2snn.InferenceSession(snn).run(None, {name: xt})
    want_label, want_probs = ort.InferenceSession(model.SerializeToString()).run(None, {name: xt})
    assert label.dtype == want_label.dtype and label.shape == want_label.shape
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert (label == want_label).mean() >= 0.9
    assert abs((label == yt).mean() - (want_label == yt).mean()) <= 0.05
    assert running.shape == (64, 300, 10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_zipmap_output_is_refused_with_the_option_that_avoids_it(mlp):
    clf, x, _, _ = mlp
    model = _onnx(clf, x, zipmap=True)
    with pytest.raises(ConversionError, match="zipmap"):
        onnx2snn.convert(model, {model.graph.input[0].name: x}, onnx2snn.ConvertConfig(timesteps=8))
