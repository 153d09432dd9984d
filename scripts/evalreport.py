"""The evaluation's report: ``report.md`` and its PNG plots, from :mod:`scripts.evaluate`'s figures.

Plots are drawn on matplotlib's Agg canvas directly (no pyplot, no display), as
:mod:`scripts.benchplot` does: per binary target a ROC plot (online against the baselines) and a
reliability diagram, and one plot of AUC and log loss over the examples in the order learned.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from scripts.evaluate import BINARY_TARGETS, log_loss, roc_auc, roc_curve

if TYPE_CHECKING:
    from scripts.evaluate import BinaryEval, Floats

__all__ = ["FEW_POSITIVES", "block_metrics", "render_markdown", "write_report"]

#: Fewer positives than this (after the warm-up) and the report says the figures are noisy.
FEW_POSITIVES = 100
#: A running base rate whose AUC is this far from 0.5 means the label mix drifts with the order.
DRIFT_AUC = 0.1
OVER_TIME = "over_time.png"


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plot_roc(path: Path, target: str, ev: BinaryEval) -> None:
    figure = _figure(6, 5.5)
    axes = figure.add_subplot()
    after = slice(ev.warmup, len(ev.labels))
    y = ev.labels[after]
    curves: list[tuple[str, Floats, Any]] = [
        ("online", ev.online[after], y),
        ("base rate", ev.base_rate[after], y),
        ("popularity", ev.popularity[after], y),
    ]
    curves += [(name, scores, labels) for name, (scores, labels) in ev.extra_curves.items()]
    for name, scores, labels in curves:
        if len(labels) == 0 or labels.all() or not labels.any():
            continue
        fpr, tpr = roc_curve(scores, labels)
        axes.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(scores, labels):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(f"{target}: ROC after warm-up", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.savefig(path, format="png")


def _plot_calibration(path: Path, target: str, ev: BinaryEval) -> None:
    figure = _figure(6, 6)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    after = slice(ev.warmup, len(ev.labels))
    y = ev.labels[after].astype(np.float64)
    edges = np.linspace(0.0, 1.0, 11)
    for offset, (name, p, style) in enumerate(
        (("online", ev.online[after], "o-"), ("popularity", ev.popularity[after], "s--"))
    ):
        index = np.minimum((p * 10).astype(np.int64), 9)
        counts = np.bincount(index, minlength=10)
        full = counts > 0
        mean_p = np.bincount(index, weights=p, minlength=10)[full] / counts[full]
        rate = np.bincount(index, weights=y, minlength=10)[full] / counts[full]
        top.plot(mean_p, rate, style, label=name)
        bottom.bar(edges[:-1] + 0.05 * offset, counts, width=0.05, align="edge", label=name)
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    top.set_ylabel("observed positive rate")
    top.set_title(f"{target}: reliability after warm-up (10 bins)", fontsize=10)
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    bottom.set_yscale("symlog")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("examples")
    bottom.set_xlim(0, 1)
    figure.savefig(path, format="png")


def block_metrics(
    scores: Floats, labels: Any, blocks: int = 25, min_block: int = 50
) -> tuple[Floats, Floats, Floats]:
    """(block end index, AUC, log loss) over consecutive blocks of the examples in the order
    learned (AUC is NaN in a block without both classes)."""
    n = len(labels)
    size = max(min_block, -(-n // blocks))
    ends, aucs, losses = [], [], []
    for start in range(0, n, size):
        stop = min(start + size, n)
        ends.append(stop)
        aucs.append(roc_auc(scores[start:stop], labels[start:stop]))
        losses.append(log_loss(scores[start:stop], labels[start:stop]))
    return np.asarray(ends, float), np.asarray(aucs, float), np.asarray(losses, float)


def _plot_over_time(path: Path, binary: Mapping[str, BinaryEval]) -> None:
    figure = _figure(11, 4 * len(binary))
    rows = figure.subplots(len(binary), 2, squeeze=False)
    for (auc_axes, loss_axes), (target, ev) in zip(rows, binary.items(), strict=True):
        for name, scores in (
            ("online", ev.online),
            ("base rate", ev.base_rate),
            ("popularity", ev.popularity),
        ):
            ends, aucs, losses = block_metrics(scores, ev.labels)
            if name != "base rate":  # the running rate barely moves within a block: AUC ~ 0.5
                auc_axes.plot(ends, aucs, ".-", label=name)
            loss_axes.plot(ends, losses, ".-", label=name)
        for axes, what in ((auc_axes, "AUC"), (loss_axes, "log loss")):
            axes.axvline(ev.warmup, color="grey", linestyle=":", label="end of warm-up")
            axes.set_title(f"{target}: {what} per block of examples", fontsize=10)
            axes.set_xlabel("examples learned")
            axes.grid(True, alpha=0.3)
            axes.legend(fontsize=8)
        auc_axes.set_ylim(0.0, 1.0)
    figure.savefig(path, format="png")


# -- markdown ----------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _row(name: str, figures: Mapping[str, Any] | None) -> str:
    if figures is None:
        return f"| {name} | n/a | n/a | n/a | n/a | n/a |"
    return (
        f"| {name} | {figures['examples']:,} | {figures['positives']:,} | {_num(figures['auc'])}"
        f" | {_num(figures['log_loss'])} | {_num(figures['brier'])} |"
    )


def _binary_section(target: str, m: Mapping[str, Any], feature: str) -> list[str]:
    online, baselines = m["online"], m["baselines"]
    after = online["after_warmup"]
    n, k = m["examples"], m["positives"]
    rate = f" ({k / n:.1%})" if n else ""
    lines = [
        f"## {target}",
        "",
        f"{n:,} examples, {k:,} positives{rate}; the first {m['warmup_examples']:,} are the"
        f" warm-up, leaving {after['examples']:,} examples with {after['positives']:,} positives.",
    ]
    if after["positives"] < FEW_POSITIVES or after["examples"] - after["positives"] < FEW_POSITIVES:
        lines += [
            "",
            f"**Few examples of one class after the warm-up ({after['positives']:,} positives,"
            f" {after['examples'] - after['positives']:,} negatives): the figures below are"
            " noisy; differences of a few hundredths mean little.**",
        ]
    batch = baselines["batch_logistic"]
    penalty = f", L2 {batch['l2']:g}" if "l2" in batch else ""
    lines += [
        "",
        "| scorer | examples | positives | ROC AUC | log loss | Brier |",
        "|---|---:|---:|---:|---:|---:|",
        _row("online, all examples", online["all"]),
        _row("**online, after warm-up**", after),
        _row("base rate (running), after warm-up", baselines["base_rate"]),
        _row(f"popularity ({feature} bucket), after warm-up", baselines["popularity"]),
        _row("online, second half", batch["online_on_test"]),
        _row(f"batch logistic (fit on first half{penalty}), second half", batch["test"]),
    ]
    planted = baselines.get("planted_truth")
    if planted is not None:
        figures = {**planted, "log_loss": None, "brier": None}
        lines.append(_row("planted propensity (synthetic truth), after warm-up", figures))
    if batch["test"] is None:
        lines += ["", f"Batch logistic regression: {batch['note']}."]
    lines += ["", _verdict(target, m), ""]
    drift = baselines["base_rate"]["auc"]
    if drift is not None and abs(drift - 0.5) > DRIFT_AUC:
        lines += [
            f"Caution: the running base rate alone has AUC {drift:.3f}, so the label mix changes"
            " along the order learned. Labels resolve after different delays (an order resolves"
            " a conversion at once, a non-conversion only once the horizon has passed), and at"
            " the end of a log only the quick outcomes still resolve: on a log a few horizons"
            " long, the order learned itself predicts the label, and every progressive score,"
            " the online model's too, carries that.",
            "",
        ]
    if planted is not None:
        lines += [_planted_sentence(planted), ""]
    lines += [
        "Calibration of the online model after warm-up:",
        "",
        "| predicted | examples | mean predicted | observed rate |",
        "|---|---:|---:|---:|",
        *(
            f"| {lo:.1f}-{hi:.1f} | {row['count']:,} | {_num(row['mean_predicted'])}"
            f" | {_num(row['observed_rate'])} |"
            for row in m["calibration"]
            for lo, hi in [row["bin"]]
        ),
        "",
        f"![ROC, {target}](roc_{target}.png) ![calibration, {target}](calibration_{target}.png)",
        "",
    ]
    return lines


def _verdict(target: str, m: Mapping[str, Any]) -> str:
    after = m["online"]["after_warmup"]
    parts = []
    for name, label in (("base_rate", "base rate"), ("popularity", "popularity")):
        beats, base = m["beats"][name], m["baselines"][name]
        if beats["auc"] is None or beats["log_loss"] is None:
            parts.append(f"cannot be compared with {label} (a class is missing)")
            continue
        both = beats["auc"] and beats["log_loss"]
        verb = "beat" if both else ("did not beat" if not beats["auc"] else "partly beat")
        parts.append(
            f"{verb} {label} (AUC {_num(after['auc'])} vs {_num(base['auc'])},"
            f" log loss {_num(after['log_loss'])} vs {_num(base['log_loss'])})"
        )
    return (
        f"**Verdict ({target}):** after the warm-up the online model " + "; it ".join(parts) + "."
    )


def _planted_sentence(planted: Mapping[str, Any]) -> str:
    gap = planted["online_minus_planted"]
    if gap is None:
        return "Planted truth: no AUC (a class is missing)."
    within = "within" if planted["within_0_05"] else "NOT within"
    return (
        f"Planted truth: the users' planted propensity as the score has AUC"
        f" {_num(planted['auc'])} on these examples; the online model's is"
        f" {_num(planted['online_auc'])}, {gap:+.3f} from it: {within} the issue's 0.05."
        " (Propensity is a per-user constant; the model also sees the session, so it can"
        " exceed it.)"
    )


def _category_section(m: Mapping[str, Any]) -> list[str]:
    online, popular = m["online"], m["popularity"]
    lines = [
        "## next_category",
        "",
        f"{m['examples']:,} examples over {m['categories']:,} categories; the first"
        f" {m['warmup_examples']:,} are the warm-up.",
        "",
        "| scorer | top-1 accuracy | top-3 hit rate |",
        "|---|---:|---:|",
        f"| online | {_num(online['top1'])} | {_num(online['top3'])} |",
        f"| popularity (most frequent so far) | {_num(popular['top1'])} |"
        f" {_num(popular['top3'])} |",
        "",
    ]
    if online["top3"] is not None and popular["top3"] is not None:
        better = online["top3"] > popular["top3"]
        lines += [
            f"**Verdict (next_category):** the online model {'beat' if better else 'did not beat'}"
            f" popularity on top-3 hit rate ({_num(online['top3'])} vs {_num(popular['top3'])}).",
            "",
        ]
    return lines


def render_markdown(metrics: Mapping[str, Any]) -> str:
    """``report.md`` for ``metrics`` (the figures of ``metrics.json``)."""
    data, targets = metrics["data"], metrics["targets"]
    feature = data["popularity_feature"]
    lines = [
        f"# Evaluation of the online models: {data['name']}",
        "",
        f"Data: {data['description']}.",
        f"Replayed offline with {data['partitions']} partitions (each has its own models):"
        f" {data['events']:,} events from {data['users']:,} user keys"
        f" ({data['dead_letters']:,} lines dead-lettered).",
        "",
        "Every figure is progressive: each example is scored by the model as it was before"
        " learning that example. The warm-up (the first"
        f" {data['warmup_fraction']:.0%} of each target's examples, in the order learned) is left"
        " out of the 'after warm-up' figures and of the baselines. Baselines: **base rate** is"
        " the running positive rate (Laplace-smoothed, predict then update); **popularity** is"
        f" the running positive rate of the examples in the same bucket of the session's event"
        f" count (model input `{feature}`, buckets {', '.join(data['popularity_buckets'])}"
        " events), predict then update; **batch logistic** is an L2-regularized logistic"
        " regression (Newton/IRLS, numpy) on all model inputs, standardized with the first"
        " half's mean and standard deviation, fit on the first half of the examples (the penalty"
        " chosen by log loss on the last quarter of that half) and tested on the second half,"
        " next to the online model on the same second half.",
        "",
    ]
    for target in BINARY_TARGETS:
        lines += _binary_section(target, targets[target], feature)
    lines += _category_section(targets["next_category"])
    lines += [
        "## Over time",
        "",
        "AUC and log loss per block of consecutive examples, in the order learned:",
        "",
        f"![metrics over time]({OVER_TIME})",
        "",
    ]
    return "\n".join(lines)


def write_report(out: Path, metrics: Mapping[str, Any], binary: Mapping[str, BinaryEval]) -> Path:
    """Write ``report.md`` and the plots into ``out``; return the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    for target, ev in binary.items():
        _plot_roc(out / f"roc_{target}.png", target, ev)
        _plot_calibration(out / f"calibration_{target}.png", target, ev)
    _plot_over_time(out / OVER_TIME, binary)
    report = out / "report.md"
    report.write_text(render_markdown(metrics), encoding="utf-8")
    return report
