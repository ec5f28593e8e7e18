"""Command line: ``onnx2snn convert | evaluate | inspect``.

Thin: parses flags into the config dataclasses and calls the Python API. Any
:class:`Onnx2SnnError` becomes one ``error:`` line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter

import onnx

from .._version import __version__
from ..config import ConvertConfig, Form, Neuron, Reset, ThresholdSpec, VInit, preset_config
from ..errors import ConfigError, Onnx2SnnError
from ..runtime.memory import DEFAULT_MAX_MEMORY, format_size, parse_size


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _threshold(text: str) -> ThresholdSpec:
    try:
        return ThresholdSpec.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _calibrate(text: str):
    try:
        return ConvertConfig.parse_calibrate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _memory_size(text: str) -> int:
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onnx2snn", description="Convert ONNX ANNs to spiking networks.")
    p.add_argument("--version", action="version", version=f"onnx2snn {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log each pass")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", parents=[common], help="convert an ANN to a calibrated SNN")
    c.add_argument("model", help="ANN in ONNX format")
    c.add_argument("-o", "--output", required=True, help="where to write the SNN (.onnx)")
    c.add_argument("--calibration-data", default=None,
                   help=".npz with arrays keyed by input name (any one array for a single input); "
                        "needed unless every activation is quantized (BIF neurons)")
    c.add_argument("--timesteps", "-T", type=_positive_int, required=True, help="number of time steps T >= 1")
    c.add_argument("--threshold", type=_threshold, default=None,
                   help="threshold balancing: max, percentile:P of the positive activations, mse "
                        "(least T-level quantisation error) or ltb (local threshold balancing, with "
                        "v_init θ/2) (default: percentile:99.99)")
    c.add_argument("--channel-wise", action="store_true", default=None, help="one threshold per channel")
    c.add_argument("--v-init", choices=[v.value for v in VInit], default=None,
                   help="initial membrane potential: zero (default) or half the threshold")
    c.add_argument("--calibrate", type=_calibrate, default=None, metavar="STEPS",
                   help="layer-wise parameter calibration: comma-separated subset of bias,potential,weight")
    c.add_argument("--preset", choices=["best"], default=None,
                   help="best: the pipeline the calibration benchmark found best (flags given "
                        "explicitly override it)")
    c.add_argument("--report", action="store_true",
                   help="print per layer the clipping and flooring errors before/after calibration")
    c.add_argument("--reset", choices=[r.value for r in Reset], default=Reset.SUBTRACT.value,
                   help="membrane reset after a spike (default: subtract)")
    c.add_argument("--batch-size", type=_positive_int, default=64, help="calibration batch size")
    c.add_argument("--form", choices=[f.value for f in Form], default=Form.FOLDED.value,
                   help="folded: all T steps in one run (custom op, default); streaming: one step per run, "
                        "neuron state as inputs/outputs; portable: standard ONNX ops only (no op library); "
                        "cumulative (BIF only): layers fed cumulative spike counts, bit-exact with the ANN")

    c.add_argument("--neuron", choices=[n.value for n in Neuron], default=None,
                   help="if: integrate-and-fire, calibrated thresholds; bif: bipolar IF (±θ spikes, count in "
                        "[0, L]): lossless for quantized activations (no calibration), and on a float ANN "
                        "calibrated like if with L = T (it takes back spikes the uneven input made it fire "
                        "early; folded form only); tsep: integrate-then-fire (temporal separation), "
                        "calibrated like if, each layer exactly the T-level quantised ReLU, latency (D+1)·T "
                        "steps; auto (default; --preset best: bif): bif when every activation is quantized, "
                        "else if")

    e = sub.add_parser("evaluate", parents=[common], help="top-1 of the ANN and of the SNN after each step")
    e.add_argument("ann", help="the ANN (.onnx)")
    e.add_argument("snn", help="the SNN written by `onnx2snn convert`")
    e.add_argument("--data", required=True, help=".npz with inputs and labels")
    e.add_argument("--labels-key", default="labels", help="labels array in --data (default: labels)")
    e.add_argument("--batch-size", type=_positive_int, default=None,
                   help="largest batch (default: up to 256); lowered to fit --max-memory")
    e.add_argument("--max-memory", type=_memory_size, default=DEFAULT_MAX_MEMORY,
                   help="bound on the estimated peak memory of the runs, e.g. 512MiB (default: 4GiB)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")

    i = sub.add_parser("inspect", parents=[common], help="list the graph's ops and whether they convert")
    i.add_argument("model", help="ANN in ONNX format")
    return p


def _convert(args) -> int:
    from ..io import check_output_path, load_model, save_model
    from .. import metadata
    from ..pipeline import convert

    check_output_path(args.output, args.model, *([args.calibration_data] if args.calibration_data else []))
    given = {k: v for k, v in {"threshold": args.threshold, "channel_wise": args.channel_wise,
                               "v_init": args.v_init, "calibrate": args.calibrate, "neuron": args.neuron}.items()
             if v is not None}
    common = dict(timesteps=args.timesteps, reset=Reset(args.reset), batch_size=args.batch_size,
                  form=Form(args.form))
    config = preset_config(args.preset, **common, **given) if args.preset else ConvertConfig(**common, **given)
    start = time.perf_counter()
    result = convert(load_model(args.model), args.calibration_data, config, progress=not args.quiet)
    save_model(result.model, args.output)
    op = "BIFCount" if config.form is Form.CUMULATIVE else "BIFNeuron"
    if result.recurrences:
        for r in result.recurrences:
            total = f"{r.sequence_length} elements x {r.substeps} = {r.total_steps} steps" if r.total_steps \
                else f"S x {r.substeps} steps for S elements"
            print(f"wrote {args.output}: recurrent BIF SNN, Scan '{r.node}': {r.neurons} {op} layer(s) in the "
                  f"cell, T={r.substeps} sub-steps per element ({total}); hidden state equal to the quantized "
                  f"RNN's with T >= {r.exact_substeps}, {time.perf_counter() - start:.1f}s")
        return 0
    if result.exact_timesteps is not None:
        print(f"wrote {args.output}: {len(result.thresholds)} {op} layer(s), T={config.timesteps}, "
              f"equal to the quantized ANN from t={result.exact_timesteps}, {time.perf_counter() - start:.1f}s")
        return 0
    neurons = len(result.thresholds)  # one per ReLU; not every form has neuron nodes
    op = result.neuron_op
    steps = ",".join(c.value for c in config.calibrate) or "none"
    print(f"wrote {args.output}: {neurons} {op} layer(s), T={config.timesteps}, threshold {config.threshold}"
          f"{' channel-wise' if config.channel_wise else ''}, v_init {config.v_init.value}, calibration {steps}, "
          f"{config.form.value} form, {time.perf_counter() - start:.1f}s")
    meta = metadata.read(result.model)
    if meta.latency_steps is not None:
        print(f"latency: first output after {meta.latency_steps} steps ((D+1)·T, D = {meta.spiking_depth} "
              f"spiking layers on the longest path), then one image per {config.timesteps} steps when pipelined")
    if args.report:
        print_layer_report(result.layer_reports)
    return 0


def print_layer_report(reports) -> None:
    if not reports:
        print("(no layer report: it is computed by --calibrate)")
        return
    print(f"{'layer':<40} {'mean θ':>8} {'clip err':>9} {'floor before':>13} {'floor after':>12} {'WC objective':>22}")
    for r in reports:
        wc = "" if r.wc_before != r.wc_before else f"{r.wc_before:.4g} -> {r.wc_after:.4g}"
        print(f"{r.name[-40:]:<40} {r.theta_mean:8.3f} {r.clip_err:9.4f} {r.floor_before:13.4f} "
              f"{r.floor_after:12.4f} {wc:>22}")
    print("errors relative to E[a²]: clip = E[(a − clip(a,0,θ))²], floor = E[(clip(a,0,θ) − r̄)²]")


def _evaluate(args) -> int:
    from ..data import load_labels, load_npz, match_inputs, model_inputs
    from ..io import load_model
    from ..runtime.evaluate import evaluate

    ann, snn = load_model(args.ann), load_model(args.snn)
    arrays = load_npz(args.data, "evaluation data")
    feeds = match_inputs(arrays, model_inputs(ann), label_key=args.labels_key, what="evaluation data")
    labels = load_labels(arrays, args.labels_key, next(iter(feeds.values())).shape[0], "evaluation data")
    res = evaluate(ann, snn, feeds, labels, args.batch_size, progress=not args.quiet and not args.json,
                   max_memory=args.max_memory)
    if res.memory_estimate:
        chunks = (f"; the SNN runs it in chunks of {res.chunk} samples (activations kept in cache)"
                  if 0 < res.chunk < res.batch_size else "")
        print(f"batch size {res.batch_size}: estimated peak {format_size(res.memory_estimate)} "
              f"(--max-memory {format_size(args.max_memory)}){chunks}", file=sys.stderr)
    if args.json:
        print(json.dumps(res.as_dict()))
        return 0
    print(f"{res.samples} samples, T={res.timesteps}")
    print(f"{'model':<10} {'t':>5} {'top-1 %':>8} {'vs ANN':>8}")
    print(f"{'ANN':<10} {'-':>5} {res.ann_top1:8.2f} {'':>8}")
    for t, acc in res.snn_top1.items():
        print(f"{'SNN':<10} {t:>5} {acc:8.2f} {acc - res.ann_top1:+8.2f}")
    return 0


def _inspect_rows(model) -> tuple[Counter, dict[str, str], int, dict[str, str]]:
    """(op/status counts, offenders by node name, opset, status by node name) of a feed-forward model."""
    from ..errors import UnsupportedOpError
    from ..passes.fold_constants import FoldConstantsPass
    from ..passes.check_support import find_unsupported
    from ..core.graph import import_model
    from ..passes.activations import relu_cap
    from ..passes.quantizers import DetectQuantizedActivationsPass

    graph = import_model(onnx.shape_inference.infer_shapes(model, strict_mode=False))
    original = Counter(n.op for n in graph.nodes)
    FoldConstantsPass()(graph)
    folded = Counter(n.op for n in graph.nodes)
    detect = DetectQuantizedActivationsPass()
    try:
        detect(graph)
        quant_offenders = {}
    except UnsupportedOpError as exc:
        quant_offenders = {name: reason for name, _, reason in exc.offenders}
    offenders = {**{name: reason for name, _, reason in find_unsupported(graph, set(detect.quantizers) | detect.encoded)},
                 **quant_offenders}
    quantized = {n.name for n in graph.nodes if n.outputs and n.outputs[0].name in detect.quantizers}
    rows: Counter = Counter()
    statuses = {}
    for node in graph.nodes:
        name = node.name or f"<unnamed {node.op}>"
        if name in offenders:
            status = "UNSUPPORTED: " + offenders[name]
        elif name in quantized:
            q = detect.quantizers[node.outputs[0].name]
            status = f"quantized activation ({q.levels} levels, {q.pattern}): becomes BIFNeuron"
        elif relu_cap(node)[0]:
            status = "becomes IFNeuron"
        elif node.op == "BatchNormalization":
            status = "folded into the layer before (or kept as affine)"
        elif node.op in ("MaxPool", "GlobalMaxPool"):
            status = "kept; moved before the neuron (approximate under rate coding)"
        elif node.op in ("Softmax", "LogSoftmax"):
            status = "applied after the readout"
        elif node.op in ("Identity", "Dropout"):
            status = "removed"
        elif node.op in ("Shape", "Size"):
            status = "kept (shape arithmetic)"
        else:
            status = "kept (runs on every step)"
        rows[(node.op, status)] += 1
        statuses[name] = status
    remaining = Counter(n.op for n in graph.nodes)
    for op, count in original.items():
        if count > folded.get(op, 0):
            rows[(op, "folded (computes a constant)")] += count - folded.get(op, 0)
        if folded.get(op, 0) > remaining.get(op, 0):
            rows[(op, "part of a quantized activation")] += folded.get(op, 0) - remaining.get(op, 0)
    return rows, offenders, graph.opset, statuses


def _print_rows(rows: Counter, indent: str = "") -> None:
    print(f"{indent}{'op':<22} {'count':>5}  status")
    for (op, status), count in sorted(rows.items(), key=lambda kv: (kv[0][1].startswith("UNSUPPORTED"), kv[0])):
        print(f"{indent}{op:<22} {count:>5}  {status}")


def _inspect_recurrent(path: str, model) -> dict[str, str]:
    """Print the layers outside the recurrence and each Scan's cell; return the offenders."""
    from ..recipes import recurrent
    from ..errors import ConversionError
    from ..core.graph import onnx_opset

    offenders = {name: reason for name, _, reason in recurrent.outer_offenders(model)}
    rows: Counter = Counter()
    for node in model.graph.node:
        name = recurrent.label(node)
        if name in offenders:
            status = "UNSUPPORTED: " + offenders[name]
        elif node.op_type == "Scan":
            status = "recurrence: its cell (below) becomes a BIF SNN, run T sub-steps per element"
        else:
            status = "kept (runs once, outside the recurrence)"
        rows[(node.op_type, status)] += 1
    print(f"{path}: {len(model.graph.node)} nodes, opset {onnx_opset(model)}, recurrent")
    _print_rows(rows)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    types = recurrent.value_types(inferred)
    for scan in [n for n in model.graph.node if n.op_type == "Scan"]:
        label = recurrent.label(scan)
        found: list = []
        try:
            made = recurrent.cell_model(model, scan, types, found)
        except ConversionError as exc:
            offenders[label] = str(exc)
            print(f"cell of Scan '{label}': {exc}")
            continue
        offenders.update({name: reason for name, _, reason in found})
        if made is None:
            for name, _, reason in found:
                print(f"cell of Scan '{label}': node '{name}': {reason}")
            continue
        cell_rows, cell_offenders, _, statuses = _inspect_rows(made[0])
        float_act = "a float activation in the cell: quantize it (e.g. QCFS) to convert"
        cell_offenders.update({name: float_act for name, status in statuses.items() if status == "becomes IFNeuron"})
        fixed: Counter = Counter()
        for (op, status), count in cell_rows.items():
            fixed[(op, "UNSUPPORTED: " + float_act if status == "becomes IFNeuron" else status)] += count
        print(f"cell of Scan '{label}' ({len(recurrent.attr(scan, 'body').node)} nodes):")
        _print_rows(fixed, "  ")
        offenders.update({f"{label}/{k}": v for k, v in cell_offenders.items()})
    return offenders


def _inspect(args) -> int:
    from ..recipes import recurrent
    from ..io import load_model

    model = load_model(args.model)
    if recurrent.is_recurrent(model):
        offenders = _inspect_recurrent(args.model, model)
    else:
        rows, offenders, opset, _ = _inspect_rows(model)
        print(f"{args.model}: {len(model.graph.node)} nodes, opset {opset}")
        _print_rows(rows)
    if offenders:
        print(f"not convertible: {len(offenders)} node(s) unsupported:")
        for name, reason in offenders.items():
            print(f"  - {name}: {reason}")
        return 1
    print("convertible: every node is supported")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    handler = {"convert": _convert, "evaluate": _evaluate, "inspect": _inspect}[args.command]
    try:
        return handler(args)
    except Onnx2SnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
