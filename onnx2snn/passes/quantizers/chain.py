"""Matcher of the float quantizer chain (QCFS and clip-floor layers).

A chain of single-consumer nodes around one Floor or Round — Mul/Div by a
positive scalar constant, Add/Sub of a scalar constant, Clip with constant
bounds, Relu — e.g. ``Div(λ) → Clip(0,1) → Mul(L) → Add(½) → Floor → Div(L) →
Mul(λ)`` or ``Mul(L/λ) → Round → Clip(0,L) → Mul(λ/L)``. The chain is composed
symbolically (in float64): before the rounding every op keeps the form
u = clip(a·x + b, lo, hi) (a > 0), and floor(clip(u, lo, hi)) =
clip(floor(u), ⌊lo⌋, ⌊hi⌋) since floor is monotone; Round(u) is read as
floor(u + ½). After it, z = clip(g·q + d, plo, phi) on the integer q. The chain
is the quantizer (1) of :mod:`.model` when d = 0 and the integer range it allows
is a finite [m, L] with m ≤ 0 < L (bounds off the grid g·ℤ are refused).

Invariant: :func:`match_chain` returns the longest chain after the rounding that
forms (1), with as many ops before it as are chain ops, or raises
:class:`~.match.NoMatch` naming why the longest candidate does not; it does not
edit the graph.
"""
from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from ...core.graph import constant_value, is_empty
from .match import NoMatch, QuantizerMatch, single_consumer
from .model import Quantizer

CHAIN_OPS = ("Mul", "Div", "Add", "Sub", "Clip", "Relu")
ROUNDING_OPS = ("Floor", "Round")
_TOL = 1e-6


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
                    raise NoMatch(f"node '{node.name}' (Div) divides by 0")
                c = 1.0 / c
            if not c > 0:
                raise NoMatch(f"node '{node.name}' ({node.op}) scales by {c:g} <= 0")
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
        raise NoMatch(f"the output is offset by {d:g} (it must be a multiple of its levels, starting at 0)")
    lo_grid, hi_grid = _snap(after.lo / g), _snap(after.hi / g)
    lo_level = max(q_lo, math.ceil(lo_grid) if math.isfinite(lo_grid) else lo_grid)
    hi_level = min(q_hi, math.floor(hi_grid) if math.isfinite(hi_grid) else hi_grid)
    if q_lo < lo_level and lo_grid != lo_level:
        raise NoMatch(f"its lower clip {after.lo:g} is not on the grid of levels (step {g:g})")
    if q_hi > hi_level and hi_grid != hi_level:
        raise NoMatch(f"its upper clip {after.hi:g} is not on the grid of levels (step {g:g})")
    if not math.isfinite(lo_level) or lo_level > 0:
        raise NoMatch(f"its lowest level is {lo_level} (times {g:g}): the levels must include 0 and be "
                      "bounded below; clip the activation, e.g. Clip(0, L)")
    if not math.isfinite(hi_level) or hi_level < 1:
        raise NoMatch("it has no finite upper clip (L levels): clip the activation, e.g. Clip(0, L)")
    return Quantizer(int(hi_level), np.asarray(before.a), float(before.b), np.asarray(g), "chain",
                     "round" if rounding.op == "Round" else "floor", int(lo_level))


def _ops_before(graph: gs.Graph, rounding: gs.Node) -> tuple[list[gs.Node], gs.Tensor]:
    """(the chain ops before the rounding, in order; the chain's input)."""
    pre, x = [], rounding.inputs[0]
    while len(x.inputs) == 1 and single_consumer(x, graph) is not None:
        link = _chain_link(x.inputs[0])
        if link is None or isinstance(link, gs.Constant):
            break
        pre.insert(0, x.inputs[0])
        x = link
    return pre, x


def _candidates_after(graph: gs.Graph, rounding: gs.Node) -> list[tuple[list[gs.Node], gs.Variable]]:
    """(ops after the rounding, the output they write) for every length of the chain after it, shortest first."""
    post, y = [], rounding.outputs[0]
    candidates = [(list(post), y)]
    while (consumer := single_consumer(y, graph)) is not None and _chain_link(consumer) is y:
        post.append(consumer)
        y = consumer.outputs[0]
        candidates.append((list(post), y))
    return candidates


def match_chain(graph: gs.Graph, rounding: gs.Node) -> QuantizerMatch:
    """The quantizer chain around the Floor/Round ``rounding``."""
    pre, x = _ops_before(graph, rounding)
    error = None
    for ops, out in reversed(_candidates_after(graph, rounding)):  # the longest chain that forms (1)
        try:
            quantizer = _compose_chain(pre, rounding, ops)
        except NoMatch as exc:
            error = error or exc
            continue
        return QuantizerMatch(pre + [rounding] + ops, x, out, rounding.outputs[0], quantizer)
    raise error
