#!/usr/bin/env python3
"""Train and export the second example model of onnx2snn: a small MNIST VGG.

Usage (from the repository root)::

    python models/make_mnist_vgg.py                # default data path and output
    python models/make_mnist_vgg.py --data /path/to/mnist10k.npz --epochs 30

Writes, under ``--out-dir`` (default ``models``):

* ``mnist_vgg.onnx`` - the trained ANN, opset 13, BatchNormalization kept

It reuses (reads, never rewrites) the bundled data files written by
``make_mnist_cnn.py``: ``data/mnist_test.npz`` is checked against the data set
and used to report the accuracy on the 1,000 bundled test digits.

Architecture: 8 x (Conv 3x3 pad 1, no bias - BatchNorm - ReLU) in three stages
[16,16] @28x28 -> AvgPool 2 -> [32,32,32] @14x14 -> AvgPool 2 -> [64,64,64] @7x7
-> global average pool -> Flatten -> Linear 64->10. Average pooling only (exact
under rate coding).

Preprocessing: ``x = images / 255`` as float32, NCHW ``[N, 1, 28, 28]``; no
mean/std normalisation.

Data: ``mnist10k.npz`` (10,000 shuffled real MNIST digits). The first 8,000 are
used to train, the last 2,000 to test.

torch is needed only by this script, never by the ``onnx2snn`` package.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
N_TRAIN = 8000
N_TEST_BUNDLED = 1000
STAGES = ((16, 16), (32, 32, 32), (64, 64, 64))


class MnistVGG(nn.Module):
    """VGG-style: 8 x Conv-BN-ReLU in 3 stages, AvgPool between, GAP, Linear."""

    def __init__(self, stages: tuple[tuple[int, ...], ...] = STAGES, n_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for s, widths in enumerate(stages):
            if s > 0:
                layers.append(nn.AvgPool2d(2))
            for c_out in widths:
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                           nn.BatchNorm2d(c_out), nn.ReLU()]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)                         # 64 x 7 x 7
        return self.fc(self.flatten(self.gap(x)))    # 10 logits


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 [N,28,28] -> float32 [N,1,28,28] in [0,1] (x/255, no mean/std)."""
    return (images.astype(np.float32) / 255.0)[:, None, :, :]


def random_shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Translate each image by up to +-max_shift pixels (zero fill)."""
    n = x.shape[0]
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    return out


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), bs):
        correct += (model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mnist10k.npz",
                    help="mnist10k.npz (default: ../shared/data/mnist10k.npz relative to the repo root)")
    ap.add_argument("--out-dir", type=Path, default=Path("models"),
                    help="output directory (default: models)")
    ap.add_argument("--bundled-test", type=Path, default=REPO_ROOT / "models" / "data" / "mnist_test.npz",
                    help="bundled 1,000-digit test set, read only (default: models/data/mnist_test.npz)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                    help="torch CPU threads (default: min(2, cpu count))")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    d = np.load(args.data)
    images, labels = d["images"], d["labels"].astype(np.int64)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8, images.shape
    x_all = preprocess(images)
    x_tr, y_tr = torch.from_numpy(x_all[:N_TRAIN]), torch.from_numpy(labels[:N_TRAIN])
    x_te, y_te = torch.from_numpy(x_all[N_TRAIN:]), torch.from_numpy(labels[N_TRAIN:])

    model = MnistVGG()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = (N_TRAIN + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(N_TRAIN, generator=gen)
        total_loss = 0.0
        for i in range(0, N_TRAIN, args.batch_size):
            idx = perm[i:i + args.batch_size]
            xb = random_shift(x_tr[idx], gen)
            loss = F.cross_entropy(model(xb), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total_loss / N_TRAIN:.4f}, "
              f"test acc {accuracy(model, x_te, y_te):.4f} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    train_time = time.perf_counter() - t0
    acc_torch = accuracy(model, x_te, y_te)
    print(f"train time: {train_time:.1f} s ({args.epochs} epochs, {args.threads} threads)")
    print(f"torch test accuracy (2,000 digits): {acc_torch:.4f}")

    # ---- export to ONNX (TorchScript exporter; BatchNormalization kept) ----
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "mnist_vgg.onnx"
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(model, (dummy,), str(onnx_path), dynamo=False, opset_version=13,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.EVAL,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(str(onnx_path))
    if m.ir_version > 8:
        m.ir_version = 8
    m.producer_name = "onnx2snn models/make_mnist_vgg.py"
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(onnx_path))
    ops: dict[str, int] = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    n_conv = sum(len(w) for w in STAGES)
    assert ops.get("Conv", 0) == n_conv, ops
    assert ops.get("BatchNormalization", 0) == n_conv, f"BatchNormalization not kept: {ops}"
    assert "MaxPool" not in ops, ops
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    print(f"exported {onnx_path} (IR {m.ir_version}, opset {opset}): {ops}")

    # ---- verify with onnxruntime ----
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits_ort = np.concatenate([sess.run(["logits"], {"input": x_te[i:i + 500].numpy()})[0]
                                 for i in range(0, len(x_te), 500)])
    with torch.no_grad():
        logits_torch = model(x_te).numpy()
    diff = float(np.abs(logits_ort - logits_torch).max())
    print(f"max |onnx - torch| logits: {diff:.2e}")
    assert diff < 1e-4, diff
    pred = logits_ort.argmax(1)
    acc_onnx = float((pred == y_te.numpy()).mean())
    print(f"ONNX test accuracy: {acc_onnx:.4f} (2,000 digits)")

    # ---- accuracy on the bundled test digits (file read, never rewritten) ----
    if args.bundled_test.exists():
        b = np.load(args.bundled_test)
        assert np.array_equal(b["x"], x_all[N_TRAIN:N_TRAIN + N_TEST_BUNDLED]), \
            "bundled test set does not match --data"
        logits_b = sess.run(["logits"], {"input": b["x"]})[0]
        acc_b = float((logits_b.argmax(1) == b["labels"]).mean())
        print(f"ONNX test accuracy: {acc_b:.4f} ({len(b['labels'])} bundled digits, {args.bundled_test})")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1024:.1f} KiB, "
          f"{onnx_path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
