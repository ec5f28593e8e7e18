"""DetectQuantizedActivationsPass: find quantized activations, mark them ReLU-like.

A quantized activation with L levels of step γ is

    a(x) = γ · clip(floor(α·x + β), m, L)                                  (1)

with α ≈ 1/γ: floor for β = 0, round-half-up for β = ½ (QCFS, Bu et al.
2022); m = 0 for the usual non-negative activations, m < 0 for signed ones
(a QDQ pair whose zero point lies inside its range, e.g. before a residual Add
or on the logits of an onnxruntime-quantized model). Two ways exporters write it are recognised:

* **scalar chains** (QCFS and clip-floor layers): a chain of single-consumer
  nodes around one Floor or Round — Mul/Div by a positive scalar constant,
  Add/Sub of a scalar constant, Clip with constant bounds, Relu — e.g.
  ``Div(λ) → Clip(0,1) → Mul(L) → Add(½) → Floor → Div(L) → Mul(λ)`` or
  ``Mul(L/λ) → Round → Clip(0,L) → Mul(λ/L)``. The chain is composed
  symbolically (in float64): before the rounding every op keeps the form
  u = clip(a·x + b, lo, hi) (a > 0), and floor(clip(u, lo, hi)) =
  clip(floor(u), ⌊lo⌋, ⌊hi⌋) since floor is monotone; Round(u) is read as
  floor(u + ½). After it, z = clip(g·q + d, plo, phi) on the integer q. The
  chain is (1) when d = 0 and the integer range it allows is a finite [m, L]
  with m ≤ 0 < L (bounds off the grid g·ℤ are refused).
* **QDQ pairs** on activations: ``[Relu →] QuantizeLinear(s, z) →
  DequantizeLinear(s, z)`` computes s·clip(round(x/s), qmin − z, qmax − z):
  (1) with α = 1/s, β = ½, γ = s, L = qmax − z, m = qmin − z (0 behind a Relu).
  Scales may be per channel (axis 1). A zero point outside [qmin, qmax − 1]
  is refused.

Weights in QDQ form (DequantizeLinear of a constant, or QuantizeLinear →
DequantizeLinear of a constant) become float initializers (q − z)·s.

Each recognised pattern is replaced by ``Clip(x, 0, γ·L)`` (``Relu`` for
per-channel scales) writing the pattern's output tensor, so the rest of the
pipeline sees a ReLU-like node (a signed one, m < 0, by ``Clip(x, γ·m, γ·L)``,
or ``Identity`` for per-channel scales: IF neurons cannot convert it); the parameters of (1) are kept in
:attr:`quantizers`, keyed by that tensor's name. Round/ties-to-even (ONNX
``Round``, QuantizeLinear) and round-half-up (β = ½) differ only at exact ties.

A quantizer applied directly to a graph input quantizes the analog input: it
is the input encoding, not a neuron, and is left as it is (the SNN feeds the
quantized input; a quantizer maps 0 to 0, so the s-analog encoding is kept).

Invariant: no Floor, Round, QuantizeLinear or DequantizeLinear is left but
those of input encoders (:attr:`encoded`); every quantizer's output tensor is written by a ReLU-like node that reads the
pattern's input. Any Floor/Round/QuantizeLinear/DequantizeLinear that fits no
pattern raises one :class:`UnsupportedOpError` naming each node and why.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from .. import metadata
from ..errors import UnsupportedOpError
from ..core.graph import SNN_DOMAIN, NameScope, PassResult, constant_value, is_empty, is_graph_output, node_label

CHAIN_OPS = ("Mul", "Div", "Add", "Sub", "Clip", "Relu")
ROUNDING_OPS = ("Floor", "Round")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_TOL = 1e-6


@dataclass(frozen=True)
class Quantizer:
    """a(x) = gamma · clip(floor(alpha·x + beta), lowest, levels); alpha, gamma scalar or per channel."""

    levels: int
    alpha: np.ndarray   # float64, [] or [C]
    beta: float
    gamma: np.ndarray   # float64, [] or [C]
    pattern: str        # "chain" | "qdq"
    rounding: str       # "floor" | "round" (ties to even in the ANN, half up in the SNN)
    lowest: int = 0     # m ≤ 0: the lowest level (negative for signed activations)

    def as_dict(self) -> dict:
        return {"levels": self.levels, "alpha": np.asarray(self.alpha).tolist(), "beta": self.beta,
                "gamma": np.asarray(self.gamma).tolist(), "pattern": self.pattern, "rounding": self.rounding,
                "lowest": self.lowest}

    @staticmethod
    def from_dict(d: dict) -> "Quantizer":
        return Quantizer(int(d["levels"]), np.asarray(d["alpha"], np.float64), float(d["beta"]),
                         np.asarray(d["gamma"], np.float64), str(d["pattern"]), str(d["rounding"]),
                         int(d.get("lowest", 0)))

    @property
    def step(self) -> np.ndarray:
        """γ, the output step (λ/L)."""
        return np.asarray(self.gamma, np.float64)


def quantizers_to_json(quantizers: dict[str, Quantizer]) -> str:
    return json.dumps({k: q.as_dict() for k, q in quantizers.items()}, sort_keys=True)


def quantizers_from_metadata(model) -> dict[str, Quantizer]:
    """The quantizer table a prepared (canonical) model carries in its metadata ({} if none)."""
    text = metadata.quantizers_json(model)
    return {} if text is None else {k: Quantizer.from_dict(v) for k, v in json.loads(text).items()}


class _NoMatch(Exception):
    """The nodes around a Floor/Round/QuantizeLinear do not form a supported pattern."""


def _scalar_operand(node: gs.Node) -> tuple[int, float] | None:
    """(index of the activation input, value of the scalar constant) of a binary op, else None."""
    if len(node.inputs) != 2:
        return None
    values = [constant_value(t) for t in node.inputs]
    if (values[0] is None) == (values[1] is None):
        return None
    k = 0 if values[1] is not None else 1
    const = values[1 - k]
    if const.size != 1:
        return None
    return k, float(np.asarray(const, np.float64).reshape(-1)[0])


def _clip_bounds(node: gs.Node) -> tuple[float, float] | None:
    if node.op == "Relu":
        return 0.0, math.inf
    if "min" in node.attrs or "max" in node.attrs:
        return float(node.attrs.get("min", -math.inf)), float(node.attrs.get("max", math.inf))
    ins = list(node.inputs) + [None, None]
    bounds = []
    for t, default in ((ins[1], -math.inf), (ins[2], math.inf)):
        if is_empty(t):
            bounds.append(default)
            continue
        v = constant_value(t)
        if v is None or v.size != 1:
            return None
        bounds.append(float(np.asarray(v, np.float64).reshape(-1)[0]))
    return bounds[0], bounds[1]


def _chain_link(node: gs.Node) -> gs.Variable | None:
    """The activation input of a chain op (scalar constant operand / constant bounds), else None."""
    if node.op not in CHAIN_OPS or node.domain not in ("", "ai.onnx", None):
        return None
    if node.op in ("Clip", "Relu"):
        return node.inputs[0] if _clip_bounds(node) is not None else None
    operand = _scalar_operand(node)
    if operand is None or (node.op in ("Div", "Sub") and operand[0] != 0):
        return None
    return node.inputs[operand[0]]


class _Affine:
    """z = clip(a·x + b, lo, hi) with a > 0, composed op by op in float64."""

    def __init__(self):
        self.a, self.b, self.lo, self.hi = 1.0, 0.0, -math.inf, math.inf

    def apply(self, node: gs.Node) -> None:
        if node.op in ("Clip", "Relu"):
            lo, hi = _clip_bounds(node)
            self.lo, self.hi = max(self.lo, lo), min(self.hi, hi)
            return
        c = _scalar_operand(node)[1]
        if node.op in ("Mul", "Div"):
            if node.op == "Div":
                if c == 0:
                    raise _NoMatch(f"node '{node.name}' (Div) divides by 0")
                c = 1.0 / c
            if not c > 0:
                raise _NoMatch(f"node '{node.name}' ({node.op}) scales by {c:g} <= 0")
            self.a, self.b, self.lo, self.hi = self.a * c, self.b * c, self.lo * c, self.hi * c
        else:
            c = -c if node.op == "Sub" else c
            self.b, self.lo, self.hi = self.b + c, self.lo + c, self.hi + c


def _snap(value: float) -> float:
    """value, or the nearest integer when within relative rounding of it."""
    r = round(value) if math.isfinite(value) else value
    return float(r) if math.isfinite(value) and abs(value - r) <= _TOL * max(1.0, abs(value)) else value


def _compose_chain(pre: list[gs.Node], rounding: gs.Node, post: list[gs.Node]) -> Quantizer:
    before = _Affine()
    for node in pre:
        before.apply(node)
    if rounding.op == "Round":
        before.b, before.lo, before.hi = before.b + 0.5, before.lo + 0.5, before.hi + 0.5
    q_lo = math.floor(_snap(before.lo)) if math.isfinite(before.lo) else -math.inf
    q_hi = math.floor(_snap(before.hi)) if math.isfinite(before.hi) else math.inf
    after = _Affine()
    for node in post:
        after.apply(node)
    g, d = after.a, after.b
    if abs(d) > _TOL * g:
        raise _NoMatch(f"the output is offset by {d:g} (it must be a multiple of its levels, starting at 0)")
    lo_grid, hi_grid = _snap(after.lo / g), _snap(after.hi / g)
    lo_level = max(q_lo, math.ceil(lo_grid) if math.isfinite(lo_grid) else lo_grid)
    hi_level = min(q_hi, math.floor(hi_grid) if math.isfinite(hi_grid) else hi_grid)
    if q_lo < lo_level and lo_grid != lo_level:
        raise _NoMatch(f"its lower clip {after.lo:g} is not on the grid of levels (step {g:g})")
    if q_hi > hi_level and hi_grid != hi_level:
        raise _NoMatch(f"its upper clip {after.hi:g} is not on the grid of levels (step {g:g})")
    if not math.isfinite(lo_level) or lo_level > 0:
        raise _NoMatch(f"its lowest level is {lo_level} (times {g:g}): the levels must include 0 and be "
                       "bounded below; clip the activation, e.g. Clip(0, L)")
    if not math.isfinite(hi_level) or hi_level < 1:
        raise _NoMatch("it has no finite upper clip (L levels): clip the activation, e.g. Clip(0, L)")
    return Quantizer(int(hi_level), np.asarray(before.a), float(before.b), np.asarray(g), "chain",
                     "round" if rounding.op == "Round" else "floor", int(lo_level))


def _single_consumer(tensor, graph) -> gs.Node | None:
    if len(tensor.outputs) != 1 or is_graph_output(graph, tensor):
        return None
    return tensor.outputs[0]


def _qdq_params(node: gs.Node) -> tuple[np.ndarray, np.ndarray, int]:
    scale = constant_value(node.inputs[1])
    zp = constant_value(node.inputs[2]) if len(node.inputs) > 2 and not is_empty(node.inputs[2]) else None
    if scale is None or (zp is None and len(node.inputs) > 2 and not is_empty(node.inputs[2])):
        raise _NoMatch("its scale or zero point is computed, not a constant")
    if zp is None:
        zp = np.zeros(np.shape(scale), np.uint8)
    return np.asarray(scale), np.asarray(zp), int(node.attrs.get("axis", 1))


def _dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * q.ndim
    if scale.size > 1:
        shape[axis % q.ndim] = -1
    s = scale.astype(np.float32).reshape(shape) if scale.size > 1 else scale.astype(np.float32).reshape(())
    z = zp.astype(np.float32).reshape(shape) if zp.size > 1 else zp.astype(np.float32).reshape(())
    return ((q.astype(np.float32) - z) * s).astype(np.float32)


def _quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    if scale.size > 1:
        shape[axis % x.ndim] = -1
    s = scale.astype(np.float32).reshape(shape) if scale.size > 1 else scale.astype(np.float32).reshape(())
    z = zp.astype(np.int64).reshape(shape) if zp.size > 1 else zp.astype(np.int64).reshape(())
    info = np.iinfo(zp.dtype)
    return np.clip(np.rint(x.astype(np.float32) / s).astype(np.int64) + z, info.min, info.max).astype(zp.dtype)


class DetectQuantizedActivationsPass:
    """Mark quantized activations (default), or with ``count_timesteps=T`` keep the ANN's own
    quantizer ops and put a ``BIFCount`` on each integer level (the cumulative form, see
    :mod:`onnx2snn.bif`): x → [pre ops] → level τ → BIFCount(τ; T, L) → [post ops] → a. Weights
    in QDQ form are then left to the runtime, which dequantizes them as it does for the ANN."""

    def __init__(self, count_timesteps: int | None = None):
        self.quantizers: dict[str, Quantizer] = {}
        self.encoded: set[str] = set()  # outputs of quantizers applied to graph inputs (kept as ops)
        self.count_timesteps = count_timesteps

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        folded = self._fold_weights(graph) if self.count_timesteps is None else 0
        offenders: list[tuple[str, str, str]] = []
        graph.toposort()
        for node in list(graph.nodes):
            if not node.outputs and not node.inputs:
                continue  # already consumed by a rewrite
            try:
                if node.op in ROUNDING_OPS:
                    self._rewrite_chain(graph, node, names)
                elif node.op == "QuantizeLinear":
                    self._rewrite_qdq(graph, node, names)
            except _NoMatch as exc:
                offenders.append((*node_label(node), f"not a supported quantized activation: {exc}"))
        graph.cleanup().toposort()
        for node in graph.nodes if self.count_timesteps is None else ():
            source = node.inputs[0].inputs[0] if node.inputs and len(node.inputs[0].inputs) else None
            if node.op == "DequantizeLinear" and (source is None or source.op != "QuantizeLinear"):
                offenders.append((*node_label(node), "DequantizeLinear of an activation without its "
                                  "QuantizeLinear (integer tensors have no spiking equivalent)"))
        if offenders:
            raise UnsupportedOpError(offenders)
        return PassResult(graph, len(self.quantizers) + folded)

    # -- weights ------------------------------------------------------------------------------
    @staticmethod
    def _fold_weights(graph: gs.Graph) -> int:
        count = 0
        for node in list(graph.nodes):
            if node.op != "DequantizeLinear":
                continue
            source = node.inputs[0]
            value = constant_value(source)
            try:
                scale, zp, axis = _qdq_params(node)
            except _NoMatch:
                continue
            if value is None and len(source.inputs) == 1 and source.inputs[0].op == "QuantizeLinear":
                quant = source.inputs[0]
                x = constant_value(quant.inputs[0])
                if x is None:
                    continue
                try:
                    qs, qz, qaxis = _qdq_params(quant)
                except _NoMatch:
                    continue
                value = _quantize(np.asarray(x), qs, qz, qaxis)
            if value is None:
                continue
            out = node.outputs[0]
            const = gs.Constant(out.name, _dequantize(np.asarray(value), scale, zp, axis))
            for consumer in list(out.outputs):
                for i, t in enumerate(consumer.inputs):
                    if t is out:
                        consumer.inputs[i] = const
            graph.outputs = [const if t is out else t for t in graph.outputs]
            node.outputs.clear()
            node.inputs.clear()
            count += 1
        graph.cleanup()
        return count

    # -- activations --------------------------------------------------------------------------
    def _rewrite_chain(self, graph: gs.Graph, rounding: gs.Node, names: NameScope) -> None:
        pre, x = [], rounding.inputs[0]
        while len(x.inputs) == 1 and _single_consumer(x, graph) is not None:
            link = _chain_link(x.inputs[0])
            if link is None or isinstance(link, gs.Constant):
                break
            pre.insert(0, x.inputs[0])
            x = link
        post, y, best = [], rounding.outputs[0], None
        candidates = [(list(post), y)]
        while (consumer := _single_consumer(y, graph)) is not None and _chain_link(consumer) is y:
            post.append(consumer)
            y = consumer.outputs[0]
            candidates.append((list(post), y))
        error = None
        for ops, out in reversed(candidates):  # the longest chain that forms (1)
            try:
                best = (_compose_chain(pre, rounding, ops), ops, out)
                break
            except _NoMatch as exc:
                error = error or exc
        if best is None:
            raise error
        quantizer, ops, out = best
        if self._is_input_encoder(graph, x, pre + [rounding] + ops):
            return
        if self.count_timesteps is not None:
            self._insert_count(graph, rounding.outputs[0], quantizer, names)
            self.quantizers[out.name] = quantizer
            return
        self._replace(graph, pre + [rounding] + ops, x, out, quantizer, names)

    def _rewrite_qdq(self, graph: gs.Graph, quant: gs.Node, names: NameScope) -> None:
        dequant = _single_consumer(quant.outputs[0], graph)
        if dequant is None or dequant.op != "DequantizeLinear":
            raise _NoMatch("its output must feed exactly one DequantizeLinear (integer activations have "
                           "no spiking equivalent)")
        s, z, axis = _qdq_params(quant)
        s2, z2, axis2 = _qdq_params(dequant)
        if s.shape != s2.shape or not np.array_equal(s, s2) or not np.array_equal(z, z2) or \
                (s.size > 1 and axis != axis2):
            raise _NoMatch(f"DequantizeLinear '{dequant.name}' uses another scale or zero point")
        if z.dtype.kind not in "iu":
            raise _NoMatch(f"zero point of type {z.dtype} is not an integer type")
        if np.any(z != z.reshape(-1)[0]):
            raise _NoMatch("per-channel zero points differ (the number of levels must be one per layer)")
        x = quant.inputs[0]
        rank = len(x.shape) if x.shape is not None else None
        if s.size > 1 and (rank is None or axis % rank != 1):
            raise _NoMatch(f"per-axis scale along axis {axis}; only per-channel scales (axis 1) convert")
        if np.any(s <= 0):
            raise _NoMatch("its scale is not positive")
        info = np.iinfo(z.dtype)
        zero = int(z.reshape(-1)[0])
        lo, hi = info.min - zero, info.max - zero
        pre = []
        relu = x.inputs[0] if len(x.inputs) == 1 else None
        if relu is not None and relu.op == "Relu" and _single_consumer(x, graph) is quant:
            pre, x = [relu], relu.inputs[0]
        if lo > 0 or hi < 1:
            raise _NoMatch(f"zero point {zero} ({z.dtype}) gives the level range [{lo}, {hi}], which must "
                           "include 0 and a positive level")
        scale = np.asarray(s, np.float64).reshape(-1) if s.size > 1 else np.asarray(float(s.reshape(-1)[0]))
        quantizer = Quantizer(int(hi), 1.0 / scale, 0.5, scale, "qdq", "round", 0 if pre else int(lo))
        if self._is_input_encoder(graph, x, pre + [quant, dequant]):
            return
        if self.count_timesteps is not None:
            self._insert_count(graph, quant.outputs[0], quantizer, names, zero=zero, dtype=z.dtype)
            self.quantizers[dequant.outputs[0].name] = quantizer
            return
        self._replace(graph, pre + [quant, dequant], x, dequant.outputs[0], quantizer, names)

    def _is_input_encoder(self, graph: gs.Graph, x, nodes: list[gs.Node]) -> bool:
        """A quantizer of a graph input is the input encoding, not a neuron: it stays as it is
        (its output tensors are listed in :attr:`encoded`)."""
        if not any(x is t for t in graph.inputs):
            return False
        self.encoded.update(t.name for n in nodes for t in n.outputs)
        return True

    def _insert_count(self, graph, level: gs.Variable, quantizer: Quantizer, names: NameScope, *,
                      zero: int = 0, dtype=None) -> None:
        """Route the level tensor through BIFCount (as float, minus the zero point for QDQ)."""
        def var(suffix, dt=np.float32):
            return gs.Variable(names.fresh(level.name + suffix), dtype=dt)

        consumers = list(level.outputs)
        nodes, x = [], level
        if dtype is not None:  # integer QuantizeLinear output: count in float, offset by the zero point
            nodes.append(gs.Node("Cast", names.fresh(level.name + "/to_float"), attrs={"to": onnx.TensorProto.FLOAT},
                                 inputs=[x], outputs=[x := var("_float")]))
            if zero:
                nodes.append(gs.Node("Sub", names.fresh(level.name + "/zero_point"),
                                     inputs=[x, gs.Constant(names.fresh(level.name + "_zp"), np.array(zero, np.float32))],
                                     outputs=[x := var("_level")]))
        count = var("_count")
        nodes.append(gs.Node("BIFCount", names.fresh(level.name + "/BIFCount"), domain=SNN_DOMAIN,
                             attrs={"timesteps": int(self.count_timesteps), "levels": int(quantizer.levels),
                                    "min_level": int(quantizer.lowest)},
                             inputs=[x], outputs=[count]))
        out = count
        if dtype is not None:
            if zero:
                nodes.append(gs.Node("Add", names.fresh(level.name + "/zero_point_back"),
                                     inputs=[out, gs.Constant(names.fresh(level.name + "_zp_back"),
                                                              np.array(zero, np.float32))],
                                     outputs=[out := var("_count_q")]))
            nodes.append(gs.Node("Cast", names.fresh(level.name + "/to_int"),
                                 attrs={"to": onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))},
                                 inputs=[out], outputs=[out := var("_count_int", np.dtype(dtype))]))
        for consumer in consumers:
            for i, t in enumerate(consumer.inputs):
                if t is level:
                    consumer.inputs[i] = out
        graph.outputs = [out if t is level else t for t in graph.outputs]
        graph.nodes.extend(nodes)

    def _replace(self, graph, nodes, x, out, quantizer: Quantizer, names: NameScope) -> None:
        name = nodes[-1].name or names.fresh("quantized_activation")
        cap = np.float32(np.max(quantizer.gamma) * quantizer.levels)
        floor = np.float32(np.max(quantizer.gamma) * quantizer.lowest)
        scalar = np.asarray(quantizer.gamma).size == 1
        if scalar and graph.opset < 11:
            marker = gs.Node("Clip", names.fresh(name + "_quant"), attrs={"min": float(floor), "max": float(cap)},
                             inputs=[x], outputs=[out])
        elif scalar:
            marker = gs.Node("Clip", names.fresh(name + "_quant"),
                             inputs=[x, gs.Constant(names.fresh(out.name + "_min"), np.array(floor, np.float32)),
                                     gs.Constant(names.fresh(out.name + "_max"), np.array(cap, np.float32))],
                             outputs=[out])
        else:
            marker = gs.Node("Relu" if quantizer.lowest == 0 else "Identity", names.fresh(name + "_quant"),
                             inputs=[x], outputs=[out])
        for node in nodes:
            node.inputs.clear()
            node.outputs.clear()
        graph.nodes.append(marker)
        self.quantizers[out.name] = quantizer
