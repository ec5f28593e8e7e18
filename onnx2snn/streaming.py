"""Deprecated module path: ``StreamingSession`` is ``onnx2snn.StreamingSession``
(defined in :mod:`onnx2snn.runtime.streaming`). Importing this module still works and warns."""
import warnings

from .runtime.streaming import StreamingSession

warnings.warn("onnx2snn.streaming is deprecated: use onnx2snn.StreamingSession "
              "(or onnx2snn.runtime.streaming.StreamingSession)", DeprecationWarning, stacklevel=2)

__all__ = ["StreamingSession"]
