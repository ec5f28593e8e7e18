"""``onnx2snn report``: what the SNN costs (spikes, firing rates, SynOps, energy), as a table, JSON or HTML."""
from __future__ import annotations

from ._args import positive_int


def _positive_float(text: str) -> float:
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def add_parser(sub, parents) -> None:
    r = sub.add_parser("report", parents=parents,
                       help="firing rates, synaptic operations and energy per layer (and accuracy per step)")
    r.add_argument("ann", help="the ANN (.onnx) the SNN was converted from")
    r.add_argument("snn", help="the SNN written by `onnx2snn convert`")
    r.add_argument("--data", required=True, help=".npz with inputs (and labels, for the accuracy per step)")
    r.add_argument("--labels-key", default="labels", help="labels array in --data, if any (default: labels)")
    r.add_argument("--batch-size", type=positive_int, default=8, help="samples per SNN run (default: 8)")
    r.add_argument("--energy", choices=["fp32", "fp16", "int8"], default="fp32",
                   help="energy per operation, 45 nm (Horowitz 2014): fp32 E_MAC 4.6 pJ, E_AC 0.9 pJ (default); "
                        "fp16 1.5 / 0.4; int8 0.23 / 0.03")
    r.add_argument("--e-mac", type=_positive_float, default=None, metavar="PJ", help="override E_MAC (pJ)")
    r.add_argument("--e-ac", type=_positive_float, default=None, metavar="PJ", help="override E_AC (pJ)")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument("-o", "--output", default=None,
                   help="write a self-contained HTML report (tables and plots; needs matplotlib: "
                        "pip install 'onnx2snn[report]'); the plots are also written as PNGs beside it")


def run(args) -> int:
    from ..cost import EnergyModel, report
    from ..data import load_labels, load_npz, match_inputs, model_inputs
    from ..io import check_output_path, load_model

    if args.output:
        check_output_path(args.output, args.ann, args.snn, args.data)
        from ..cost.html import check_plotting
        check_plotting()
    energy = EnergyModel.preset(args.energy)
    if args.e_mac or args.e_ac:
        energy = EnergyModel(args.e_mac or energy.e_mac_pj, args.e_ac or energy.e_ac_pj, "custom")
    ann, snn = load_model(args.ann), load_model(args.snn)
    arrays = load_npz(args.data, "report data")
    has_labels = args.labels_key in arrays
    feeds = match_inputs(arrays, model_inputs(ann), label_key=args.labels_key if has_labels else None,
                         what="report data")
    labels = load_labels(arrays, args.labels_key, next(iter(feeds.values())).shape[0], "report data") \
        if has_labels else None
    res = report(ann, snn, feeds, labels, args.batch_size, energy, progress=not args.quiet and not args.json)
    if args.output:
        from ..cost.html import write_html
        written = write_html(res, args.output, model=args.ann)
        if not args.json:
            print(f"wrote {', '.join(str(p) for p in written)}")
    if args.json:
        print(res.to_json())
        return 0
    print_report(res)
    return 0


def print_report(res) -> None:
    print(f"{res.samples} samples, T={res.timesteps}, {res.form} form; per sample, over all {res.timesteps} steps")
    print(f"{'neuron layer':<40} {'op':<10} {'neurons':>9} {'spikes':>11} {'rate':>7} {'silent':>7} "
          f"{'SynOps':>12} {'ANN MACs':>12}")
    for layer in res.layers:
        print(f"{layer.name[-40:]:<40} {layer.op:<10} {layer.neurons:>9} {layer.spikes_per_sample:>11.1f} "
              f"{layer.firing_rate:>7.4f} {layer.silent_fraction:>7.3f} {layer.synops_per_sample:>12.4g} "
              f"{layer.ann_macs_per_sample:>12.4g}")
    e = res.energy
    print(f"SynOps {res.synops_per_sample:.4g}, analog MACs {res.analog_macs_per_sample:.4g}; "
          f"ANN MACs {res.ann_macs_per_sample:.4g}")
    ratio = res.snn_uj / res.ann_uj if res.ann_uj else float("nan")
    print(f"energy ({e.name}: E_MAC {e.e_mac_pj} pJ, E_AC {e.e_ac_pj} pJ): ANN {res.ann_uj:.4g} uJ, "
          f"SNN {res.snn_uj:.4g} uJ, SNN/ANN {ratio:.3f} (operation counts only, no memory access)")
    if res.accuracy:
        t_last = max(res.accuracy["snn_top1"])
        print(f"top-1: ANN {res.accuracy['ann_top1']:.2f}%, SNN {res.accuracy['snn_top1'][t_last]:.2f}% "
              f"at t={t_last}")
    for note in res.notes:
        print(f"note: {note}")
