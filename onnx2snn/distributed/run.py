"""One pass of a data reader through a pool of Ray actors, results streamed back to the driver.

As in Ray Data's batch-inference guide: the reader's batches as a dataset
(:mod:`.source`), ``map_batches`` with a stateful actor class (one per ``actor_cpus`` CPUs, or
per GPU; each opens its sessions once, with ``actor_cpus`` intra-op threads), the actors'
per-batch results iterated on the driver as they come.

Invariant: :func:`run_batches` yields each batch's result exactly once (whatever the order the
actors finish in), or raises: a batch lost (an actor killed beyond ``MAX_RETRIES`` restarts and
retries) or missing at the end is a :class:`DistributedError`, and an onnx2snn error raised on a
worker (a bad batch) comes back as itself, so a partial result is never taken for a complete one.
A killed actor is restarted and its batch run again (Ray's ``max_restarts``/``max_task_retries``).
"""
from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator

from .._progress import Progress
from ..errors import ConfigError, DistributedError, Onnx2SnnError
from .cluster import cluster
from .source import batch_dataset

MAX_RETRIES = 3  # restarts of a killed actor, and retries of the batch it held


def _onnx2snn_cause(exc: BaseException) -> Onnx2SnnError | None:
    """The onnx2snn error a worker raised, found along Ray's wrapping (``cause``, ``__cause__``)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)
        if isinstance(cause, Onnx2SnnError):
            return cause
        if isinstance(exc, Onnx2SnnError) and type(exc).__module__.startswith("onnx2snn"):
            return exc
        exc = cause if isinstance(cause, BaseException) else (exc.__cause__ or exc.__context__)
    return None


@contextlib.contextmanager
def _data_context(ray):
    """Ray Data with one row per block (:mod:`.source`), without its own progress bars and INFO lines
    (onnx2snn's bar says how far it is); the caller's settings are restored afterwards."""
    ctx = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = ctx.enable_progress_bars, ctx.target_max_block_size, logger.level
    ctx.enable_progress_bars, ctx.target_max_block_size = False, 1
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # max_restarts / max_task_retries have no named parameter yet (Ray < 2.64 takes them so); fewer
            # batches than actors is no fault
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
            warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
            yield
    finally:
        ctx.enable_progress_bars, ctx.target_max_block_size = saved[:2]
        logger.setLevel(saved[2])


def pool_size(ray, actors: int | None, actor_cpus: int, gpu: bool) -> int:
    resources = ray.cluster_resources()
    if gpu:
        return actors or max(1, int(resources.get("GPU", 0)))
    return actors or max(1, int(resources.get("CPU", 1) // actor_cpus))


def uses_gpu(ray, provider: str) -> bool:
    """Whether the actors take a GPU each: provider cuda (ConfigError on a cluster without GPUs),
    or auto on a cluster that has some."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if provider == "cuda" and not gpus:
        raise ConfigError("--provider cuda: the Ray cluster has no GPU; use --provider cpu (or auto)")
    return provider != "cpu" and gpus > 0


def run_batches(reader, actor_class, actor_kwargs: dict, *, address: str | None, actors: int | None,
                actor_cpus: int, provider: str, progress: bool, what: str) -> Iterator[dict]:
    """Yield the result row of every batch of ``reader`` (see the module docstring). ``actor_class`` is
    built with ``actor_kwargs`` plus ``threads`` and ``provider``; it maps a batch of rows
    ``{"index", "batch"}`` to result rows that carry the same ``index``."""
    if actor_cpus < 1:
        raise ConfigError(f"CPUs per Ray actor must be >= 1, got {actor_cpus}")
    if actors is not None and actors < 1:
        raise ConfigError(f"the number of Ray actors must be >= 1, got {actors}")
    expected = len(reader) if hasattr(reader, "__len__") else None
    with cluster(address) as ray, _data_context(ray):
        gpu = uses_gpu(ray, provider)
        size = pool_size(ray, actors, actor_cpus, gpu)
        results = batch_dataset(ray, reader).map_batches(
            actor_class, fn_constructor_kwargs={**actor_kwargs, "threads": actor_cpus, "provider": provider},
            batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=size),
            num_cpus=actor_cpus, num_gpus=1 if gpu else 0, max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES)
        seen: set[int] = set()
        with Progress(expected, what, enabled=progress) as bar:
            rows = iter(results.iter_rows())
            while True:
                try:
                    row = next(rows, None)
                except Exception as exc:  # noqa: BLE001 - translated into one onnx2snn error
                    cause = _onnx2snn_cause(exc)
                    if cause is not None:
                        raise cause from None
                    lines = str(exc).strip().splitlines()
                    reason = lines[-1].split(". ")[0] if lines else ""  # Ray's first sentence
                    raise DistributedError(f"the Ray run ({what}) failed after {len(seen)} of "
                                           f"{expected if expected is not None else '?'} batches: "
                                           f"{type(exc).__name__}: {reason}; nothing is reported (rerun it; "
                                           "see the Ray logs under /tmp/ray)") from None
                if row is None:
                    break
                index = int(row["index"])
                if index in seen:
                    raise DistributedError(f"the Ray run ({what}) returned batch {index} twice; nothing is reported")
                seen.add(index)
                bar.update()
                yield row
    count = expected if expected is not None else (max(seen) + 1 if seen else 0)
    if seen != set(range(count)):
        missing = sorted(set(range(count)) - seen)
        raise DistributedError(f"the Ray run ({what}) returned {len(seen)} of {count} batches (missing: "
                               f"{missing[:10]}); nothing is reported")
