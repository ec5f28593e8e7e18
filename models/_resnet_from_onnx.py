"""The CIFAR-10 ResNet ONNX (BN folded, option-A shortcuts) as an equivalent torch module.

Not a script and not part of the ``onnx2snn`` package: ``benchmarks/peer_spikingjelly.py``
and ``models/make_cifar_qcfs.py`` import it (after putting ``models/`` on sys.path).

:func:`torch_resnet` walks the canonical ANN (``onnx2snn.pipeline.prepare``: BN
folded, constants folded): Conv → nn.Conv2d with bias, one nn.ReLU module per
activation (``relu1``, ``relu2``, … in graph order, so a caller can swap them
for another activation), the option-A shortcut (every 2nd pixel, channels
zero-padded on both sides; Slice+Slice+Pad in the ONNX) → a fixed 1×1 stride-2
convolution whose weight is the identity into the padded channel range and zero
elsewhere (``shortcut1``, …), GlobalAveragePool, Flatten and Gemm → nn.Linear.
All parameters are created with ``requires_grad=False``.

torch is needed only by the scripts that import this, never by ``onnx2snn``.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from onnx2snn.pipeline import prepare


def torch_resnet(model: onnx.ModelProto):
    """The canonical ANN (BN folded, constants folded) as a torch module.

    Walks the graph: Conv → nn.Conv2d, Relu → its own nn.ReLU, Add(residual),
    Slice+Slice+Pad (option-A shortcut) → fixed 1×1 stride-2 Conv2d,
    GlobalAveragePool → nn.AdaptiveAvgPool2d, Flatten, Gemm → nn.Linear.
    The sequence is recorded as (op, module name, input tensor names, output).
    """
    import torch
    import torch.nn as nn

    ann = prepare(model)
    inits = {i.name: numpy_helper.to_array(i) for i in ann.graph.initializer}
    shapes = {}
    inferred = onnx.shape_inference.infer_shapes(ann)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]

    class ResNetFromOnnx(nn.Module):
        def __init__(self):
            super().__init__()
            self.steps: list[tuple[str, str, tuple[str, ...], str]] = []
            self.input_name = ann.graph.input[0].name
            self.output_name = ann.graph.output[0].name
            alias = {}       # Slice outputs → their source (folded into the shortcut conv)
            counts = {}

            def name(kind):
                counts[kind] = counts.get(kind, 0) + 1
                return f"{kind}{counts[kind]}"

            for node in ann.graph.node:
                op, ins, out = node.op_type, list(node.input), node.output[0]
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                if op == "Conv":
                    w = inits[ins[1]]
                    b = inits[ins[2]] if len(ins) > 2 and ins[2] else np.zeros(w.shape[0], np.float32)
                    pads = attrs.get("pads", [0, 0, 0, 0])
                    assert pads[:2] == pads[2:] and attrs.get("group", 1) == 1
                    conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=tuple(attrs.get("strides", [1, 1])),
                                     padding=tuple(pads[:2]), dilation=tuple(attrs.get("dilations", [1, 1])))
                    conv.weight = nn.Parameter(torch.from_numpy(w.copy()), requires_grad=False)
                    conv.bias = nn.Parameter(torch.from_numpy(b.copy()), requires_grad=False)
                    n = name("conv")
                    self.add_module(n, conv)
                    self.steps.append(("mod", n, (ins[0],), out))
                elif op == "Relu":
                    n = name("relu")
                    self.add_module(n, nn.ReLU())
                    self.steps.append(("mod", n, (ins[0],), out))
                elif op == "Add":
                    self.steps.append(("add", "", (ins[0], ins[1]), out))
                elif op == "Slice":
                    starts, ends, axes, steps = (inits[i].tolist() for i in ins[1:5])
                    assert starts == [0] and axes[0] in (2, 3) and steps == [2], (starts, axes, steps)
                    alias[out] = alias.get(ins[0], (ins[0], set()))[0], alias.get(ins[0], (ins[0], set()))[1] | {axes[0]}
                elif op == "Pad":
                    src, axes = alias[ins[0]]
                    assert axes == {2, 3}
                    pads = inits[ins[1]].tolist()
                    assert pads[0] == pads[4] == 0 and pads[2:4] == pads[6:8] == [0, 0]
                    cin = shapes[src][1]
                    cout = cin + pads[1] + pads[5]
                    w = np.zeros((cout, cin, 1, 1), np.float32)
                    w[pads[1] + np.arange(cin), np.arange(cin)] = 1.0
                    conv = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
                    conv.weight = nn.Parameter(torch.from_numpy(w), requires_grad=False)
                    n = name("shortcut")
                    self.add_module(n, conv)
                    self.steps.append(("mod", n, (src,), out))
                elif op == "GlobalAveragePool":
                    n = name("gap")
                    self.add_module(n, nn.AdaptiveAvgPool2d(1))
                    self.steps.append(("mod", n, (ins[0],), out))
                elif op == "Flatten":
                    assert attrs.get("axis", 1) == 1
                    n = name("flatten")
                    self.add_module(n, nn.Flatten(1))
                    self.steps.append(("mod", n, (ins[0],), out))
                elif op == "Gemm":
                    w, b = inits[ins[1]], inits[ins[2]]
                    if not attrs.get("transB", 0):
                        w = w.T
                    assert attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
                    lin = nn.Linear(w.shape[1], w.shape[0])
                    lin.weight = nn.Parameter(torch.from_numpy(np.array(w, np.float32, copy=True, order="C")), requires_grad=False)
                    lin.bias = nn.Parameter(torch.from_numpy(b.copy()), requires_grad=False)
                    n = name("linear")
                    self.add_module(n, lin)
                    self.steps.append(("mod", n, (ins[0],), out))
                else:
                    raise NotImplementedError(f"{op} in the ResNet graph")

        def forward(self, x):
            # Straight-line code (FX-traceable): a dict of named tensors.
            env = {self.input_name: x}
            for kind, mod, ins, out in self.steps:
                if kind == "add":
                    env[out] = env[ins[0]] + env[ins[1]]
                else:
                    env[out] = getattr(self, mod)(env[ins[0]])
            return env[self.output_name]

    return ResNetFromOnnx().eval(), ann
