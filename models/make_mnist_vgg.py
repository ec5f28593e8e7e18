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
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _mnist_common import (  # noqa: E402
    N_TEST_BUNDLED, N_TRAIN, REPO_ROOT, parse_args, setup, train_and_export,
)

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


def _add_bundled_test(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--bundled-test", type=Path, default=REPO_ROOT / "models" / "data" / "mnist_test.npz",
                    help="bundled 1,000-digit test set, read only (default: models/data/mnist_test.npz)")


def _check_ops(ops: dict[str, int]) -> None:
    n_conv = sum(len(w) for w in STAGES)
    assert ops.get("Conv", 0) == n_conv, ops
    assert ops.get("BatchNormalization", 0) == n_conv, f"BatchNormalization not kept: {ops}"
    assert "MaxPool" not in ops, ops


def main() -> None:
    args = parse_args(__doc__, _add_bundled_test)
    data = setup(args)
    model = MnistVGG()
    onnx_path, sess = train_and_export(model, args, data, "mnist_vgg.onnx",
                                       producer="onnx2snn models/make_mnist_vgg.py",
                                       check_ops=_check_ops, epoch_time=True)

    # ---- accuracy on the bundled test digits (file read, never rewritten) ----
    if args.bundled_test.exists():
        b = np.load(args.bundled_test)
        assert np.array_equal(b["x"], data.x_all[N_TRAIN:N_TRAIN + N_TEST_BUNDLED]), \
            "bundled test set does not match --data"
        logits_b = sess.run(["logits"], {"input": b["x"]})[0]
        acc_b = float((logits_b.argmax(1) == b["labels"]).mean())
        print(f"ONNX test accuracy: {acc_b:.4f} ({len(b['labels'])} bundled digits, {args.bundled_test})")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1024:.1f} KiB, "
          f"{onnx_path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
