"""``onnx2snn convert``: flags into a :class:`ConvertConfig`, :func:`onnx2snn.convert`, one summary line."""
from __future__ import annotations

import time

from ..config import METHOD_FIELDS, ConvertConfig, Form, Neuron, Reset, VInit, default_config, preset_config
from ._args import add_ray_options, calibrate_steps, memory_size, positive_int, threshold


def add_parser(sub, parents) -> None:
    c = sub.add_parser("convert", parents=parents, help="convert an ANN to a calibrated SNN",
                       description="Without a method flag (--threshold, --channel-wise, --v-init, --calibrate, "
                                   "--neuron, --preset) and with --calibration-data, convert runs the most accurate "
                                   "pipeline there is: --preset best (with IF neurons where --form or --reset "
                                   "exclude bipolar ones). Any method flag selects that method instead, its other "
                                   "settings at their plain defaults.")
    c.add_argument("model", help="ANN in ONNX format")
    c.add_argument("-o", "--output", required=True, help="where to write the SNN (.onnx)")
    c.add_argument("--calibration-data", default=None,
                   help=".npz with arrays keyed by input name (any one array for a single input); "
                        "needed unless every activation is quantized (BIF neurons)")
    c.add_argument("--timesteps", "-T", type=positive_int, required=True, help="number of time steps T >= 1")
    c.add_argument("--threshold", type=threshold, default=None,
                   help="threshold balancing: max, percentile:P of the positive activations, mse "
                        "(least T-level quantisation error) or ltb (local threshold balancing, with "
                        "v_init θ/2) (default: mse from the default pipeline; percentile:99.99 when other "
                        "method flags are given)")
    c.add_argument("--channel-wise", action="store_true", default=None, help="one threshold per channel")
    c.add_argument("--v-init", choices=[v.value for v in VInit], default=None,
                   help="initial membrane potential: zero (default) or half the threshold")
    c.add_argument("--calibrate", type=calibrate_steps, default=None, metavar="STEPS",
                   help="layer-wise parameter calibration: comma-separated subset of bias,potential,weight")
    c.add_argument("--preset", choices=["best"], default=None,
                   help="best (the default with calibration data): --threshold mse --channel-wise --v-init half "
                        "--calibrate weight,bias,potential --neuron bif; flags given beside it override it")
    c.add_argument("--report", action="store_true",
                   help="print per layer the clipping and flooring errors before/after calibration")
    c.add_argument("--reset", choices=[r.value for r in Reset], default=Reset.SUBTRACT.value,
                   help="membrane reset after a spike (default: subtract)")
    c.add_argument("--batch-size", type=positive_int, default=64, help="calibration batch size")
    c.add_argument("--max-memory", type=memory_size, default=None,
                   help="memory bound, e.g. 4GiB (default): a T whose folded SNN cannot run one sample within "
                        "it is refused before any work (the streaming form needs no such bound); layer-wise "
                        "calibration chooses its batch to stay under it and says so")
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
                        "steps; auto (with other method flags; the default pipeline and --preset best: bif): "
                        "bif when every activation is quantized, else if")
    add_ray_options(c, "the statistics phase of calibration (running max and histograms of the activations)",
                    "; layer-wise calibration (--calibrate, --preset best, the default pipeline), ltb thresholds "
                    "and the checks run in this process")


def run(args) -> int:
    from .. import metadata
    from ..io import check_output_path, load_model, save_model
    from ..pipeline import convert

    check_output_path(args.output, args.model, *([args.calibration_data] if args.calibration_data else []))
    given = {k: getattr(args, k) for k in METHOD_FIELDS if getattr(args, k) is not None}
    common = dict(timesteps=args.timesteps, reset=Reset(args.reset), batch_size=args.batch_size,
                  form=Form(args.form), max_memory=args.max_memory, ray=args.ray, ray_actors=args.ray_actors)
    default = False
    if args.preset:
        config = preset_config(args.preset, **common, **given)
    elif given:
        config = ConvertConfig(**common, **given)
    else:  # no method flag: the most accurate pipeline there is for the data given (config.default_config)
        default = args.calibration_data is not None
        config = default_config(args.timesteps, data=default, **{k: v for k, v in common.items() if k != "timesteps"})
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
          f"{config.form.value} form, {time.perf_counter() - start:.1f}s"
          f"{pipeline_note(config) if default else ''}")
    meta = metadata.read(result.model)
    if meta.latency_steps is not None:
        print(f"latency: first output after {meta.latency_steps} steps ((D+1)·T, D = {meta.spiking_depth} "
              f"spiking layers on the longest path), then one image per {config.timesteps} steps when pipelined")
    if args.report:
        print_layer_report(result.layer_reports)
    return 0


def pipeline_note(config: ConvertConfig) -> str:
    if config.neuron is Neuron.BIF:
        return " (the default pipeline: --preset best)"
    return (f" (the default pipeline: --preset best with IF neurons, as --form {config.form.value} --reset "
            f"{config.reset.value} excludes bipolar ones)")


def print_layer_report(reports) -> None:
    if not reports:
        print("(no layer report: it is computed by --calibrate)")
        return
    print(f"{'layer':<40} {'mean θ':>8} {'clip err':>9} {'floor before':>13} {'floor after':>12} {'WC objective':>22}")
    for r in reports:
        wc = "" if r.wc_before != r.wc_before else f"{r.wc_before:.4g} -> {r.wc_after:.4g}"
        if r.output:   # an analog output layer: its weight fit only
            print(f"{r.name[-40:]:<40} {'analog output (no neuron)':>45} {wc or '; '.join(r.notes):>22}")
            continue
        print(f"{r.name[-40:]:<40} {r.theta_mean:8.3f} {r.clip_err:9.4f} {r.floor_before:13.4f} "
              f"{r.floor_after:12.4f} {wc:>22}")
    print("errors relative to E[a²]: clip = E[(a − clip(a,0,θ))²], floor = E[(clip(a,0,θ) − r̄)²]")
