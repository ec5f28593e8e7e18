#!/usr/bin/env python3
"""Train and export a quantized IndRNN for activity recognition on BasicMotions (smart-watch IMU data).

Usage (from the repository root)::

    python models/make_har_qrnn.py            # train, export models/har_qrnn.onnx
    python models/make_har_qrnn.py --prepare-data PATH_TO_AEON_DATA   # rebuild data/basicmotions.npz

The second sequence case beside sequential MNIST, a model of the kind a user would bring: a
sequence of sensor readings, several channels per element. BasicMotions (UEA multivariate
time-series archive; as bundled with the aeon toolkit, BSD-3, aeon/datasets/data/BasicMotions):
four students wore a smart watch while standing, walking, running and playing badminton, five
recordings each; 3-D accelerometer + 3-D gyroscope at 10 Hz for 10 s, so 100 elements × 6
channels; the archive's split of 40 training and 40 test recordings. Bundled as
``models/data/basicmotions.npz`` (``x_train`` [40, 100, 6], ``y_train``, ``x_test``, ``y_test``,
``classes``).

The network is the one of ``make_smnist_qrnn.py``: 2 IndRNN layers of 32 units, QCFS with L = 16,
BatchNorm on the input projections (folded at export), mean of the last layer's states over the
elements, Gemm readout; float warm-up for the first third of the epochs, then quantization-aware
training; Adam, full batch, gradient clipping; the last epoch is exported (no selection: there is
no validation split in 40 recordings, and the test recordings are only scored at the end).
Input ``x`` float32 [N, 100, 6], output ``logits`` [N, 4]; opset 13, IR 8.
"""
from __future__ import annotations

import argparse
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import make_smnist_qrnn as base

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "models" / "data" / "basicmotions.npz"


def read_ts(path: Path) -> tuple[np.ndarray, list[str]]:
    """A .ts file of the UEA archive (equal length): [N, S, F] float32 and the labels."""
    xs, ys, in_data = [], [], False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("@data"):
            in_data = True
            continue
        if in_data:
            *dims, label = line.split(":")
            xs.append(np.array([[float(v) for v in d.split(",")] for d in dims], np.float32).T)
            ys.append(label)
    return np.stack(xs), ys


def prepare(src: Path) -> None:
    x_tr, l_tr = read_ts(src / "BasicMotions_TRAIN.ts")
    x_te, l_te = read_ts(src / "BasicMotions_TEST.ts")
    classes = sorted(set(l_tr))
    np.savez_compressed(DATA, x_train=x_tr, y_train=np.array([classes.index(v) for v in l_tr], np.int64),
                        x_test=x_te, y_test=np.array([classes.index(v) for v in l_te], np.int64),
                        classes=np.array(classes))
    print(f"wrote {DATA}: train {x_tr.shape}, test {x_te.shape}, classes {classes}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepare-data", type=Path, default=None, help="folder with BasicMotions_{TRAIN,TEST}.ts")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "har_qrnn.onnx")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--levels", type=int, default=16)
    ap.add_argument("--lam", type=float, default=4.0)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.prepare_data:
        prepare(args.prepare_data)
        return
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    d = np.load(DATA)
    x_tr, y_tr = torch.from_numpy(d["x_train"]), torch.from_numpy(d["y_train"])
    x_te, y_te = d["x_test"], d["y_test"]
    S, Fe = x_tr.shape[1:]
    model = base.QIndRNN(args.layers, args.hidden, args.levels, args.lam, "mean", features=Fe,
                         classes=len(d["classes"]), seq=S)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    t0 = time.perf_counter()
    warm = args.epochs // 3
    for epoch in range(args.epochs):
        quantized = epoch >= warm
        for group in opt.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))
        model.train()
        logits = model(x_tr, quantized)
        loss = F.cross_entropy(logits, y_tr)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        model.constrain()
        if (epoch + 1) % 50 == 0 or epoch + 1 == warm:
            acc = float((logits.argmax(1) == y_tr).float().mean())
            print(f"epoch {epoch + 1} ({'quantized' if quantized else 'float'}): loss {loss.item():.4f}, "
                  f"train acc {acc:.3f} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"train time: {time.perf_counter() - t0:.1f} s, {args.epochs} epochs (full batch of {len(x_tr)}), 1 thread")
    model.eval()
    doc = (f"Quantized IndRNN ({args.layers} layers x {args.hidden}, QCFS L={args.levels}) for activity recognition "
           f"on BasicMotions: x [N, {S}, {Fe}] = 3-D accelerometer + 3-D gyroscope at 10 Hz; logits [N, "
           f"{len(d['classes'])}] for {', '.join(str(c) for c in d['classes'])}.")
    m = base.export_onnx(model, args.out, None, doc, input_name="x", sequence=(S, Fe))
    sess_logits = base.onnx_logits(args.out, x_te, name="x")
    with torch.no_grad():
        ref = model(torch.from_numpy(x_te), True).numpy()
    print(f"exported {args.out} (IR {m.ir_version}, opset 13, {args.out.stat().st_size / 1024:.1f} KiB); "
          f"onnxruntime vs torch: same prediction {int((sess_logits.argmax(1) == ref.argmax(1)).sum())}/{len(x_te)}")
    print(f"ONNX quantized RNN test accuracy ({len(x_te)} recordings): "
          f"{100 * float((sess_logits.argmax(1) == y_te).mean()):.2f}%")


if __name__ == "__main__":
    main()
