"""Calibration on mirror images: every calibration image and its left-right mirror image.

Calibration never reads labels, so a photo mirrored left-right is as valid a calibration sample as
the photo itself; it doubles a small calibration set at no cost in data. It is an opt-in
(``convert --mirror-calibration``): a mirror changes the meaning of spectrograms (time reversed),
text, digits and other inputs that are not photos of natural scenes, and the converter cannot tell
which kind it is given.

The width axis of an input [N, C, H, W] is its last one, as an ONNX ``Conv`` reads it; an input
that reaches its first Conv through one ``Transpose`` (NHWC exports, e.g. from TensorFlow) has its
width where that Transpose takes the Conv's last axis from.

Invariant: :func:`mirrored` returns, for every input, the given samples followed by their mirror
images in the same order (2n samples, dtype and other axes unchanged); the arrays it is given are
not modified. An input that is not a rank-4 image batch is one ConfigError naming each such input.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import onnx

from ..errors import ConfigError


def width_axis(model: onnx.ModelProto, name: str) -> int:
    """The axis of input ``name`` (rank 4) that the model's convolutions see as the width."""
    consumers = [n for n in model.graph.node if name in n.input]
    if len(consumers) == 1 and consumers[0].op_type == "Transpose":
        perm = next((list(a.ints) for a in consumers[0].attribute if a.name == "perm"), [3, 2, 1, 0])
        if len(perm) == 4:
            return int(perm[3])
    return 3


def mirrored(feeds: Mapping[str, np.ndarray], model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """``feeds`` followed by their left-right mirror images (see the module's invariant)."""
    bad = [f"'{k}' {list(v.shape)}" for k, v in feeds.items() if v.ndim != 4]
    if bad:
        raise ConfigError(f"--mirror-calibration mirrors image batches [N, C, H, W] (or [N, H, W, C]); the "
                          f"calibration input(s) {', '.join(bad)} are not: leave the flag out for this model")
    return {k: np.concatenate([v, np.flip(v, axis=width_axis(model, k))]) for k, v in feeds.items()}
