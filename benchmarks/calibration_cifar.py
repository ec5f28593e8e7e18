"""Calibration methods on a pretrained CIFAR-10 ResNet: accuracy at few time steps.

Rows build up the pipeline of the SNN Calibration papers (Li et al. 2021, 2022):
threshold balancing alone (max, percentile, MSE, LTB), then v_init = θ/2, then
layer-wise bias (BC), potential (PC) and weight (WC) calibration; the last rows
repeat the pipeline with bipolar neurons (``--neuron bif``: ±θ spikes, count in
[0, T], so a neuron takes back what uneven input made it fire early). Thresholds
that do not depend on T (max, percentile, ltb) are converted once at the
largest T and read at every t from the running-mean output; the others are
converted (and calibrated) for each T. Calibration time is measured per
conversion (collecting statistics + thresholds + layer-wise calibration).

    python benchmarks/calibration_cifar.py                       # ResNet-32, 1,024 calibration images
    python benchmarks/calibration_cifar.py --test-images 2000 --model ../shared/models/cifar10_resnet44_bn.onnx
    python benchmarks/calibration_cifar.py --dataset mnist --test-images 2000   # models/mnist_vgg.onnx

Needs ../shared (models and JPEG CIFAR-10 sets). The test images are JPEG-compressed:
use the table to compare the SNN with its ANN, not as a CIFAR-10 accuracy.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import onnx2snn
from onnx2snn.config import ConvertConfig, ThresholdSpec
from onnx2snn.runtime.session import InferenceSession
from onnx2snn.runtime.evaluate import running_output_name

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)[None, :, None, None]
STD = np.array([0.229, 0.224, 0.225], np.float32)[None, :, None, None]

# (label, threshold, channel-wise, v_init, calibration steps, depends on T, neuron)
ROWS = [
    ("max (layer)", "max", False, "zero", (), False, "if"),
    ("percentile 99.99 (channel)", "percentile:99.99", True, "zero", (), False, "if"),
    ("mse (channel)", "mse", True, "zero", (), True, "if"),
    ("ltb (channel, v0=θ/2)", "ltb", True, "half", (), False, "if"),
    ("mse + v0=θ/2", "mse", True, "half", (), True, "if"),
    ("  + BC", "mse", True, "half", ("bias",), True, "if"),
    ("  + BC + PC", "mse", True, "half", ("bias", "potential"), True, "if"),
    ("  + WC + BC + PC", "mse", True, "half", ("weight", "bias", "potential"), True, "if"),
    ("bipolar: mse + v0=θ/2", "mse", True, "half", (), True, "bif"),
    ("  + BC", "mse", True, "half", ("bias",), True, "bif"),
    ("  + BC + PC", "mse", True, "half", ("bias", "potential"), True, "bif"),
    ("  + WC + BC + PC (the default, --preset best)", "mse", True, "half", ("weight", "bias", "potential"), True,
     "bif"),
]


def preprocess(images: np.ndarray) -> np.ndarray:
    return ((images.astype(np.float32) / 255.0).transpose(0, 3, 1, 2) - MEAN) / STD


def accuracy_per_step(snn, x, labels, batch=100) -> np.ndarray:
    sess = InferenceSession(snn)
    name = running_output_name(snn)
    correct = None
    for i in range(0, len(x), batch):
        run = sess.run([name], {"input": x[i:i + batch]})[0]
        c = (run.argmax(-1) == labels[None, i:i + batch]).sum(1)
        correct = c if correct is None else correct + c
    return 100.0 * correct / len(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None,
                    help="default: ../shared/models/cifar10_resnet32.onnx, or models/mnist_vgg.onnx with "
                         "--dataset mnist")
    ap.add_argument("--dataset", choices=["cifar", "mnist"], default="cifar",
                    help="mnist: calibration on the first of the 8,000 training digits of "
                         "../shared/data/mnist10k.npz, test on its held-out digits 8000-9999")
    ap.add_argument("--calib-images", type=int, default=1024)
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--timesteps", default="4,8,16,32,64")
    ap.add_argument("--rows", default=None, help="comma-separated row indices to run (default: all)")
    args = ap.parse_args()
    steps = [int(t) for t in args.timesteps.split(",")]
    if args.dataset == "mnist":
        args.model = args.model or str(REPO / "models" / "mnist_vgg.onnx")
        digits = np.load(SHARED / "data" / "mnist10k.npz")
        x_all = (digits["images"].astype(np.float32) / 255.0)[:, None]
        xc = x_all[:args.calib_images]
        xt, yt = x_all[8000:8000 + args.test_images], digits["labels"][8000:8000 + args.test_images]
    else:
        args.model = args.model or str(SHARED / "models" / "cifar10_resnet32.onnx")
        cal = np.load(SHARED / "data" / "cifar10_train_jpeg_2048.npz")
        test = np.load(SHARED / "data" / "cifar10_test_jpeg.npz")
        xc = preprocess(cal["images"][:args.calib_images])
        xt, yt = preprocess(test["images"][:args.test_images]), test["labels"][:args.test_images]
    model = onnx2snn.load_model(args.model)
    ann_top1 = 100.0 * (ort.InferenceSession(args.model).run(None, {"input": xt})[0].argmax(1) == yt).mean()
    rows = ROWS if args.rows is None else [ROWS[int(i)] for i in args.rows.split(",")]
    print(f"machine: {platform.machine()}, {ort.__version__=}; model {Path(args.model).name}; "
          f"{len(xc)} calibration images; {len(yt)} test images ({args.dataset})")
    print(f"ANN top-1: {ann_top1:.2f}%   SNN: top-1 % at T (difference to the ANN); calib s: seconds per "
          "conversion, at each T it converts at")
    print(f"{'method':<28}" + "".join(f"{'T=' + str(t):>16}" for t in steps) + f"{'calib s':>20}")
    for label, th, cw, v0, cal_steps, per_t, neuron in rows:
        accs, secs = {}, {}
        for T in (steps if per_t else [max(steps)]):
            cfg = ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse(th), channel_wise=cw, v_init=v0,
                                calibrate=cal_steps, neuron=neuron)
            start = time.perf_counter()
            result = onnx2snn.convert(model, {"input": xc}, cfg)
            secs[T] = time.perf_counter() - start
            acc = accuracy_per_step(result.model, xt, yt)
            if per_t:
                accs[T] = acc[T - 1]
            else:
                accs = {t: acc[t - 1] for t in steps}
        cells = "".join(f"{accs[t]:8.2f} ({accs[t] - ann_top1:+6.2f})" for t in steps)
        per_t = "/".join(f"{secs[t]:.0f}" for t in sorted(secs))
        print(f"{label:<28}{cells}  {per_t:>18}", flush=True)


if __name__ == "__main__":
    main()
