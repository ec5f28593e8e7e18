"""``onnx2snn evaluate``: top-1 of the ANN and of the SNN after each step, as a table or JSON."""
from __future__ import annotations

import json
import os
import sys

from ..runtime.memory import DEFAULT_MAX_MEMORY
from ..sizes import format_size
from ..runtime.providers import PROVIDERS
from ._args import add_ray_options, memory_size, positive_int


def add_parser(sub, parents) -> None:
    e = sub.add_parser("evaluate", parents=parents, help="top-1 of the ANN and of the SNN after each step",
                       description="Top-1 of the ANN and of the SNN after each step t = 1..T. The SNN must be "
                                   "converted from this ANN (same inputs and outputs, else an error). Top-1 is "
                                   "scored on the model's first output of shape [N, K] (a model with several "
                                   "outputs: the others are ignored, and a line on stderr says which one is "
                                   "scored; a model with no [N, K] output is refused). Labels are integer class "
                                   "indices in [0, K) (or exactly one-hot rows [N, K]).")
    e.add_argument("ann", help="the ANN (.onnx)")
    e.add_argument("snn", help="the SNN written by `onnx2snn convert`")
    e.add_argument("--data", required=True,
                   help=".npz with inputs and labels (integer class indices in [0, K), or one-hot rows); with "
                        "--ray also a directory of such .npz shards (read by the workers, in name order)")
    e.add_argument("--labels-key", default="labels", help="labels array in --data (default: labels)")
    e.add_argument("--batch-size", type=positive_int, default=None,
                   help="largest batch (default: up to 256); lowered to fit --max-memory")
    e.add_argument("--max-memory", type=memory_size, default=DEFAULT_MAX_MEMORY,
                   help="bound on the estimated peak memory of the runs, e.g. 512MiB (default: 4GiB); "
                        "when even batch 1 exceeds it, it runs at batch 1 with a warning on stderr")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--provider", choices=list(PROVIDERS), default="auto",
                   help="where the sessions run: cuda (onnxruntime-gpu and the op library built with CUDA), cpu, "
                        "or auto (default: cuda where both are there, else cpu); the streaming form runs on the CPU")
    ray = add_ray_options(e, "evaluate")
    ray.add_argument("--ray-actor-cpus", type=positive_int, default=1, metavar="C",
                   help="CPUs (intra-op threads) of each Ray actor (default: 1)")


def run(args) -> int:
    from ..data import check_labels_key, load_labels, load_npz, match_inputs, model_inputs
    from ..io import load_model
    from ..runtime.evaluate import evaluate

    ann, snn = load_model(args.ann), load_model(args.snn)
    progress = not args.quiet and not args.json
    if args.ray is not None:
        from ..distributed import evaluate as evaluate_on_ray
        data = args.data
        if not os.path.isdir(data):
            data = load_npz(data, "evaluation data")
            check_labels_key(data, args.labels_key, "evaluation data")
        res = evaluate_on_ray(ann, snn, data, address=args.ray, actors=args.ray_actors,
                              actor_cpus=args.ray_actor_cpus, provider=args.provider, batch_size=args.batch_size,
                              max_memory=args.max_memory, labels_key=args.labels_key, progress=progress)
    else:
        arrays = load_npz(args.data, "evaluation data")
        check_labels_key(arrays, args.labels_key, "evaluation data")
        feeds = match_inputs(arrays, model_inputs(ann), label_key=args.labels_key, what="evaluation data")
        labels = load_labels(arrays, args.labels_key, next(iter(feeds.values())).shape[0], "evaluation data")
        res = evaluate(ann, snn, feeds, labels, args.batch_size, progress=progress, max_memory=args.max_memory,
                       provider=args.provider)
    if res.memory_estimate:
        chunks = (f"; the SNN runs it in chunks of {res.chunk} samples (activations kept in cache)"
                  if 0 < res.chunk < res.batch_size else "")
        where = " per Ray actor" if args.ray is not None else ""
        print(f"batch size {res.batch_size}: estimated peak {format_size(res.memory_estimate)}{where} "
              f"(--max-memory {format_size(args.max_memory)}){chunks}", file=sys.stderr)
        if res.memory_estimate > args.max_memory:
            print(f"warning: --max-memory {format_size(args.max_memory)} cannot be met: even batch 1 needs an "
                  f"estimated {format_size(res.memory_estimate)}; running at batch 1 anyway (raise --max-memory "
                  "to silence this)", file=sys.stderr)
    if res.ignored_outputs:
        print(f"scoring top-1 on output '{res.output}' (the first [N, K] output); not scored: "
              f"{', '.join(repr(o) for o in res.ignored_outputs)}", file=sys.stderr)
    if args.json:
        print(json.dumps(res.as_dict()))
        return 0
    print(f"{res.samples} samples, T={res.timesteps}")
    print(f"{'model':<10} {'t':>5} {'top-1 %':>8} {'vs ANN':>8}")
    print(f"{'ANN':<10} {'-':>5} {res.ann_top1:8.2f} {'':>8}")
    for t, acc in res.snn_top1.items():
        print(f"{'SNN':<10} {t:>5} {acc:8.2f} {acc - res.ann_top1:+8.2f}")
    return 0
