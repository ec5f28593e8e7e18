"""A ResNet-50-sized ONNX graph with random weights (no framework needed).

Bottleneck ResNet-50 (He et al. 2016): 53 Conv + 53 BatchNormalization (kept,
as `do_constant_folding=False` exports write them), 49 Relu, 16 residual Add,
MaxPool, GlobalAveragePool, Flatten, Gemm; about 25.6 M parameters.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper


def resnet50(seed: int = 0, num_classes: int = 1000, opset: int = 13) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    counter = {"n": 0}

    def name(kind):
        counter["n"] += 1
        return f"/{kind}_{counter['n']}"

    def const(base, value):
        inits.append(numpy_helper.from_array(value.astype(np.float32), base))
        return base

    def conv_bn(x, cin, cout, k, stride=1, relu=True):
        n = name("conv")
        w = rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))
        nodes.append(oh.make_node("Conv", [x, const(n + ".weight", w)], [n + "_out"], name=n,
                                  kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        b = name("bn")
        nodes.append(oh.make_node("BatchNormalization",
                                  [n + "_out", const(b + ".gamma", rng.uniform(0.5, 1.0, cout)),
                                   const(b + ".beta", rng.normal(0, 0.1, cout)),
                                   const(b + ".mean", rng.normal(0, 0.1, cout)),
                                   const(b + ".var", rng.uniform(0.5, 1.5, cout))], [b + "_out"], name=b))
        out = b + "_out"
        if relu:
            r = name("relu")
            nodes.append(oh.make_node("Relu", [out], [r + "_out"], name=r))
            out = r + "_out"
        return out

    x = conv_bn("input", 3, 64, 7, 2)
    p = name("maxpool")
    nodes.append(oh.make_node("MaxPool", [x], [p + "_out"], name=p, kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1]))
    x, cin = p + "_out", 64
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            s = stride if i == 0 else 1
            y = conv_bn(x, cin, width, 1)
            y = conv_bn(y, width, width, 3, s)
            y = conv_bn(y, width, width * 4, 1, relu=False)
            short = conv_bn(x, cin, width * 4, 1, s, relu=False) if (s != 1 or cin != width * 4) else x
            a, r = name("add"), name("relu")
            nodes.append(oh.make_node("Add", [y, short], [a + "_out"], name=a))
            nodes.append(oh.make_node("Relu", [a + "_out"], [r + "_out"], name=r))
            x, cin = r + "_out", width * 4
    nodes.append(oh.make_node("GlobalAveragePool", [x], ["/gap_out"], name="/gap"))
    nodes.append(oh.make_node("Flatten", ["/gap_out"], ["/flat_out"], name="/flatten", axis=1))
    nodes.append(oh.make_node("Gemm", ["/flat_out", const("fc.weight", rng.normal(0, 0.01, (num_classes, 2048))),
                                       const("fc.bias", np.zeros(num_classes))], ["logits"], name="/fc", transB=1))
    graph = oh.make_graph(nodes, "resnet50",
                          [oh.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 3, 224, 224])],
                          [oh.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", num_classes])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)])
    model.ir_version = 8
    return model
