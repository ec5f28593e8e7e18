"""Local threshold balancing (LTB; Bu, Li, Yu 2024, "Inference-scale complexity
in ANN-SNN conversion").

Each neuron layer is replaced by a clip to its current thresholds, and the
thresholds (per channel) descend the clipping error L(θ) = E[((z − θ)⁺)²] of
their own pre-activation z, computed with the upstream layers already clipped:

    θ ← θ + η · 2·E_{n,pos}[(z − θ)·1(z > θ)]

starting from θ = 0, one step per calibration batch (this implementation uses
the thresholds of the previous batch for the clip, so that every layer is
updated in one onnxruntime run). Most pre-activations are below θ, so the
steps are small and θ approaches the top of the range slowly: passes over the
calibration data repeat until no layer's mean threshold grows by more than
``tol`` (1%) in a pass, at most ``max_passes`` (50). The method pairs the
thresholds with an initial membrane potential of θ/2.
"""
from __future__ import annotations

import numpy as np
import onnx

from .._progress import Progress
from ..core.builder import Builder
from ..core.graph import NameScope, export_graph, import_model
from ..errors import CalibrationError
from ..passes.activations import activation_nodes
from .collect import calibration_session


def clipped_ann(ann: onnx.ModelProto, shapes: dict[str, tuple]) -> tuple[onnx.ModelProto, list[str], list[str]]:
    """The ANN with each ReLU-like node a(z) replaced by min(relu(z), θ), θ a graph
    input of shape [C, 1, ...]; also outputs every pre-activation z.
    Returns the model, the θ input names and the z names (in layer order)."""
    graph = import_model(ann)
    names = NameScope(graph)
    b = Builder(names)
    theta_names, z_names = [], []
    for node in activation_nodes(graph):
        out = node.outputs[0]
        z = node.inputs[0]
        rank = len(shapes[out.name]) + 1
        theta = b.var(out.name + "_ltb_theta", np.float32, shape=[shapes[out.name][0]] + [1] * (rank - 2))
        relu_out = b.var(out.name + "_ltb_relu", np.float32)
        relu = b.node("Relu", node.name + "_ltb", inputs=[z], outputs=[relu_out])
        clip = b.node("Min", node.name + "_ltb_min", inputs=[relu_out, theta], outputs=[out])
        node.outputs.clear()
        node.inputs.clear()
        graph.nodes += [relu, clip]
        graph.inputs.append(theta)
        theta_names.append(theta.name)
        z_names.append(z.name)
        if not any(t is z for t in graph.outputs):
            z.dtype = np.float32
            graph.outputs.append(z)
    return export_graph(graph, like=ann), theta_names, z_names


def ltb_thresholds(ann: onnx.ModelProto, act_names: list[str], shapes: dict[str, tuple], reader, *,
                   max_passes: int = 50, tol: float = 0.01, step: float = 1.0, channel_wise: bool = True,
                   progress: bool = False) -> dict[str, np.ndarray]:
    model, theta_names, z_names = clipped_ann(ann, shapes)
    session = calibration_session(model)
    thetas = [np.zeros(shapes[n][0], np.float64) for n in act_names]
    with Progress(None, "threshold balancing (ltb)", enabled=progress) as bar:
        for _ in range(max_passes):
            before = np.array([th.mean() for th in thetas])
            if hasattr(reader, "rewind"):
                reader.rewind()
            batches = 0
            while (feed := reader.get_next()) is not None:
                feed = dict(feed)
                for name, act, th in zip(theta_names, act_names, thetas):
                    feed[name] = th.astype(np.float32).reshape([-1] + [1] * (len(shapes[act]) - 1))
                zs = session.run(z_names, feed)
                for i, z in enumerate(zs):
                    zc = np.moveaxis(z, 1, 0).reshape(z.shape[1], -1).astype(np.float64)
                    if not channel_wise:
                        zc = zc.reshape(1, -1)
                    th = thetas[i] if channel_wise else thetas[i][:1]
                    grad = (2.0 * np.where(zc > th[:, None], zc - th[:, None], 0.0)).mean(axis=1)
                    new = th + step * grad
                    thetas[i] = new if channel_wise else np.full_like(thetas[i], new[0])
                batches += 1
                bar.update()
            if batches == 0:
                raise CalibrationError("the calibration data reader gave no batch")
            after = np.array([th.mean() for th in thetas])
            if not hasattr(reader, "rewind") or np.all(after - before <= tol * np.maximum(after, 1e-12)):
                break
    from .thresholds import finalize
    return {n: finalize(th if channel_wise else th[:1], channel_wise) for n, th in zip(act_names, thetas)}
