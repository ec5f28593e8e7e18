"""Exact fan-out of every input element of a weighted layer, and its dense MAC count.

Convention (the README's *What the SNN costs*): a nonzero input element of a weighted
layer (Conv, ConvTranspose, Gemm, MatMul, Einsum with constant weights) at one step costs one
synaptic operation per connection it reaches. For Conv that is the output channels of
its group times the kernel taps that actually reach it, given stride, padding and
dilation (elements at the edges reach fewer); for ConvTranspose the taps that land
inside the output; for Gemm and MatMul the number of outputs each input element feeds; for
an Einsum the product of the sizes of the axes only its constant operand has (each input
element meets every combination of them once).

Invariant: ``fanout(...)`` summed over every input element equals the layer's dense MAC
count per sample (each MAC is one connection from one input element to one output).
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.einsum import labels as einsum_labels
from ..core.einsum import sizes as einsum_sizes

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum")


def _einsum(node: gs.Node, in_shape: list[int], weight_shape: list[int], data_index: int):
    """(labels of the activation, of the output, size of every label) of a two-operand Einsum."""
    shapes = [weight_shape, in_shape] if data_index == 1 else [in_shape, weight_shape]
    parsed = einsum_labels(str(node.attrs.get("equation", "")), [len(s) for s in shapes])
    if parsed is None:
        raise ValueError(f"Einsum equation {node.attrs.get('equation')!r} does not match shapes {shapes}")
    operands, out = parsed
    return operands[data_index], out, einsum_sizes(operands, shapes)


def einsum_output_shape(node: gs.Node, in_shape: list[int], weight_shape: list[int], data_index: int) -> list[int]:
    _, out, size = _einsum(node, in_shape, weight_shape, data_index)
    return [size[label] for label in out]


def conv_taps(in_len: int, kernel: int, stride: int, pad_begin: int, dilation: int, out_len: int,
              transpose: bool = False) -> np.ndarray:
    """Per input position h (length ``in_len``): how many (output position, kernel tap) pairs it feeds.

    Conv: output o reads input h = o·stride − pad + k·dilation. ConvTranspose: input h writes
    output o = h·stride − pad + k·dilation. Only in-range positions count."""
    counts = np.zeros(in_len, np.int64)
    k = np.arange(kernel)
    if transpose:
        for h in range(in_len):
            o = h * stride - pad_begin + k * dilation
            counts[h] = int(((o >= 0) & (o < out_len)).sum())
        return counts
    for o in range(out_len):
        h = o * stride - pad_begin + k * dilation
        h = h[(h >= 0) & (h < in_len)]
        np.add.at(counts, h, 1)
    return counts


def _attr(node: gs.Node, name: str, rank: int, default: int) -> list[int]:
    value = node.attrs.get(name)
    return [int(v) for v in value] if value is not None else [default] * rank


def _conv_pads(node: gs.Node, in_sp: list[int], out_sp: list[int], kernel: list[int], strides: list[int],
               dilations: list[int]) -> list[int]:
    """Begin pads per spatial dim, auto_pad resolved the way ONNX defines it (a ConvTranspose with an
    ``output_shape`` derives its pads from it, the begin pad getting the larger half unless SAME_UPPER)."""
    auto = node.attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    rank = len(in_sp)
    from_output = node.op == "ConvTranspose" and node.attrs.get("output_shape") is not None
    if auto in ("SAME_UPPER", "SAME_LOWER") or from_output:
        out_pad = _attr(node, "output_padding", rank, 0)
        begins = []
        for d in range(rank):
            eff = (kernel[d] - 1) * dilations[d] + 1
            if node.op == "ConvTranspose":
                total = max(0, strides[d] * (in_sp[d] - 1) + out_pad[d] + eff - out_sp[d])
            else:
                total = max(0, (out_sp[d] - 1) * strides[d] + eff - in_sp[d])
            begins.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
        return begins
    if auto == "VALID":
        return [0] * rank
    pads = node.attrs.get("pads")
    return [int(p) for p in pads[:rank]] if pads is not None else [0] * rank


def fanout(node: gs.Node, in_shape: list[int], out_shape: list[int], weight_shape: list[int],
           data_index: int = 0) -> np.ndarray:
    """Connections each element of one sample's input reaches: an array broadcastable to the input
    without its batch axis (``in_shape`` and ``out_shape`` include the batch axis)."""
    if node.op in ("Conv", "ConvTranspose"):
        rank = len(in_shape) - 2
        in_sp, out_sp = in_shape[2:], out_shape[2:]
        kernel = [int(k) for k in weight_shape[2:]]
        strides = _attr(node, "strides", rank, 1)
        dilations = _attr(node, "dilations", rank, 1)
        pads = _conv_pads(node, in_sp, out_sp, kernel, strides, dilations)
        group = int(node.attrs.get("group", 1))
        per_group = out_shape[1] // group  # output channels each input channel feeds
        taps = np.ones([1] * rank, np.int64)
        for d in range(rank):
            t = conv_taps(in_sp[d], kernel[d], strides[d], pads[d], dilations[d], out_sp[d],
                          transpose=node.op == "ConvTranspose")
            taps = taps * t.reshape([1] * d + [-1] + [1] * (rank - d - 1))
        return (per_group * taps)[None]  # same for every input channel
    if node.op == "Gemm":  # Y[M, N] = A·B (A transposed or not): each element of A feeds N outputs
        return np.full([1], int(out_shape[-1]), np.int64)
    if node.op == "MatMul":
        if data_index == 0:  # x[..., K] · W[K, M]: each element feeds M outputs
            return np.full([1], int(weight_shape[-1]), np.int64)
        return np.full([1], int(weight_shape[-2]), np.int64)  # W[M, K] · x[K, ...]: M outputs
    if node.op == "Einsum":  # every (input element, constant-only axes) combination is one MAC
        data, _, size = _einsum(node, in_shape, weight_shape, data_index)
        only_weights = [label for label in size if label not in data]
        return np.full([1], int(np.prod([size[label] for label in only_weights])), np.int64)
    raise ValueError(f"{node.op} is not a weighted layer")


def dense_macs(node: gs.Node, in_shape: list[int], out_shape: list[int], weight_shape: list[int],
               data_index: int = 0) -> int:
    """Multiply-accumulates of one run of the layer on ``in_shape`` (all rows of it)."""
    if node.op == "Einsum":  # the product of every axis size, the batch included
        _, _, size = _einsum(node, in_shape, weight_shape, data_index)
        return int(np.prod(list(size.values())))
    f = fanout(node, in_shape, out_shape, weight_shape, data_index)
    rows = int(in_shape[0]) if node.op in ("Conv", "ConvTranspose", "Gemm") else 1
    per_row = np.broadcast_to(f, in_shape[1:]).sum() if node.op != "MatMul" else \
        int(np.prod(in_shape)) * int(f.reshape(-1)[0])
    return int(rows * per_row) if node.op != "MatMul" else int(per_row)
