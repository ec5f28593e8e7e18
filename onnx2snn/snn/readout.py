"""ReadoutPass: average the non-spiking output layer over the T steps.

The last layer stays analog. Its output y [T·N, K...] is viewed as [T, N·K...]
and multiplied by the lower-triangular matrix L (L[t, s] = 1/(t+1) for s ≤ t),
which gives the running mean after every step, reshaped to [T, N, K...]. The
graph keeps the ANN's output name for the mean over all T steps (the last
running mean) and adds ``<name>_running_mean`` [T, N, K...], so one run gives
the prediction at every t ≤ T. A final Softmax/LogSoftmax is applied after the
averaging (to both outputs), not per step.

With ``reduce="sum"`` (BIF conversion, where the SNN's output is coded as a
sum over steps) L[t, s] = 1 for s ≤ t: ``<name>_running_mean`` then holds the
running sum, the SNN's estimate of the output after each step (the name is
kept so that evaluation finds it). With ``reduce="last"`` (the cumulative form
of a BIF SNN, whose per-step output already is that running sum) the per-step
output is passed through unchanged and the output is its last step.

Only standard ops available since opset 9 are used (Reshape, MatMul, Gather).

Invariant: output names of the ANN are kept with their shapes; one running
output is added per ANN output. An output no model input reaches (a constant, or
any output of a model without inputs) is refused with a ConversionError.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..core.builder import Builder
from ..core.graph import NameScope, PassResult
from ..errors import ConversionError

RUNNING_SUFFIX = "_running_mean"
# Largest running-mean matrix (T×T float32) the readout builds: 64 MiB, T ≤ 4096. Beyond, the running
# sum is a CumSum (O(T) memory; rounding of a sequential sum instead of the matrix product's).
MATRIX_BYTES = 64 * 1024**2


def running_mean_matrix(timesteps: int, reduce: str = "mean") -> np.ndarray:
    t = np.arange(timesteps)
    lower = np.tril(np.ones((timesteps, timesteps)))
    return (lower if reduce == "sum" else lower / (t[:, None] + 1)).astype(np.float32)


def detach_final_softmax(output: gs.Variable) -> tuple[gs.Variable, gs.Node | None]:
    """(the tensor to average, the detached Softmax/LogSoftmax or None): a graph output written by a
    Softmax that nothing else reads loses that node, which the readout applies again after the averaging;
    any other output is averaged itself."""
    final = output.inputs[0] if len(output.inputs) else None
    if final is None or final.op not in ("Softmax", "LogSoftmax") or output.outputs:
        return output, None
    y = final.inputs[0]
    final.outputs.clear()
    final.inputs.clear()
    return y, final


class ReadoutPass:
    """``reduce``: mean (rate-coded SNNs), sum (BIF SNNs) or last (cumulative form).

    ``spike_counts`` (a sum readout of a recurrent cell): an output that is a BIFNeuron's spikes
    with one constant θ is summed as counts, then scaled by θ once. The sum of the spikes ±θ in
    float32 rounds differently from the quantizer's γ·q (θ + θ + θ ≠ fl(3θ) in general): harmless
    for one network, but a recurrence feeds the hidden state back 784 times, and a last-bit
    difference can move a later pre-activation across a level boundary. Summing y_t/θ ∈ {−1, 0, 1}
    (exact small integers) and multiplying the count q by θ gives fl(q·θ), which is bit-identical
    to the quantizer's fl(fl(q/L)·λ) when L is a power of two (θ = λ/L exactly), and to a chain that
    multiplies q by γ. Same values in real arithmetic; other outputs are read out as they are.
    """

    def __init__(self, timesteps: int, reduce: str = "mean", spike_counts: bool = False):
        if reduce not in ("mean", "sum", "last"):
            raise ConversionError(f"readout reduce must be 'mean', 'sum' or 'last', got {reduce!r}")
        self.timesteps = int(timesteps)
        self.reduce = reduce
        self.spike_counts = spike_counts and reduce == "sum"

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        new_outputs, running_outputs = [], []
        for orig in list(graph.outputs):
            out, running = self._readout(graph, orig, names)
            new_outputs.append(out)
            running_outputs.append(running)
        graph.outputs = new_outputs + running_outputs
        graph.cleanup().toposort()
        return PassResult(graph, len(new_outputs))

    def _readout(self, graph: gs.Graph, orig: gs.Variable, names: NameScope) -> tuple[gs.Variable, gs.Variable]:
        """(the mean output replacing ``orig``, its running output [T, N, ...]), nodes added to ``graph``."""
        T = self.timesteps
        if (isinstance(orig, gs.Constant) or not graph.inputs
                or (not len(orig.inputs) and not any(orig is t for t in graph.inputs))):
            raise ConversionError(
                f"graph output '{orig.name}' does not depend on any model input (a constant"
                f"{', the model has no inputs' if not graph.inputs else ''}): there is nothing to read out "
                "over time; remove this output or give the model an input")
        if orig.shape is None or len(orig.shape) < 1 or not all(isinstance(d, int) for d in orig.shape[1:]):
            raise ConversionError(
                f"graph output '{orig.name}' has shape {orig.shape}; the readout needs every dimension "
                "but the batch to be static (export with fixed feature sizes)")
        if orig.dtype is not None and np.dtype(orig.dtype) != np.float32:
            raise ConversionError(f"graph output '{orig.name}' is {np.dtype(orig.dtype)}; only float32 "
                                  "outputs can be averaged over time")
        base, batch, dims = orig.name, orig.shape[0], [int(d) for d in orig.shape[1:]]
        b = Builder(names, base)
        y, softmax = detach_final_softmax(orig)
        if softmax is None:  # the per-step tensor gives its name up to the mean
            y.name = names.fresh(base + "_per_step")
            y.shape = None  # it now holds T·N rows
        out = gs.Variable(base, dtype=np.float32, shape=[batch] + dims)
        theta = self._spike_amplitude(y) if softmax is None else None
        if theta is not None:  # sum counts y/θ, scale by θ after the sum
            counts = b.scoped(y.name).var("_counts")
            graph.nodes.append(b.scoped(y.name).node("Div", "/count", [y, theta], [counts]))
            y = counts
        flat, run_flat = b.var("_steps_flat"), b.var("_running_flat")
        running = b.var("_running_raw") if softmax is not None else b.var(RUNNING_SUFFIX)
        mean = b.var("_mean_raw") if softmax is not None else out
        graph.nodes.append(b.node("Reshape", "/readout_reshape", [y, b.const("_steps_shape", [T, -1], np.int64)],
                                  [flat]))
        if self.reduce == "last":
            run_flat = flat
        elif T * T * 4 <= MATRIX_BYTES:
            graph.nodes.append(b.node("MatMul", "/readout_running_mean",
                                      [b.const("_running_matrix", running_mean_matrix(T, self.reduce)), flat],
                                      [run_flat]))
        else:  # a T×T matrix would not fit: the running sum in O(T) (CumSum, opset 11), then ÷ t
            if int(graph.opset) < 11:
                raise ConversionError(f"T = {T} steps: the readout's running mean needs a {T}×{T} matrix "
                                      f"({T * T * 4 / 2**30:.1f} GiB) below opset 11 (no CumSum); use T ≤ "
                                      f"{int((MATRIX_BYTES / 4) ** 0.5)} or re-export the model with opset ≥ 11")
            total = b.var("_running_sum") if self.reduce == "mean" else run_flat
            graph.nodes.append(b.node("CumSum", "/readout_running_mean",
                                      [flat, b.const("_time_axis", 0, np.int64)], [total]))
            if self.reduce == "mean":
                steps = np.arange(1, T + 1, dtype=np.float32).reshape(T, 1)
                graph.nodes.append(b.node("Div", "/readout_per_step", [total, b.const("_steps", steps)], [run_flat]))
        unflat = running if theta is None else b.var("_running_counts")
        graph.nodes.append(b.node("Reshape", "/readout_unflatten",
                                  [run_flat, b.const("_running_shape", [T, -1] + dims, np.int64)], [unflat]))
        if theta is not None:
            graph.nodes.append(b.node("Mul", "/count_times_threshold", [unflat, theta], [running]))
        graph.nodes.append(b.node("Gather", "/readout_last", [running, b.const("_last_step", T - 1, np.int64)],
                                  [mean], {"axis": 0}))
        if softmax is not None:
            rank = len(dims) + 1
            axis = int(softmax.attrs.get("axis", -1 if graph.opset >= 13 else 1))
            axis = axis + rank if axis < 0 else axis
            if axis == 0:
                raise ConversionError(f"node '{softmax.name}' ({softmax.op}) normalises over the batch axis")
            running_final = b.var(RUNNING_SUFFIX)
            graph.nodes += [
                gs.Node(softmax.op, softmax.name, attrs={"axis": axis}, inputs=[mean], outputs=[out]),
                gs.Node(softmax.op, names.fresh(softmax.name + RUNNING_SUFFIX), attrs={"axis": axis + 1},
                        inputs=[running], outputs=[running_final]),
            ]
            running = running_final
        running.shape = [T, batch] + dims
        return out, running

    def _spike_amplitude(self, y) -> gs.Constant | None:
        """θ of a BIFNeuron writing ``y`` when its spikes can be read as counts (one constant θ), else None."""
        if not self.spike_counts or not y.inputs:
            return None
        neuron = y.inputs[0]
        while neuron.op == "Identity" and neuron.inputs and neuron.inputs[0].inputs:  # a copy, e.g. a scan output
            neuron = neuron.inputs[0].inputs[0]
        theta = neuron.inputs[1] if neuron.op == "BIFNeuron" and len(neuron.inputs) > 1 else None
        if not isinstance(theta, gs.Constant) or np.asarray(theta.values).size != 1:
            return None  # a per-channel θ would need the channel axis of a rank > 2 tensor
        return theta
