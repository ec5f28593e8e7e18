"""DeepLabV3 (MobileNetV2-0.5, Pascal VOC, bilinear Resize ×3) as an SNN: per-pixel agreement with the ANN.

    python benchmarks/segmentation.py [--timesteps 16 32 64] [--calib 4] [--images 4] [--channel-wise]
                                      [--v-init half]

The model and data are the development copies in ../shared (not part of the project; see
../shared/models/README.md and ../shared/data/README.md): ``seg_deeplabv3_mnv2_dm05_pascal.onnx``,
input [N, 3, 513, 513] RGB as (x − 128) / 128; calibration on the first ``--calib`` images of
``imagenet_dev500`` (shorter side resized to 513, centre crop); evaluation on the reference image
``seg_reference/bird_segmentation.bmp`` (with its mask: pixel accuracy, bird IoU, mIoU over the
classes in the mask or the prediction) and the last ``--images`` images of ``imagenet_dev500``
(no labels: agreement of the SNN's per-pixel argmax with the ANN's).

One conversion, in the streaming form (one step per run: memory independent of T; the folded form
of this model needs T·22 MiB per output tensor and is refused above T ≈ 90 by the 4 GiB check):
with percentile thresholds nothing in the conversion depends on T, so the running mean after t
steps (the streaming form's ``logits`` output) is the output of the SNN converted for T = t; each
T of the table reads it at its step.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx2snn  # noqa: E402

SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "seg_deeplabv3_mnv2_dm05_pascal.onnx"
IMAGES = SHARED / "data" / "imagenet_dev500" / "images"
REFERENCE = SHARED / "data" / "seg_reference"
SIZE, CLASSES, BIRD = 513, 21, 3


def load(path: Path) -> np.ndarray:
    """[3, 513, 513] float32: RGB, shorter side resized to 513 (bilinear), centre crop, (x − 128) / 128."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    w, h = image.size
    scale = SIZE / min(w, h)
    image = image.resize((max(SIZE, round(w * scale)), max(SIZE, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - SIZE) // 2, (h - SIZE) // 2
    pixels = np.asarray(image.crop((left, top, left + SIZE, top + SIZE)), np.float32)
    return ((pixels - 128.0) / 128.0).transpose(2, 0, 1)


def iou_scores(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
    """(pixel accuracy, bird IoU, mIoU over the classes present in the reference or the prediction)."""
    ious = []
    for c in np.union1d(np.unique(ref), np.unique(pred)):
        union = np.logical_or(pred == c, ref == c).sum()
        ious.append(np.logical_and(pred == c, ref == c).sum() / union)
    bird = np.logical_and(pred == BIRD, ref == BIRD).sum() / np.logical_or(pred == BIRD, ref == BIRD).sum()
    return float((pred == ref).mean()), float(bird), float(np.mean(ious))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timesteps", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--calib", type=int, default=4, help="imagenet_dev500 images to calibrate on")
    parser.add_argument("--images", type=int, default=4, help="imagenet_dev500 images to compare on (besides the bird)")
    parser.add_argument("--channel-wise", action="store_true", help="per-channel thresholds")
    parser.add_argument("--v-init", default="zero", choices=["zero", "half"], help="initial membrane potential")
    args = parser.parse_args(argv)
    if not MODEL.exists():
        raise SystemExit(f"{MODEL} not found: this benchmark needs ../shared (models and data)")
    import onnxruntime as ort
    from PIL import Image

    files = sorted(IMAGES.iterdir())
    calib = np.stack([load(f) for f in files[:args.calib]])
    evaluated = [REFERENCE / "bird_segmentation.bmp"] + files[len(files) - args.images:]
    reference = np.asarray(Image.open(REFERENCE / "bird_segmentation_mask.bmp"), np.int64)
    steps = sorted(args.timesteps)

    ann = onnx2snn.load_model(MODEL)
    start = time.perf_counter()
    config = onnx2snn.ConvertConfig(timesteps=steps[-1], batch_size=2, channel_wise=args.channel_wise,
                                    v_init=args.v_init, form="streaming")
    snn = onnx2snn.convert(ann, {"input": calib}, config).model
    convert_s = time.perf_counter() - start
    ann_sess = ort.InferenceSession(MODEL.read_bytes(), providers=["CPUExecutionProvider"])
    snn_sess = onnx2snn.StreamingSession(snn)

    agree = {t: [] for t in steps}
    bird_scores, ann_scores = {}, None
    run_s = 0.0
    for i, path in enumerate(evaluated):
        x = load(path)[None]
        ann_pred = ann_sess.run(["logits"], {"input": x})[0][0].argmax(0)
        start = time.perf_counter()
        state = snn_sess.initial_state(1)
        for t in range(1, steps[-1] + 1):
            outs, state = snn_sess.step({"input": x}, state)  # "logits": the mean of the t steps' outputs
            if t in agree:
                pred = outs["logits"][0].argmax(0)
                agree[t].append(float((pred == ann_pred).mean()))
                if i == 0:
                    bird_scores[t] = iou_scores(pred, reference)
        run_s += time.perf_counter() - start
        if i == 0:
            ann_scores = iou_scores(ann_pred, reference)

    print(f"DeepLabV3-MobileNetV2-0.5 (Pascal VOC, 513x513), rate-coded IF SNN (streaming form), thresholds "
          f"percentile 99.99{' per channel' if args.channel_wise else ''}, v_init {args.v_init}, calibrated on "
          f"{args.calib} imagenet_dev500 images; convert {convert_s:.0f} s, SNN {run_s / len(evaluated):.0f} s "
          f"per image for T = {steps[-1]}")
    print(f"\n| T | pixel agreement with the ANN, bird image | mean over {len(evaluated)} images (min) | "
          "pixel accuracy vs mask | bird IoU | mIoU |")
    print("|---|---|---|---|---|---|")
    for t in steps:
        acc, bird, miou = bird_scores[t]
        print(f"| {t} | {agree[t][0]:.4f} | {np.mean(agree[t]):.4f} ({min(agree[t]):.4f}) | {acc:.4f} | "
              f"{bird:.3f} | {miou:.3f} |")
    acc, bird, miou = ann_scores
    print(f"| ANN | 1 | 1 | {acc:.4f} | {bird:.3f} | {miou:.3f} |")


if __name__ == "__main__":
    main()
