"""A numpy simulator of NIR graphs in the discrete-time reading of :mod:`.semantics` (float32).

``simulate(graph, x, T)`` runs T steps on a batch: each step feeds ``x`` to the ``Input`` node,
runs the nodes in the order of the graph without its back edges, and reads every back edge from
the previous step. It records each ``Output`` at every step and the spikes of every ``Threshold``
and ``IF`` node, summed over the steps.

Supported nodes: Input, Output, Affine, Linear, Scale, Conv1d, Conv2d (numeric padding),
AvgPool2d, SumPool2d, Flatten, I, IF, Threshold. Anything else is a ValueError that
names the node.

Invariant: the graph is not modified; every computation is float32; within a step the order of
operations is the one :mod:`.semantics` fixes (an integrator adds its back edges first, inputs
are summed in edge order), so that an exported onnx2snn SNN gives onnx2snn's own spikes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class Simulation:
    """``outputs``: Output node → values at every step ``[T, N, ...]``; ``spikes``: spiking node →
    spikes per neuron summed over the T steps ``[N, ...]``."""

    outputs: dict
    spikes: dict
    timesteps: int

    def mean(self, name: str | None = None) -> np.ndarray:
        """The readout: an output's mean over the T steps (the only output when ``name`` is None)."""
        y = self.outputs[name if name is not None else next(iter(self.outputs))]
        return (y.sum(axis=0, dtype=F32) / F32(self.timesteps)).astype(F32)


@dataclass(frozen=True)
class Schedule:
    order: tuple[str, ...]
    forward: dict  # node → its sources over forward edges, in edge order
    back: dict  # node → its sources over back edges (read from the previous step)


def schedule(graph) -> Schedule:
    """Order the nodes by a depth-first search from the inputs (edges in list order); an edge to a
    node still on the search stack is a back edge."""
    succ = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        succ[src].append(dst)
    state, post, back_edges = {}, [], set()
    for root in [n for n, node in graph.nodes.items() if type(node).__name__ == "Input"]:
        stack = [(root, iter(succ[root]))]
        state[root] = "open"
        while stack:
            name, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[name] = "done"
                post.append(name)
            elif state.get(nxt) == "open":
                back_edges.add((name, nxt))
            elif nxt not in state:
                state[nxt] = "open"
                stack.append((nxt, iter(succ[nxt])))
    unreached = [n for n in graph.nodes if n not in state]
    if unreached:
        raise ValueError(f"NIR nodes {unreached} are not reached from an Input node")
    forward = {n: [] for n in graph.nodes}
    back = {n: [] for n in graph.nodes}
    for src, dst in graph.edges:
        (back if (src, dst) in back_edges else forward)[dst].append(src)
    return Schedule(tuple(reversed(post)), forward, back)


def simulate(graph, x, timesteps: int) -> Simulation:
    """Run ``graph`` for ``timesteps`` steps on ``x`` ([N, ...] for the single Input node, or a dict
    {Input node: array}); see the module docstring."""
    inputs = _inputs(graph, x)
    sched = schedule(graph)
    batch = next(iter(inputs.values())).shape[0]
    states: dict = {}
    previous: dict = {}
    outputs = {n: [] for n, node in graph.nodes.items() if type(node).__name__ == "Output"}
    spikes: dict = {}
    for _ in range(int(timesteps)):
        values: dict = {}
        for name in sched.order:
            node = graph.nodes[name]
            kind = type(node).__name__
            if kind == "Input":
                values[name] = inputs[name]
                continue
            fwd = _sum([values[s] for s in sched.forward[name]])
            back = _sum([previous.get(s) for s in sched.back[name]]) if sched.back[name] else None
            values[name] = _step(name, node, kind, fwd, back, states, batch)
            if kind in ("Threshold", "IF"):
                spikes[name] = values[name] if name not in spikes else spikes[name] + values[name]
            elif kind == "Output":
                outputs[name].append(values[name])
        previous = values
    return Simulation({n: np.stack(v) for n, v in outputs.items()}, spikes, int(timesteps))


def _inputs(graph, x) -> dict:
    names = [n for n, node in graph.nodes.items() if type(node).__name__ == "Input"]
    if not isinstance(x, dict):
        if len(names) != 1:
            raise ValueError(f"the graph has inputs {names}: give a dict")
        x = {names[0]: x}
    return {k: np.asarray(v, F32) for k, v in x.items()}


def _sum(values: list):
    """Sum in list order; None entries (a back edge at the first step) count as 0."""
    total = None
    for v in values:
        if v is None:
            continue
        total = v if total is None else total + v
    return total


def _step(name, node, kind, fwd, back, states, batch):
    if fwd is None and kind not in ("I", "IF"):
        raise ValueError(f"NIR node '{name}' ({kind}) has no input")
    if kind == "Output":
        return fwd
    if kind in STATELESS:
        return STATELESS[kind](node, fwd)
    if kind in ("I", "IF"):
        return _neuron(name, node, kind, fwd, back, states, batch)
    raise ValueError(f"NIR node '{name}' ({kind}): the reference simulator has no semantics for it")


def _integrate(v, r, drive):
    return v if drive is None else v + r * drive


def _neuron(name, node, kind, fwd, back, states, batch):
    r = np.asarray(node.r, F32)
    v = states.get(name)
    if v is None:
        v = np.zeros((batch,) + r.shape, F32)
    v = _integrate(_integrate(v, r, back), r, fwd)  # back edges first (semantics: float order)
    if kind == "I":
        states[name] = v
        return v
    z = v > np.asarray(node.v_threshold, F32)
    states[name] = np.where(z, np.asarray(node.v_reset, F32), v).astype(F32)
    return z.astype(F32)


# -- stateless nodes (x has the batch axis first) -----------------------------------------------

def _affine(node, x):
    return (x @ np.asarray(node.weight, F32).T + np.asarray(node.bias, F32)).astype(F32)


def _linear(node, x):
    return (x @ np.asarray(node.weight, F32).T).astype(F32)


def _scale(node, x):
    return (x * np.asarray(node.scale, F32)).astype(F32)


def _threshold(node, x):
    return (x > np.asarray(node.threshold, F32)).astype(F32)


def _flatten(node, x):
    rank = x.ndim - 1
    start = int(node.start_dim) % rank + 1
    end = int(node.end_dim) % rank + 1
    return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])


def _ints(value, rank: int) -> tuple[int, ...]:
    if isinstance(value, str):
        raise ValueError(f"padding '{value}': the reference simulator takes numeric padding")
    v = np.asarray(value).reshape(-1)
    return tuple(int(a) for a in (np.repeat(v, rank) if v.size == 1 else v))


def _windows(x, kernel, stride, padding, dilation):
    """[N, C, *out, *kernel] views of the zero-padded x (spatial rank 1 or 2)."""
    rank = len(kernel)
    pad = [(0, 0), (0, 0)] + [(p, p) for p in padding]
    xp = np.pad(x, pad)
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + rank)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride) \
        + tuple(slice(None, None, d) for d in dilation)
    return win[index]


def _conv(node, x):
    w = np.asarray(node.weight, F32)
    rank = w.ndim - 2
    kernel = w.shape[2:]
    win = _windows(x, kernel, _ints(node.stride, rank), _ints(node.padding, rank), _ints(node.dilation, rank))
    groups = int(node.groups)
    n, c = x.shape[:2]
    out_sp = win.shape[2:2 + rank]
    cg, og = c // groups, w.shape[0] // groups
    outs = []
    for g in range(groups):
        cols = win[:, g * cg:(g + 1) * cg]  # [N, cg, *out, *kernel]
        perm = (0,) + tuple(range(2, 2 + rank)) + (1,) + tuple(range(2 + rank, 2 + 2 * rank))
        cols = cols.transpose(perm).reshape(n * int(np.prod(out_sp)), -1)
        wg = w[g * og:(g + 1) * og].reshape(og, -1)
        outs.append((cols @ wg.T).reshape((n,) + out_sp + (og,)))
    y = np.concatenate(outs, axis=-1)
    y = np.moveaxis(y, -1, 1)
    return (y + np.asarray(node.bias, F32).reshape((1, -1) + (1,) * rank)).astype(F32)


def _pool_sum(node, x):
    kernel = _ints(node.kernel_size, 2)
    win = _windows(x, kernel, _ints(node.stride, 2), _ints(node.padding, 2), (1, 1))
    total = None
    for i in range(kernel[0]):  # row-major, one offset at a time
        for j in range(kernel[1]):
            total = win[..., i, j] if total is None else total + win[..., i, j]
    return np.ascontiguousarray(total, F32)


def _avgpool(node, x):
    kernel = _ints(node.kernel_size, 2)
    return (_pool_sum(node, x) / F32(kernel[0] * kernel[1])).astype(F32)


STATELESS = {"Affine": _affine, "Linear": _linear, "Scale": _scale, "Threshold": _threshold,
             "Flatten": _flatten, "Conv1d": _conv, "Conv2d": _conv, "AvgPool2d": _avgpool,
             "SumPool2d": _pool_sum}

__all__ = ["Simulation", "Schedule", "schedule", "simulate"]
