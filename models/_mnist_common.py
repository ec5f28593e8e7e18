"""Shared helpers of the MNIST example-model scripts (``make_mnist_*.py``).

Not a script and not part of the ``onnx2snn`` package: the scripts import it
from their own directory. The recipe (data split, preprocessing, augmentation,
optimiser, schedule, seeds, ONNX export, onnxruntime check) is the same for
every example model; each script keeps only its architecture, its defaults and
what it writes besides the ONNX file.

torch is needed only by these scripts, never by the ``onnx2snn`` package.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
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


def parse_args(doc: str, add_extra: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> argparse.Namespace:
    """The common command line; ``add_extra`` adds a script's own flags after ``--out-dir``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "mnist10k.npz",
                    help="mnist10k.npz (default: ../shared/data/mnist10k.npz relative to the repo root)")
    ap.add_argument("--out-dir", type=Path, default=Path("models"),
                    help="output directory (default: models)")
    if add_extra is not None:
        add_extra(ap)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                    help="torch CPU threads (default: min(2, cpu count))")
    return ap.parse_args()


@dataclass
class MnistData:
    x_all: np.ndarray      # float32 [10000, 1, 28, 28]
    labels: np.ndarray     # int64 [10000]
    x_tr: torch.Tensor     # first N_TRAIN digits
    y_tr: torch.Tensor
    x_te: torch.Tensor     # the other 2,000 digits
    y_te: torch.Tensor


def seed_everything(seed: int, threads: int) -> None:
    """Seed Python's, numpy's and torch's RNGs; torch threads and deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def setup(args: argparse.Namespace) -> MnistData:
    """Seed every RNG, set torch threads and determinism, load and split the data.

    Call it before building the model: the model's initial weights are drawn
    from the seeded torch RNG.
    """
    seed_everything(args.seed, args.threads)
    d = np.load(args.data)
    images, labels = d["images"], d["labels"].astype(np.int64)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8, images.shape
    x_all = preprocess(images)
    return MnistData(x_all=x_all, labels=labels,
                     x_tr=torch.from_numpy(x_all[:N_TRAIN]), y_tr=torch.from_numpy(labels[:N_TRAIN]),
                     x_te=torch.from_numpy(x_all[N_TRAIN:]), y_te=torch.from_numpy(labels[N_TRAIN:]))


def train(model: nn.Module, args: argparse.Namespace, data: MnistData,
          epoch_time: bool = False) -> None:
    """Adam + OneCycleLR, random shifts of up to 2 pixels; prints one line per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = (N_TRAIN + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    x_tr, y_tr, x_te, y_te = data.x_tr, data.y_tr, data.x_te, data.y_te

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
        line = (f"epoch {epoch + 1}/{args.epochs}: loss {total_loss / N_TRAIN:.4f}, "
                f"test acc {accuracy(model, x_te, y_te):.4f}")
        if epoch_time:
            line += f" ({time.perf_counter() - t0:.0f} s)"
        print(line, flush=True)
    train_time = time.perf_counter() - t0
    acc_torch = accuracy(model, x_te, y_te)
    print(f"train time: {train_time:.1f} s ({args.epochs} epochs, {args.threads} threads)")
    print(f"torch test accuracy (2,000 digits): {acc_torch:.4f}")


def export_onnx(model: nn.Module, onnx_path: Path, producer: str,
                check_ops: Callable[[dict[str, int]], None] | None = None) -> onnx.ModelProto:
    """Export with the TorchScript exporter (opset 13, IR <= 8, BatchNormalization kept).

    ``check_ops`` gets the op-type counts and asserts what the script expects.
    """
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(model, (dummy,), str(onnx_path), dynamo=False, opset_version=13,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.EVAL,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(str(onnx_path))
    if m.ir_version > 8:
        m.ir_version = 8
    m.producer_name = producer
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, str(onnx_path))
    ops: dict[str, int] = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    if check_ops is not None:
        check_ops(ops)
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    print(f"exported {onnx_path} (IR {m.ir_version}, opset {opset}): {ops}")
    return m


def check_onnxruntime(onnx_path: Path, model: nn.Module, data: MnistData,
                      report_bundled: bool = False) -> ort.InferenceSession:
    """Compare onnxruntime's logits with torch's on the 2,000 test digits; print the accuracy.

    With ``report_bundled`` the accuracy on the first 1,000 of them (the bundled
    test digits) is printed on the same line.
    """
    x_te, y_te = data.x_te, data.y_te
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
    line = f"ONNX test accuracy: {acc_onnx:.4f} (2,000 digits)"
    if report_bundled:
        acc_onnx_1k = float((pred[:N_TEST_BUNDLED] == y_te.numpy()[:N_TEST_BUNDLED]).mean())
        line += f", {acc_onnx_1k:.4f} ({N_TEST_BUNDLED:,} bundled digits)"
    print(line)
    return sess


def train_and_export(model: nn.Module, args: argparse.Namespace, data: MnistData, onnx_name: str,
                     producer: str, check_ops: Callable[[dict[str, int]], None] | None = None,
                     epoch_time: bool = False, report_bundled: bool = False
                     ) -> tuple[Path, ort.InferenceSession]:
    """Train ``model``, export it to ``args.out_dir / onnx_name`` and check it with onnxruntime.

    Returns the ONNX path and the onnxruntime session.
    """
    train(model, args, data, epoch_time=epoch_time)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out_dir / onnx_name
    export_onnx(model, onnx_path, producer, check_ops)
    sess = check_onnxruntime(onnx_path, model, data, report_bundled=report_bundled)
    return onnx_path, sess
