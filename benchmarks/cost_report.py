"""What the converted SNNs cost: SynOps, firing rates and an energy estimate against their ANNs.

For each model and T: convert, then run ``onnx2snn.cost.report`` (the same count as ``onnx2snn
report``) on a fixed subset of test images, and print one row per (model, T): ANN and SNN top-1 on
that subset, the mean firing rate over neuron layers and the overall rate (total spikes / (total
neurons · T)), SynOps, analog MACs and ANN MACs per image, and the operation-count energy per image
(fp32, 45 nm: E_MAC 4.6 pJ, E_AC 0.9 pJ; no memory access) of the ANN and the SNN.

SynOps (E_AC) are counted only for layers whose input carries spikes; a layer fed by the real-valued
output of another weighted layer (the linear bottleneck of MobileNetV2/EfficientNet blocks: project
conv → (+ residual) → expand conv, with no neuron between) counts dense MACs (E_MAC) at every step.

    python benchmarks/cost_report.py                                   # both models, T = 8, 16, 32
    python benchmarks/cost_report.py --models resnet32 --timesteps 8 --images 50
    python benchmarks/cost_report.py --json-dir /tmp/cost              # also every report's JSON

Data (needs ../shared, beside the repository):

- resnet32: ``../shared/models/cifar10_resnet32.onnx``; calibration on the first 256 images of
  ``../shared/data/cifar10_train_jpeg_2048.npz``, report on the first ``--images`` (100) of
  ``cifar10_test_jpeg.npz``, normalised as benchmarks/calibration_cifar.py does (JPEG-compressed:
  compare the SNN with its ANN only). Preset ``best`` (MSE channel-wise thresholds, v0 = θ/2,
  bias + potential calibration, bipolar neurons).
- effnet: ``../shared/models/imagenet_efficientnet_lite0.onnx``; ``../shared/data/imagenet_dev500``
  (one image per class, not the official validation split), in ``labels.csv`` order: report on the
  first ``--images`` (64), calibration on the last 64. Shorter side to 256, centre crop 224, RGB,
  (x − 127) / 128. No layer-wise calibration (it runs out of memory on this model, an open issue):
  thresholds only (``--effnet-config``, see EFFNET_CONFIGS).
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import onnx2snn  # noqa: E402
from onnx2snn.config import ConvertConfig, ThresholdSpec, preset_config  # noqa: E402
from onnx2snn.cost import EnergyModel, report  # noqa: E402

from calibration_cifar import SHARED, preprocess as cifar_preprocess  # noqa: E402

# thresholds without layer-wise calibration, for EfficientNet-lite0 (top-1 at T = 32 on 48 images, see
# benchmarks/README.md: bif-mse 81.2%, bif-pct 79.2%, every IF variant <= 8.3%)
EFFNET_CONFIGS = {
    "bif-mse": dict(threshold="mse", channel_wise=True, v_init="half", neuron="bif"),
    "if-mse": dict(threshold="mse", channel_wise=True, v_init="half", neuron="if"),
    "if-default": dict(threshold="percentile:99.99", channel_wise=False, v_init="zero", neuron="if"),
    "bif-pct": dict(threshold="percentile:99.99", channel_wise=True, v_init="half", neuron="bif"),
    "if-pct": dict(threshold="percentile:99.99", channel_wise=True, v_init="half", neuron="if"),
    "if-max": dict(threshold="max", channel_wise=True, v_init="half", neuron="if"),
}


def need(path: Path, what: str) -> Path:
    if not path.exists():
        sys.exit(f"cost_report.py: {what} not found at {path}. This benchmark needs the development models and "
                 f"data in ../shared beside the repository (see ../shared/models/README.md and "
                 f"../shared/data/README.md); they are not shipped with the project.")
    return path


def cifar_data(n_test: int, n_calib: int):
    cal = np.load(need(SHARED / "data" / "cifar10_train_jpeg_2048.npz", "CIFAR-10 calibration images"))
    test = np.load(need(SHARED / "data" / "cifar10_test_jpeg.npz", "CIFAR-10 test images"))
    xc = cifar_preprocess(cal["images"][:n_calib])
    xt, yt = cifar_preprocess(test["images"][:n_test]), test["labels"][:n_test].astype(np.int64)
    return xc, xt, yt


def imagenet_image(path: Path, size: int = 224) -> np.ndarray:
    """Shorter side to size/0.875, centre crop, RGB, (x − 127) / 128 (EfficientNet-lite0's input)."""
    from real_models import image
    return image(path, size, size, 0.875, 127.0)


def imagenet_data(n_test: int, n_calib: int):
    root = need(SHARED / "data" / "imagenet_dev500", "ImageNet dev images")
    try:
        import PIL  # noqa: F401
    except ImportError:
        sys.exit("cost_report.py: the ImageNet images are JPEG files; decoding them needs Pillow "
                 "(pip install pillow)")
    with open(need(root / "labels.csv", "ImageNet labels")) as f:
        rows = [(r["file"], int(r["label"])) for r in csv.DictReader(f)]
    if n_test + n_calib > len(rows):
        sys.exit(f"cost_report.py: {n_test} test + {n_calib} calibration images > the {len(rows)} in {root}")
    test, calib = rows[:n_test], rows[len(rows) - n_calib:]
    xt = np.stack([imagenet_image(root / "images" / f) for f, _ in test])
    yt = np.array([label for _, label in test], np.int64)
    xc = np.stack([imagenet_image(root / "images" / f) for f, _ in calib])
    return xc, xt, yt


def flags_of(cfg: ConvertConfig) -> str:
    cal = ",".join(c.value for c in cfg.calibrate) or "none"
    return (f"--neuron {cfg.neuron.value} --threshold {cfg.threshold} "
            f"{'--channel-wise ' if cfg.channel_wise else ''}--v-init {cfg.v_init.value} --calibrate {cal}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet32,effnet", help="comma-separated: resnet32, effnet")
    ap.add_argument("--timesteps", default="8,16,32")
    ap.add_argument("--images", type=int, default=None,
                    help="report images per model (default: 100 CIFAR-10, 64 ImageNet)")
    ap.add_argument("--cifar-calib", type=int, default=256, help="calibration images for resnet32 (default 256)")
    ap.add_argument("--effnet-calib", type=int, default=64, help="calibration images for effnet (default 64)")
    ap.add_argument("--effnet-config", choices=sorted(EFFNET_CONFIGS), default="bif-mse")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="images per SNN run in the report (default: 20 resnet32, 2 effnet; every neuron "
                         "output is kept for all T steps, so memory grows with batch x T)")
    ap.add_argument("--json-dir", default=None, help="write each report's JSON there")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in ("resnet32", "effnet")]
    if bad:
        sys.exit(f"cost_report.py: unknown model(s) {bad}; use resnet32, effnet")
    steps = [int(t) for t in args.timesteps.split(",")]
    need(SHARED, "the shared development folder")
    energy = EnergyModel.preset("fp32")
    json_dir = Path(args.json_dir) if args.json_dir else None
    if json_dir:
        json_dir.mkdir(parents=True, exist_ok=True)

    print(f"machine: {platform.machine()}, {platform.processor() or '?'}; onnxruntime {ort.__version__}, "
          f"numpy {np.__version__}; energy {energy.name}: E_MAC {energy.e_mac_pj} pJ, E_AC {energy.e_ac_pj} pJ")
    header = ("| model | T | config | calib | images | ANN top-1 | SNN top-1 | mean rate | overall rate | "
              "SynOps/img | analog MACs/img | ANN MACs/img | ANN µJ | SNN µJ | SNN/ANN | "
              "silent layers | convert s | report s |")
    rows = []
    for name in models:
        if name == "resnet32":
            path = need(SHARED / "models" / "cifar10_resnet32.onnx", "the CIFAR-10 ResNet-32")
            n_img = args.images or 100
            xc, xt, yt = cifar_data(n_img, args.cifar_calib)
            make = lambda T: preset_config("best", timesteps=T)  # noqa: E731
            config = "preset best"
            batch = args.batch_size or 20
        else:
            path = need(SHARED / "models" / "imagenet_efficientnet_lite0.onnx", "EfficientNet-lite0")
            n_img = args.images or 64
            xc, xt, yt = imagenet_data(n_img, args.effnet_calib)
            spec = EFFNET_CONFIGS[args.effnet_config]
            config = args.effnet_config

            def make(T, spec=spec):
                return ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse(spec["threshold"]),
                                     channel_wise=spec["channel_wise"], v_init=spec["v_init"],
                                     neuron=spec["neuron"], batch_size=16)
            batch = args.batch_size or 2
        model = onnx2snn.load_model(str(path))
        print(f"{name}: {path.name}; {len(xc)} calibration, {len(xt)} report images", flush=True)
        for T in steps:
            cfg = make(T)
            start = time.perf_counter()
            result = onnx2snn.convert(model, {"input": xc}, cfg)
            t_conv = time.perf_counter() - start
            start = time.perf_counter()
            res = report(model, result.model, {"input": xt}, yt, batch_size=batch, energy=energy)
            t_rep = time.perf_counter() - start
            neurons = sum(layer.neurons for layer in res.layers)
            spikes = sum(layer.spikes_per_sample for layer in res.layers)
            mean_rate = float(np.mean([layer.firing_rate for layer in res.layers]))
            overall = spikes / (neurons * T)
            silent = [layer.name for layer in res.layers if layer.spikes_per_sample == 0]
            acc = res.accuracy
            row = dict(model=name, T=T, config=config, flags=flags_of(cfg), calib=len(xc), images=res.samples,
                       ann_top1=acc["ann_top1"], snn_top1=acc["snn_top1"][T], mean_rate=mean_rate,
                       overall_rate=overall, synops=res.synops_per_sample, analog=res.analog_macs_per_sample,
                       ann_macs=res.ann_macs_per_sample, ann_uj=res.ann_uj, snn_uj=res.snn_uj,
                       ratio=res.snn_uj / res.ann_uj, silent=silent, layers=len(res.layers),
                       max_silent_fraction=max(layer.silent_fraction for layer in res.layers),
                       convert_s=t_conv, report_s=t_rep)
            rows.append(row)
            if json_dir:
                (json_dir / f"{name}_T{T}.json").write_text(json.dumps({"row": row, "report": res.as_dict()}))
            print(f"  T={T}: SNN {row['snn_top1']:.1f}% (ANN {row['ann_top1']:.1f}%), rate {mean_rate:.4f} / "
                  f"{overall:.4f}, SynOps {row['synops']:.4g}, analog {row['analog']:.4g}, ANN MACs "
                  f"{row['ann_macs']:.4g}, {row['ann_uj']:.1f} / {row['snn_uj']:.1f} uJ ({row['ratio']:.3f}); "
                  f"{len(silent)}/{len(res.layers)} layers silent, max silent fraction "
                  f"{row['max_silent_fraction']:.3f}; convert {t_conv:.0f} s, report {t_rep:.0f} s", flush=True)
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        print(f"| {r['model']} | {r['T']} | {r['config']} | {r['calib']} | {r['images']} | "
              f"{r['ann_top1']:.1f}% | {r['snn_top1']:.1f}% | {r['mean_rate']:.4f} | {r['overall_rate']:.4f} | "
              f"{r['synops'] / 1e6:.1f} M | "
              f"{r['analog'] / 1e6:.2f} M | {r['ann_macs'] / 1e6:.1f} M | {r['ann_uj']:.1f} | {r['snn_uj']:.1f} | "
              f"{r['ratio']:.3f} | {len(r['silent'])}/{r['layers']} | "
              f"{r['convert_s']:.0f} | {r['report_s']:.0f} |")
    print()
    for config, flags in dict.fromkeys((r["config"], r["flags"]) for r in rows):
        print(f"- {config}: `{flags}`")


if __name__ == "__main__":
    main()
