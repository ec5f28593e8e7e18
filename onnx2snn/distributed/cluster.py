"""Connecting to a Ray cluster, and checking that its workers can run onnx2snn.

``address``: ``"local"`` (or None) starts a local cluster for the duration of the block, on 127.0.0.1
only when Ray is first imported here (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, Ray's single-machine
mode, which it reads on import: a cluster for one run needs no other interface; a process that then
joins a remote cluster should import ray itself first);
``"auto"`` joins the cluster running on this machine (``ray start --head``); ``"HOST:PORT"`` or
``"ray://HOST:PORT"`` joins that one, after a TCP check that it answers (Ray itself would retry
for minutes). A process already connected to Ray (``ray.init`` called by the caller) uses that
connection whatever the address.

Invariant: :func:`cluster` leaves Ray as it found it (a cluster it started is shut down, one it
joined is left running, a connection the caller made is kept), and yields only once every live
node has imported this version of onnx2snn and loaded its op library; every failure to get there
is one :class:`ConfigError` naming the address (or node) and what to do. Ray is imported here
only, lazily, so the package works without it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from typing import Iterator

from .._version import __version__
from ..errors import ConfigError

INSTALL = 'pip install "onnx2snn[ray]"'
CHECK_TIMEOUT_S = 120
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray binds and connects on 127.0.0.1 only


def import_ray():
    """The ray module (with Ray Data); ConfigError naming the extra when it is not installed."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--ray needs Ray ({exc}); install it with {INSTALL}") from None
    return ray


def _check_reachable(address: str) -> None:
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address '{address}' is not HOST:PORT, ray://HOST:PORT, 'local' or 'auto'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at '{address}' ({exc.strerror or exc}); check the address "
                          "(`ray status` on the head node prints it), use --ray auto for the cluster of this "
                          "machine, or --ray alone to start a local one") from None


def _worker_report() -> tuple[str, str]:
    """Runs on a worker: this onnx2snn's version, and the op library loaded into onnxruntime."""
    import onnxruntime as ort

    from .. import _version
    from .._library import get_library_path
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(get_library_path())
    return _version.__version__, get_library_path()


def check_workers(ray, where: str) -> None:
    """ConfigError unless every live node of the cluster imports this onnx2snn and loads its op library."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    report = ray.remote(num_cpus=0, max_retries=0)(_worker_report)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = {n["NodeManagerAddress"]: report.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote() for n in nodes}
    for node, ref in refs.items():
        try:
            version, _ = ray.get(ref, timeout=CHECK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - whatever the worker raised is the reason
            cause = getattr(exc, "cause", None) or exc
            text = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
            raise ConfigError(f"the Ray cluster {where} cannot run onnx2snn on node {node} "
                              f"({type(cause).__name__}: {text}); install it with its op library on every node: "
                              f"{INSTALL} (version {__version__})") from None
        if version != __version__:
            raise ConfigError(f"the Ray cluster {where} has onnx2snn {version} on node {node}, this process "
                              f"{__version__}; install the same version on every node ({INSTALL})")


@contextlib.contextmanager
def cluster(address: str | None = "local") -> Iterator[object]:
    """``with cluster(address) as ray:`` a checked connection (see the module docstring)."""
    address = address or "local"
    if address == "local" and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    ray = import_ray()
    where = "started here" if address == "local" else f"at '{address}'"
    if address not in ("local", "auto"):
        _check_reachable(address)
    if ray.is_initialized():
        check_workers(ray, "this process is connected to")
        yield ray
        return
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address == "local":
            ray.init(address="local", **options)
        else:
            ray.init(address=address, **options)
    except ConnectionError as exc:
        hint = ("start one with `ray start --head`, or use --ray alone for a local cluster" if address == "auto"
                else "check the address")
        raise ConfigError(f"cannot join the Ray cluster {where} ({exc}); {hint}") from None
    try:
        check_workers(ray, where)
        yield ray
    finally:
        ray.shutdown()
