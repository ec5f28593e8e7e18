#!/usr/bin/env python3
"""Train and export the bundled example model of onnx2snn: a small MNIST CNN.

Usage (from the repository root)::

    python models/make_mnist_cnn.py                # default data path and outputs
    python models/make_mnist_cnn.py --data /path/to/mnist10k.npz --epochs 20

Writes, under ``--out-dir`` (default ``models``):

* ``mnist_cnn.onnx``        - the trained ANN, opset 13, BatchNormalization kept
* ``data/mnist_calib.npz``  - 256 training digits for calibration (x, labels)
* ``data/mnist_test.npz``   - 1,000 held-out test digits (x, labels)

Preprocessing: ``x = images / 255`` as float32, NCHW ``[N, 1, 28, 28]``; no
mean/std normalisation.

Data: ``mnist10k.npz`` (10,000 shuffled real MNIST digits). The first 8,000 are
used to train (and calibrate), the last 2,000 to test.

torch is needed only by this script, never by the ``onnx2snn`` package.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
# accuracy, preprocess, random_shift are re-exported: make_mnist_qcnn.py imports them from here.
from _mnist_common import (  # noqa: E402, F401
    N_TEST_BUNDLED, N_TRAIN, accuracy, parse_args, preprocess, random_shift, setup, train_and_export,
)

N_CALIB = 256


class MnistCNN(nn.Module):
    """Conv-BN-ReLU x3 with one residual Add, AvgPool, Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(32)
        self.relu3 = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))      # 16 x 28 x 28
        y = self.relu2(self.bn2(self.conv2(x)))      # 32 x 14 x 14
        z = self.bn3(self.conv3(y))                  # 32 x 14 x 14
        z = self.relu3(z + y)                        # residual Add, then ReLU
        z = self.pool(z)                             # 32 x 7 x 7
        return self.fc(self.flatten(z))              # 10 logits


def _check_ops(ops: dict[str, int]) -> None:
    assert ops.get("BatchNormalization", 0) == 3, f"BatchNormalization not kept: {ops}"


def main() -> None:
    args = parse_args(__doc__)
    data = setup(args)
    model = MnistCNN()
    onnx_path, _ = train_and_export(model, args, data, "mnist_cnn.onnx",
                                    producer="onnx2snn models/make_mnist_cnn.py",
                                    check_ops=_check_ops, report_bundled=True)

    # ---- bundled data subsets ----
    x_all, labels = data.x_all, data.labels
    (args.out_dir / "data").mkdir(parents=True, exist_ok=True)
    calib_path = args.out_dir / "data" / "mnist_calib.npz"
    test_path = args.out_dir / "data" / "mnist_test.npz"
    np.savez_compressed(calib_path, x=x_all[:N_CALIB], labels=labels[:N_CALIB])
    np.savez_compressed(test_path, x=x_all[N_TRAIN:N_TRAIN + N_TEST_BUNDLED],
                        labels=labels[N_TRAIN:N_TRAIN + N_TEST_BUNDLED])
    for p in (onnx_path, calib_path, test_path):
        print(f"wrote {p} ({p.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
