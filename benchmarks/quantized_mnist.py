"""Lossless conversion of the quantized MNIST CNN (QCFS, L = 4) with BIF neurons.

Converts ``models/mnist_qcnn.onnx`` (written by ``models/make_mnist_qcnn.py``)
with ``--neuron bif`` (no calibration data) at T = T*, the step count after
which the SNN's output equals the quantized ANN's, in both BIF forms — the
spiking ``folded`` form (per-step currents, ``BIFNeuron``) and the exact
``cumulative`` form (``BIFCount`` on the ANN's own ops) — and compares them
with the quantized ANN on every test digit: identical predictions, max |logit
difference| (target ≤ 1e-4), after every step t ≤ T*. Both sessions use
onnxruntime's default graph optimisations; the last line repeats the
cumulative comparison with both at ORT_ENABLE_EXTENDED.

    python benchmarks/quantized_mnist.py [--model models/mnist_qcnn.onnx] [--timesteps T]

Test data: the 2,000 held-out digits of ../shared/data/mnist10k.npz when that
file exists (indices 8000-9999), else the 1,000 bundled in models/data.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import onnx2snn
from onnx2snn._library import register
from onnx2snn.config import ConvertConfig
from onnx2snn.runtime.evaluate import running_output_name

REPO = Path(__file__).resolve().parents[1]


def test_data():
    shared = REPO.parent / "shared" / "data" / "mnist10k.npz"
    if shared.exists():
        d = np.load(shared)
        return (d["images"][8000:].astype(np.float32) / 255.0)[:, None], d["labels"][8000:], str(shared)
    d = np.load(REPO / "models" / "data" / "mnist_test.npz")
    return d["x"].astype(np.float32), d["labels"], "models/data/mnist_test.npz"


def run_logits(model_bytes, x, batch, output=None, snn=True, level=None):
    options = register(ort.SessionOptions()) if snn else ort.SessionOptions()
    if level is not None:
        options.graph_optimization_level = level
    sess = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = [sess.run([output] if output else None, {name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(out, axis=1 if output else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mnist_qcnn.onnx"))
    ap.add_argument("--timesteps", type=int, default=None, help="default: T*, the guaranteed step count")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--limit", type=int, default=None, help="first N test digits only")
    args = ap.parse_args()

    x, labels, source = test_data()
    x, labels = x[:args.limit], labels[:args.limit]
    ann = onnx2snn.load_model(args.model)
    ann_bytes = ann.SerializeToString()
    ann_logits = run_logits(ann_bytes, x, args.batch_size, snn=False)
    ann_pred = ann_logits.argmax(1)
    runs, T = {}, args.timesteps
    for form in ("folded", "cumulative"):
        start = time.perf_counter()
        result = onnx2snn.convert(ann, None, ConvertConfig(timesteps=T or 1, neuron="bif", form=form))
        t_star = result.exact_timesteps
        if T is None:
            T = t_star
            result = onnx2snn.convert(ann, None, ConvertConfig(timesteps=T, neuron="bif", form=form))
        convert_s = time.perf_counter() - start
        start = time.perf_counter()
        snn = result.model.SerializeToString()
        runs[form] = (snn, run_logits(snn, x, args.batch_size, running_output_name(result.model)))
        print(f"{form}: converted in {convert_s:.2f} s (no calibration data), {len(x)} digits run in "
              f"{time.perf_counter() - start:.1f} s")
    print(f"{args.model}: {len(result.thresholds)} quantized layers, T* = {t_star}, T = {T}; "
          f"{len(x)} test digits from {source}")
    print(f"quantized ANN top-1: {100 * (ann_pred == labels).mean():.2f}%")
    print(f"{'':>4} {'--- folded (BIFNeuron, spiking) ---':>45} {'--- cumulative (BIFCount, exact) ---':>45}")
    print(f"{'t':>5}" + f" {'top-1 %':>8} {'same pred':>10} {'max |diff|':>11} {'>1e-4':>6}" * 2)
    settled = {}
    for form in ("folded", "cumulative"):
        exact = [bool((runs[form][1][t] == ann_logits).all()) for t in range(T)]
        settled[form] = next((t for t in range(T) if all(exact[t:])), None)
    shown = sorted({t for t in range(T) if T <= 16 or (t + 1) & t == 0} | {T - 1, min(T, t_star) - 1}
                   | {t for t in settled.values() if t is not None})
    for t in shown:
        row = f"{t + 1:>5}"
        for form in ("folded", "cumulative"):
            logits = runs[form][1][t]
            diff = np.abs(logits - ann_logits).max(1)
            row += (f" {100 * (logits.argmax(1) == labels).mean():>8.2f} {int((logits.argmax(1) == ann_pred).sum()):>10d}"
                    f" {diff.max():>11.2e} {int((diff > 1e-4).sum()):>6d}")
        print(row)
    last = min(T, t_star) - 1
    for form in ("folded", "cumulative"):
        final = np.abs(runs[form][1][last] - ann_logits)
        same = int((runs[form][1][last].argmax(1) == ann_pred).sum())
        ok = final.max() <= 1e-4 and same == len(x)
        print(f"{form} at t = {last + 1}: predictions identical on {same}/{len(x)}, max |logit diff| "
              f"{final.max():.2e} (mean |ANN logit| {np.abs(ann_logits).mean():.2f}) -> "
              f"{'LOSSLESS' if ok else 'NOT lossless'}")
    for form, t in settled.items():
        print(f"{form}: logits bit-identical to the ANN's on every digit from t = {t + 1} on" if t is not None
              else f"{form}: logits not bit-identical to the ANN's at t = {T}")
    plain = run_logits(ann_bytes, x, args.batch_size, snn=False, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    folded = runs["folded"][1][last]
    print(f"folded at t = {last + 1} vs the ANN at ORT_DISABLE_ALL (the graph's float semantics, no QDQ "
          f"fusion): max |logit diff| {np.abs(folded - plain).max():.2e}, "
          f"{int((np.abs(folded - plain).max(1) > 1e-4).sum())} digits > 1e-4")
    level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ext = run_logits(ann_bytes, x, args.batch_size, snn=False, level=level)
    cum = run_logits(runs["cumulative"][0], x, args.batch_size, level=level)  # first output: step T
    print(f"cumulative at t = {T} vs ANN, both at ORT_ENABLE_EXTENDED: max |logit diff| "
          f"{np.abs(cum - ext).max():.2e}")


if __name__ == "__main__":
    main()
