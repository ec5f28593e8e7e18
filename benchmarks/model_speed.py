"""SNN speed per time step against the ANN, firing rates, and an event-driven estimate.

For the bundled MNIST CNN and (when present) ../shared/models/cifar10_resnet32.onnx:
convert (channel-wise percentile:99.99), then on one batch with the same
onnxruntime threads (2) time

    ratio = time(SNN run of T steps) / time(T ANN runs)

for the folded form (as ``onnx2snn.InferenceSession`` runs it: neurons in
onnxruntime's blocked layout, the batch run in chunks of samples that keep the
activations in cache; then one run for the whole batch, ``chunk_bytes=None``; then
also in the plain layout, ``blocked_layout=False``), the streaming form (T runs)
and the portable form (one run, Scan). Best of --repeat runs each, measured side
by side. T × ANN is the faster of T runs on the whole batch and T runs in the
SNN's chunks (the ANN's tensors are T times smaller; chunks rarely help it).

Firing rate of a layer: the fraction of (neuron, step) pairs that spike.
Event-driven estimate (an estimate, not a measurement): a layer fed by spikes
needs rate × its dense multiply-adds if it only processed the spikes; the
saving is 1 − Σ rate·MACs / Σ MACs over the conv/gemm layers (the first
layer's analog input gets no saving). It ignores the cost of the sparse
gathers, which on CPUs usually eats the gain until rates are well below 10%.

    python benchmarks/model_speed.py [--timesteps 16] [--batch 32] [--repeat 5] [--models mnist resnet32]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from _timing import best  # the script's folder is on sys.path

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
import onnx2snn  # noqa: E402
from onnx2snn.config import Form  # noqa: E402
from onnx2snn.core.graph import import_model  # noqa: E402
from onnx2snn.core.shapes import tensor_shapes  # noqa: E402
from onnx2snn.pipeline import build_snn  # noqa: E402
from onnx2snn.runtime.streaming import StreamingSession  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)


def cifar(path: Path, n: int) -> np.ndarray:
    images = np.load(path)["images"][:n]
    return ((images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0) - MEAN) / STD


def options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return opts


def conv_macs(ann: onnx.ModelProto) -> dict[str, int]:
    """Dense multiply-adds per sample of each Conv/Gemm, keyed by its input tensor."""
    graph = import_model(ann)
    for x in graph.inputs:
        x.shape = [1] + list(x.shape[1:])
    shapes = tensor_shapes(graph)
    macs = {}
    for node in graph.nodes:
        if node.op not in ("Conv", "Gemm", "MatMul"):
            continue
        out = shapes.get(node.outputs[0].name)
        w = np.asarray(node.inputs[1].values) if hasattr(node.inputs[1], "values") else None
        if out is None or w is None or not all(isinstance(d, int) for d in out):
            continue
        per_out = int(np.prod(w.shape[1:])) if node.op == "Conv" else int(w.shape[1 if node.attrs.get("transB") else 0])
        macs[node.inputs[0].name] = int(np.prod(out[1:])) * per_out
    return macs


def firing_rates(snn: onnx.ModelProto, feeds, threads: int) -> dict[str, float]:
    names = [n.output[0] for n in snn.graph.node if n.op_type == "IFNeuron"]
    probe = onnx.ModelProto()
    probe.CopyFrom(snn)
    probe.graph.output.extend([oh.make_empty_tensor_value_info(n) for n in names])
    outs = onnx2snn.InferenceSession(probe, options(threads)).run(names, feeds)
    return {n: float(np.count_nonzero(o)) / o.size for n, o in zip(names, outs)}


def bench(name: str, model: onnx.ModelProto, calib: np.ndarray, x: np.ndarray, T: int, repeat: int,
          threads: int) -> None:
    config = onnx2snn.ConvertConfig(timesteps=T, channel_wise=True)
    result = onnx2snn.convert(model, {"input": calib}, config)
    feeds = {"input": x}
    ann = ort.InferenceSession(result.ann.SerializeToString(), options(threads), providers=["CPUExecutionProvider"])
    folded = onnx2snn.InferenceSession(result.model, options(threads))
    folded_whole = onnx2snn.InferenceSession(result.model, options(threads), chunk_bytes=None)
    folded_plain = onnx2snn.InferenceSession(result.model, options(threads), blocked_layout=False, chunk_bytes=None)
    chunk = folded.onnx2snn_chunk or x.shape[0]
    portable = ort.InferenceSession(build_snn(result.ann, result.thresholds,
                                              replace(config, form=Form.PORTABLE)).SerializeToString(),
                                    options(threads), providers=["CPUExecutionProvider"])
    streaming = StreamingSession(build_snn(result.ann, result.thresholds, replace(config, form=Form.STREAMING)),
                                 options(threads))
    # T × ANN measured as T back-to-back ANN runs (per run: their mean), so a millisecond ANN is
    # timed over as long a stretch as the SNN it is compared with. The ANN and the folded forms
    # take turns, `repeat` rounds of best-of-3 warm runs each (best over the rounds), so a slow
    # spell of the shared machine hits both sides of the ratio while each run still finds its
    # session's memory warm, as in steady use.
    timed = {"ann": lambda: [ann.run(None, feeds) for _ in range(T)],
             "ann chunks": lambda: [ann.run(None, {"input": x[i:i + chunk]}) for _ in range(T)
                                    for i in range(0, x.shape[0], chunk)],
             "folded": lambda: folded.run(None, feeds),
             "whole": lambda: folded_whole.run(None, feeds),
             "plain": lambda: folded_plain.run(None, feeds)}
    times = {key: float("inf") for key in timed}
    for _ in range(repeat):
        for key, fn in timed.items():
            times[key] = min(times[key], best(fn, 3))
    t_ann = min(times["ann"], times["ann chunks"]) / T
    rows = [(f"folded ({folded.onnx2snn_blocked_neurons} neurons in the blocked layout, chunks of {chunk} samples)",
             times["folded"]),
            ("folded, whole batch in one run (`chunk_bytes=None`)", times["whole"]),
            ("folded, plain layout, one run (`blocked_layout=False`)", times["plain"]),
            ("streaming", best(lambda: streaming.run(feeds, T), max(1, repeat // 2))),
            ("portable", best(lambda: portable.run(None, feeds), max(1, repeat // 2)))]
    print(f"\n{name}: batch {x.shape[0]}, T={T}, {threads} threads; ANN {1e3 * times['ann'] / T:.1f} ms per run "
          f"on the batch, {1e3 * times['ann chunks'] / T:.1f} ms in chunks of {chunk}")
    print("| form | SNN ms per run of T steps | ms per step | SNN / (T × ANN) |")
    print("|---|---|---|---|")
    for form, t in rows:
        print(f"| {form} | {1e3 * t:.1f} | {1e3 * t / T:.2f} | {t / (T * t_ann):.2f} |")
    rates = firing_rates(result.model, feeds, threads)
    macs = conv_macs(result.ann)
    total = sum(macs.values())
    event = sum(m * rates.get(src, 1.0) for src, m in macs.items())
    print("| neuron layer | firing rate |")
    print("|---|---|")
    for n, r in rates.items():
        print(f"| {n} | {r:.3f} |")
    mean_rate = float(np.mean(list(rates.values())))
    print(f"mean rate {mean_rate:.3f}; estimate (not measured): an event-driven kernel would need "
          f"{100 * event / total:.0f}% of the dense multiply-adds (saving {100 * (1 - event / total):.0f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", "-T", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", choices=["mnist", "resnet32"], default=["mnist", "resnet32"])
    args = ap.parse_args()
    print(f"onnxruntime {ort.__version__}")
    if "mnist" in args.models:
        mnist = onnx2snn.load_model(REPO / "models" / "mnist_cnn.onnx")
        calib = np.load(REPO / "models" / "data" / "mnist_calib.npz")
        test = np.load(REPO / "models" / "data" / "mnist_test.npz")["x"][:args.batch]
        bench("MNIST CNN", mnist, next(iter(calib.values())), test, args.timesteps, args.repeat, args.threads)
    path = SHARED / "models" / "cifar10_resnet32.onnx"
    if "resnet32" not in args.models:
        pass
    elif path.exists():
        calib = cifar(SHARED / "data" / "cifar10_train_jpeg_2048.npz", 256)
        x = cifar(SHARED / "data" / "cifar10_test_jpeg.npz", args.batch)
        bench("CIFAR-10 ResNet-32", onnx2snn.load_model(path), calib, x, args.timesteps, args.repeat, args.threads)
    else:
        print(f"\n{path} not found: ResNet-32 skipped")


if __name__ == "__main__":
    main()
