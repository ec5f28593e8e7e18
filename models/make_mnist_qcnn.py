#!/usr/bin/env python3
"""Train and export a quantized MNIST CNN (QCFS activations, L = 4) for lossless BIF conversion.

Usage (from the repository root)::

    python models/make_mnist_qcnn.py                 # default data path, writes models/mnist_qcnn.onnx
    python models/make_mnist_qcnn.py --epochs 20 --levels 8

The network is the bundled MNIST CNN's (Conv-BN x3, one residual Add, AvgPool,
Linear) with every ReLU replaced by the quantization-clip-floor-shift
activation of QCFS (Bu et al. 2022), with a learnt λ per layer::

    a(x) = λ/L · clip(floor(x·L/λ + 1/2), 0, L)

trained with a straight-through gradient for the floor. The TorchScript
exporter writes it as ``Div(λ) → Clip(0, 1) → Mul(L) → Add(0.5) → Floor →
Div(L) → Mul(λ)``, which onnx2snn recognises.

Data: ``mnist10k.npz`` (10,000 shuffled real MNIST digits): the first 8,000 train,
the last 2,000 test; x = images / 255, NCHW float32. Deterministic (seeded,
deterministic algorithms). torch is needed only by this script.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "models"))
from make_mnist_cnn import N_TRAIN, accuracy, random_shift, setup  # noqa: E402


class QCFS(nn.Module):
    """λ/L · clip(floor(x·L/λ + 1/2), 0, L), straight-through gradient for the floor."""

    def __init__(self, levels: int, up: float = 2.0) -> None:
        super().__init__()
        self.levels = levels
        self.up = nn.Parameter(torch.tensor(float(up)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.clamp(x / self.up, 0, 1) * self.levels + 0.5
        if torch.onnx.is_in_onnx_export():
            x = torch.floor(x)
        else:
            x = x + (torch.floor(x) - x).detach()
        return x / self.levels * self.up


class MnistQCNN(nn.Module):
    def __init__(self, levels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.act1 = QCFS(levels)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.act2 = QCFS(levels)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(32)
        self.act3 = QCFS(levels)
        self.pool = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        y = self.act2(self.bn2(self.conv2(x)))
        z = self.act3(self.bn3(self.conv3(y)) + y)
        return self.fc(self.flatten(self.pool(z)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mnist10k.npz",
                    help="mnist10k.npz (default: ../shared/data/mnist10k.npz relative to the repo root)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "models" / "mnist_qcnn.onnx")
    ap.add_argument("--levels", type=int, default=4, help="quantization levels L (default 4)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()

    data = setup(args)   # seeds every RNG, threads, determinism; the 8,000 / 2,000 split
    x_tr, y_tr, x_te, y_te = data.x_tr, data.y_tr, data.x_te, data.y_te

    model = MnistQCNN(args.levels)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = (N_TRAIN + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(N_TRAIN, generator=gen)
        total = 0.0
        for i in range(0, N_TRAIN, args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = F.cross_entropy(model(random_shift(x_tr[idx], gen)), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / N_TRAIN:.4f}, "
              f"test acc {accuracy(model, x_te, y_te):.4f}", flush=True)
    print(f"train time: {time.perf_counter() - t0:.1f} s; λ per layer: "
          f"{[round(float(a.up), 4) for a in (model.act1, model.act2, model.act3)]}")

    model.eval()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), str(args.out), dynamo=False, opset_version=13,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.EVAL,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(str(args.out))
    m.ir_version = min(m.ir_version, 8)
    m.producer_name = "onnx2snn models/make_mnist_qcnn.py"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(args.out))
    ops: dict[str, int] = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    assert ops.get("Floor", 0) == 3, ops
    print(f"exported {args.out} (IR {m.ir_version}, opset 13): {ops}")

    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"input": x_te[i:i + 500].numpy()})[0] for i in range(0, 2000, 500)])
    with torch.no_grad():
        ref = model(x_te).numpy()
    same = float((logits.argmax(1) == ref.argmax(1)).mean())
    print(f"onnxruntime vs torch: same prediction {same:.4f}, max |logit diff| {np.abs(logits - ref).max():.2e} "
          "(a level can flip where float rounding differs at a quantization boundary)")
    print(f"ONNX test accuracy: {(logits.argmax(1) == y_te.numpy()).mean():.4f} (2,000 digits)")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
