"""Which onnxruntime execution providers a session runs on: ``--provider cpu | cuda | auto``.

``cuda`` needs onnxruntime's CUDAExecutionProvider (onnxruntime-gpu) and, for an SNN, the op library
built with its CUDA kernels (``pip install . -C cmake.define.ONNX2SNN_USE_CUDA=ON``): otherwise the
neurons would run on the CPU behind device copies, so that is refused, naming what is missing.
``auto`` is ``cuda`` where both are there, else ``cpu``.

Invariant: :func:`session_providers` returns ``["CPUExecutionProvider"]`` or
``["CUDAExecutionProvider", "CPUExecutionProvider"]``, the latter only where a one-node IFNeuron model
runs on CUDA with the CPU fallback switched off.
"""
from __future__ import annotations

import functools

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort

from .._library import get_library_path
from ..errors import ConfigError

PROVIDERS = ("auto", "cpu", "cuda")
CPU = ["CPUExecutionProvider"]
CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


NO_PROVIDER = "this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"


@functools.lru_cache(maxsize=1)
def cuda_missing() -> str | None:
    """Why SNN sessions cannot run on CUDA here (None: they can)."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return NO_PROVIDER
    from ..core.graph import SNN_DOMAIN
    node = oh.make_node("IFNeuron", ["x", "theta"], ["y"], domain=SNN_DOMAIN, timesteps=1)
    graph = oh.make_graph([node], "probe", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 1])],
                          [onnx.numpy_helper.from_array(np.ones((), np.float32), "theta")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13), oh.make_opsetid(SNN_DOMAIN, 1)])
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(get_library_path())
    opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    try:
        ort.InferenceSession(model.SerializeToString(), opts, providers=CUDA)
    except Exception as exc:  # noqa: BLE001 - the reason is the message
        return f"the onnx2snn op library has no CUDA kernel ({exc}); build it with " \
               "pip install . -C cmake.define.ONNX2SNN_USE_CUDA=ON"
    return None


def session_providers(provider: str = "auto", *, snn: bool = True) -> list[str]:
    """The providers for ``provider`` (cpu, cuda or auto); ``snn=False``: a plain ANN, which needs only
    onnxruntime's CUDA provider. ConfigError for ``cuda`` where it cannot run."""
    if provider not in PROVIDERS:
        raise ConfigError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if provider == "cpu":
        return list(CPU)
    if snn:
        missing = cuda_missing()
    else:
        missing = None if "CUDAExecutionProvider" in ort.get_available_providers() else NO_PROVIDER
    if missing is None:
        return list(CUDA)
    if provider == "cuda":
        raise ConfigError(f"--provider cuda: {missing}; use --provider cpu (or auto)")
    return list(CPU)
