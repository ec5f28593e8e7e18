"""Conversion time (graph rewrite, no calibration) of a ResNet-50-sized graph.

Builds ResNet-50 with random weights and BatchNorm kept, then times
`prepare` (fold constants, fold BN, move MaxPool, support check) and
`build_snn` (ReLU → IFNeuron, time axis, readout) with unit thresholds, and
checks that the result loads in onnxruntime with the op library.

    python benchmarks/convert_speed.py            # target: total < 10 s
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import onnx2snn  # noqa: E402
from _resnet50 import resnet50  # noqa: E402
from onnx2snn.passes.activations import activation_names  # noqa: E402
from onnx2snn.pipeline import build_snn, prepare  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    t0 = time.perf_counter()
    model = resnet50()
    build_s = time.perf_counter() - t0
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    rows = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ann = prepare(model)
        t1 = time.perf_counter()
        names = activation_names(ann)
        snn = build_snn(ann, {n: np.float32(1.0) for n in names}, onnx2snn.ConvertConfig(timesteps=args.timesteps))
        t2 = time.perf_counter()
        rows.append((t1 - t0, t2 - t1, t2 - t0))
    t0 = time.perf_counter()
    onnx2snn.InferenceSession(snn)
    load_s = time.perf_counter() - t0
    best = min(rows, key=lambda r: r[2])
    ops = lambda m: {op: sum(n.op_type == op for n in m.graph.node) for op in ("BatchNormalization", "Relu", "IFNeuron")}  # noqa: E731
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"ResNet-50 (random weights): {len(model.graph.node)} nodes, {params / 1e6:.1f} M parameters, "
          f"built in {build_s:.1f}s; ops before {ops(model)}, after {ops(snn)}")
    print(f"{'step':<34} {'seconds (best of %d)' % args.repeat:>22}")
    print(f"{'prepare (fold consts/BN, checks)':<34} {best[0]:>22.2f}")
    print(f"{'build_snn (IF, time axis, readout)':<34} {best[1]:>22.2f}")
    print(f"{'conversion total':<34} {best[2]:>22.2f}   target < 10 s: {'PASS' if best[2] < 10 else 'FAIL'}")
    print(f"{'onnxruntime session load (info)':<34} {load_s:>22.2f}")


if __name__ == "__main__":
    main()
