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
output is added per ANN output.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from ..errors import ConversionError
from ..core.graph import NameScope, PassResult

RUNNING_SUFFIX = "_running_mean"


def running_mean_matrix(timesteps: int, reduce: str = "mean") -> np.ndarray:
    t = np.arange(timesteps)
    lower = np.tril(np.ones((timesteps, timesteps)))
    return (lower if reduce == "sum" else lower / (t[:, None] + 1)).astype(np.float32)


class ReadoutPass:
    def __init__(self, timesteps: int, reduce: str = "mean"):
        if reduce not in ("mean", "sum", "last"):
            raise ConversionError(f"readout reduce must be 'mean', 'sum' or 'last', got {reduce!r}")
        self.timesteps = int(timesteps)
        self.reduce = reduce

    def __call__(self, graph: gs.Graph) -> PassResult:
        names = NameScope(graph)
        T = self.timesteps
        new_outputs, running_outputs = [], []
        for orig in list(graph.outputs):
            if orig.shape is None or len(orig.shape) < 1 or not all(isinstance(d, int) for d in orig.shape[1:]):
                raise ConversionError(
                    f"graph output '{orig.name}' has shape {orig.shape}; the readout needs every dimension "
                    "but the batch to be static (export with fixed feature sizes)")
            if orig.dtype is not None and np.dtype(orig.dtype) != np.float32:
                raise ConversionError(f"graph output '{orig.name}' is {np.dtype(orig.dtype)}; only float32 "
                                      "outputs can be averaged over time")
            base, batch, dims = orig.name, orig.shape[0], [int(d) for d in orig.shape[1:]]
            final = orig.inputs[0] if len(orig.inputs) else None
            softmax = final if final is not None and final.op in ("Softmax", "LogSoftmax") \
                and not orig.outputs else None
            if softmax is not None:  # detach it; it is applied again after the averaging
                y = softmax.inputs[0]
                softmax.outputs.clear()
                softmax.inputs.clear()
            else:  # the per-step tensor gives its name up to the mean
                y = orig
                y.name = names.fresh(base + "_per_step")
                y.shape = None  # it now holds T·N rows
            out = gs.Variable(base, dtype=np.float32, shape=[batch] + dims)

            def var(suffix):
                return gs.Variable(names.fresh(base + suffix), dtype=np.float32)

            def const(suffix, value):
                return gs.Constant(names.fresh(base + suffix), value)

            flat, run_flat = var("_steps_flat"), var("_running_flat")
            running = var("_running_raw") if softmax is not None else var(RUNNING_SUFFIX)
            mean = var("_mean_raw") if softmax is not None else out
            graph.nodes.append(gs.Node("Reshape", names.fresh(base + "/readout_reshape"),
                                       inputs=[y, const("_steps_shape", np.array([T, -1], np.int64))],
                                       outputs=[flat]))
            if self.reduce == "last":
                run_flat = flat
            else:
                graph.nodes.append(gs.Node("MatMul", names.fresh(base + "/readout_running_mean"),
                                           inputs=[const("_running_matrix", running_mean_matrix(T, self.reduce)),
                                                   flat], outputs=[run_flat]))
            graph.nodes += [
                gs.Node("Reshape", names.fresh(base + "/readout_unflatten"),
                        inputs=[run_flat, const("_running_shape", np.array([T, -1] + dims, np.int64))],
                        outputs=[running]),
                gs.Node("Gather", names.fresh(base + "/readout_last"), attrs={"axis": 0},
                        inputs=[running, const("_last_step", np.array(T - 1, np.int64))], outputs=[mean]),
            ]
            if softmax is not None:
                rank = len(dims) + 1
                axis = int(softmax.attrs.get("axis", -1 if graph.opset >= 13 else 1))
                axis = axis + rank if axis < 0 else axis
                if axis == 0:
                    raise ConversionError(f"node '{softmax.name}' ({softmax.op}) normalises over the batch axis")
                running_final = var(RUNNING_SUFFIX)
                graph.nodes += [
                    gs.Node(softmax.op, softmax.name, attrs={"axis": axis}, inputs=[mean], outputs=[out]),
                    gs.Node(softmax.op, names.fresh(softmax.name + RUNNING_SUFFIX), attrs={"axis": axis + 1},
                            inputs=[running], outputs=[running_final]),
                ]
                running = running_final
            running.shape = [T, batch] + dims
            new_outputs.append(out)
            running_outputs.append(running)
        graph.outputs = new_outputs + running_outputs
        graph.cleanup().toposort()
        return PassResult(graph, len(new_outputs))
