"""Lossless BIF conversion of the QCFS ResNet-32 (CIFAR-10) next to rate-coded IF conversion of the original.

Converts ``models/cifar10_resnet32_qcfs.onnx`` (written by
``models/make_cifar_qcfs.py``: the ResNet-32 fine-tuned with QCFS activations)
with ``ConvertConfig(timesteps=T, neuron="bif")`` (no calibration data) at
T = T*, the step count after which the SNN's output equals the quantized ANN's
(``result.exact_timesteps``), and compares it with the quantized ANN on the
first ``--test-images`` JPEG test images: identical predictions and max |logit
difference| at T* and at each ``--timesteps`` T (one run of T* steps gives the
running output after every t ≤ T*: BIF neurons have no T-dependent parameter,
and a T-step run equals the first T steps of a longer one). Next to it, the rate-coded IF
conversion of the ORIGINAL ResNet-32 with the calibration of
``calibration_cifar.py``'s "mse + v0=θ/2" row (threshold mse, channel-wise,
v_init θ/2, the first ``--calib-images`` of ``cifar10_train_jpeg_2048.npz``),
converted for each T since its thresholds depend on T.

    python benchmarks/quantized_cifar.py [--test-images 500] [--timesteps 2,4,8,16] [--batch-size 25]

About 12 minutes on the 2-core VM with the defaults (T* = 248 for the L = 8 model:
a BIF run and an IF run of 248 steps on 500 images); peak RSS about 3.7 GiB at
batch 25 (memory grows with T* × batch).

Every form of ``onnx2snn.config.Form`` named in ``--forms`` runs the BIF SNN
(default: ``folded``, plus ``cumulative`` when this version of onnx2snn has it).
Needs ../shared (models and JPEG CIFAR-10 sets). The test images are JPEG-compressed:
use the table to compare the SNN with its ANN, not as a CIFAR-10 accuracy.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from calibration_cifar import SHARED, preprocess  # the script's folder is on sys.path

import onnx2snn
from onnx2snn.config import ConvertConfig, Form, ThresholdSpec
from onnx2snn.runtime.session import InferenceSession
from onnx2snn.runtime.evaluate import running_output_name

REPO = Path(__file__).resolve().parents[1]


def session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return opts


def running_logits(snn, x: np.ndarray, batch: int, threads: int) -> np.ndarray:
    """The running-mean logits after every step, [T, N, K] (only [1, N, K], the last step, without one)."""
    sess = InferenceSession(snn, session_options(threads))
    names = [o.name for o in sess.get_outputs()]
    try:
        name = running_output_name(snn)
    except Exception:  # a form without a running output: its final logits only
        name = None
    if name not in names:
        name = None
    out = []
    for i in range(0, len(x), batch):
        feed = {sess.get_inputs()[0].name: x[i:i + batch]}
        out.append(sess.run([name], feed)[0] if name else sess.run([names[0]], feed)[0][None])
    return np.concatenate(out, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "cifar10_resnet32_qcfs.onnx"))
    ap.add_argument("--original", default=str(SHARED / "models" / "cifar10_resnet32.onnx"))
    ap.add_argument("--test-images", type=int, default=500)
    ap.add_argument("--calib-images", type=int, default=1024)
    ap.add_argument("--timesteps", default="2,4,8,16", help="T at which to report top-1 (T* is added)")
    ap.add_argument("--batch-size", type=int, default=25, help="images per SNN run (memory: T × batch activations)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--forms", default=None,
                    help="BIF forms to run, comma separated (default: folded, and cumulative if available)")
    ap.add_argument("--no-if", action="store_true", help="skip the IF conversion of the original ResNet-32")
    ap.add_argument("--save", default=None, help="write the ANN logits and the BIF logits at T* to this .npz")
    args = ap.parse_args()
    forms = ([Form(f) for f in args.forms.split(",")] if args.forms else
             [Form.FOLDED] + ([Form("cumulative")] if "cumulative" in {f.value for f in Form} else []))

    test = np.load(SHARED / "data" / "cifar10_test_jpeg.npz")
    xt, yt = preprocess(test["images"][:args.test_images]), test["labels"][:args.test_images]
    qann = onnx2snn.load_model(args.model)
    logging.getLogger("onnx2snn").setLevel(logging.ERROR)  # the T = 1 probe would warn that T < T*
    probe = onnx2snn.convert(qann, None, ConvertConfig(timesteps=1, neuron="bif"))
    logging.getLogger("onnx2snn").setLevel(logging.NOTSET)
    t_star = probe.exact_timesteps
    steps = sorted({int(t) for t in args.timesteps.split(",")} | {t_star})
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, {args.threads} threads; "
          f"onnxruntime {ort.__version__}, onnx2snn {onnx2snn.__version__}; forms available: "
          f"{', '.join(f.value for f in Form)}")
    print(f"{Path(args.model).name}: {len(probe.thresholds)} quantized layers, T* = {t_star}; first {len(yt)} JPEG "
          f"test images; SNN batch {args.batch_size}")

    opts = session_options(args.threads)
    q_logits = ort.InferenceSession(args.model, opts).run(None, {"input": xt})[0]
    o_logits = ort.InferenceSession(args.original, opts).run(None, {"input": xt})[0]
    q_pred = q_logits.argmax(1)
    q_top1, o_top1 = 100 * (q_pred == yt).mean(), 100 * (o_logits.argmax(1) == yt).mean()
    print(f"ANN top-1: QCFS (quantized) {q_top1:.2f}%, original {o_top1:.2f}%")

    bif = {}    # form → running logits [T_run, N, K]
    T_run = max(steps)
    for form in forms:
        start = time.perf_counter()
        result = onnx2snn.convert(qann, None, ConvertConfig(timesteps=T_run, neuron="bif", form=form))
        convert_s = time.perf_counter() - start
        start = time.perf_counter()
        bif[form] = running_logits(result.model, xt, args.batch_size, args.threads)
        run_s = time.perf_counter() - start
        r = bif[form]
        at = r[min(t_star, len(r)) - 1]
        same = int((at.argmax(1) == q_pred).sum())
        per_image = np.abs(at - q_logits).max(1)
        diff = float(per_image.max())
        first = next((t + 1 for t in range(len(r)) if (r[t].argmax(1) == q_pred).all()), None) if len(r) > 1 else None
        print(f"BIF {form.value} (T = {T_run}): conversion {convert_s:.1f} s, SNN run {run_s:.0f} s; at t = T* = "
              f"{t_star}: predictions identical to the QCFS ANN on {same}/{len(yt)}, max |logit diff| {diff:.2e} "
              f"(mean |ANN logit| {np.abs(q_logits).mean():.2f}), median over images {np.median(per_image):.1e}, "
              f"{int((per_image > 1e-4).sum())} images differ by > 1e-4 -> "
              f"{'LOSSLESS' if same == len(yt) and diff <= 1e-4 else 'NOT lossless'}"
              + (f"; all predictions identical from t = {first}" if first else ""), flush=True)

    if args.save:
        np.savez(args.save, qann=q_logits, labels=yt,
                 **{f"bif_{form.value}": bif[form][min(t_star, len(bif[form])) - 1] for form in forms})

    rate = {}   # T → IF top-1 of the original ResNet-32
    if not args.no_if:
        cal = np.load(SHARED / "data" / "cifar10_train_jpeg_2048.npz")
        xc = preprocess(cal["images"][:args.calib_images])
        orig = onnx2snn.load_model(args.original)
        for T in steps:
            cfg = ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse("mse"), channel_wise=True, v_init="half")
            start = time.perf_counter()
            result = onnx2snn.convert(orig, {"input": xc}, cfg)
            convert_s = time.perf_counter() - start
            start = time.perf_counter()
            r = running_logits(result.model, xt, args.batch_size, args.threads)
            rate[T] = 100 * (r[T - 1].argmax(1) == yt).mean()
            print(f"IF mse + θ/2, T = {T}: calibration {convert_s:.1f} s, SNN run {time.perf_counter() - start:.0f} s, "
                  f"top-1 {rate[T]:.2f}%", flush=True)

    print(f"\nResNet-32, first {len(yt)} JPEG CIFAR-10 test images. ANN top-1: QCFS (quantized) {q_top1:.2f}%, "
          f"original {o_top1:.2f}%. BIF: the QCFS ANN converted with neuron=bif (T* = {t_star}); IF: the original ANN, "
          f"mse + θ/2 calibration on {args.calib_images} images.\n")
    head = "| T |"
    for form in forms:
        head += f" BIF {form.value} top-1 | same pred. as QCFS ANN | max abs logit diff | images with diff > 1e-4 |"
    head += " IF (original) top-1 |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for T in steps:
        cells = [f"{T}{' (T*)' if T == t_star else ''}"]
        for form in forms:
            r = bif[form]
            if len(r) < T or (len(r) == 1 and T != T_run):
                cells += ["—"] * 4
                continue
            out = r[T - 1] if len(r) > 1 else r[0]
            per_image = np.abs(out - q_logits).max(1)
            cells += [f"{100 * (out.argmax(1) == yt).mean():.2f}", f"{int((out.argmax(1) == q_pred).sum())}/{len(yt)}",
                      f"{per_image.max():.2e}", f"{int((per_image > 1e-4).sum())}"]
        cells.append(f"{rate[T]:.2f}" if T in rate else "—")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
