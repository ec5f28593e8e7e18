"""Peer benchmark: onnx2snn against SpikingJelly's ann2snn on the CIFAR-10 ResNet-32.

The ONNX ResNet-32 (``../shared/models/cifar10_resnet32.onnx``, BN already folded
into the convolutions) is loaded into an equivalent torch module: nn.Conv2d with
biases, one nn.ReLU module per activation, and the option-A shortcut (every 2nd
pixel, channels zero-padded on both sides) written as a fixed 1×1 stride-2
convolution whose weight is the identity into the padded channel range and zero
elsewhere. Its logits are checked against onnxruntime's (max |diff| < 1e-4).

Both converters calibrate on the same images (the first ``--calib`` of
``cifar10_train_jpeg_2048.npz``) and are scored on the same fixed test subset
(the first ``--test`` images of ``cifar10_test_jpeg.npz``):

- onnx2snn ``percentile`` : ``ConvertConfig(timesteps=T, channel_wise=True)``
  (percentile:99.99 per channel, v_init 0)
- onnx2snn ``mse+half``   : ``ConvertConfig(timesteps=T, channel_wise=True,
  threshold=ThresholdSpec.parse("mse"), v_init="half")`` (θ depends on T, so one
  conversion per T)
- onnx2snn ``best``       : ``preset_config("best", timesteps=T)`` (bipolar neurons,
  mse channel-wise, v_init θ/2, layer-wise BC + PC; one conversion per T)
- SpikingJelly ``RateCodingRecipe(mode="max")`` (the classic ``Converter(mode='max')``:
  one threshold per layer, running max over batches with momentum 0.1)
- SpikingJelly ``RateCodingRecipe(mode="99.9%", channel_wise=True, half_threshold=True)``
- SpikingJelly ``LocalThresholdBalancingRecipe`` (per channel, v_init θ/2)

Accuracy: one SNN run of the largest T gives the running accuracy after every
step t ≤ T (the SNN is causal, so the accuracy at t equals a t-step run with the
same thresholds); for T-dependent thresholds (mse) every T is run. Speed:
images/s of one SNN run of T steps on a batch of ``--time-batch`` images, best of
``--repeat``, all methods side by side on the same threads (torch.set_num_threads,
onnxruntime intra_op_num_threads). SpikingJelly runs in multi-step mode ("m":
time folded into the batch for the convolutions), its fastest CPU path here.

"Time to ANN−1": the fewest steps t at which the running accuracy (over all
conversions of the method) is ≥ ANN top-1 − 1 point, times the method's time per
step (time per image of the smallest measured T ≥ t, scaled by t/T).

    python benchmarks/peer_spikingjelly.py [--test 1000] [--timesteps 8 16 32 64] [--quick]

Needs ``pip install ".[bench]"`` (spikingjelly, torch 2.13.0).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import sys
import time
from pathlib import Path

# The 2 cores are shared: with spin-waiting threads, both torch (OpenMP) and onnxruntime lose
# 2-10x under oversubscription. Passive waiting for both (set before torch is imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _timing import best  # the script's folder is on sys.path

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "models"))
import onnx2snn  # noqa: E402
from _resnet_from_onnx import torch_resnet  # noqa: E402  (models/: the ONNX ResNet as a torch module)

MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def cifar(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(path)
    images, labels = data["images"][:n], data["labels"][:n]
    x = ((images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0) - MEAN) / STD
    return np.ascontiguousarray(x), labels.astype(np.int64)


# ---------------------------------------------------------------- methods

def options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


class Onnx2SnnMethod:
    family = "onnx2snn"

    def __init__(self, label, config_fn, t_dependent, model, calib, threads):
        self.label, self.config_fn, self.t_dependent = label, config_fn, t_dependent
        self.model, self.calib, self.threads = model, calib, threads
        self.convert_s = {}
        self.sessions = {}

    def prepare(self, T: int):
        if T not in self.sessions:
            t0 = time.perf_counter()
            result = onnx2snn.convert(self.model, {"input": self.calib}, self.config_fn(T))
            self.convert_s[T] = time.perf_counter() - t0
            sess = onnx2snn.InferenceSession(result.model, options(self.threads))
            running = [o.name for o in sess.get_outputs() if o.name.endswith("_running_mean")][0]
            self.sessions[T] = (sess, running)
        return self.sessions[T]

    def running(self, T: int, x: np.ndarray) -> np.ndarray:
        """Running mean of the logits after every step: [T, N, K]."""
        sess, running = self.prepare(T)
        return sess.run([running], {"input": x})[0]


class SpikingJellyMethod:
    family = "SpikingJelly"

    def __init__(self, label, recipe_fn, torch_ann, calib, calib_batch):
        self.label, self.recipe_fn = label, recipe_fn
        self.torch_ann, self.calib, self.calib_batch = torch_ann, calib, calib_batch
        self.t_dependent = False
        self.convert_s = {}
        self.snn = None

    def prepare(self, T: int):
        import copy
        import torch
        from spikingjelly.activation_based import functional
        from spikingjelly.activation_based.ann2snn import Converter
        if self.snn is None:
            loader = [torch.from_numpy(self.calib[i:i + self.calib_batch])
                      for i in range(0, len(self.calib), self.calib_batch)]
            t0 = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # tqdm bars
                snn = Converter(self.recipe_fn(loader)).convert(copy.deepcopy(self.torch_ann))
            self.convert_s[T] = time.perf_counter() - t0
            functional.set_step_mode(snn, "m")
            self.snn = snn.eval()
        return self.snn

    def running(self, T: int, x: np.ndarray) -> np.ndarray:
        import torch
        from spikingjelly.activation_based import functional
        snn = self.prepare(T)
        with torch.inference_mode():
            functional.reset_net(snn)
            xt = torch.from_numpy(x)
            out = snn(xt.unsqueeze(0).expand(T, *xt.shape).contiguous())    # [T, N, K]
            functional.reset_net(snn)
            steps = torch.arange(1, T + 1, dtype=out.dtype).reshape(T, 1, 1)
            return (torch.cumsum(out, 0) / steps).numpy()


def batched_running(method, T, x, batch):
    return np.concatenate([method.running(T, x[i:i + batch]) for i in range(0, len(x), batch)], axis=1)


# ---------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=int, default=1000, help="first N test images (default 1000)")
    ap.add_argument("--calib", type=int, default=1024, help="first N calibration images (default 1024)")
    ap.add_argument("--timesteps", "-T", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--batch", type=int, default=50, help="images per SNN run for the accuracy pass")
    ap.add_argument("--calib-batch", type=int, default=128, help="SpikingJelly calibration batch")
    ap.add_argument("--time-batch", type=int, default=16, help="images per timed SNN run")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per (method, T); best is kept")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="--test 100 --repeat 1 (about 10 minutes here)")
    ap.add_argument("--methods", nargs="+", default=None,
                    help="subset of: o2s-pct o2s-mse o2s-best sj-max sj-cw sj-ltb (default all)")
    args = ap.parse_args()
    if args.quick:
        args.test, args.repeat = 100, 1
    Ts = sorted(set(args.timesteps))
    Tmax = Ts[-1]

    import torch
    from importlib.metadata import version
    from spikingjelly.activation_based.ann2snn import LocalThresholdBalancingRecipe, RateCodingRecipe
    logging.getLogger("spikingjelly").setLevel(logging.WARNING)
    with contextlib.suppress(Exception):
        from spikingjelly.logger import logger as sj_logger
        sj_logger.remove()
    torch.set_num_threads(args.threads)

    model_path = SHARED / "models" / "cifar10_resnet32.onnx"
    model = onnx2snn.load_model(model_path)
    calib, _ = cifar(SHARED / "data" / "cifar10_train_jpeg_2048.npz", args.calib)
    x, y = cifar(SHARED / "data" / "cifar10_test_jpeg.npz", args.test)
    print(f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs; torch {torch.__version__}, "
          f"spikingjelly {version('spikingjelly')}, onnxruntime {ort.__version__}, onnx2snn {onnx2snn.__version__}; "
          f"{args.threads} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, onnxruntime spinning off")
    print(f"calibration: first {len(calib)} of cifar10_train_jpeg_2048.npz; test: first {len(x)} of "
          f"cifar10_test_jpeg.npz")

    # The torch twin of the ONNX model, checked against onnxruntime.
    tnet, ann = torch_resnet(model)
    ann_sess = ort.InferenceSession(ann.SerializeToString(), options(args.threads), providers=["CPUExecutionProvider"])
    probe = x[:16]
    with torch.inference_mode():
        diff = float(np.abs(tnet(torch.from_numpy(probe)).numpy() - ann_sess.run(None, {"input": probe})[0]).max())
    print(f"torch module vs onnxruntime logits on 16 images: max |diff| = {diff:.2e}")
    if not diff < 1e-4:
        raise SystemExit("the torch module does not reproduce the ONNX model")
    ann_logits = np.concatenate([ann_sess.run(None, {"input": x[i:i + 256]})[0] for i in range(0, len(x), 256)])
    ann_acc = 100.0 * float(np.mean(ann_logits.argmax(1) == y))
    target = ann_acc - 1.0
    with torch.inference_mode():
        torch_acc = 100.0 * float(np.mean(tnet(torch.from_numpy(x)).numpy().argmax(1) == y))
    xt = x[:args.time_batch]
    t_ann_ort = best(lambda: ann_sess.run(None, {"input": xt}), args.repeat)
    with torch.inference_mode():
        t_ann_torch = best(lambda: tnet(torch.from_numpy(xt)), args.repeat)
    print(f"ANN top-1 {ann_acc:.2f}% (torch twin {torch_acc:.2f}%); target ANN−1 = {target:.2f}%; ANN images/s on "
          f"batch {len(xt)}: onnxruntime {len(xt) / t_ann_ort:.0f}, torch {len(xt) / t_ann_torch:.0f}")

    all_methods = {
        "o2s-pct": lambda: Onnx2SnnMethod(
            "onnx2snn percentile:99.99, channel-wise", lambda T: onnx2snn.ConvertConfig(timesteps=T, channel_wise=True),
            False, model, calib, args.threads),
        "o2s-mse": lambda: Onnx2SnnMethod(
            "onnx2snn mse, channel-wise, v_init half",
            lambda T: onnx2snn.ConvertConfig(timesteps=T, channel_wise=True,
                                             threshold=onnx2snn.ThresholdSpec.parse("mse"), v_init="half"),
            True, model, calib, args.threads),
        "o2s-best": lambda: Onnx2SnnMethod(
            "onnx2snn --preset best (bipolar, mse, channel-wise, v_init half, BC + PC)",
            lambda T: onnx2snn.config.preset_config("best", timesteps=T), True, model, calib, args.threads),
        "sj-max": lambda: SpikingJellyMethod(
            'SJ RateCodingRecipe(mode="max")', lambda dl: RateCodingRecipe(dataloader=dl, mode="max"),
            tnet, calib, args.calib_batch),
        "sj-cw": lambda: SpikingJellyMethod(
            'SJ RateCodingRecipe(mode="99.9%", channel_wise=True, half_threshold=True)',
            lambda dl: RateCodingRecipe(dataloader=dl, mode="99.9%", channel_wise=True, half_threshold=True),
            tnet, calib, args.calib_batch),
        "sj-ltb": lambda: SpikingJellyMethod(
            "SJ LocalThresholdBalancingRecipe", lambda dl: LocalThresholdBalancingRecipe(dataloader=dl),
            tnet, calib, args.calib_batch),
    }
    keys = args.methods or list(all_methods)
    methods = [all_methods[k]() for k in keys]

    acc = {}       # label → {T_run: running accuracy [T_run]}
    speed = {}     # label → {T: seconds per image for T steps}
    for m in methods:
        t0 = time.perf_counter()
        runs = Ts if m.t_dependent else [Tmax]
        acc[m.label] = {}
        for T in runs:
            r = batched_running(m, T, x, args.batch)
            acc[m.label][T] = 100.0 * (r.argmax(-1) == y[None]).mean(axis=1)
        print(f"{m.label}: conversion {sum(m.convert_s.values()):.1f} s ({len(m.convert_s)}×), accuracy pass "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    # Speed, side by side: for each T, every method in turn.
    t0 = time.perf_counter()
    for T in Ts:
        for m in methods:
            m.prepare(T)
            speed.setdefault(m.label, {})[T] = best(lambda: m.running(T, xt), args.repeat) / len(xt)
    print(f"timing pass {time.perf_counter() - t0:.0f} s", flush=True)

    def acc_at(label, T):
        runs = acc[label]
        return runs[T][T - 1] if T in runs else runs[Tmax][T - 1]

    print(f"\nResNet-32, CIFAR-10 (JPEG) first {len(x)} test images; ANN {ann_acc:.2f}%. Top-1 % after T steps; "
          f"images/s for one run of T steps (batch {len(xt)}, {args.threads} threads, best of {args.repeat})\n")
    head = "| method | " + " | ".join(f"T={T} top-1" for T in Ts) + " | " + \
        " | ".join(f"T={T} img/s" for T in Ts) + " | steps to ANN−1 | ms per image to ANN−1 |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for m in methods:
        first = None
        for Trun, r in acc[m.label].items():
            hits = np.nonzero(r >= target)[0]
            if hits.size and (first is None or hits[0] + 1 < first):
                first = int(hits[0]) + 1
        if first is None:
            reach = f"not within {Tmax}"
            ms = "—"
        else:
            Tm = min(T for T in Ts if T >= first)
            reach = str(first)
            ms = f"{1e3 * speed[m.label][Tm] * first / Tm:.1f}"
        cells = [f"{acc_at(m.label, T):.2f}" for T in Ts] + [f"{1 / speed[m.label][T]:.1f}" for T in Ts]
        print(f"| {m.label} | " + " | ".join(cells) + f" | {reach} | {ms} |")


if __name__ == "__main__":
    main()
