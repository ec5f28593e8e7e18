"""Quantized ReLU RNN on sequential MNIST vs its recurrent BIF SNN.

Converts ``models/seqmnist_qrnn.onnx`` (written by ``models/make_seqmnist_rnn.py``:
784 one-pixel elements, a QCFS cell) into a recurrent BIF SNN whose cell runs
T_s sub-steps per element (default T_s = T*, the cell's guaranteed step count),
and compares the two on every test digit: top-1 of each, identical
predictions, max |logit difference|, identical final hidden states h_784,
steps per element and in total, and run times. With ``--sweep`` it also runs
the SNN at every T_s < T* (hidden states handed on before they settle).

    python benchmarks/quantized_rnn.py [--model models/seqmnist_qrnn.onnx] [--timesteps T_s] [--sweep]

Test data: the 2,000 held-out digits of ../shared/data/mnist10k.npz when that
file exists (indices 8000-9999), else the 1,000 bundled in models/data.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import onnx2snn
from onnx2snn.config import ConvertConfig

REPO = Path(__file__).resolve().parents[1]


def test_data(limit: int | None):
    shared = REPO.parent / "shared" / "data" / "mnist10k.npz"
    if shared.exists():
        d = np.load(shared)
        x, y, source = d["images"][8000:].reshape(-1, 784).astype(np.float32) / 255.0, d["labels"][8000:], str(shared)
    else:
        d = np.load(REPO / "models" / "data" / "mnist_test.npz")
        x, y, source = d["x"].reshape(-1, 784).astype(np.float32), d["labels"], "models/data/mnist_test.npz"
    return x[:limit], y[:limit], source


def with_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """``model`` with the intermediate tensor ``name`` (the final hidden state) as an extra output."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return m


def run(sess: ort.InferenceSession, names: list[str], x: np.ndarray, batch: int) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    parts = [sess.run(names, {sess.get_inputs()[0].name: x[i:i + batch]}) for i in range(0, len(x), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(names))], time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "seqmnist_qrnn.onnx"))
    ap.add_argument("--timesteps", type=int, default=None, help="sub-steps per element (default: T*)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--limit", type=int, default=None, help="only the first N test digits")
    ap.add_argument("--sweep", action="store_true", help="also run every T_s < T*")
    ap.add_argument("--form", default="folded", choices=["folded", "cumulative"],
                    help="BIF form of the cell: spiking (folded) or exact (cumulative)")
    args = ap.parse_args()
    logging.getLogger("onnx2snn").setLevel(logging.ERROR)  # T_s < T* warns; the sweep does that on purpose

    x, labels, source = test_data(args.limit)
    ann = onnx2snn.load_model(args.model)
    scan = next(n for n in ann.graph.node if n.op_type == "Scan")
    hidden = scan.output[0]
    probe = onnx2snn.convert(ann, None, ConvertConfig(timesteps=1, neuron="bif"))
    t_star = probe.exact_timesteps
    T = args.timesteps or t_star
    start = time.perf_counter()
    result = onnx2snn.convert(ann, None, ConvertConfig(timesteps=T, neuron="bif", form=args.form))
    convert_s = time.perf_counter() - start
    (rec,) = result.recurrences
    print(f"{args.model}: Scan '{rec.node}' over {rec.sequence_length} elements, {rec.neurons} quantized layer(s) "
          f"in the cell, T* = {t_star}; converted at T_s = {T} in {convert_s:.2f} s (no calibration data)")
    print(f"{len(x)} test digits from {source}; {platform.machine()}, {os.cpu_count()} CPU(s), "
          f"onnxruntime {ort.__version__}; batch {args.batch_size}")

    ann_sess = ort.InferenceSession(with_output(ann, hidden).SerializeToString(), providers=["CPUExecutionProvider"])
    out = ann.graph.output[0].name
    (ann_logits, ann_h), ann_s = run(ann_sess, [out, hidden], x, args.batch_size)

    def snn_run(model):
        sess = onnx2snn.InferenceSession(with_output(model, hidden).SerializeToString())
        return run(sess, [out, hidden], x, args.batch_size)

    (snn_logits, snn_h), snn_s = snn_run(result.model)
    ann_pred, snn_pred = ann_logits.argmax(1), snn_logits.argmax(1)
    diff = np.abs(snn_logits - ann_logits).max(1)
    h_same = (snn_h == ann_h).all(1)
    theta = float(next(iter(result.thresholds.values())))
    h_levels = np.abs(snn_h - ann_h).max() / theta
    print()
    print("| model | top-1 % | steps per element | steps per digit | run time (s) | ms per digit |")
    print("|---|---|---|---|---|---|")
    print(f"| quantized RNN (onnxruntime) | {100 * (ann_pred == labels).mean():.2f} | 1 | {rec.sequence_length} | "
          f"{ann_s:.1f} | {1000 * ann_s / len(x):.2f} |")
    print(f"| recurrent BIF SNN, T_s = {T} | {100 * (snn_pred == labels).mean():.2f} | {T} | {rec.total_steps} | "
          f"{snn_s:.1f} | {1000 * snn_s / len(x):.2f} |")
    print()
    print(f"identical predictions: {int((snn_pred == ann_pred).sum())}/{len(x)}; "
          f"logits bit-identical on {int((snn_logits == ann_logits).all(1).sum())}/{len(x)}, "
          f"max |logit diff| {diff.max():.2e} (mean |ANN logit| {np.abs(ann_logits).mean():.2f}); "
          f"h_784 bit-identical on {int(h_same.sum())}/{len(x)} (max |h diff| {h_levels:.3g} levels θ = {theta:.4g})")
    if args.sweep:
        print()
        print("| T_s | steps per digit | top-1 % | same prediction as the quantized RNN | max \\|logit diff\\| |")
        print("|---|---|---|---|---|")
        for t in range(1, t_star + 1):
            if t == T:
                logits = snn_logits
            else:
                logits = snn_run(onnx2snn.convert(ann, None, ConvertConfig(timesteps=t, neuron="bif", form=args.form)).model)[0][0]
            print(f"| {t} | {t * rec.sequence_length} | {100 * (logits.argmax(1) == labels).mean():.2f} | "
                  f"{int((logits.argmax(1) == ann_pred).sum())}/{len(x)} | {np.abs(logits - ann_logits).max():.2e} |")


if __name__ == "__main__":
    main()
