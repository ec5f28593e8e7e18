"""The cost report as a self-contained HTML page with plots (``onnx2snn report ... -o report.html``).

:func:`write_html` writes the plots as PNGs beside the page (``<stem>_accuracy.png``,
``<stem>_firing_rates.png``, ``<stem>_synops.png``, ``<stem>_accuracy_energy.png``) and embeds the
same images in the page as data URIs, so the page alone can be mailed or archived: it loads nothing
from anywhere.

matplotlib is optional (``pip install 'onnx2snn[report]'``): it is imported only inside these
functions, and only its non-interactive Agg canvas is used (pyplot and the user's backend are left
alone).
"""
from __future__ import annotations

import base64
import html
import io
import os
import re
import uuid
from pathlib import Path

from .._version import __version__
from ..errors import ConfigError
from .counting import CONVENTION, CostReport

MISSING = "the HTML report needs matplotlib: pip install 'onnx2snn[report]'"

ANN_COLOR, SYNOPS_COLOR, ANALOG_COLOR, NEG_COLOR = "#555555", "#1f77b4", "#ff7f0e", "#d62728"
DPI = 110


def check_plotting() -> None:
    """Raise :class:`ConfigError` when matplotlib cannot be imported (call it before any long work)."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{MISSING} ({exc})") from None


# -- names -------------------------------------------------------------------------------------------

def short_names(names: list[str], width: int = 30) -> list[str]:
    """Readable, distinct labels for ONNX tensor and node names: '/relu1/Relu_output_0' → 'relu1/Relu';
    as few trailing path parts as keep the labels distinct, at most ``width`` characters."""
    parts = []
    for name in names:
        p = [s for s in re.sub(r"_output_\d+$", "", name).split("/") if s]
        # '/layer1/layer1.0/relu' → 'layer1.0/relu': a part that the next one repeats adds nothing
        p = [s for k, s in enumerate(p) if not (k + 1 < len(p) and p[k + 1].startswith(s))] or [name]
        parts.append(p)
    depth = [min(2, len(p)) for p in parts]
    while True:
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clashes = {lab for lab in labels if labels.count(lab) > 1}
        grow = [k for k, lab in enumerate(labels) if lab in clashes and depth[k] < len(parts[k])]
        if not grow:
            break
        for k in grow:
            depth[k] += 1
    out = [lab if len(lab) <= width else "…" + lab[-(width - 1):] for lab in labels]
    seen: dict[str, int] = {}
    for k, lab in enumerate(out):  # still equal (identical tails): number them
        if out.count(lab) > 1:
            seen[lab] = seen.get(lab, 0) + 1
            out[k] = f"{lab} #{seen[lab]}"
    return out


# -- plots -------------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _steps(report: CostReport) -> list[int]:
    return list(range(1, report.timesteps + 1))


def _snn_top1(report: CostReport) -> dict[int, float]:
    return {int(t): float(a) for t, a in report.accuracy["snn_top1"].items()}


def _step_ticks(ax, steps: list[int]) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(nbins=min(len(steps), 10), integer=True))
    ax.set_xlim(steps[0] - 0.5, steps[-1] + 0.5)


def plot_accuracy(report: CostReport) -> bytes:
    top1 = _snn_top1(report)
    steps = sorted(top1)
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    ax.plot(steps, [top1[t] for t in steps], marker="o" if len(steps) <= 64 else None, color=SYNOPS_COLOR,
            label="SNN")
    ax.axhline(report.accuracy["ann_top1"], color=ANN_COLOR, linestyle="--",
               label=f"ANN ({report.accuracy['ann_top1']:.2f}%)")
    ax.set_xlabel("time step t")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(-2, 102)
    _step_ticks(ax, steps)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"Top-1 accuracy after t steps ({report.samples} samples)")
    return _png(fig)


def _barh_height(n: int) -> float:
    return max(2.6, 0.9 + 0.32 * n)


def plot_firing_rates(report: CostReport) -> bytes:
    layers = report.layers
    labels = short_names([layer.name for layer in layers])
    fig = _figure(7.5, _barh_height(len(layers)))
    ax = fig.add_subplot()
    y = list(range(len(layers)))
    T = report.timesteps
    pos = [layer.positive_spikes_per_sample / (layer.neurons * T) if layer.neurons else 0.0 for layer in layers]
    neg = [layer.negative_spikes_per_sample / (layer.neurons * T) if layer.neurons else 0.0 for layer in layers]
    bipolar = any(v > 0 for v in neg)
    ax.barh(y, pos, color=SYNOPS_COLOR, label="positive spikes" if bipolar else None)
    if bipolar:
        ax.barh(y, neg, left=pos, color=NEG_COLOR, label="negative spikes")
    top = max([p + n for p, n in zip(pos, neg)] + [1e-9])
    for k, layer in enumerate(layers):
        ax.text(pos[k] + neg[k] + top * 0.01, k, f"{layer.firing_rate:.3g}", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=9 if len(layers) <= 24 else 8)
    ax.set_ylim(len(layers) - 0.5, -0.5)  # first layer on top, no empty margins
    ax.set_xlim(0, top * 1.15)
    ax.set_xlabel(f"firing rate (spikes per neuron per step, T = {T})")
    ax.grid(axis="x", alpha=0.3)
    if bipolar:
        fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    ax.set_title("Firing rate per neuron layer")
    return _png(fig)


def plot_synops(report: CostReport) -> bytes:
    """Per weighted layer: the ANN's MACs against the SNN's SynOps (or its dense MACs, where the layer's
    input is analog)."""
    from matplotlib.patches import Patch
    layers = report.weighted_layers
    labels = short_names([w.name for w in layers])
    ann = [w.ann_macs_per_sample for w in layers]
    snn = [w.synops_per_sample if w.spiking_input else w.analog_macs_per_sample for w in layers]
    colors = [SYNOPS_COLOR if w.spiking_input else ANALOG_COLOR for w in layers]
    fig = _figure(7.5, max(2.8, 1.1 + (0.5 if len(layers) <= 12 else 0.4) * len(layers)))
    ax = fig.add_subplot()
    h = 0.38
    y = list(range(len(layers)))
    ax.barh([k - h / 2 for k in y], ann, height=h, color=ANN_COLOR)
    ax.barh([k + h / 2 for k in y], snn, height=h, color=colors)
    positive = [v for v in ann + snn if v > 0]
    log = bool(positive) and max(positive) / min(positive) > 100
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(positive) / 3, max(positive) * 4)
    elif positive:
        ax.set_xlim(0, max(positive) * 1.25)
    for k in y:
        if snn[k] == 0:
            ax.text(min(positive) / 2.5 if log else 0, k + h / 2, " 0", va="center", fontsize=8)
        elif ann[k] > 0:  # the SNN's share of the ANN's operations
            ax.text(snn[k] * (1.15 if log else 1.0), k + h / 2, f" {snn[k] / ann[k]:.3g}×", va="center",
                    fontsize=8)
    ax.set_yticks(y, labels, fontsize=9 if len(layers) <= 24 else 8)
    ax.set_ylim(len(layers) - 0.5, -0.5)
    ax.set_xlabel("operations per sample, all steps" + (" (log scale)" if log else ""))
    ax.grid(axis="x", alpha=0.3, which="major")
    handles = [Patch(color=ANN_COLOR, label="ANN MACs"), Patch(color=SYNOPS_COLOR, label="SNN SynOps")]
    if any(not w.spiking_input for w in layers):
        handles.append(Patch(color=ANALOG_COLOR, label="SNN MACs (analog input)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)
    ax.set_title("Operations per weighted layer: SNN against ANN")
    return _png(fig)


def plot_accuracy_energy(report: CostReport) -> bytes:
    """Accuracy against the SNN's energy per sample after t = 1..T steps, with the ANN's point; without
    accuracy, the energy against t."""
    steps = _steps(report)
    energy = [report.snn_uj_at(t) for t in steps]
    fig = _figure(7.5, 4.4)
    ax = fig.add_subplot()
    if report.accuracy is None:
        ax.plot(steps, energy, marker="o" if len(steps) <= 64 else None, color=SYNOPS_COLOR,
                label="SNN, first t steps")
        ax.axhline(report.ann_uj, color=ANN_COLOR, linestyle="--", label=f"ANN ({report.ann_uj:.3g} µJ)")
        ax.set_xlabel("time step t")
        ax.set_ylabel("energy per sample (µJ)")
        _step_ticks(ax, steps)
        if report.ann_uj and min(energy) > 0 and report.ann_uj / min(energy) > 20:
            ax.set_yscale("log")
        ax.set_title("SNN energy per sample after t steps (operation-count model)")
        ax.grid(alpha=0.3, which="both")
        fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    else:
        top1 = _snn_top1(report)
        steps = [t for t in steps if t in top1]  # a recurrent SNN: the last element's sub-steps only
        energy = [report.snn_uj_at(t) for t in steps]
        acc = [top1[t] for t in steps]
        ax.plot(energy, acc, marker="o" if len(steps) <= 64 else None, color=SYNOPS_COLOR, label="SNN, t = 1..T")
        ann_acc = report.accuracy["ann_top1"]
        ax.plot([report.ann_uj], [ann_acc], marker="*", markersize=14, linestyle="none", color=ANN_COLOR,
                label=f"ANN ({report.ann_uj:.3g} µJ, {ann_acc:.2f}%)")
        xs = [v for v in energy + [report.ann_uj] if v > 0]
        if xs and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set_xlabel("energy per sample (µJ, operation-count model)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_ylim(-2, 105)
        ax.margins(x=0.08)
        ax.grid(alpha=0.3, which="both")
        ax.set_title("Accuracy against energy per sample")
        fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
        _label_steps(ax, energy, acc, _annotated(steps), first=steps[0])  # last: it needs the final layout
    return _png(fig)


def _label_steps(ax, xs: list[float], ys: list[float], steps: list[int], min_px: float = 26.0,
                 first: int = 1) -> None:
    """Label the points of ``steps`` 't=…' (point i is step ``first`` + i), leaving out a label that would
    sit on one already drawn (the last step's label always drawn)."""
    fig = ax.figure
    fig.canvas.draw()  # final limits and layout, for display coordinates
    placed: list[tuple[float, float]] = []
    for t in [steps[-1]] + steps[:-1]:
        i = t - first
        px, py = ax.transData.transform((xs[i], ys[i]))
        if any(abs(px - qx) < min_px and abs(py - qy) < 12 for qx, qy in placed):
            continue
        placed.append((px, py))
        low = py < ax.transAxes.transform((0, 0.12))[1]  # near the x axis: the label goes above the point
        ax.annotate(f"t={t}", (xs[i], ys[i]), textcoords="offset points", xytext=(5, 5 if low else -12),
                    fontsize=8)


def _annotated(steps: list[int]) -> list[int]:
    """The steps to label on a curve: all of few, else powers of two and the last."""
    if len(steps) <= 8:
        return steps
    return sorted({t for t in steps if t & (t - 1) == 0} | {steps[-1]})


def _table_steps(steps: list[int]) -> list[int]:
    return steps if len(steps) <= 32 else _annotated(steps)


# -- the page ----------------------------------------------------------------------------------------

def _n(v: float) -> str:
    """A count: grouped digits when whole or large, else 4 significant digits."""
    if v == 0:
        return "0"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.4g}"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _name(name: str) -> str:
    """An ONNX name in a table cell (on one line; a table too wide for the page scrolls)."""
    return f"<code>{_e(name)}</code>"


def _uj(v: float) -> str:
    return f"{v:.4g} µJ"


def _table(head: list[str], rows: list[list[str]], foot: list[str] | None = None, text_columns: int = 1) -> str:
    """A table whose first ``text_columns`` columns are text, the others numbers (right-aligned)."""
    def cells(row, tag):
        return "".join(f"<{tag}{' class=num' if k >= text_columns else ''}>{c}</{tag}>" for k, c in enumerate(row))
    body = "\n".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    tfoot = f"<tfoot><tr>{cells(foot, 'td')}</tr></tfoot>" if foot else ""
    return (f"<div class=scroll><table><thead><tr>{cells(head, 'th')}</tr></thead><tbody>\n{body}\n</tbody>{tfoot}"
            "</table></div>")


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.8em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 0.25em 1.5em; }
dl.summary dt { font-weight: 600; } dl.summary dd { margin: 0; }
.caveat { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6em 1em; margin: 1em 0; }
.convention { background: #f4f6f8; border-left: 4px solid #8aa; padding: 0.6em 1em; font-size: 0.92em; }
.ratio { font-size: 1.15em; font-weight: 600; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: 600; background: #fafafa; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
       font-size: 0.92em; }
td code { white-space: nowrap; } td.num { white-space: nowrap; }
.scroll { overflow-x: auto; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.notes li { color: #444; }
"""


def render_html(report: CostReport, images: dict[str, bytes], model: str | None = None) -> str:
    """The page; ``images`` maps a plot's key (accuracy, firing_rates, synops, accuracy_energy) to its PNG."""
    e, T = report.energy, report.timesteps
    ratio = report.snn_uj / report.ann_uj if report.ann_uj else None
    ratio_text = (f"{ratio:.3f} (the SNN needs {100 * ratio:.1f}% of the ANN's energy per sample"
                  + (f"; {1 / ratio:.1f}× less)" if 0 < ratio < 1 else ")")) if ratio is not None else "n/a"
    title = "onnx2snn cost report" + (f": {model}" if model else "")
    summary = ([("model", f"<code>{_e(model)}</code>")] if model else []) + [
               ("time steps T", str(T)), ("SNN form", _e(report.form)), ("samples", _n(report.samples)),
               ("neuron layers", str(len(report.layers))), ("weighted layers", str(len(report.weighted_layers)))]
    if report.accuracy is not None:
        top1 = _snn_top1(report)
        summary.append(("top-1 accuracy",
                        f"ANN {report.accuracy['ann_top1']:.2f}%, SNN {top1[max(top1)]:.2f}% at t = {max(top1)}"))
    energy_rows = [("energy model", _e(e.name)), ("E_MAC / E_AC", f"{e.e_mac_pj:g} pJ / {e.e_ac_pj:g} pJ"),
                   ("ANN", f"{_n(report.ann_macs_per_sample)} MACs per sample → {_uj(report.ann_uj)}"),
                   ("SNN", f"{_n(report.synops_per_sample)} SynOps + {_n(report.analog_macs_per_sample)} analog "
                           f"MACs per sample, all {T} steps → {_uj(report.snn_uj)}"),
                   ("SNN / ANN energy", f"<span class=ratio>{ratio_text}</span>")]

    def dl(rows):
        return "<dl class=summary>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"

    bipolar = any(layer.negative_spikes_per_sample > 0 for layer in report.layers)
    neuron_head = ["layer", "op", "neurons", "spikes / sample"] + (["+ / −"] if bipolar else []) + \
        ["firing rate", "silent", "SynOps / sample", "ANN MACs / sample", "SynOps / MACs"]
    neuron_rows = []
    for layer in report.layers:
        row = [_name(layer.name), _e(layer.op), _n(layer.neurons), _n(layer.spikes_per_sample)]
        if bipolar:
            row.append(f"{_n(layer.positive_spikes_per_sample)} / {_n(layer.negative_spikes_per_sample)}")
        row += [f"{layer.firing_rate:.4f}", f"{100 * layer.silent_fraction:.1f}%", _n(layer.synops_per_sample),
                _n(layer.ann_macs_per_sample),
                f"{layer.synops_per_sample / layer.ann_macs_per_sample:.3f}" if layer.ann_macs_per_sample
                else "–"]
        neuron_rows.append(row)
    n_neurons = sum(layer.neurons for layer in report.layers)
    n_spikes = sum(layer.spikes_per_sample for layer in report.layers)
    syn = sum(layer.synops_per_sample for layer in report.layers)
    macs = sum(layer.ann_macs_per_sample for layer in report.layers)
    neuron_foot = ["all", "", _n(n_neurons), _n(n_spikes)] + ([""] if bipolar else []) + \
        [f"{n_spikes / (n_neurons * T):.4f}" if n_neurons else "–", "", _n(syn), _n(macs),
         f"{syn / macs:.3f}" if macs else "–"]

    w_head = ["layer", "op", "input", "from neuron layers", "SynOps / sample", "analog MACs / sample",
              "ANN MACs / sample"]
    w_rows = [[_name(w.name), _e(w.op), "spikes" if w.spiking_input else "analog",
               "<br>".join(_name(s) for s in w.sources) or "–", _n(w.synops_per_sample),
               _n(w.analog_macs_per_sample), _n(w.ann_macs_per_sample)] for w in report.weighted_layers]
    w_foot = ["all", "", "", "", _n(report.synops_per_sample), _n(report.analog_macs_per_sample),
              _n(report.ann_macs_per_sample)]

    parts = [f"<h1>{_e(title)}</h1>",
             f"<p class=sub>Written by onnx2snn {_e(__version__)} from one run of the SNN over "
             f"{_n(report.samples)} samples; every count is per sample, averaged over them.</p>",
             "<h2>Summary</h2>", dl(summary),
             "<h2>Energy</h2>", dl(energy_rows),
             "<div class=caveat><strong>This is an estimate from operation counts, not a hardware "
             "measurement.</strong> It multiplies the counted multiply-accumulates (MACs) and synaptic "
             "operations (SynOps) by a fixed energy per operation. Memory access (loading weights, activations "
             "and membrane potentials) is not counted, nor are the neurons' own updates, pooling, additions and "
             "reshapes; on real hardware these often cost more than the arithmetic. Use the ratio to compare "
             "models, not as a power figure.</div>",
             f"<div class=convention><strong>Counting convention.</strong> {_e(CONVENTION)}</div>"]
    if report.notes:
        parts.append("<ul class=notes>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")

    def fig(key, caption):
        if key not in images:
            return ""
        data = base64.b64encode(images[key]).decode("ascii")
        return (f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{_e(caption)}\">"
                f"<figcaption>{_e(caption)}</figcaption></figure>")

    if report.accuracy is not None:
        top1 = _snn_top1(report)
        steps = _table_steps([t for t in _steps(report) if t in top1])
        rows = [[str(t), f"{top1[t]:.2f}%", f"{top1[t] - report.accuracy['ann_top1']:+.2f}",
                 _n(report.synops_per_step[t - 1]), _uj(report.snn_uj_at(t)),
                 f"{report.snn_uj_at(t) / report.ann_uj:.3f}" if report.ann_uj else "–"] for t in steps]
        parts += ["<h2>Accuracy per time step</h2>",
                  f"<p>ANN top-1: <strong>{report.accuracy['ann_top1']:.2f}%</strong>. SNN after the first t "
                  "steps (its running-mean output); energy and SynOps are those of the first t steps."
                  + ("" if len(steps) == T else f" Steps shown: powers of two and T = {T}.") + "</p>",
                  _table(["t", "SNN top-1", "vs ANN (points)", "SynOps / sample", "SNN energy / sample",
                          "SNN / ANN energy"], rows),
                  fig("accuracy", "SNN top-1 accuracy after t steps; the dashed line is the ANN."),
                  fig("accuracy_energy", "Accuracy against the SNN's energy per sample after t = 1..T steps; the "
                                         "star is the ANN.")]
    parts += ["<h2>Neuron layers</h2>",
              "<p>Per neuron layer (named by the ANN activation it replaces): spikes over all steps, firing "
              "rate = spikes / (neurons × T), silent = neurons that never fire, and the SynOps its spikes "
              "cause in the weighted layers they reach against those layers' MACs in the ANN.</p>",
              _table(neuron_head, neuron_rows, neuron_foot, text_columns=2),
              fig("firing_rates", "Firing rate per neuron layer (spikes per neuron per step)."),
              "<h2>Weighted layers</h2>",
              "<p>Layers with spiking input count SynOps; layers on analog values (such as the first layer, fed "
              "by the input) count dense MACs.</p>",
              _table(w_head, w_rows, w_foot, text_columns=4),
              fig("synops", "Operations per weighted layer: the ANN's MACs (grey) against the SNN's SynOps (blue) "
                            "or dense MACs on analog input (orange).")]
    if report.accuracy is None:
        parts += ["<h2>Energy per time step</h2>",
                  fig("accuracy_energy", "SNN energy per sample after the first t steps; the dashed line is the "
                                         "ANN.")]
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<title>{_e(title)}</title>\n"
            "<meta name=viewport content=\"width=device-width, initial-scale=1\">\n"
            f"<style>{CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``. The file gets the
    usual permissions (0666 less the umask; mkstemp's would be 0600): a report is made to be shared."""
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_html(report: CostReport, path: str | os.PathLike, model: str | None = None) -> list[Path]:
    """Write the page to ``path`` and its plots as ``<stem>_<plot>.png`` beside it, each atomically;
    returns the paths written, the page first. ``model`` names the model in the title and summary."""
    check_plotting()
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ConfigError(f"cannot write '{path}': the folder '{directory}' does not exist")
    images: dict[str, bytes] = {}
    if report.accuracy is not None:
        images["accuracy"] = plot_accuracy(report)
    if report.layers:
        images["firing_rates"] = plot_firing_rates(report)
    if report.weighted_layers:
        images["synops"] = plot_synops(report)
    images["accuracy_energy"] = plot_accuracy_energy(report)
    order = ["accuracy", "firing_rates", "synops", "accuracy_energy"]
    pngs = [(directory / f"{path.stem}_{key}.png", images[key]) for key in order if key in images]
    page = render_html(report, images, model)
    for png, data in pngs:
        _write_atomic(png, data)
    _write_atomic(path, page.encode("utf-8"))
    return [path] + [png for png, _ in pngs]
