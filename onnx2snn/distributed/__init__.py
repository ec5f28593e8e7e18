"""Evaluation and calibration statistics on a Ray cluster (optional extra ``onnx2snn[ray]``).

The reader's batches become a Ray dataset (:mod:`.source`), stateful actors open the sessions once
and map each batch to integer counts or mergeable statistics (:mod:`.evaluate`, :mod:`.statistics`),
the driver reduces them (:mod:`.run`), on a cluster started, joined or reused by :mod:`.cluster`.
Results equal the single-process run bit for bit. Ray is imported only when one of these runs.
"""
from .evaluate import evaluate
from .statistics import collect_statistics

__all__ = ["evaluate", "collect_statistics"]
