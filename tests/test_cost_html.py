"""The HTML cost report (onnx2snn.cost.html): a self-contained page and its PNG plots, from the API and the CLI."""
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest

import onnx2snn
import onnx2snn.cost
from conftest import MODELS, REPO
from onnx2snn.cli import main
from onnx2snn.cost import CostReport, EnergyModel, LayerCost, WeightedLayerCost

pytest.importorskip("matplotlib")

from onnx2snn.cost.html import check_plotting, short_names, write_html  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
PLOTS = ("accuracy", "firing_rates", "synops", "accuracy_energy")


@pytest.fixture(scope="module")
def converted():
    ann = onnx.load(str(MODELS / "mnist_cnn.onnx"))
    with np.load(MODELS / "data" / "mnist_calib.npz") as d:
        x = d["x"][:32]
    snn = onnx2snn.convert(ann, {"input": x}, onnx2snn.ConvertConfig(timesteps=4)).model
    with np.load(MODELS / "data" / "mnist_test.npz") as d:
        test_x, labels = d["x"][:16], d["labels"][:16]
    return ann, snn, test_x, labels


def check_page(paths, html_path, stems=PLOTS, names=()):
    assert paths[0] == html_path
    assert [p.name for p in paths[1:]] == [f"{html_path.stem}_{k}.png" for k in stems]
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0
    for p in paths[1:]:
        assert p.read_bytes().startswith(PNG)
    assert not [p for p in html_path.parent.iterdir() if p.name.endswith(".tmp")]
    page = html_path.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(stems)
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*https?://", page, re.I)  # nothing loaded from elsewhere
    assert not re.search(r"url\(\s*[\"']?https?:", page, re.I)
    assert "not a hardware measurement" in page and "memory access" in page.lower()
    for name in names:
        assert name in page, name
    return page


def test_html_from_the_api(converted, tmp_path):
    ann, snn, x, labels = converted
    rep = onnx2snn.cost.report(ann, snn, {"input": x}, labels)
    html_path = tmp_path / "report.html"
    paths = write_html(rep, html_path, model="mnist_cnn.onnx")
    names = [layer.name for layer in rep.layers] + [w.name for w in rep.weighted_layers]
    page = check_page(paths, html_path, names=names)
    assert "mnist_cnn.onnx" in page and "Accuracy per time step" in page
    assert f"{rep.snn_uj / rep.ann_uj:.3f}" in page  # the SNN / ANN energy ratio
    assert rep.energy.name.split(",")[0] in page


def test_html_from_the_cli(converted, tmp_path, capsys):
    ann, snn, x, labels = converted
    ann_path, snn_path, data_path = tmp_path / "ann.onnx", tmp_path / "snn.onnx", tmp_path / "data.npz"
    onnx2snn.save_model(ann, ann_path)
    onnx2snn.save_model(snn, snn_path)
    np.savez(data_path, x=x, labels=labels)
    html_path = tmp_path / "out" / "cost.html"
    html_path.parent.mkdir()
    argv = ["report", str(ann_path), str(snn_path), "--data", str(data_path), "-o", str(html_path), "-q"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    check_page([html_path] + [html_path.parent / f"cost_{k}.png" for k in PLOTS], html_path,
               names=["/relu1/Relu_output_0", "/conv1/Conv", "/fc/Gemm"])


def synthetic(T=64, accuracy=False, bipolar=True) -> CostReport:
    """A report made by hand: many steps, bipolar neurons, long names."""
    layers = [LayerCost(f"/encoder/block{k}/act/Relu_output_0", "BIFNeuron", 100, 30.0 * (k + 1),
                        20.0 * (k + 1), 10.0 * (k + 1) if bipolar else 0.0, 0.003 * (k + 1), 0.5, 1e3 * 10 ** k,
                        1e4 * 10 ** k) for k in range(3)]
    weighted = [WeightedLayerCost("/stem/Conv", "Conv", False, 0.0, 5e3, 5e3, [])] + \
        [WeightedLayerCost(f"/encoder/block{k}/proj/MatMul", "MatMul", True, 1e3 * 10 ** k, 0.0, 1e4 * 10 ** k,
                           [layers[k].name]) for k in range(3)]
    total = sum(w.synops_per_sample for w in weighted)
    steps = [total * (t + 1) / T for t in range(T)]
    acc = {"ann_top1": 91.0, "snn_top1": {t: min(90.0, 10.0 + t) for t in range(1, T + 1)}} if accuracy else None
    return CostReport(T, 10, "folded", layers, weighted, total, 5e3, sum(w.ann_macs_per_sample for w in weighted),
                      steps, [5e3] * T, EnergyModel.preset("int8"), acc, ["a note <with> markup"])


def test_html_without_accuracy(tmp_path):
    html_path = tmp_path / "r.html"
    paths = write_html(synthetic(), html_path)
    page = check_page(paths, html_path, stems=("firing_rates", "synops", "accuracy_energy"),
                      names=["/encoder/block2/act/Relu_output_0", "/stem/Conv"])
    assert "Accuracy per time step" not in page and "Energy per time step" in page
    assert "a note &lt;with&gt; markup" in page  # escaped


def test_html_many_steps(tmp_path):
    html_path = tmp_path / "r.html"
    page = check_page(write_html(synthetic(T=100, accuracy=True), html_path), html_path)
    rows = re.findall(r"<tr><td>(\d+)</td>", page)  # the accuracy table: powers of two and T
    assert rows == ["1", "2", "4", "8", "16", "32", "64", "100"]


def test_short_names():
    assert short_names(["/relu1/Relu_output_0", "/fc/Gemm"]) == ["relu1/Relu", "fc/Gemm"]
    # as many trailing parts as keep them apart; a part the next one repeats is dropped
    assert short_names(["/layer1/layer1.0/relu/Relu_output_0", "/layer1/layer1.1/relu/Relu_output_0"]) == \
        ["layer1.0/relu/Relu", "layer1.1/relu/Relu"]
    long = short_names(["/" + "x" * 80], width=20)[0]
    assert len(long) == 20 and long.startswith("…")
    assert len(set(short_names(["a/" + "y" * 40, "b/" + "y" * 40], width=10))) == 2


def test_no_matplotlib_at_import_and_clear_error():
    code = ("import sys, onnx2snn, onnx2snn.cost, onnx2snn.cost.html, onnx2snn.cli; "
            "assert 'matplotlib' not in sys.modules, 'imported at import time'; "
            "sys.modules['matplotlib'] = None; "  # as if it were not installed
            "from onnx2snn.errors import ConfigError\n"
            "try:\n    onnx2snn.cost.html.check_plotting()\nexcept ConfigError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    assert "the HTML report needs matplotlib: pip install 'onnx2snn[report]'" in out
    check_plotting()  # here it is installed


def test_html_of_a_recurrent_snn(tmp_path):
    """A recurrent SNN's accuracy covers the last element's sub-steps only: the page shows those."""
    rnn = onnx2snn.load_model(MODELS / "seqmnist_qrnn.onnx")
    snn = onnx2snn.convert(rnn, None, onnx2snn.ConvertConfig(timesteps=2)).model
    with np.load(MODELS / "data" / "mnist_test.npz") as d:
        x, y = d["x"][:2].reshape(2, -1), d["labels"][:2]
    rep = onnx2snn.cost.report(rnn, snn, {"image": x}, y)
    assert sorted(rep.accuracy["snn_top1"]) == [rep.timesteps - 1, rep.timesteps]
    written = write_html(rep, tmp_path / "rnn.html")
    assert all(p.stat().st_size > 0 for p in written)
    assert f"<td>{rep.timesteps}</td>" in (tmp_path / "rnn.html").read_text()
