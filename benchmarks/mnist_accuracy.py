"""Accuracy of the converted bundled MNIST CNN with threshold balancing alone.

For each threshold rule (max, percentile; layer-wise and channel-wise) one
SNN run at T = 128 gives the top-1 after every step (running-mean readout);
the table shows T = 8 ... 128 next to the ANN. Then the default rule runs at
T = 512: mean absolute difference of its logits to the ANN's, and agreement
of the predictions, after 32, 128 and 512 steps.

    python benchmarks/mnist_accuracy.py
Targets (issue 2): the best rule within 1.0 point of the ANN at T = 32 and
within 0.3 point at T = 64.

Test data: the 2,000 held-out digits of ../shared/data/mnist10k.npz when that
file exists (indices 8000-9999), else the 1,000 bundled in models/data.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import onnx2snn
from onnx2snn.calibration import balance_thresholds, collect_statistics
from onnx2snn.config import ThresholdSpec
from onnx2snn.data import ArrayDataReader
from onnx2snn.data import calibration_feeds
from onnx2snn.passes.activations import activation_names
from onnx2snn.pipeline import build_snn, prepare
from onnx2snn.runtime.session import InferenceSession
from onnx2snn.runtime.evaluate import running_output_name

REPO = Path(__file__).resolve().parents[1]


def test_data(path: str | None):
    shared = REPO.parent / "shared" / "data" / "mnist10k.npz"
    if path is None and shared.exists():
        d = np.load(shared)
        x = (d["images"][8000:].astype(np.float32) / 255.0)[:, None]
        return x, d["labels"][8000:], f"{shared.name} digits 8000-9999"
    d = np.load(path or REPO / "models" / "data" / "mnist_test.npz")
    return d["x"], d["labels"], str(path or "models/data/mnist_test.npz")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mnist_cnn.onnx"))
    ap.add_argument("--calibration-data", default=str(REPO / "models" / "data" / "mnist_calib.npz"))
    ap.add_argument("--data", default=None, help=".npz with x and labels (default: see module doc)")
    ap.add_argument("--timesteps", type=int, default=128, help="steps of the rule table")
    ap.add_argument("--long", type=int, default=512, help="steps of the convergence run")
    args = ap.parse_args()
    T = args.timesteps
    x, labels, source = test_data(args.data)

    model = onnx2snn.load_model(args.model)
    ann = prepare(model)
    ann_logits = ort.InferenceSession(ann.SerializeToString()).run(None, {"input": x})[0]
    ann_top1 = 100 * (ann_logits.argmax(1) == labels).mean()
    names = activation_names(ann)
    show = [t for t in (8, 16, 32, 64, 128, 256, 512) if t <= T]
    print(f"machine: {platform.machine()}, onnxruntime {ort.__version__}; test: {len(labels)} digits ({source})")
    print(f"ANN top-1: {ann_top1:.2f}%   (SNN columns: top-1 % after t steps, difference to the ANN in brackets)")
    header = f"{'threshold':<18} {'scope':<8}" + "".join(f"{'T=' + str(t):>15}" for t in show) \
        + f"{'conv s':>8}"
    print(header)
    for channel_wise in (False, True):
        start = time.perf_counter()
        stats = collect_statistics(ann, names, ArrayDataReader(calibration_feeds(args.calibration_data, ann), 64),
                                   channel_wise=channel_wise, progress=False)
        calib_s = time.perf_counter() - start
        for rule in ("max", "percentile:99.99", "percentile:99.9"):
            spec = ThresholdSpec.parse(rule)
            cfg = onnx2snn.ConvertConfig(timesteps=T, threshold=spec, channel_wise=channel_wise)
            start = time.perf_counter()
            snn = build_snn(ann, balance_thresholds(stats, spec), cfg)
            conv_s = calib_s + time.perf_counter() - start
            acc, _ = run_snn(snn, x, labels)
            cells = "".join(f"{acc[t - 1]:7.2f} ({acc[t - 1] - ann_top1:+5.2f})" for t in show)
            print(f"{rule:<18} {'channel' if channel_wise else 'layer':<8}{cells}{conv_s:8.2f}", flush=True)

    cfg = onnx2snn.ConvertConfig(timesteps=args.long, channel_wise=True)
    result = onnx2snn.convert(model, args.calibration_data, cfg)
    acc, running = run_snn(result.model, x, labels)
    print(f"\nconvergence to the ANN, {cfg.threshold} channel-wise, one run of T={args.long}:")
    print(f"{'t':>6} {'top-1 %':>8} {'mean |logit - ANN logit|':>25} {'same prediction as ANN %':>25}")
    for t in [t for t in (32, 128, 512, 1024) if t <= args.long]:
        mad = np.abs(running[t - 1] - ann_logits).mean()
        agree = 100 * (running[t - 1].argmax(1) == ann_logits.argmax(1)).mean()
        print(f"{t:>6} {acc[t - 1]:8.2f} {mad:25.4f} {agree:25.2f}")
    print(f"(ANN logits: mean |logit| {np.abs(ann_logits).mean():.3f})")


def run_snn(snn, x, labels, batch=100):
    """Top-1 % after every step, and the running-mean logits [T, N, K]."""
    sess = InferenceSession(snn)
    name = running_output_name(snn)
    running = np.concatenate([sess.run([name], {"input": x[i:i + batch]})[0] for i in range(0, len(x), batch)], 1)
    return 100 * (running.argmax(-1) == labels[None]).mean(1), running


if __name__ == "__main__":
    main()
