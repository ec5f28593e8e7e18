"""Sequential and permuted sequential MNIST (and BasicMotions): quantized IndRNNs and their recurrent BIF SNNs.

For ``models/smnist_qrnn.onnx`` and ``models/psmnist_qrnn.onnx`` (written by
``models/make_smnist_qrnn.py``: 784 one-pixel elements, a stack of Scans over quantized
IndRNN cells, the PS-MNIST model permuting the pixels itself) this converts each model into a
recurrent BIF SNN at T_s = T* sub-steps per element (no data), runs the quantized RNN
(onnxruntime) and the SNN (onnx2snn's session) on every test digit and prints one table:
top-1 of the float warm-up ANN (when ``out/<name>_float.onnx``, written by the training script,
is there), of the quantized RNN and of the SNN, the steps per element and per sequence, the
conversion time, the run time per sequence, and the cost report's SynOps / analog MACs per
sequence (``onnx2snn.cost.report`` on the first ``--cost-digits`` digits). Below it: identical
predictions, bit-identical logits and bit-identical final hidden states (the last layer's
h_784, added as an output of both models).

The second sequence case, ``har`` (``models/har_qrnn.onnx``, ``models/make_har_qrnn.py``:
activity recognition from a smart watch's accelerometer and gyroscope, BasicMotions, 100
elements × 6 channels), runs the same way on its 40 test recordings (bundled).

    python benchmarks/sequence_mnist.py [--limit N] [--tasks smnist psmnist har] [--batch-size 250] [--threads K]

Test data: the 10,000 test digits of ../shared/data/mnist70k.npz when that file exists, else the
300 bundled in models/data/smnist_test.npz (the first 300 of the same test split).
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
from onnx2snn import cost
from onnx2snn.config import ConvertConfig

REPO = Path(__file__).resolve().parents[1]
TASKS = {"smnist": "S-MNIST", "psmnist": "PS-MNIST", "har": "BasicMotions (HAR)"}


def test_data(limit: int | None):
    shared = REPO.parent / "shared" / "data" / "mnist70k.npz"
    if shared.exists():
        d = np.load(shared)
        x, y, source = d["test_images"], d["test_labels"], f"{shared} (test split)"
    else:
        d = np.load(REPO / "models" / "data" / "smnist_test.npz")
        x, y, source = d["images"], d["labels"], "models/data/smnist_test.npz"
    x = x.reshape(-1, 784).astype(np.float32) / 255.0
    return x[:limit], y[:limit].astype(np.int64), source


def with_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return m


def har_data():
    d = np.load(REPO / "models" / "data" / "basicmotions.npz")
    return d["x_test"], d["y_test"].astype(np.int64), "models/data/basicmotions.npz (test split)"


def run(sess, names: list[str], x: np.ndarray, batch: int) -> tuple[list[np.ndarray], float]:
    start = time.perf_counter()
    feed = sess.get_inputs()[0].name
    parts = [sess.run(names, {feed: x[i:i + batch]}) for i in range(0, len(x), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(names))], time.perf_counter() - start


def options(args) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    if args.threads:
        opts.intra_op_num_threads = args.threads
    return opts


def bench(task: str, x: np.ndarray, labels: np.ndarray, args) -> dict:
    path = REPO / "models" / f"{task}_qrnn.onnx"
    ann = onnx2snn.load_model(str(path))
    scans = [n for n in ann.graph.node if n.op_type == "Scan"]
    hidden = scans[-1].output[0]  # the last layer's h_784
    t_star = onnx2snn.convert(ann, None, ConvertConfig(timesteps=1, neuron="bif")).exact_timesteps
    T = args.timesteps or t_star
    sess = ort.InferenceSession(with_output(ann, hidden).SerializeToString(), options(args),
                                providers=["CPUExecutionProvider"])
    (ann_logits, ann_h), ann_s = run(sess, ["logits", hidden], x, args.batch_size)
    r = {"task": task, "T": T, "t_star": t_star, "n": len(x), "ann_s": ann_s,
         "ann_acc": float((ann_logits.argmax(1) == labels).mean()), "forms": {}}
    for form in args.forms:
        start = time.perf_counter()
        result = onnx2snn.convert(ann, None, ConvertConfig(timesteps=T, neuron="bif", form=form))
        f = {"convert_s": time.perf_counter() - start}
        recs = result.recurrences
        r.update(layers=len(recs), seq=recs[0].sequence_length, per_layer_steps=recs[0].total_steps,
                 all_steps=sum(rec.total_steps for rec in recs))
        snn = onnx2snn.InferenceSession(with_output(result.model, hidden).SerializeToString(), options(args))
        (snn_logits, snn_h), f["snn_s"] = run(snn, ["logits", hidden], x, args.batch_size)
        f["snn_acc"] = float((snn_logits.argmax(1) == labels).mean())
        f["same_pred"] = int((ann_logits.argmax(1) == snn_logits.argmax(1)).sum())
        f["same_logits"] = int((ann_logits == snn_logits).all(1).sum())
        f["max_diff"] = float(np.abs(ann_logits - snn_logits).max())
        f["same_h"] = int((ann_h == snn_h).all(1).sum())
        if args.cost_digits and form == args.forms[0]:
            rep = cost.report(ann, result.model, {ann.graph.input[0].name: x[:args.cost_digits]}, batch_size=50)
            r["cost"] = {"n": min(args.cost_digits, len(x)), "synops": rep.synops_per_sample,
                         "analog_macs": rep.analog_macs_per_sample, "ann_macs": rep.ann_macs_per_sample,
                         "steps": rep.timesteps}
        r["forms"][form] = f
        print(f"  {task} {form}: {f}", flush=True)
    float_path = REPO / "out" / f"{task}_qrnn_float.onnx"
    if float_path.exists():
        fs = ort.InferenceSession(str(float_path), options(args), providers=["CPUExecutionProvider"])
        (f_logits,), _ = run(fs, ["logits"], x, args.batch_size)
        r["float_acc"] = float((f_logits.argmax(1) == labels).mean())
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--timesteps", type=int, default=None, help="sub-steps per element (default: T*)")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--limit", type=int, default=None, help="only the first N test digits")
    ap.add_argument("--cost-digits", type=int, default=100, help="digits for the cost report (0: skip it)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    ap.add_argument("--forms", nargs="+", default=["cumulative", "folded"], choices=["cumulative", "folded"],
                    help="BIF forms of the SNN: cumulative (the exact evaluation) and/or folded (spiking)")
    args = ap.parse_args()
    logging.getLogger("onnx2snn").setLevel(logging.ERROR)
    results = []
    for task in args.tasks:
        x, labels, source = har_data() if task == "har" else test_data(args.limit)
        print(f"{TASKS[task]}: {len(x)} test sequences from {source}; {platform.machine()}, {os.cpu_count()} CPU(s), "
              f"onnxruntime {ort.__version__}, batch {args.batch_size}, threads {args.threads or 'default'}",
              flush=True)
        results.append(bench(task, x, labels, args))
    print()
    print("| task | model | top-1 % | steps per element | steps per sequence | conversion | run time | "
          "ms per sequence | SynOps per sequence | analog MACs per sequence |")
    # steps: per element and per sequence in each layer (the Scans run one after another)
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        name = TASKS[r["task"]]
        if "float_acc" in r:
            print(f"| {name} | float ANN (warm-up, clip(z, 0, λ)) | {100 * r['float_acc']:.2f} | 1 | {r['seq']} | "
                  "– | – | – | – | – |")
        print(f"| {name} | quantized RNN (onnxruntime) | {100 * r['ann_acc']:.2f} | 1 per layer | {r['seq']} per layer"
              f" | – | {r['ann_s']:.1f} s | {1000 * r['ann_s'] / r['n']:.2f} | – | "
              + (f"{r['cost']['ann_macs']:,.0f} (ANN MACs) |" if "cost" in r else "– |"))
        c = r.get("cost")
        for form, f in r["forms"].items():
            cost_cells = (f"{c['synops']:,.0f} | {c['analog_macs']:,.0f}" if c and form == args.forms[0] else "– | –")
            print(f"| {name} | recurrent BIF SNN, T_s = {r['T']}, {form} form | {100 * f['snn_acc']:.2f} | "
                  f"{r['T']} per layer | {r['per_layer_steps']:,} per layer, {r['all_steps']:,} for the {r['layers']} "
                  f"layers | {f['convert_s']:.2f} s | {f['snn_s']:.1f} s | {1000 * f['snn_s'] / r['n']:.2f} | "
                  f"{cost_cells} |")
    print()
    for r in results:
        for form, f in r["forms"].items():
            print(f"{TASKS[r['task']]}, {form} form: {r['layers']} Scans, T* = {r['t_star']} sub-steps per element in "
                  f"each; identical predictions {f['same_pred']}/{r['n']}, logits bit-identical on "
                  f"{f['same_logits']}/{r['n']} (max |logit diff| {f['max_diff']:.2e}), final hidden state "
                  f"h_{r['seq']} of the last layer bit-identical on {f['same_h']}/{r['n']}")
        if "cost" in r:
            print(f"{TASKS[r['task']]}: cost report ({args.forms[0]} form) over the first {r['cost']['n']} "
                  f"sequences, {r['cost']['steps']:,} steps counted")

if __name__ == "__main__":
    main()
