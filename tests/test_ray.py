"""Evaluation and calibration statistics on a Ray cluster (onnx2snn.distributed) equal the single-process
run bit for bit: 1 and 2 actors, batches in shuffled order, .npz shards, a worker killed mid-run; bad input
gives one error naming it.

A local Ray cluster (2 CPUs, 127.0.0.1, no dashboard) is started once for the module and shut down after
it; the CLI tests start their own in a subprocess (``--ray``) or none.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import onnx2snn
from conftest import MODELS, REPO
from onnx2snn.calibration import collect_statistics
from onnx2snn.config import ConvertConfig, ThresholdSpec
from onnx2snn.data import ArrayDataReader, NpzShardReader, calibration_feeds, model_inputs
from onnx2snn.errors import ConfigError, DataError
from onnx2snn.passes.activations import activation_names

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 only (read on import)
ray = pytest.importorskip("ray")
from onnx2snn import distributed  # noqa: E402

T = 8
N = 320      # samples evaluated: 10 full batches of 32
BATCH = 32


@pytest.fixture(scope="module")
def cluster():
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
    session = ray._private.worker._global_node.get_session_dir_path()
    yield ray
    ray.shutdown()
    assert not ray.is_initialized()
    deadline = time.time() + 20
    while _processes_with(session) and time.time() < deadline:
        time.sleep(0.2)
    assert _processes_with(session) == []  # nothing of the cluster outlives the module


def _processes_with(text: str) -> list[int]:
    """Processes whose command line contains ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if text in fh.read().decode(errors="replace"):
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    ann = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    config = ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse("percentile:99.9"), channel_wise=True)
    result = onnx2snn.convert(ann, MODELS / "data" / "mnist_calib.npz", config)
    path = tmp_path_factory.mktemp("ray") / "snn.onnx"
    onnx2snn.save_model(result.model, path)
    return ann, result.model, path


@pytest.fixture(scope="module")
def test_data():
    d = np.load(MODELS / "data" / "mnist_test.npz")
    return d["x"][:N], d["labels"][:N]


def _same(a, b):
    assert (a.ann_top1, a.snn_top1, a.samples, a.timesteps, a.batch_size) == \
        (b.ann_top1, b.snn_top1, b.samples, b.timesteps, b.batch_size)


@pytest.mark.parametrize("actors", [1, 2])
def test_evaluation_equals_the_local_run(cluster, models, test_data, actors):
    ann, snn, _ = models
    x, y = test_data
    local = onnx2snn.evaluate(ann, snn, {"input": x}, y, BATCH)
    assert local.ann_top1 > 90 and len(set(local.snn_top1.values())) > T // 2  # a real run, not constants
    _same(distributed.evaluate(ann, snn, {"input": x}, y, batch_size=BATCH, max_memory=None, actors=actors), local)


def test_shuffled_batches_and_shards_give_the_same_result(cluster, models, test_data, tmp_path):
    ann, snn, _ = models
    x, y = test_data
    local = onnx2snn.evaluate(ann, snn, {"input": x}, y, BATCH)
    # the same batches in another order: whole batches permuted
    order = np.random.default_rng(1).permutation(N // BATCH)
    rows = np.concatenate([np.arange(k * BATCH, (k + 1) * BATCH) for k in order])
    shuffled = ArrayDataReader({"input": x[rows], "labels": y[rows]}, BATCH)
    got = distributed.evaluate(ann, snn, shuffled, actors=2)
    assert (got.ann_top1, got.snn_top1, got.samples) == (local.ann_top1, local.snn_top1, local.samples)
    # shards of uneven sizes (batches span shards), read by the workers: the batches of the concatenation
    cuts = [0, 70, 71, 190, N]
    for i in range(4):
        np.savez(tmp_path / f"part{i}.npz", x=x[cuts[i]:cuts[i + 1]], labels=y[cuts[i]:cuts[i + 1]])
    _same(distributed.evaluate(ann, snn, tmp_path, batch_size=BATCH, max_memory=None), local)


def test_statistics_and_thresholds_equal_the_local_run(cluster, models, tmp_path):
    ann = onnx2snn.pipeline.prepare(models[0])
    names = activation_names(ann)
    feeds = calibration_feeds(MODELS / "data" / "mnist_calib.npz", ann)
    local = collect_statistics(ann, names, ArrayDataReader(feeds, 48), channel_wise=True, progress=False)
    cuts = [0, 100, 101, 256]
    for i in range(3):
        np.savez(tmp_path / f"c{i}.npz", x=feeds["input"][cuts[i]:cuts[i + 1]])
    for reader, actors in [(ArrayDataReader(feeds, 48), 2), (NpzShardReader(tmp_path, 48, model_inputs(ann)), 1)]:
        got = distributed.collect_statistics(ann, names, reader, channel_wise=True, progress=False, actors=actors)
        for n in names:
            assert got[n].samples == local[n].samples == 256 and got[n].shape == local[n].shape
            np.testing.assert_array_equal(got[n].max, local[n].max)
            np.testing.assert_array_equal(got[n].width, local[n].width)
            np.testing.assert_array_equal(got[n].hist, local[n].hist)
    # convert's statistics phase through the config: the same thresholds, the same SNN
    config = ConvertConfig(timesteps=T, threshold=ThresholdSpec.parse("percentile:99.9"), channel_wise=True)
    on_ray = onnx2snn.convert(models[0], MODELS / "data" / "mnist_calib.npz",
                              dataclasses.replace(config, ray="local", ray_actors=2))
    for n, theta in onnx2snn.convert(models[0], MODELS / "data" / "mnist_calib.npz", config).thresholds.items():
        np.testing.assert_array_equal(on_ray.thresholds[n], theta)
    assert on_ray.model.SerializeToString() == models[1].SerializeToString()


def _busy_actor_pids() -> list[int]:
    """Ray worker processes of the evaluation actors that are running a batch now."""
    return _processes_with("MapBatches(EvaluationActor)).submit")


def test_a_worker_killed_mid_run_is_retried_and_the_result_is_complete(cluster, models, test_data):
    ann, snn, _ = models
    x, y = test_data
    local = onnx2snn.evaluate(ann, snn, {"input": x}, y, 8)
    killed, done = [], threading.Event()

    def kill_one():
        while not done.is_set() and not killed:
            busy = _busy_actor_pids()
            if busy:
                os.kill(busy[0], signal.SIGKILL)  # mid-batch: the actor is inside a task
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one)
    killer.start()
    try:
        got = distributed.evaluate(ann, snn, {"input": x}, y, batch_size=8, max_memory=None, actors=2)
    finally:
        done.set()
        killer.join()
    assert killed, "no actor was found running a batch"
    assert killed[0] not in _processes_with("EvaluationActor")
    _same(got, local)  # every batch counted once: the killed one ran again on the restarted actor


def test_bad_shards_are_named(cluster, models, test_data, tmp_path):
    ann, snn, _ = models
    x, y = test_data
    np.savez(tmp_path / "a.npz", x=x[:40], labels=y[:40])
    np.savez(tmp_path / "b.npz", x=x[:5, :, :27], labels=y[:5])
    with pytest.raises(DataError, match=r"shard '.*b\.npz' for input 'input' has shape \(5, 1, 27, 28\)"):
        distributed.evaluate(ann, snn, tmp_path)
    # a shard that only its worker finds bad (NaN inside): the worker's DataError, not a Ray traceback
    bad = x[:5].copy()
    bad[2, 0, 3, 3] = np.nan
    np.savez(tmp_path / "b.npz", x=bad, labels=y[:5])
    with pytest.raises(DataError, match=r"shard '.*b\.npz' for input 'input' contains 1 NaN"):
        distributed.evaluate(ann, snn, tmp_path, batch_size=16)


def _cli(*args, env=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "onnx2snn", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_evaluate_on_ray_prints_what_the_local_run_prints(models, tmp_path):
    ann_path, snn_path = MODELS / "mnist_cnn.onnx", models[2]
    d = np.load(MODELS / "data" / "mnist_test.npz")
    np.savez(tmp_path / "test.npz", x=d["x"][:200], labels=d["labels"][:200])
    args = ["evaluate", ann_path, snn_path, "--data", tmp_path / "test.npz", "--json", "--batch-size", "50"]
    local, on_ray = _cli(*args), _cli(*args, "--ray")  # starts a local cluster of its own, and stops it
    assert local.returncode == 0 and on_ray.returncode == 0, on_ray.stderr[-2000:]
    a, b = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert (a["ann_top1"], a["snn_top1"], a["batch_size"]) == (b["ann_top1"], b["snn_top1"], b["batch_size"])


def test_cli_errors_name_the_cluster(models, tmp_path):
    args = ["evaluate", MODELS / "mnist_cnn.onnx", models[2], "--data", MODELS / "data" / "mnist_test.npz"]
    port = _free_port()
    r = _cli(*args, "--ray", f"127.0.0.1:{port}")
    assert r.returncode == 2 and r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in errors[0]
    # workers that cannot load the op library (here: the variable that names it points nowhere)
    r = _cli(*args, "--ray", env={"ONNX2SNN_OPS_LIBRARY": str(tmp_path / "missing.so")})
    assert r.returncode == 2 and r.stdout == "", r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot run onnx2snn on node 127.0.0.1" in errors[0] \
        and "missing.so" in errors[0] and 'pip install "onnx2snn[ray]"' in errors[0], r.stderr[-2000:]


def test_without_ray_the_error_names_the_extra(models):
    code = ("import sys; sys.modules['ray'] = None\n"  # as if ray were not installed
            "from onnx2snn.distributed.cluster import import_ray\n"
            "import_ray()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode != 0 and 'ConfigError: --ray needs Ray' in r.stderr and 'pip install "onnx2snn[ray]"' \
        in r.stderr
    with pytest.raises(ConfigError, match="ray_actors"):
        ConvertConfig(timesteps=4, ray_actors=2)
