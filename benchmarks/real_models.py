"""The development models users bring (ImageNet depthwise nets, a CIFAR ResNet, a face detector): peak memory,
time and accuracy of `onnx2snn convert` against the ANN, per model and T, in one table.

    python benchmarks/real_models.py                                  # every model, T = 16 32, the default pipeline
    python benchmarks/real_models.py --models mobilenet --timesteps 32 --flags "--threshold mse --channel-wise"
    python benchmarks/real_models.py --models ultraface --timesteps 8 16 32 64

Each conversion is the CLI (`python -m onnx2snn convert MODEL -o SNN --calibration-data CAL.npz -T T FLAGS
--max-memory M`) under `/usr/bin/time -v` in its own process: peak RSS and wall time are the whole convert's
(loading, statistics, thresholds, layer-wise calibration, the run check, writing). The batch layer-wise
calibration chose (its stderr line) is shown. Then the SNN is scored in this process:

- mobilenet (`imagenet_mobilenet_v1_0.5_160.onnx`, 160 px, (x − 128)/128, 1001 classes: label + 1) and
  effnet (`imagenet_efficientnet_lite0.onnx`, 224 px, (x − 127)/128): top-1 on all 500 images of
  `imagenet_dev500` (shorter side to size/0.875, centre crop) after T steps, and on the images not used for
  calibration ("held out"; with `--held-from K`, images K onwards); calibration on the first `--calib` (256)
  images in `labels.csv` order.
- resnet32 (`cifar10_resnet32.onnx`): calibration on the first `--calib-cifar` (1024) images of
  `cifar10_train_jpeg_2048.npz`, top-1 on the first `--test-cifar` (2000) of `cifar10_test_jpeg.npz`.
- ultraface (`face_ultraface_rfb320.onnx`, 320×240, (x − 127)/128): calibration on the 26 photos of
  `face_images` (all there are), then the faces the ANN and the SNN find on the same photos, decoded as the
  model's repository does (priors of RFB-320, centre/size variances 0.1/0.2, score > 0.7, hard NMS at IoU
  0.3): a face of the ANN is matched when the SNN has a box of IoU ≥ 0.5 with it; also the mean |score
  error| and |box error| (normalised coordinates) over the ANN's faces.

The models and data are the development copies in ../shared (not shipped with the project).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import onnx2snn  # noqa: E402

MODELS = {
    "mobilenet": SHARED / "models" / "imagenet_mobilenet_v1_0.5_160.onnx",
    "effnet": SHARED / "models" / "imagenet_efficientnet_lite0.onnx",
    "resnet32": SHARED / "models" / "cifar10_resnet32.onnx",
    "ultraface": SHARED / "models" / "face_ultraface_rfb320.onnx",
}


def need(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"real_models.py: {path} not found; this benchmark needs ../shared beside the repository "
                 "(../shared/models/README.md, ../shared/data/README.md)")
    return path


def image(path: Path, width: int, height: int, crop: float, mean: float) -> np.ndarray:
    """[3, height, width] float32 RGB, (x − mean) / 128: with ``crop``, the shorter side resized to
    width / crop (bilinear) and the centre cropped; without, resized to width × height."""
    from PIL import Image
    img = Image.open(path).convert("RGB")
    if crop:
        short = round(width / crop)
        w, h = img.size
        s = short / min(w, h)
        img = img.resize((max(short, round(w * s)), max(short, round(h * s))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - width) // 2, (h - height) // 2
        img = img.crop((left, top, left + width, top + height))
    else:
        img = img.resize((width, height), Image.BILINEAR)
    return ((np.asarray(img, np.float32) - mean) / 128.0).transpose(2, 0, 1)


def imagenet(size: int, mean: float, calib: int, offset: int, held_from: int | None = None):
    root = need(SHARED / "data" / "imagenet_dev500")
    with open(root / "labels.csv") as f:
        rows = [(r["file"], int(r["label"])) for r in csv.DictReader(f)]
    held = calib if held_from is None else held_from
    if not calib <= held < len(rows):   # before any image is read
        sys.exit(f"real_models.py: --held-from {held} must lie in [--calib {calib}, {len(rows)})")
    x = np.stack([image(root / "images" / f, size, size, 0.875, mean) for f, _ in rows])
    y = np.array([label + offset for _, label in rows], np.int64)
    return x[:calib], x, y, held  # calibration images, test images, labels, first held-out index


def cifar(calib: int, test: int):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from calibration_cifar import preprocess
    cal = np.load(need(SHARED / "data" / "cifar10_train_jpeg_2048.npz"))
    tst = np.load(need(SHARED / "data" / "cifar10_test_jpeg.npz"))
    return preprocess(cal["images"][:calib]), preprocess(tst["images"][:test]), \
        tst["labels"][:test].astype(np.int64), 0


def faces():
    root = need(SHARED / "data" / "face_images")
    files = sorted((p for p in root.iterdir() if p.suffix in (".jpg", ".bmp")), key=lambda p: p.name)
    return np.stack([image(p, 320, 240, 0, 127.0) for p in files])


# --- UltraFace decoding (as in the model's repository: vision/utils/box_utils.py, RFB-320) ------------------

def ultraface_priors(width: int = 320, height: int = 240) -> np.ndarray:
    min_boxes = [[10, 16, 24], [32, 48], [64, 96], [128, 192, 256]]
    strides = [8, 16, 32, 64]
    priors = []
    for stride, boxes in zip(strides, min_boxes):
        fw, fh = int(np.ceil(width / stride)), int(np.ceil(height / stride))
        for j in range(fh):
            for i in range(fw):
                cx, cy = (i + 0.5) / (width / stride), (j + 0.5) / (height / stride)
                for b in boxes:
                    priors.append([cx, cy, b / width, b / height])
    return np.clip(np.array(priors, np.float32), 0.0, 1.0)


def decode(scores: np.ndarray, boxes: np.ndarray, priors: np.ndarray, threshold: float = 0.7):
    """(boxes [k, 4] corner form, scores [k]) after score > threshold and hard NMS at IoU 0.3."""
    centre = priors[:, :2] + boxes[:, :2] * 0.1 * priors[:, 2:]
    size = priors[:, 2:] * np.exp(boxes[:, 2:] * 0.2)
    corners = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    keep = scores[:, 1] > threshold
    b, s = corners[keep], scores[keep, 1]
    order, chosen = np.argsort(-s), []
    while order.size:
        i = order[0]
        chosen.append(i)
        order = order[1:][iou(b[i], b[order[1:]]) <= 0.3]
    return b[chosen], s[chosen]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter + 1e-12)


def face_match(ann_out, snn_out, priors):
    """(ANN faces, of them found by the SNN, of the missed those the ANN scores below 0.75, SNN boxes not matching
    an ANN face, of those the ones where the ANN has a box above 0.6 (IoU ≥ 0.5), mean |score err|, mean |box err|)."""
    found = total = extra = border = border_extra = 0
    score_err, box_err = [], []
    for (sa, ba), (ss, bs) in zip(ann_out, snn_out):
        fa, score_a = decode(sa, ba, priors)
        fs, _ = decode(ss, bs, priors)
        faces_a = sa[:, 1] > 0.7
        score_err += list(np.abs(sa[faces_a, 1] - ss[faces_a, 1]))
        box_err += list(np.abs(ba[faces_a] - bs[faces_a]).mean(axis=1))
        matched = set()
        for box, score in zip(fa, score_a):
            hits = np.nonzero(iou(box, fs) >= 0.5)[0] if len(fs) else []
            hits = [h for h in hits if h not in matched]
            if hits:
                matched.add(hits[0])
                found += 1
            elif score < 0.75:
                border += 1
        total += len(fa)
        extra += len(fs) - len(matched)
        near, _ = decode(sa, ba, priors, threshold=0.6)
        border_extra += sum(1 for h in range(len(fs)) if h not in matched and len(near)
                            and (iou(fs[h], near) >= 0.5).any())
    return total, found, border, extra, border_extra, float(np.mean(score_err)) if score_err else 0.0, \
        float(np.mean(box_err)) if box_err else 0.0


# --- one conversion under /usr/bin/time -v ------------------------------------------------------------------

def convert(model: Path, cal: Path, out: Path, T: int, flags: str, max_memory: str, log_to: Path | None = None):
    cmd = [sys.executable, "-m", "onnx2snn", "convert", str(model), "-o", str(out), "--calibration-data", str(cal),
           "-T", str(T), "--max-memory", max_memory, *shlex.split(flags)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if log_to is not None:
        log_to.write_text(p.stdout + p.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    chose = re.search(r"layer-wise calibration ran batches of (\d+) samples", p.stderr)
    if p.returncode:
        tail = "\n".join(line for line in p.stderr.splitlines() if "\t" not in line)[-1500:]
        print(f"convert failed ({p.returncode}): {' '.join(cmd)}\n{tail}", file=sys.stderr)
    return (p.returncode == 0, int(rss.group(1)) * 1024 if rss else 0, wall,
            chose.group(1) if chose else "-", p.stdout.strip().splitlines()[-1:] or [""])


def classify(ann: onnx.ModelProto, snn_path: Path, x: np.ndarray, y: np.ndarray, held: int, T: int, name: str):
    snn = onnx.load(str(snn_path))
    feeds = {ann.graph.input[0].name: x}
    r = onnx2snn.evaluate(ann, snn, feeds, y, batch_size=32, max_memory=4 << 30)
    out = {"ANN": r.ann_top1, "SNN": r.snn_top1[T]}
    if held:
        rh = onnx2snn.evaluate(ann, snn, {k: v[held:] for k, v in feeds.items()}, y[held:], batch_size=32,
                               max_memory=4 << 30)
        out.update({"ANN held": rh.ann_top1, "SNN held": rh.snn_top1[T]})
    return out


def detect(ann_path: Path, snn_path: Path, x: np.ndarray):
    import onnxruntime as ort
    ann = ort.InferenceSession(str(ann_path), providers=["CPUExecutionProvider"])
    snn = onnx2snn.InferenceSession(str(snn_path))
    name = ann.get_inputs()[0].name
    a = [tuple(o[0] for o in ann.run(["scores", "boxes"], {name: x[i:i + 1]})) for i in range(len(x))]
    s = [tuple(o[0] for o in snn.run(["scores", "boxes"], {name: x[i:i + 1]})) for i in range(len(x))]
    total, found, border, extra, border_extra, serr, berr = face_match(a, s, ultraface_priors())
    return {"faces": f"{found}/{total}", "missed, ANN score < 0.75": border, "extra": extra,
            "extra, ANN box > 0.6 there": border_extra, "|score err|": serr,
            "|box err|": berr}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet32", "mobilenet", "effnet", "ultraface"],
                    choices=sorted(MODELS))
    ap.add_argument("--timesteps", nargs="+", type=int, default=[16, 32])
    ap.add_argument("--flags", default="", help="convert flags (default: none, the default pipeline)")
    ap.add_argument("--max-memory", default="4GiB")
    ap.add_argument("--calib", type=int, default=256, help="ImageNet calibration images (of the 500)")
    ap.add_argument("--held-from", type=int, default=None,
                    help="score 'held out' on the ImageNet images from this index on (default --calib): a fixed "
                         "held-out set for comparing calibration set sizes")
    ap.add_argument("--calib-cifar", type=int, default=1024)
    ap.add_argument("--test-cifar", type=int, default=2000)
    ap.add_argument("--calib-mirror", action="store_true",
                    help="calibrate on the calibration images followed by their left-right mirror images (twice "
                         "the samples; calibration reads no labels): an experiment, not a convert option")
    ap.add_argument("--no-score", action="store_true", help="only convert (memory and time)")
    ap.add_argument("--logs", type=Path, default=None,
                    help="write each convert's output there (with --flags '--report': the per-layer errors)")
    args = ap.parse_args()
    print(f"# {platform.node()} {os.cpu_count()} CPUs, onnx2snn {onnx2snn.__version__}, flags '{args.flags}', "
          f"--max-memory {args.max_memory}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models:
            model = need(MODELS[name])
            if name == "mobilenet":
                xc, xt, yt, held = imagenet(160, 128.0, args.calib, 1, args.held_from)
            elif name == "effnet":
                xc, xt, yt, held = imagenet(224, 127.0, args.calib, 0, args.held_from)
            elif name == "resnet32":
                xc, xt, yt, held = cifar(args.calib_cifar, args.test_cifar)
            else:
                xc = xt = faces()
                yt, held = None, 0
            if args.calib_mirror:
                xc = np.concatenate([xc, xc[..., ::-1]])   # NCHW: the last axis is the width
            ann = onnx.load(str(model))
            cal = tmp / f"{name}_cal.npz"
            np.savez(cal, **{ann.graph.input[0].name: xc})
            for T in args.timesteps:
                snn = tmp / f"{name}_T{T}.onnx"
                log_to = None
                if args.logs is not None:
                    args.logs.mkdir(parents=True, exist_ok=True)
                    log_to = args.logs / f"{name}_T{T}.log"
                ok, rss, wall, batch, _ = convert(model, cal, snn, T, args.flags, args.max_memory, log_to)
                row = {"model": name, "T": T, "calib": len(xc), "peak RSS GiB": rss / 2**30,
                       "convert s": wall, "lw batch": batch}
                if ok and not args.no_score:
                    row.update(detect(model, snn, xt) if name == "ultraface"
                               else classify(ann, snn, xt, yt, held, T, name))
                elif not ok:
                    row["error"] = "convert failed"
                rows.append(row)
                print("  " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in row.items()), flush=True)
                snn.unlink(missing_ok=True)
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join((f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k])) if k in r else ""
                                for k in keys) + " |")


if __name__ == "__main__":
    main()
