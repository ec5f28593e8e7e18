"""Running a streaming-form SNN: one onnxruntime run per time step, state carried by the caller.

A model converted with ``form=streaming`` (:mod:`onnx2snn.neurons.integrate_fire.streaming_form`)
lists its state in its metadata (:mod:`onnx2snn.metadata`: the state inputs, the
matching outputs, i.e. the state after the step, and the initial values of the
states that do not start at 0, i.e. membrane potentials with v_init).

The model has no custom op: a plain ``onnxruntime.InferenceSession`` runs it.
:class:`StreamingSession` feeds the state back step after step.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from .. import metadata
from ..errors import ConversionError


class StreamingSession:
    """An onnxruntime session of a streaming SNN that steps through time.

    >>> s = StreamingSession("snn_streaming.onnx")
    >>> per_step = s.run({"input": x}, timesteps=32)   # {output name: [T, N, ...]}
    """

    def __init__(self, model, sess_options: ort.SessionOptions | None = None, providers=None):
        if isinstance(model, onnx.ModelProto):
            proto, source = model, model.SerializeToString()
        elif isinstance(model, bytes):
            proto, source = onnx.load_from_string(model), model
        else:  # a path: read the metadata only, let onnxruntime load the weights
            proto, source = onnx.load(str(model), load_external_data=False), str(model)
        form = metadata.form(proto) if metadata.is_snn(proto) else None
        if form != "streaming":
            raise ConversionError("the model is not a streaming-form SNN (metadata onnx2snn.form is "
                                  f"{form!r}); convert it with --form streaming")
        meta = metadata.read(proto)
        self.session = ort.InferenceSession(source, sess_options, providers=providers or ["CPUExecutionProvider"])
        self.state_inputs = list(meta.state_inputs)
        self.state_outputs = list(meta.state_outputs)
        self.timesteps = meta.timesteps
        self._meta = meta
        self._shapes = {i.name: i.shape for i in self.session.get_inputs()}
        states = set(self.state_outputs)
        self.outputs = [o.name for o in self.session.get_outputs() if o.name not in states]

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        """The state before the first step, for ``batch`` samples."""
        return metadata.initial_state(self._meta, self._shapes, batch)

    def step(self, feeds: dict[str, np.ndarray], state: dict[str, np.ndarray]):
        """One time step: (outputs by name, the next state)."""
        values = self.session.run(self.outputs + self.state_outputs, {**feeds, **state})
        outs = dict(zip(self.outputs, values[:len(self.outputs)]))
        return outs, dict(zip(self.state_inputs, values[len(self.outputs):]))

    def run(self, feeds: dict[str, np.ndarray], timesteps: int | None = None) -> dict[str, np.ndarray]:
        """``timesteps`` steps (default: the T it was converted for) from the initial state;
        every output stacked over the steps, ``[T, N, ...]``."""
        batch = next(iter(feeds.values())).shape[0]
        state = self.initial_state(batch)
        steps = []
        for _ in range(timesteps or self.timesteps):
            outs, state = self.step(feeds, state)
            steps.append(outs)
        return {name: np.stack([s[name] for s in steps]) for name in self.outputs}
