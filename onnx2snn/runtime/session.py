"""Sessions for converted SNNs: onnxruntime with the op library registered.

:func:`InferenceSession` is an ``onnxruntime.InferenceSession`` with the
onnx2snn custom-op library registered, on the CPU in the blocked layout and
chunked (same outputs bit for bit as a plain session).
"""
from __future__ import annotations

import warnings

import onnx
import onnxruntime as ort

from .._library import get_library_path
from ..errors import ConfigError


def InferenceSession(model, sess_options: ort.SessionOptions | None = None, providers=None,
                     blocked_layout: bool = True, chunk_bytes: int | str | None = "auto",
                     **kwargs) -> ort.InferenceSession:
    """An onnxruntime session for ``model`` (path, bytes or ModelProto) with the
    onnx2snn op library registered (an :class:`onnx2snn.runtime.chunking.SNNSession`, a
    subclass of ``onnxruntime.InferenceSession``).

    On the CPU provider at the default optimisation level (ORT_ENABLE_ALL), the
    neurons run in onnxruntime's blocked convolution layout (see
    :mod:`onnx2snn.runtime.blocked_layout`; same outputs bit for bit, no layout passes
    around them); ``blocked_layout=False`` keeps onnxruntime's plain graph. The
    session's attribute ``onnx2snn_blocked_neurons`` counts the neurons rewritten.

    On the CPU provider, ``run`` splits the batch of a time-folded onnx2snn SNN into
    runs of ``onnx2snn_chunk`` samples whose largest tensor is about ``chunk_bytes``
    (``"auto"``: 2 MiB per intra-op thread; None: one run for the whole batch), so
    the activations stay in the caches (:mod:`onnx2snn.runtime.chunking`; same outputs).
    """
    from ..core.graph import SNN_DOMAIN
    from .blocked_layout import NEURON_OPS, blocked_session
    from .chunking import SNNSession, chunk_samples, default_chunk_bytes

    if chunk_bytes is not None and chunk_bytes != "auto" and (
            not isinstance(chunk_bytes, int) or isinstance(chunk_bytes, bool) or chunk_bytes <= 0):
        raise ConfigError(f"chunk_bytes must be a positive number of bytes, 'auto' or None, got {chunk_bytes!r}")
    opts = sess_options or ort.SessionOptions()
    library = get_library_path()
    opts.register_custom_ops_library(library)
    providers = providers or ["CPUExecutionProvider"]
    on_cpu = list(providers) == ["CPUExecutionProvider"]
    proto, session, failure = None, None, None
    if (blocked_layout or chunk_bytes is not None) and on_cpu:
        try:
            proto = model if isinstance(model, onnx.ModelProto) else (
                onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model)))
        except Exception:  # not a model onnx can read: onnxruntime's own error below says why
            proto = None
    one_protobuf = proto is not None and proto.ByteSize() < 2**31 - 1  # else only a path can carry it
    if (one_protobuf and blocked_layout and not opts.optimized_model_filepath
            and opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        try:
            if any(n.domain == SNN_DOMAIN and n.op_type in NEURON_OPS for n in proto.graph.node):
                session = blocked_session(proto, opts, library, session_class=SNNSession, **kwargs)
        except Exception as e:  # an optimisation only: the plain session below decides
            failure = e
    if session is None:
        # the loaded proto (external data read in), so that onnxruntime's shape inference
        # sees every constant; a path only for a model beyond protobuf's 2 GiB
        source = model
        if one_protobuf:
            source = proto.SerializeToString()
        elif isinstance(model, onnx.ModelProto):
            source = model.SerializeToString()
        session = SNNSession(source if isinstance(source, bytes) else str(source), opts,
                             providers=providers, **kwargs)
        if failure is not None:
            warnings.warn(f"onnx2snn: neurons left in the plain layout (the blocked-layout rewrite failed: "
                          f"{failure}); outputs are the same, only slower. Please report this.", stacklevel=2)
    chunk = 0
    if chunk_bytes is not None and proto is not None:  # proto is loaded on the CPU provider only
        chunk = chunk_samples(proto, default_chunk_bytes(opts) if chunk_bytes == "auto" else chunk_bytes)
    session.set_chunk(chunk)
    return session


