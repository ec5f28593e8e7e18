"""FoldBatchNormPass: fold inference BatchNormalization into the layer before it.

For BN(y) = γ·(y − μ)/σ + β with σ = sqrt(var + ε) and s = γ/σ:

- Conv:  W'[m] = W[m]·s[m],            b' = (b − μ)·s + β
- Gemm:  B' = B·s (along the output axis), C' = (β_g·C − μ)·s + β, β_g' = 1
- MatMul (2-D, constant right operand): B' = B·s, then Add with (−μ)·s + β
  (an existing constant Add bias c becomes (c − μ)·s + β).

A BN is folded only when the producer's output feeds nothing but that BN and
every parameter is constant; any other BN stays as the per-channel affine op it
is (it runs unchanged on the time-folded batch).

Invariant: graph outputs equal before and after within float32 rounding
(≈1e-5 relative); the number of folded BatchNormalization nodes is reported.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import NameScope, PassResult, constant_value, is_empty, is_graph_output


def _bn_scale_shift(bn: gs.Node) -> tuple[np.ndarray, np.ndarray] | None:
    vals = [constant_value(t) for t in bn.inputs[1:5]]
    if any(v is None for v in vals):
        return None
    gamma, beta, mean, var = (v.astype(np.float64) for v in vals)
    if bn.attrs.get("training_mode", 0) or len(bn.outputs) > 1 and any(o.outputs for o in bn.outputs[1:]):
        return None
    if bn.attrs.get("spatial", 1) != 1:
        return None
    eps = float(bn.attrs.get("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def _single_use(graph: gs.Graph, tensor, user: gs.Node) -> bool:
    return len(tensor.outputs) == 1 and tensor.outputs[0] is user and not is_graph_output(graph, tensor)


class FoldBatchNormPass:
    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        count = 0
        for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
            ss = _bn_scale_shift(bn)
            x = bn.inputs[0]
            prev = x.inputs[0] if len(x.inputs) else None
            if ss is None or prev is None or not _single_use(graph, x, bn):
                continue
            scale, shift = ss
            folded = {
                "Conv": self._fold_conv,
                "Gemm": self._fold_gemm,
                "MatMul": self._fold_matmul,
                "Add": self._fold_matmul_add,
            }.get(prev.op, lambda *a: None)(graph, prev, scale, shift, Builder(names))
            if folded is None:
                continue
            out = bn.outputs[0]
            # the folded layer takes over the BN's output tensor (and so its name)
            folded.outputs[0] = out
            bn.outputs.clear()
            bn.inputs.clear()
            count += 1
        graph.cleanup().toposort()
        return PassResult(graph, count)

    def _fold_conv(self, graph, conv, scale, shift, build: Builder) -> gs.Node | None:
        w = constant_value(conv.inputs[1])
        if w is None or w.shape[0] != scale.shape[0]:
            return None
        has_b = len(conv.inputs) > 2 and not is_empty(conv.inputs[2])
        b = constant_value(conv.inputs[2]) if has_b else np.zeros(w.shape[0])
        if b is None:
            return None
        w2 = w.astype(np.float64) * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        b2 = b.astype(np.float64) * scale + shift
        conv.inputs[1] = build.const(conv.inputs[1].name + "_bnfold", w2, np.float32)
        bias = build.const((conv.inputs[2].name if has_b else conv.name + ".bias") + "_bnfold", b2, np.float32)
        if has_b:
            conv.inputs[2] = bias
        else:
            conv.inputs.append(bias)
        return conv

    def _fold_gemm(self, graph, gemm, scale, shift, build: Builder) -> gs.Node | None:
        b = constant_value(gemm.inputs[1])
        if b is None or b.ndim != 2 or gemm.attrs.get("transA", 0):
            return None
        trans_b = gemm.attrs.get("transB", 0)
        m = b.shape[0] if trans_b else b.shape[1]
        if m != scale.shape[0]:
            return None
        has_c = len(gemm.inputs) > 2 and not is_empty(gemm.inputs[2])
        c = constant_value(gemm.inputs[2]) if has_c else np.zeros(m)
        if c is None or c.size not in (1, m):
            return None
        beta_g = float(gemm.attrs.get("beta", 1.0))
        c_full = np.broadcast_to(c.astype(np.float64).reshape(-1), (m,)) * beta_g
        b2 = b.astype(np.float64) * (scale[:, None] if trans_b else scale[None, :])
        gemm.inputs[1] = build.const(gemm.inputs[1].name + "_bnfold", b2, np.float32)
        bias = build.const((gemm.inputs[2].name if has_c else gemm.name + ".bias") + "_bnfold", c_full * scale + shift, np.float32)
        if has_c:
            gemm.inputs[2] = bias
        else:
            gemm.inputs.append(bias)
        gemm.attrs["beta"] = 1.0
        return gemm

    def _fold_matmul(self, graph, mm, scale, shift, build: Builder) -> gs.Node | None:
        b = constant_value(mm.inputs[1])
        if b is None or b.ndim != 2 or b.shape[1] != scale.shape[0] or constant_value(mm.inputs[0]) is not None:
            return None
        mm.inputs[1] = build.const(mm.inputs[1].name + "_bnfold", b.astype(np.float64) * scale[None, :], np.float32)
        out = mm.outputs[0]
        add = build.node("Add", (mm.name or "MatMul") + "_bnfold_add",
                     inputs=[out, build.const((mm.name or "MatMul") + ".bias_bnfold", shift, np.float32)],
                     outputs=[build.var(out.name + "_bnfold", out.dtype)])
        graph.nodes.append(add)
        return add

    def _fold_matmul_add(self, graph, add, scale, shift, build: Builder) -> gs.Node | None:
        # MatMul -> Add(constant bias) -> BN
        a, c = add.inputs[0], add.inputs[1]
        if constant_value(a) is not None:
            a, c = c, a
        cv = constant_value(c)
        mm = a.inputs[0] if len(a.inputs) else None
        if cv is None or mm is None or mm.op != "MatMul" or not _single_use(graph, a, add):
            return None
        if cv.size not in (1, scale.shape[0]):
            return None
        b = constant_value(mm.inputs[1])
        if b is None or b.ndim != 2 or b.shape[1] != scale.shape[0] or constant_value(mm.inputs[0]) is not None:
            return None
        mm.inputs[1] = build.const(mm.inputs[1].name + "_bnfold", b.astype(np.float64) * scale[None, :], np.float32)
        bias = np.broadcast_to(cv.astype(np.float64).reshape(-1), scale.shape)
        add.inputs[add.inputs.index(c)] = build.const(c.name + "_bnfold", bias * scale + shift, np.float32)
        return add
