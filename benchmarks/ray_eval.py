"""Evaluation on a Ray cluster (``onnx2snn evaluate --ray``) against the local ``evaluate``, on this machine.

The bundled MNIST CNN converted at T (channel-wise percentile:99.99) is evaluated on --samples
test digits (the 1000 bundled ones, repeated beyond) at --batch-size, four ways, each checked bit for
bit against the local result (ANN top-1, SNN top-1 after every step):

- local: ``onnx2snn.evaluate`` in this process (onnxruntime's default threads: every core);
- Ray, 1 actor x 1 CPU; 2 actors x 1 CPU; 1 actor x 2 CPUs (``onnx2snn.distributed.evaluate``) on a
  local cluster of all the cores started once (its start is reported apart);
- Ray, 2 actors x 1 CPU, one actor killed (SIGKILL) while it runs a batch: Ray restarts it and runs
  the batch again; the result must still be the local one.

A Ray row's time is the whole call: Ray Data planning, actor start-up (each opens its sessions),
the batches, the reduction. Then the driver's peak memory (VmHWM of a fresh process that runs
``onnx2snn evaluate --ray``, at T = --memory-timesteps to keep it short) for the first 1000 digits
repeated --repeat-data times, given as one .npz (loaded by the driver) and as a directory of .npz shards of
--samples digits each (read by a worker, streamed): the driver of the directory stays flat however
large the data.

    python benchmarks/ray_eval.py [--samples 1000] [--timesteps 16] [--batch-size 64] [--repeat-data 8 64]
                                  [--memory-timesteps 2]
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 only (read on import)

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import onnx2snn  # noqa: E402
from onnx2snn import distributed  # noqa: E402
from onnx2snn.config import ConvertConfig, ThresholdSpec  # noqa: E402

MODELS = REPO / "models"


def _actor_pids(title: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if title in fh.read().decode(errors="replace"):
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def _killing_one(run):
    """``run()`` while a thread SIGKILLs the first evaluation actor found inside a batch."""
    killed, done = [], threading.Event()

    def kill():
        while not done.is_set() and not killed:
            busy = _actor_pids("MapBatches(EvaluationActor)).submit")
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    t = threading.Thread(target=kill)
    t.start()
    try:
        return run(), killed
    finally:
        done.set()
        t.join()


def speed_table(args, ann, snn, x, y) -> None:
    import logging

    import ray

    t0 = time.perf_counter()
    local = onnx2snn.evaluate(ann, snn, {"input": x}, y, args.batch_size)
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    t_start = time.perf_counter() - t0
    cpus = int(ray.cluster_resources()["CPU"])
    t0 = time.perf_counter()  # the first Ray Data run of a session also starts Ray Data's own actors
    distributed.evaluate(ann, snn, {"input": x[:args.batch_size]}, y[:args.batch_size],
                         batch_size=args.batch_size, max_memory=None, actors=2)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    distributed.evaluate(ann, snn, {"input": x[:args.batch_size]}, y[:args.batch_size],
                         batch_size=args.batch_size, max_memory=None, actors=2)
    t_fixed = time.perf_counter() - t0
    print(f"{len(y)} MNIST test digits, T={snn_T(snn)}, batch {args.batch_size}, {os.cpu_count()} cores; "
          f"local Ray cluster of {cpus} CPUs started in {t_start:.1f} s, first Ray Data run (one batch) "
          f"{t_one:.1f} s, later one-batch runs {t_fixed:.1f} s (planning, actor start-up: the fixed cost "
          "in every Ray row; none of these in the rows)\n")
    print("| run | wall s | digits/s | vs local | SNN top-1 % at T | identical to local |")
    print("|---|---|---|---|---|---|")

    def row(name, res, wall, note=""):
        same = (res.ann_top1, res.snn_top1, res.samples) == (local.ann_top1, local.snn_top1, local.samples)
        top1 = res.snn_top1[max(res.snn_top1)]
        print(f"| {name} | {wall:.2f} | {len(y) / wall:.0f} | {t_local / wall:.2f}x | {top1:.2f} "
              f"| {'yes' if same else 'NO'}{note} |", flush=True)

    row("local `evaluate` (1 process, onnxruntime threads: all cores)", local, t_local)
    for actors, cpus_each in ((1, 1), (2, 1), (1, 2)):
        t0 = time.perf_counter()
        res = distributed.evaluate(ann, snn, {"input": x}, y, batch_size=args.batch_size, max_memory=None,
                                   actors=actors, actor_cpus=cpus_each)
        row(f"Ray, {actors} actor(s) x {cpus_each} CPU", res, time.perf_counter() - t0)
    t0 = time.perf_counter()
    res, killed = _killing_one(lambda: distributed.evaluate(ann, snn, {"input": x}, y, batch_size=args.batch_size,
                                                            max_memory=None, actors=2))
    row("Ray, 2 actors x 1 CPU, one killed mid-batch", res, time.perf_counter() - t0,
        f" (killed pid {killed[0]}; Ray restarted it, the batch ran again)" if killed else " (nothing killed)")
    ray.shutdown()


def snn_T(snn) -> int:
    from onnx2snn.runtime.evaluate import snn_timesteps
    return snn_timesteps(snn)


def memory_table(args, snn_path, x, y) -> None:
    print(f"\nT={args.memory_timesteps}, batch {args.batch_size}:\n")
    print("| data | size | driver peak RSS (--ray) | top-1 % at T |")
    print("|---|---|---|---|")
    for k in args.repeat_data:
        with tempfile.TemporaryDirectory() as tmp:
            shards = Path(tmp) / "shards"
            shards.mkdir()
            for i in range(k):
                np.savez(shards / f"part{i:03d}.npz", x=x, labels=y)
            np.savez(Path(tmp) / "all.npz", x=np.concatenate([x] * k), labels=np.concatenate([y] * k))
            size = (Path(tmp) / "all.npz").stat().st_size
            for name, data in ((f"one .npz, {k * len(y)} digits", Path(tmp) / "all.npz"),
                               (f"directory of {k} shards, {k * len(y)} digits", shards)):
                out = subprocess.run([sys.executable, __file__, "--probe", str(data), str(snn_path),
                                      "--batch-size", str(args.batch_size)], capture_output=True, text=True,
                                     check=True).stdout.split()
                print(f"| {name} | {size / 2**20:.0f} MiB | {int(out[0]) / 2**10:.0f} MiB | {out[1]} |", flush=True)


def probe(data: str, snn_path: str, batch: int) -> None:
    """One fresh driver: ``onnx2snn evaluate --ray`` on ``data``; prints its peak RSS (KiB) and top-1 at T."""
    import contextlib
    import io
    import json

    from onnx2snn.cli.main import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["evaluate", str(MODELS / "mnist_cnn.onnx"), snn_path, "--data", data, "--ray", "--json", "-q",
              "--batch-size", str(batch)])
    res = json.loads(out.getvalue())
    # VmHWM: this process image's peak (ru_maxrss would keep the forking parent's peak across exec)
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    print(peak, res["snn_top1"][str(res["timesteps"])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--timesteps", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat-data", type=int, nargs="+", default=[8, 64])
    ap.add_argument("--memory-timesteps", type=int, default=2)
    ap.add_argument("--probe", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(*args.probe, args.batch_size)
    ann = onnx2snn.load_model(MODELS / "mnist_cnn.onnx")
    d = np.load(MODELS / "data" / "mnist_test.npz")
    reps = -(-args.samples // len(d["labels"]))  # beyond the 1000 bundled digits: the digits again
    x, y = np.concatenate([d["x"]] * reps)[:args.samples], np.concatenate([d["labels"]] * reps)[:args.samples]
    speed_table(args, ann, _snn(ann, args.timesteps), x, y)
    with tempfile.TemporaryDirectory() as tmp:
        snn_path = Path(tmp) / "snn.onnx"
        onnx2snn.save_model(_snn(ann, args.memory_timesteps), snn_path)
        memory_table(args, snn_path, x[:1000], y[:1000])


def _snn(ann, timesteps: int):
    config = ConvertConfig(timesteps=timesteps, threshold=ThresholdSpec.parse("percentile:99.99"), channel_wise=True)
    return onnx2snn.convert(ann, MODELS / "data" / "mnist_calib.npz", config).model


if __name__ == "__main__":
    main()
