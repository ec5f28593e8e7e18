"""``onnx2snn convert --ray``: the statistics phase of calibration (running max and histograms of the
activations) on a Ray cluster.

Each actor opens the augmented ANN once (:func:`onnx2snn.calibration.collect.calibration_session`,
the local phase's session) and returns, per batch, the :class:`ActivationStats` of that batch alone;
the driver merges them (:meth:`ActivationStats.merge`) as they come.

Invariant: the statistics equal :func:`onnx2snn.calibration.collect_statistics` over the same reader
bit for bit (max, bin widths, counts, samples), so the thresholds computed from them are the same:
per-batch statistics merge exactly in any order (:mod:`onnx2snn.calibration.statistics`), and the
batches are the reader's own (:mod:`.source`).
"""
from __future__ import annotations

import pickle

import numpy as np
import onnx

from ..calibration.collect import augment_outputs, calibration_session
from ..calibration.statistics import ActivationStats
from ..errors import CalibrationError
from .run import run_batches
from .source import decode


class StatisticsActor:
    """One Ray actor: the augmented ANN's session, and the statistics of each batch it is given."""

    def __init__(self, model: bytes, names: list[str], channel_wise: bool, bins: int, threads: int, provider: str):
        self.session = calibration_session(augment_outputs(onnx.load_from_string(model), names), threads=threads)
        self.names, self.channel_wise, self.bins = names, channel_wise, bins

    def __call__(self, rows: dict) -> dict:
        out = {"index": [], "stats": []}
        for index, blob in zip(rows["index"], rows["batch"]):
            values = self.session.run(self.names, decode(blob))
            stats = {}
            for name, value in zip(self.names, values):
                stats[name] = ActivationStats(self.channel_wise, self.bins)
                stats[name].update(value)
            out["index"].append(int(index))
            out["stats"].append(pickle.dumps(stats, protocol=pickle.HIGHEST_PROTOCOL))
        return {"index": np.asarray(out["index"], np.int64), "stats": np.asarray(out["stats"], dtype=object)}


def collect_statistics(model: onnx.ModelProto, names: list[str], reader, *, channel_wise: bool, bins: int = 2048,
                       progress: bool = True, address: str | None = "local", actors: int | None = None,
                       actor_cpus: int = 1) -> dict[str, ActivationStats]:
    """:func:`onnx2snn.calibration.collect_statistics` on a Ray cluster (see the module docstring): the
    statistics of the tensors ``names`` over ``reader`` (picklable: it is read on a worker). The
    sessions run on the CPU, as the local phase does, so thresholds do not depend on the machine."""
    stats = {n: ActivationStats(channel_wise, bins) for n in names}
    kwargs = {"model": model.SerializeToString(), "names": list(names), "channel_wise": channel_wise, "bins": bins}
    batches = 0
    for row in run_batches(reader, StatisticsActor, kwargs, address=address, actors=actors, actor_cpus=actor_cpus,
                           provider="cpu", progress=progress, what="calibrating"):
        for name, part in pickle.loads(row["stats"]).items():
            stats[name].merge(part)
        batches += 1
    if batches == 0:
        raise CalibrationError("the calibration data reader gave no batch; give at least one sample")
    return stats
