#!/usr/bin/env python3
"""Quantize the bundled MNIST CNN with onnxruntime's static QDQ quantization.

Usage (from the repository root)::

    python models/make_mnist_qdq.py        # writes models/mnist_cnn_qdq.onnx

What a user of onnxruntime.quantization would do: ``quant_pre_process`` (shape
inference and graph optimisation, which folds BatchNormalization into Conv),
then ``quantize_static`` in QDQ format with uint8 activations (asymmetric,
per tensor) and int8 weights (per tensor), calibrated (MinMax) on the 256
bundled calibration digits. Every activation becomes QuantizeLinear →
DequantizeLinear with 255 levels: unsigned after each ReLU, signed (zero point
inside the range) before the residual Add and on the logits. Needs only
onnx and onnxruntime; deterministic.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

REPO = Path(__file__).resolve().parent.parent


class _Digits(CalibrationDataReader):
    def __init__(self, x: np.ndarray, batch: int = 32):
        self._batches = iter([{"input": x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._batches, None)


def main() -> None:
    source = REPO / "models" / "mnist_cnn.onnx"
    target = REPO / "models" / "mnist_cnn_qdq.onnx"
    x = np.load(REPO / "models" / "data" / "mnist_calib.npz")["x"].astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(source), str(pre))
        quantize_static(str(pre), str(target), _Digits(x), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=False)
    model = onnx.load(target)
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"wrote {target.relative_to(REPO)}: {len(model.graph.node)} nodes ({', '.join(ops)}), "
          f"IR {model.ir_version}, opset {model.opset_import[0].version}")


if __name__ == "__main__":
    main()
