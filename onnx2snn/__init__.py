"""onnx2snn: convert ONNX ANNs into spiking networks that run in onnxruntime.

Public API::

    import onnx2snn
    model = onnx2snn.load_model("model.onnx")
    result = onnx2snn.convert(model, "calib.npz", onnx2snn.ConvertConfig(timesteps=32))
    onnx2snn.save_model(result.model, "snn.onnx")
    sess = onnx2snn.InferenceSession("snn.onnx")   # op library registered
    onnx2snn.export_nir("snn.onnx", "model.nir")    # NIR graph for neuromorphic hardware (extra [nir])
"""
from ._version import __version__
from ._library import get_library_path, register  # noqa: E402
from .config import ConvertConfig, Reset, ThresholdMethod, ThresholdSpec  # noqa: E402
from .errors import (CalibrationError, ConfigError, ConversionError, DataError, DistributedError,  # noqa: E402
                     InvalidModelError, Onnx2SnnError, UnsupportedOpError)
from .io import load_model, save_model  # noqa: E402
from .pipeline import ConversionResult, build_snn, convert, prepare  # noqa: E402
from .runtime import EvaluationResult, InferenceSession, evaluate  # noqa: E402
from .runtime.streaming import StreamingSession  # noqa: E402
from .nir import export_nir  # noqa: E402  (needs the optional nir, h5py only when called)

__all__ = [
    "__version__", "get_library_path", "register", "ConvertConfig", "Reset", "ThresholdMethod",
    "ThresholdSpec", "CalibrationError", "ConfigError", "ConversionError", "DataError", "DistributedError",
    "InvalidModelError", "Onnx2SnnError", "UnsupportedOpError", "load_model", "save_model",
    "ConversionResult", "build_snn", "convert", "prepare", "EvaluationResult", "InferenceSession",
    "evaluate", "StreamingSession", "export_nir",
]
