"""NIR round trip: convert, `export-nir`, `nir.read`, simulate, and compare with onnxruntime's SNN.

For each row: the SNN is converted with the flags shown, exported to NIR (or refused: the row shows
the message), read back with ``nir.read`` and run for T steps by onnx2snn's numpy NIR simulator
(``onnx2snn.nir.simulate``) and, for the MNIST rows, by the independent reader of the tests
(nirtorch + snnTorch's Leaky, ``tests/nir_torch_reader.py``). Columns: neurons (all layers, all
samples) whose spike count differs from onnxruntime's, samples in which any does, the most neurons that differ in
a sample's first differing layer (a divergence starts at potentials within rounding of θ and then
spreads to the layers after it), the largest logit difference, and top-1 of onnxruntime's SNN / the
simulator / the reader.

The row "snnTorch import_nir semantics" runs the VGG's IF graph with the neuron snnTorch's
``import_from_nir`` builds for NIR's IF (``Leaky(beta=0.9)``, reset by subtraction), through the
same nirtorch graph (snnTorch's own import does not run with nirtorch 2.6; see docs/nir.md).

    python benchmarks/nir_roundtrip.py [--samples 200] [--cifar-samples 32]

Needs ``pip install ".[test]"`` (nir, h5py, nirtorch, snnTorch, torch). The CIFAR-10 ResNet-32 rows
need ``../shared/models/cifar10_resnet32.onnx`` and ``../shared/data/cifar10_*`` (skipped otherwise).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import nir  # noqa: E402

import onnx2snn  # noqa: E402
from onnx2snn.calibration.collect import augment_outputs  # noqa: E402
from onnx2snn.config import ConvertConfig, ThresholdSpec, preset_config  # noqa: E402
from onnx2snn.nir import export_nir, simulate  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)[None, :, None, None]
STD = np.array([0.229, 0.224, 0.225], np.float32)[None, :, None, None]


def onnxruntime_run(snn, x, batch=50):
    meta = onnx2snn.metadata.read(snn)
    tensors = [t for t, _ in meta.neurons]
    sess = onnx2snn.InferenceSession(augment_outputs(snn, tensors))
    name = sess.get_inputs()[0].name
    counts, logits = {t: [] for t in tensors}, []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        values = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {name: xb})))
        for t in tensors:
            v = values[t]
            counts[t].append((v.reshape((meta.timesteps, len(xb), -1)) != 0).sum(0))
        logits.append(values[snn.graph.output[0].name])
    return {t: np.concatenate(c) for t, c in counts.items()}, np.concatenate(logits)


def nir_run(graph, x, timesteps, batch=50):
    layers = json.loads(graph.metadata["onnx2snn.neurons"])
    out = next(iter(json.loads(graph.metadata["onnx2snn.outputs"])))
    counts, logits = {t: [] for t, _ in layers}, []
    for i in range(0, len(x), batch):
        sim = simulate(graph, x[i:i + batch], timesteps)
        for t, node in layers:
            counts[t].append(sim.spikes[node].reshape(len(x[i:i + batch]), -1))
        logits.append(sim.mean(out))
    return {t: np.concatenate(c) for t, c in counts.items()}, np.concatenate(logits)


def reader_run(path, x, timesteps, leak=None):
    import nir_torch_reader as reader
    graph = nir.read(path)
    layers = json.loads(graph.metadata["onnx2snn.neurons"])
    if leak is not None:
        reader.NODE_MAP[nir.IF] = lambda node: SnnTorchImportIF(node, leak)
    try:
        per_step, spikes = reader.run(graph, x, timesteps, [n for _, n in layers])
    finally:
        reader.NODE_MAP[nir.IF] = reader.LeakyIF
    return {t: spikes[n] for t, n in layers}, per_step.mean(0)


def SnnTorchImportIF(node, beta):  # noqa: N802 (a factory standing for a class)
    """The neuron snntorch.import_nir builds for NIR's IF: Leaky(beta=0.9, threshold, reset subtract)."""
    import torch
    import snntorch
    import nir_torch_reader as reader

    class Imported(reader.Counting):
        def __init__(self):
            super().__init__()
            self.leaky = snntorch.Leaky(beta=beta, threshold=float(np.unique(node.v_threshold)[0]),
                                        reset_delay=False)

        def forward(self, x, state=None):
            spikes, v = self.leaky(x, torch.zeros_like(x) if state is None else state)
            return self.count(spikes), v
    return Imported()


def agreement(ref_counts, ref_logits, counts, logits, labels):
    """(neurons differing, neurons, samples with any, max |Δ logit|, top-1, the most neurons that differ in
    a sample's first differing layer: a divergence starts at a few potentials within rounding of θ)."""
    n = len(labels)
    diff = [ref_counts[t].reshape(n, -1) != counts[t].reshape(n, -1) for t in ref_counts]  # layers in order
    per_layer = np.stack([d.sum(1) for d in diff])  # [layers, samples]
    first = [int(per_layer[np.argmax(per_layer[:, k] > 0), k]) for k in range(n) if per_layer[:, k].any()]
    top1 = 100.0 * float((logits.argmax(-1) == labels).mean())
    return (int(per_layer.sum()), sum(c.size for c in ref_counts.values()), len(first),
            float(np.abs(logits - ref_logits).max()), top1, max(first, default=0))


def row(label, model_path, data, config, x, labels, reader=False, snntorch_import=False, tmp=None):
    t0 = time.time()
    snn = onnx2snn.convert(onnx2snn.load_model(model_path), data, config).model
    path = Path(tmp) / "snn.nir"
    try:
        graph = export_nir(snn, path)
    except onnx2snn.Onnx2SnnError as exc:
        print(f"| {label} | refused: {exc} |")
        return
    graph = nir.read(path)
    T = config.timesteps
    ref_counts, ref_logits = onnxruntime_run(snn, x)
    ref_top1 = 100.0 * float((ref_logits.argmax(-1) == labels).mean())
    d, total, s, dl, top1, first = agreement(ref_counts, ref_logits, *nir_run(graph, x, T), labels)
    cells = [label, f"{len(graph.nodes)} nodes", f"{d} / {total}", f"{s} / {len(labels)}", str(first), f"{dl:.2g}",
             f"{ref_top1:.1f} / {top1:.1f}"]
    if reader:
        rd, _, rs, rdl, rtop1, _ = agreement(ref_counts, ref_logits, *reader_run(path, x, T), labels)
        cells += [f"{rd} / {rs} / {rdl:.2g} / {rtop1:.1f}"]
    else:
        cells += ["–"]
    print("| " + " | ".join(cells) + f" | {time.time() - t0:.0f} s |")
    if snntorch_import:
        rd, _, rs, rdl, rtop1, _ = agreement(ref_counts, ref_logits, *reader_run(path, x, T, leak=0.9), labels)
        print(f"| {label}, read with snnTorch import_nir's IF (Leaky β = 0.9, reset subtract) | | | | | | "
              f"{ref_top1:.1f} / – | {rd} / {rs} / {rdl:.2g} / {rtop1:.1f} | |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=200, help="MNIST test digits (default 200)")
    p.add_argument("--reader-samples", type=int, default=50, help="of them, run by the torch reader (default 50)")
    p.add_argument("--cifar-samples", type=int, default=32, help="CIFAR-10 test images (default 32)")
    p.add_argument("--rows", default="mnist,cifar", help="comma-separated: mnist, cifar (default both)")
    args = p.parse_args()
    rows = set(args.rows.split(","))
    mnist = np.load(REPO / "models" / "data" / "mnist_test.npz")
    x, labels = mnist["x"][:args.samples], mnist["labels"][:args.samples]
    calib = str(REPO / "models" / "data" / "mnist_calib.npz")
    print("| model, flags | NIR graph | neurons with another spike count | samples with any | first differing "
          "layer: neurons | max Δ logit | top-1 % ONNX / NIR sim | torch reader: neurons / samples / Δ logit / top-1 "
          "| time |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        if "mnist" in rows:
            mnist_rows(args, x, labels, calib, tmp)
        if "cifar" in rows:
            cifar_rows(args, tmp)


def mnist_rows(args, x, labels, calib, tmp) -> None:
    cnn, vgg = str(REPO / "models" / "mnist_cnn.onnx"), str(REPO / "models" / "mnist_vgg.onnx")
    row("MNIST CNN, `-T 32`", cnn, calib, ConvertConfig(timesteps=32), x, labels, tmp=tmp)
    row("MNIST CNN, `-T 32 --channel-wise --v-init half --calibrate bias,potential`", cnn, calib,
        ConvertConfig(timesteps=32, channel_wise=True, v_init="half", calibrate=("bias", "potential")), x,
        labels, tmp=tmp)
    xr, lr = x[:args.reader_samples], labels[:args.reader_samples]
    row(f"MNIST CNN, `-T 32` ({len(lr)} digits)", cnn, calib, ConvertConfig(timesteps=32), xr, lr,
        reader=True, tmp=tmp)
    row(f"MNIST VGG, `-T 32 --reset zero` ({len(lr)} digits)", vgg, calib,
        ConvertConfig(timesteps=32, reset="zero"), xr, lr, reader=True, snntorch_import=True, tmp=tmp)
    row("MNIST CNN, `--preset best`", cnn, calib, preset_config("best", timesteps=16), x, labels, tmp=tmp)


def cifar_rows(args, tmp) -> None:
    resnet = SHARED / "models" / "cifar10_resnet32.onnx"
    if not resnet.exists():
        print(f"(CIFAR-10 rows skipped: {resnet} not found)")
        return
    train = np.load(SHARED / "data" / "cifar10_train_jpeg_2048.npz")["images"][:256]
    test = np.load(SHARED / "data" / "cifar10_test_jpeg.npz")
    cal = {"input": ((train.astype(np.float32) / 255).transpose(0, 3, 1, 2) - MEAN) / STD}
    xc = ((test["images"][:args.cifar_samples].astype(np.float32) / 255).transpose(0, 3, 1, 2) - MEAN) / STD
    lc = test["labels"][:args.cifar_samples]
    row("CIFAR-10 ResNet-32, `--preset best -T 16`", str(resnet), cal, preset_config("best", timesteps=16),
        xc, lc, tmp=tmp)
    row("CIFAR-10 ResNet-32, `-T 16 --threshold mse --channel-wise`", str(resnet), cal,
        ConvertConfig(timesteps=16, threshold=ThresholdSpec.parse("mse"), channel_wise=True), xc, lc,
        tmp=tmp)
    row("CIFAR-10 ResNet-32, `-T 16 --threshold mse --channel-wise --v-init half --calibrate "
        "bias,potential --neuron if`", str(resnet), cal,
        preset_config("best", timesteps=16, neuron="if"), xc, lc, tmp=tmp)


if __name__ == "__main__":
    main()
