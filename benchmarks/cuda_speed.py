"""IFNeuron on CUDA against a device copy, and the folded SNN on CUDA against the CPU.

Needs onnxruntime-gpu (CUDAExecutionProvider) and the op library built with CUDA:
``pip install . -C cmake.define.ONNX2SNN_USE_CUDA=ON`` (or ONNX2SNN_OPS_LIBRARY
pointing at such a build).

1. Op: X and Y live on the device (OrtValues bound with IOBinding, nothing crosses
   PCIe while timed); IFNeuron against onnxruntime's Identity on the same buffers
   (a device-to-device copy of the same bytes). GB/s counts bytes read + written;
   the ratio is kernel / copy of the same run (target ≥ 0.70). Each output is
   checked bit for bit against the numpy reference.
2. Model: the bundled MNIST CNN and (when present) ../shared/models/cifar10_resnet32.onnx,
   converted as in model_speed.py; one folded run of T steps on a batch, on CUDA
   (inputs from host memory, as a user calls ``run``) and on the CPU
   (``onnx2snn.InferenceSession``, --threads threads); and the ANN on CUDA.
   Columns: SNN CPU / SNN CUDA (the speed-up) and SNN CUDA / (T × ANN CUDA).

    python benchmarks/cuda_speed.py [--sizes-mb 64 256 1024] [--timesteps 4 16 64] [--repeat 10]

``--provider cpu`` runs the same harness with the CPU provider in place of CUDA (a
dry run of the script where there is no GPU; the "device" figures are then those of
plain onnxruntime CPU sessions).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _timing import best  # the script's folder is on sys.path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import onnx2snn  # noqa: E402
from onnx2snn._library import register  # noqa: E402
from onnx2snn.neurons import if_neuron  # noqa: E402
from model_speed import SHARED, cifar  # noqa: E402
from op_speed import _model  # noqa: E402  (the one-node IFNeuron / Identity models)

PROVIDERS = {"cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu": ["CPUExecutionProvider"]}


def _session(model: bytes, provider: str, threads: int = 0, strict: bool = False) -> ort.InferenceSession:
    """strict: fail unless every node runs on ``provider`` (the one-op models: an op library
    without the CUDA kernel would otherwise run IFNeuron on the CPU, behind copies)."""
    opts = register(ort.SessionOptions())
    opts.intra_op_num_threads = threads
    if strict and provider != "cpu":
        opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort.InferenceSession(model, opts, providers=PROVIDERS[provider])


def op_table(args, device: str) -> None:
    print("| X MB | T | IFNeuron GB/s | device copy (Identity) GB/s | IFNeuron / copy |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    C = 64
    for mb in args.sizes_mb:
        for T in args.timesteps:
            S = mb * 2**20 // 4 // T // C
            x_host = rng.normal(0.3, 1.0, size=(T, C, S)).astype(np.float32)
            x = ort.OrtValue.ortvalue_from_numpy(x_host, device, 0)
            y = ort.OrtValue.ortvalue_from_shape_and_type(list(x_host.shape), np.float32, device, 0)
            times = {}
            for op in ("IFNeuron", "Identity"):
                sess = _session(_model(op, T, C), args.provider, args.threads, strict=True)
                io = sess.io_binding()
                io.bind_ortvalue_input("X", x)
                io.bind_ortvalue_output("Y", y)
                times[op] = best(lambda: sess.run_with_iobinding(io), args.repeat)
                if op == "IFNeuron":
                    want = if_neuron(x_host, np.linspace(0.5, 1.5, C).astype(np.float32), timesteps=T)
                    np.testing.assert_array_equal(y.numpy(), want)
            nbytes = 2 * x_host.nbytes
            print(f"| {mb} | {T} | {nbytes / times['IFNeuron'] / 1e9:.1f} | {nbytes / times['Identity'] / 1e9:.1f} | "
                  f"{times['Identity'] / times['IFNeuron']:.2f} |", flush=True)


def model_rows(args) -> None:
    cases = [("MNIST CNN", REPO / "models" / "mnist_cnn.onnx",
              lambda: next(iter(np.load(REPO / "models" / "data" / "mnist_calib.npz").values())),
              lambda: np.load(REPO / "models" / "data" / "mnist_test.npz")["x"][:args.batch])]
    path = SHARED / "models" / "cifar10_resnet32.onnx"
    if path.exists():
        cases.append(("CIFAR-10 ResNet-32", path, lambda: cifar(SHARED / "data" / "cifar10_train_jpeg_2048.npz", 256),
                      lambda: cifar(SHARED / "data" / "cifar10_test_jpeg.npz", args.batch)))
    T = args.model_timesteps
    print(f"\nfolded SNN, batch {args.batch}, T = {T}; CPU: onnx2snn.InferenceSession, {args.threads} threads")
    dev = args.provider.upper()
    print(f"| model | ANN {dev} ms | SNN {dev} ms | SNN CPU ms | SNN CPU / SNN {dev} | SNN {dev} / (T × ANN {dev}) "
          f"| max abs output diff {dev} vs CPU |")
    print("|---|---|---|---|---|---|---|")
    for name, model_path, calib, data in cases:
        result = onnx2snn.convert(onnx2snn.load_model(model_path), {"input": calib()},
                                  onnx2snn.ConvertConfig(timesteps=T, channel_wise=True))
        feeds = {"input": data()}
        ann = _session(result.ann.SerializeToString(), args.provider, args.threads)
        snn_gpu = _session(result.model.SerializeToString(), args.provider, args.threads)
        cpu_opts = ort.SessionOptions()
        cpu_opts.intra_op_num_threads = args.threads
        snn_cpu = onnx2snn.InferenceSession(result.model, cpu_opts)
        # convolutions round differently on the two devices, which can flip a spike: reported, not asserted
        diff = max(float(np.abs(g - c).max()) for g, c in zip(snn_gpu.run(None, feeds), snn_cpu.run(None, feeds)))
        t_ann = best(lambda: ann.run(None, feeds), args.repeat)
        t_gpu = best(lambda: snn_gpu.run(None, feeds), args.repeat)
        t_cpu = best(lambda: snn_cpu.run(None, feeds), max(1, args.repeat // 3))
        print(f"| {name} | {1e3 * t_ann:.2f} | {1e3 * t_gpu:.2f} | {1e3 * t_cpu:.1f} | {t_cpu / t_gpu:.1f} | "
              f"{t_gpu / (T * t_ann):.2f} | {diff:.2g} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--provider", choices=sorted(PROVIDERS), default="cuda")
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--timesteps", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--model-timesteps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the CPU side of the model rows)")
    args = ap.parse_args()
    if args.provider == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        sys.exit("cuda_speed.py: this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu, and build "
                 "the op library with -C cmake.define.ONNX2SNN_USE_CUDA=ON); `--provider cpu` runs the op part on the CPU")
    print(f"onnxruntime {ort.__version__}, provider {args.provider}")
    op_table(args, "cuda" if args.provider == "cuda" else "cpu")
    model_rows(args)


if __name__ == "__main__":
    main()
