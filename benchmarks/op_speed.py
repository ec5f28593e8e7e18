"""IFNeuron CPU kernel speed against a plain copy of the same bytes, and the numpy reference.

For each size of X (all T steps together) and T: the kernel through onnxruntime
(2 intra-op threads, input and output bound to preallocated buffers with
IOBinding, so no allocation or conversion is timed), onnxruntime's Identity
(a copy: the same bytes read and written), ``numpy.copyto`` (one thread), and
the numpy reference. Bandwidth counts the bytes read plus written (2 × |X|);
the ratio is kernel / best copy of the same run. Best of ``--repeat`` rounds in which the
kernel, its baseline loops and the two copies take turns.
"baseline loops": the same kernel with its step loops in baseline x86-64 (SSE2,
``ONNX2SNN_KERNEL_ISA=base``) instead of the widest instruction set the CPU has;
it matters while X and Y fit in the caches (the chunked runs of
``onnx2snn.InferenceSession`` keep them there).

    python benchmarks/op_speed.py [--threads 2] [--repeat 7] [--sizes-mb 4 16 64 256] [--timesteps 4 16 64]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from _timing import best  # the script's folder is on sys.path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from onnx2snn import get_library_path  # noqa: E402
from onnx2snn.neurons import if_neuron  # noqa: E402


def _model(op: str, timesteps: int, channels: int) -> bytes:
    if op == "IFNeuron":
        node = helper.make_node("IFNeuron", ["X", "theta"], ["Y"], domain="onnx2snn", timesteps=timesteps)
        inits = [onnx.numpy_helper.from_array(np.linspace(0.5, 1.5, channels).astype(np.float32), "theta")]
    else:
        node, inits = helper.make_node("Identity", ["X"], ["Y"]), []
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("onnx2snn", 1)],
                              ir_version=8)
    return model.SerializeToString()


def _session(op, timesteps, channels, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.register_custom_ops_library(get_library_path())
    return ort.InferenceSession(_model(op, timesteps, channels), opts, providers=["CPUExecutionProvider"])


def _bound_run(sess, x, y):
    io = sess.io_binding()
    io.bind_input("X", "cpu", 0, np.float32, list(x.shape), x.ctypes.data)
    io.bind_output("Y", "cpu", 0, np.float32, list(y.shape), y.ctypes.data)
    return lambda: sess.run_with_iobinding(io)


def interleaved(fns, repeat: int) -> list[float]:
    """Fastest time of each of ``fns`` over ``repeat`` rounds that call each once in turn
    (after one warm-up call each)."""
    for fn in fns:
        fn()
    times = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[k] = min(times[k], time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[4, 16, 64, 256])
    ap.add_argument("--timesteps", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--no-numpy", action="store_true", help="skip the (slow) numpy reference")
    args = ap.parse_args()
    print(f"onnxruntime {ort.__version__}, {args.threads} intra-op threads; GB/s = (bytes read + written) / time")
    print("| X MB | T | IFNeuron GB/s | baseline loops GB/s | ORT Identity GB/s | np.copyto GB/s "
          "| numpy reference GB/s | IFNeuron / best copy |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    C = 64
    for mb in args.sizes_mb:
        for T in args.timesteps:
            elements = mb * 2**20 // 4
            S = elements // T // C  # one step: [N=1, C, S]; X: [T, C, S]
            x = rng.normal(0.3, 1.0, size=(T, C, S)).astype(np.float32)
            y = np.empty_like(x)
            nbytes = 2 * x.nbytes
            if_sess = _session("IFNeuron", T, C, args.threads)
            id_sess = _session("Identity", T, C, args.threads)
            run_if = _bound_run(if_sess, x, y)

            os.environ["ONNX2SNN_KERNEL_ISA"] = "base"  # read when the session creates its kernel
            try:
                base_sess = _session("IFNeuron", T, C, args.threads)
            finally:
                del os.environ["ONNX2SNN_KERNEL_ISA"]
            run_base = _bound_run(base_sess, x, y)

            theta = np.linspace(0.5, 1.5, C).astype(np.float32)
            if not args.no_numpy and mb <= 64:
                for fn in (run_if, run_base):
                    y.fill(np.nan)
                    fn()
                    np.testing.assert_array_equal(y, if_neuron(x, theta, timesteps=T))
            # kernel, baseline loops and the copies take turns, so a slow spell hits them alike
            t_if, t_base, t_id, t_np = interleaved(
                [run_if, run_base, _bound_run(id_sess, x, y), lambda: np.copyto(y, x)], args.repeat)
            t_ref = None if args.no_numpy else best(lambda: if_neuron(x, theta, timesteps=T), max(1, args.repeat // 3))
            best_copy = min(t_id, t_np)
            ref = "-" if t_ref is None else f"{nbytes / t_ref / 1e9:.2f}"
            print(f"| {x.nbytes / 2**20:.0f} | {T} | {nbytes / t_if / 1e9:.2f} | {nbytes / t_base / 1e9:.2f} | "
                  f"{nbytes / t_id / 1e9:.2f} | "
                  f"{nbytes / t_np / 1e9:.2f} | {ref} | {best_copy / t_if:.2f} |", flush=True)


if __name__ == "__main__":
    main()
