import numpy as np
import onnx.helper as oh
import pytest

from conftest import make_model
from onnx2snn.calibration import ActivationStats, balance_thresholds, collect_statistics
from onnx2snn.config import ThresholdSpec
from onnx2snn.data import ArrayDataReader


def test_max_and_percentile_stream_with_growing_range():
    rng = np.random.default_rng(0)
    batches = [np.maximum(rng.normal(scale=s, size=(64, 3, 4, 4)), 0).astype(np.float32) for s in (0.1, 1.0, 10.0)]
    stats = ActivationStats(channel_wise=False, bins=4096)
    for b in batches:
        stats.update(b)
    allv = np.concatenate([b.ravel() for b in batches])
    pos = allv[allv > 0]
    assert stats.max[0] == pytest.approx(allv.max())
    for p in (50.0, 99.0, 99.99):
        want = np.percentile(pos, p, method="inverted_cdf")
        # exact up to one bin width
        assert abs(stats.percentile(p)[0] - want) <= stats.width[0] + 1e-6
    assert stats.percentile(100.0)[0] == pytest.approx(allv.max())
    assert stats.hist.sum() == pos.size


def test_channel_wise_statistics_and_dead_channels():
    a = np.zeros((8, 3, 2, 2), np.float32)
    a[:, 0] = 1.0
    a[0, 1, 0, 0] = 5.0  # channel 2 never active
    stats = ActivationStats(channel_wise=True)
    stats.update(a)
    np.testing.assert_allclose(stats.max, [1.0, 5.0, 0.0])
    table = balance_thresholds({"a": stats}, ThresholdSpec.parse("max"))
    np.testing.assert_allclose(table["a"], [1.0, 5.0, 5.0])  # dead channel gets the layer's value
    assert table["a"].dtype == np.float32


def test_layer_that_never_fires_gets_unit_threshold():
    stats = ActivationStats(channel_wise=False)
    stats.update(np.zeros((4, 2), np.float32))
    assert balance_thresholds({"a": stats}, ThresholdSpec.parse("percentile:99"))["a"] == 1.0


def test_collect_runs_onnxruntime_over_reader():
    nodes = [oh.make_node("Relu", ["x"], ["r"]), oh.make_node("Mul", ["r", "two"], ["y"])]
    model = make_model(nodes, [("x", ["N", 3])], [("y", ["N", 3])], {"two": np.array(2.0, np.float32)})
    x = np.array([[1, -1, 3], [2, 0, -5], [0.5, 4, 1]], np.float32)
    reader = ArrayDataReader({"x": x}, batch_size=2)
    stats = collect_statistics(model, ["r"], reader, channel_wise=True, progress=False)
    np.testing.assert_allclose(stats["r"].max, [2, 4, 3])
    assert stats["r"].samples == 3


@pytest.mark.parametrize("text, ok", [("max", True), ("percentile:99.99", True), ("percentile:0", False),
                                      ("percentile:101", False), ("percentile:x", False), ("mean", False)])
def test_threshold_spec_parse(text, ok):
    from onnx2snn import ConfigError
    if ok:
        assert str(ThresholdSpec.parse(text)) == text
    else:
        with pytest.raises(ConfigError):
            ThresholdSpec.parse(text)
