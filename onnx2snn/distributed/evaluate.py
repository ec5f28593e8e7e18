"""``onnx2snn evaluate --ray``: the evaluation of :func:`onnx2snn.evaluate` on a Ray cluster.

Each actor opens the ANN and SNN sessions once (:class:`onnx2snn.runtime.evaluate.Scorer`, the
class the local evaluation runs) and returns per batch the integer counts: ANN correct, SNN
correct after each step t = 1..T, samples. The driver sums them and turns the sums into
accuracies with the local evaluation's formula.

Invariant: on the same batches (the local run's batch size and boundaries, chosen the same way
under ``max_memory``), the result equals the single-process :func:`onnx2snn.evaluate` bit for bit,
whatever the number of actors, the order they finish in, or a worker killed on the way (integer
sums commute; :mod:`.run` sees every batch exactly once).
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import onnx

from ..data import ArrayDataReader, NpzShardReader, load_labels, load_npz, match_inputs, model_inputs
from ..errors import ConfigError, DataError
from ..runtime.chunking import CHUNK_BYTES_PER_THREAD, chunk_samples
from ..runtime.evaluate import (EvaluationResult, Scorer, check_label_range, check_labels, check_pair,
                                classes_of, evaluation_batch, evaluation_result, snn_timesteps)
from ..runtime.memory import DEFAULT_MAX_MEMORY
from ..runtime.providers import PROVIDERS
from .run import run_batches
from .source import decode


class EvaluationActor:
    """One Ray actor: the two sessions, and the counts of each batch it is given."""

    def __init__(self, ann: bytes, snn: bytes, labels_key: str, threads: int, provider: str):
        from ..runtime.providers import session_providers
        ann_model = onnx.load_from_string(ann)
        self.inputs = model_inputs(ann_model)
        self.labels_key = labels_key
        self.scorer = Scorer(ann_model, onnx.load_from_string(snn), threads=threads,
                             providers=session_providers(provider))

    def __call__(self, rows: dict) -> dict:
        out = {"index": [], "samples": [], "ann_correct": [], "snn_correct": []}
        for index, blob in zip(rows["index"], rows["batch"]):
            arrays = decode(blob)
            what = f"evaluation batch {int(index)}"
            if self.labels_key not in arrays:
                raise DataError(f"{what} has no labels array '{self.labels_key}' (it has {sorted(arrays)}); "
                                "every batch of the reader needs its labels")
            feed = match_inputs(arrays, self.inputs, label_key=self.labels_key, what=what)
            labels = load_labels(arrays, self.labels_key, next(iter(feed.values())).shape[0], what)
            ann_correct, snn_correct = self.scorer.score(feed, labels)
            out["index"].append(int(index))
            out["samples"].append(labels.shape[0])
            out["ann_correct"].append(ann_correct)
            out["snn_correct"].append(snn_correct)
        return {k: np.asarray(v, np.int64) for k, v in out.items()}


def evaluation_reader(ann: onnx.ModelProto, snn: onnx.ModelProto, data, labels=None, *,
                      batch_size: int | None = None, max_memory: int | None = DEFAULT_MAX_MEMORY,
                      labels_key: str = "labels") -> tuple[object, int, int]:
    """(reader of labelled batches, batch, estimated peak) for ``data``: arrays (with ``labels``, or
    the labels among them under ``labels_key``), an .npz file, a directory of .npz shards, or a data
    reader whose batches hold the labels under ``labels_key`` (its batches are used as they come:
    batch and estimate 0). Batch and estimate are the local evaluation's (:func:`evaluation_batch`)."""
    if hasattr(data, "get_next"):
        return data, 0, 0
    inputs = model_inputs(ann)
    if isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
        count = NpzShardReader(data, 1, inputs, labels_key=labels_key).num_samples
        batch, estimate = evaluation_batch(ann, snn, count, batch_size, max_memory)
        return NpzShardReader(data, batch, inputs, labels_key=labels_key), batch, estimate
    arrays = dict(data) if isinstance(data, Mapping) else load_npz(data, "evaluation data")
    feeds = match_inputs(arrays, inputs, label_key=labels_key, what="evaluation data")
    count = next(iter(feeds.values())).shape[0]
    labels = check_labels(labels) if labels is not None else load_labels(arrays, labels_key, count,
                                                                          "evaluation data")
    if labels.shape[0] != count:
        raise DataError(f"{labels.shape[0]} labels for {count} samples")
    output, _ = check_pair(ann, snn)
    check_label_range(labels, classes_of(ann, output), output)
    batch, estimate = evaluation_batch(ann, snn, count, batch_size, max_memory)
    return ArrayDataReader({**feeds, labels_key: labels}, batch), batch, estimate


def evaluate(ann: onnx.ModelProto, snn: onnx.ModelProto, data, labels=None, *, address: str | None = "local",
             actors: int | None = None, actor_cpus: int = 1, provider: str = "auto",
             batch_size: int | None = None, max_memory: int | None = DEFAULT_MAX_MEMORY,
             labels_key: str = "labels", progress: bool = False) -> EvaluationResult:
    """Top-1 of the ANN and of the SNN after each step, computed by ``actors`` Ray actors of
    ``actor_cpus`` CPUs each (None: as many as the cluster's CPUs allow; one per GPU on CUDA).

    ``data``: see :func:`evaluation_reader`; ``address``: see :mod:`.cluster`; ``provider``: cpu,
    cuda or auto, resolved on each actor (auto takes a GPU per actor where the cluster has GPUs).
    Equal to :func:`onnx2snn.evaluate` on the same data, bit for bit (the module's invariant).
    """
    if provider not in PROVIDERS:
        raise ConfigError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    output, _ = check_pair(ann, snn)
    reader, batch, estimate = evaluation_reader(ann, snn, data, labels, batch_size=batch_size,
                                                max_memory=max_memory, labels_key=labels_key)
    kwargs = {"ann": ann.SerializeToString(), "snn": snn.SerializeToString(), "labels_key": labels_key}
    T = snn_timesteps(snn)
    ann_correct, snn_correct, samples = 0, np.zeros(T, np.int64), 0
    for row in run_batches(reader, EvaluationActor, kwargs, address=address, actors=actors,
                           actor_cpus=actor_cpus, provider=provider, progress=progress, what="evaluating"):
        ann_correct += int(row["ann_correct"])
        snn_correct += np.asarray(row["snn_correct"], np.int64)
        samples += int(row["samples"])
    if samples == 0:
        raise DataError("the evaluation data gave no sample")
    chunk = chunk_samples(snn, CHUNK_BYTES_PER_THREAD * actor_cpus)  # what each actor's CPU session runs
    return evaluation_result(ann, output, T, ann_correct, snn_correct, samples, batch=batch, estimate=estimate,
                             chunk=chunk)
