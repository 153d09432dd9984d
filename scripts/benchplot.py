"""The benchmark's plot: event-to-decision latency (p50/p95/p99) against offered load, with the
sustained peak marked, drawn from the JSON report :mod:`scripts.bench` writes.

Rendered with matplotlib's Agg canvas directly (no pyplot: no global figure state, no display
needed). matplotlib is the ``bench`` extra, imported here only, so the worker never needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, ScalarFormatter

__all__ = ["ReportError", "render_plot"]

_QUANTILES = (("p50", "o-"), ("p95", "s-"), ("p99", "^-"))


class ReportError(ValueError):
    """A report without the end-to-end results the plot needs."""


class _Load(NamedTuple):
    offered: float  # events/s
    fraction: float  # of the peak
    complete: bool  # every decision arrived
    latency_ms: dict[str, float]  # p50, p95, p99


def render_plot(report: Mapping[str, Any], path: Path) -> Path:
    """Draw the report's latency-against-load curves into ``path`` (PNG); return ``path``."""
    loads, peak = _end_to_end(report)
    figure = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    offered = [load.offered for load in loads]
    for name, style in _QUANTILES:
        axes.plot(offered, [load.latency_ms[name] for load in loads], style, label=name)
    for load in loads:
        _label(axes, load)
    axes.axvline(peak, color="tab:red", linestyle="--", label=f"peak: {peak:,.0f} events/s")
    _decorate(axes, report)
    axes.set_xlim(0, max([peak, *offered]) * 1.08)
    axes.margins(y=0.15)  # room for the labels above the highest p99
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _end_to_end(report: Mapping[str, Any]) -> tuple[list[_Load], float]:
    """The offered loads (by increasing rate) and the peak, or :class:`ReportError`."""
    try:
        e2e = report["end_to_end"]
        peak = float(e2e["peak"]["achieved_events_per_s"])
        loads = sorted(_load(load) for load in e2e["loads"])
    except (TypeError, KeyError, ValueError) as exc:
        raise ReportError(
            "no end-to-end results with a peak and p50/p95/p99 latencies per offered load "
            "(was the benchmark run with --skip-e2e?)"
        ) from exc
    if not loads:
        raise ReportError("no offered loads in the end-to-end results (--loads was empty)")
    return loads, peak


def _load(doc: Mapping[str, Any]) -> _Load:
    latency = {name: float(doc["latency_ms"][name]) for name, _ in _QUANTILES}
    fraction = float(doc.get("fraction_of_peak", 0.0))
    return _Load(
        float(doc["offered_events_per_s"]), fraction, bool(doc.get("complete", True)), latency
    )


def _label(axes: Axes, load: _Load) -> None:
    """Name a load by its share of the peak, above its p99 point; flag an incomplete run."""
    text = f"{load.fraction:.0%}" + ("" if load.complete else " (incomplete)")
    axes.annotate(
        text,
        (load.offered, load.latency_ms["p99"]),
        textcoords="offset points",
        xytext=(0, 8),
        ha="center",
        fontsize=8,
    )


def _decorate(axes: Axes, report: Mapping[str, Any]) -> None:
    e2e = report["end_to_end"]
    title = (
        f"end to end: {e2e.get('workers', '?')} workers, {e2e.get('partitions', '?')} partitions"
    )
    pure = report.get("pure_step", {}).get("median_events_per_s")
    if pure is not None:
        title += f"; pure step {pure:,} events/s on one core"
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("offered load (events/s)")
    axes.set_ylabel("event-to-decision latency (ms, log scale)")
    axes.set_yscale("log")  # p50 at low load and p99 near the peak are orders of magnitude apart
    axes.yaxis.set_major_formatter(ScalarFormatter())  # 100, not 10^2
    axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))  # 300, not 3x10^2
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left")
