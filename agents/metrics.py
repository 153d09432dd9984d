"""What a worker exposes to operators: Prometheus metrics and the dashboard's JSON, no Faust here.

The agent calls :meth:`WorkerMetrics.observe_batch` once per source partition of a micro-batch
(with the batch's :class:`~agents.batch.BatchResult` and the time its outputs were emitted) and
:meth:`WorkerMetrics.observe_watermark`; the web pages call :meth:`WorkerMetrics.render` (the
Prometheus text format) and :meth:`WorkerMetrics.snapshot` (``/stats.json``). Consumer lag is
read when scraped, from a callable the adapter supplies, so it is as fresh as the consumer's view.

Each app gets its own :class:`~prometheus_client.CollectorRegistry` (no global registry: apps
are built by a factory, several per test process). Metric names follow Prometheus conventions:
``_total`` counters, seconds for durations, ``_timestamp_seconds`` for times.

Model quality (online AUC and log loss per model and partition) and the experiment (settled
decisions and reward sums per variant and partition, and the lift of each variant over the
holdout with its 95% interval) are read from the partitions' learners when scraped: a summary
costs more than a batch's other bookkeeping. A figure that does not exist yet (no labels, no
settled decisions) is not exported: a made-up number would be worse than none.
"""

from __future__ import annotations

import os
import statistics
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agents.batch import BatchResult
from stream import DeadLetterReason
from stream.experiments import RewardStats

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS_S", "LagReader", "WorkerMetrics"]

#: The Prometheus text exposition format, version 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: From a few ms (the step) to a day: event-time latency of a replayed or late log is large, and
#: anything beyond a day lands in +Inf, which is the honest answer.
LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0,
)  # fmt: skip

#: Consumer lag per source partition, read at scrape time: {partition: records behind}.
LagReader = Callable[[], Mapping[int, int]]
#: Each assigned partition's model summary (``PartitionModels.summary()``) and missed labels.
ModelsReader = Callable[[], Mapping[int, tuple[dict[str, Any], int]]]

#: Each assigned partition's reward statistics per experiment variant (the policy learner's).
PolicyReader = Callable[[], Mapping[int, RewardStats]]

#: Recent latencies kept for the dashboard's percentiles (the histogram is for Prometheus).
_RECENT = 4096
_SKIP_REASONS = ("duplicate", "already_applied", "erased")
_ERASURE_OUTCOMES = ("done", "forwarded", "invalid")


class WorkerMetrics:
    """The metrics of one worker process, in a registry of its own."""

    def __init__(
        self,
        worker_id: str,
        lag: LagReader | None = None,
        models: ModelsReader | None = None,
        policy: PolicyReader | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.registry = CollectorRegistry(auto_describe=True)
        self._lag = lag or dict
        #: Read when scraped, not per batch: a summary costs ~0.3 ms (AUC over the histogram).
        self._read_models = models
        self._read_policy = policy
        #: The experiment over this worker's partitions (variant -> figures), as last read.
        self.experiment: dict[str, dict[str, Any]] = {}
        self.counters: Counter[str] = Counter()
        #: Each processed partition's latest model summary (``PartitionModels.summary()``).
        self.models: dict[int, dict[str, Any]] = {}
        self.actions: Counter[tuple[str, str]] = Counter()
        self.watermarks_ms: dict[int, int] = {}
        self._recent: dict[str, deque[float]] = {
            "kafka_to_emit": deque(maxlen=_RECENT),
            "event_to_emit": deque(maxlen=_RECENT),
        }
        self._declare()
        self.registry.register(_LagCollector(self.read_lag))

    def _declare(self) -> None:
        reg = self.registry
        self.events_in = PromCounter(
            "liveprofiles_events_in", "Records consumed from the events topic.", registry=reg
        )
        self.decisions = PromCounter(
            "liveprofiles_decisions_out",
            "Decisions sent, by chosen action and variant.",
            ["action", "variant"],
            registry=reg,
        )
        self.deadletters = PromCounter(
            "liveprofiles_deadletters", "Dead letters sent, by reason.", ["reason"], registry=reg
        )
        self.late = PromCounter(
            "liveprofiles_late_events",
            "Events older than the grace period (applied to order-free state only).",
            registry=reg,
        )
        self.skipped = PromCounter(
            "liveprofiles_skipped_events",
            "Events not applied: applied once already (duplicate messageId, redelivered source "
            "offset), or sent by a user before their erasure.",
            ["reason"],
            registry=reg,
        )
        self.notes = PromCounter(
            "liveprofiles_notes", "Other things the step noticed, by note.", ["note"], registry=reg
        )
        self.erasures = PromCounter(
            "liveprofiles_erasures",
            "Erasure requests: carried out, forwarded to the user's partition, or invalid.",
            ["outcome"],
            registry=reg,
        )
        self.evictions = PromCounter(
            "liveprofiles_idle_profiles",
            "Idle-profile sweeps: profiles looked at, and profiles evicted.",
            ["outcome"],
            registry=reg,
        )
        self.sequencing = PromCounter(
            "liveprofiles_sequenced_records",
            "Records the offset sequencer did not process on delivery: redelivered (processed "
            "already) or deferred (after a hole, or before the partition was ready).",
            ["outcome"],
            registry=reg,
        )
        self.rewinds = PromCounter(
            "liveprofiles_offset_rewinds",
            "Times a partition's consumer was sought back to a record it had skipped.",
            registry=reg,
        )
        self.event_latency = Histogram(
            "liveprofiles_event_to_decision_seconds",
            "Event time of the causing event to the decision's emission (includes device and "
            "pipeline delay; large for replays).",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.kafka_latency = Histogram(
            "liveprofiles_kafka_to_decision_seconds",
            "Kafka timestamp of the causing record to the decision's emission (processing "
            "latency, including time spent waiting in the topic).",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.watermark = Gauge(
            "liveprofiles_partition_watermark_timestamp_seconds",
            "Event-time watermark of each source partition this worker has processed.",
            ["partition"],
            registry=reg,
        )
        self.model_auc = Gauge(
            "liveprofiles_model_online_auc",
            "Progressive-validation ROC AUC of each binary model (each example is scored before"
            " it is learned), per source partition: each partition has its own models.",
            ["target", "partition"],
            registry=reg,
        )
        self.model_log_loss = Gauge(
            "liveprofiles_model_online_log_loss",
            "Progressive-validation log loss of each model, per source partition.",
            ["target", "partition"],
            registry=reg,
        )
        self.model_examples = Gauge(
            "liveprofiles_model_examples",
            "Resolved labels each model was validated on and learned from, per partition.",
            ["target", "partition"],
            registry=reg,
        )
        self.reward_sums = Gauge(
            "liveprofiles_policy_rewards",
            "Settled decisions per experiment variant and partition (stat=count), the sum of"
            " their rewards (stat=sum) and of the squares (stat=sum_squares): sums, so a query"
            " can add partitions and workers up to means and intervals.",
            ["variant", "partition", "stat"],
            registry=self.registry,
        )
        self.lift = Gauge(
            "liveprofiles_policy_lift",
            "Mean reward per settled decision of each variant minus the holdout's, over this"
            " worker's partitions, with its 95% interval (bound=estimate|low|high).",
            ["variant", "bound"],
            registry=self.registry,
        )
        self.model_missed = Gauge(
            "liveprofiles_model_missed_labels",
            "Records whose labels a crash kept from the partition's models (stream.partition).",
            ["partition"],
            registry=reg,
        )
        for reason in DeadLetterReason:  # zeros from the start: rate() and alerts need them
            self.deadletters.labels(reason.value)
        for skipped in _SKIP_REASONS:
            self.skipped.labels(skipped)
        for outcome in ("looked", "evicted"):
            self.evictions.labels(outcome)
        for outcome in _ERASURE_OUTCOMES:
            self.erasures.labels(outcome)
        for outcome in ("redelivered", "deferred"):
            self.sequencing.labels(outcome)

    def observe_erasure(self, outcome: str) -> None:
        """One erasure request: ``done``, ``forwarded`` or ``invalid`` (agents.erasure)."""
        self.counters[f"erasure:{outcome}"] += 1
        self.erasures.labels(outcome).inc()

    def observe_batch(self, result: BatchResult, emitted_at_ms: int) -> None:
        """Count one partition's share of a micro-batch whose outputs were emitted at
        ``emitted_at_ms`` (the wall-clock stamp the decisions carry)."""
        self.counters.update(result.counters)
        for key, count in result.counters.items():
            self._count(key, count)
        # Counted per (action, variant) once per batch: a labelled child lookup takes a lock,
        # and this runs in the worker's batch loop.
        mix = Counter((d.action, d.variant) for d in result.decisions)
        for (action, variant), count in mix.items():
            self.decisions.labels(action, variant).inc(count)
        self.actions.update(mix)
        for decision, record_ms in zip(result.decisions, result.decision_record_ms, strict=True):
            event_ms = emitted_at_ms - decision.event_time_ms
            self._latency("event_to_emit", self.event_latency, event_ms)
            if record_ms is not None:
                self._latency("kafka_to_emit", self.kafka_latency, emitted_at_ms - record_ms)

    def observe_sequencing(self, redelivered: int, deferred: int, rewound: bool) -> None:
        """Count one partition's records the sequencer dropped or deferred (agents.sequencer)."""
        for outcome, count in (("redelivered", redelivered), ("deferred", deferred)):
            if count:
                self.counters[f"sequencer:{outcome}"] += count
                self.sequencing.labels(outcome).inc(count)
        if rewound:
            self.counters["sequencer:rewinds"] += 1
            self.rewinds.inc()

    def _count(self, key: str, count: int) -> None:
        kind, _, detail = key.partition(":")
        if key == "events_in":
            self.events_in.inc(count)
        elif kind == "deadletter":
            self.deadletters.labels(detail).inc(count)
        elif key == "note:late_event":
            self.late.inc(count)
        elif kind == "note":
            self.notes.labels(detail).inc(count)
        elif kind == "skipped":
            self.skipped.labels(detail).inc(count)
        elif kind == "eviction":
            self.evictions.labels(detail).inc(count)
        # decisions_out is counted per decision, with its action and variant.

    def _latency(self, name: str, histogram: Histogram, took_ms: int) -> None:
        seconds = max(took_ms, 0) / 1000.0  # a clock step backwards is not a negative latency
        histogram.observe(seconds)
        self._recent[name].append(seconds * 1000.0)

    def observe_watermark(self, partition: int, watermark_ms: int | None) -> None:
        if watermark_ms is None:
            return
        self.watermarks_ms[partition] = watermark_ms
        self.watermark.labels(str(partition)).set(watermark_ms / 1000.0)

    def observe_models(self, partition: int, summary: dict[str, Any], missed: int) -> None:
        """A partition's models after a batch: ``PartitionModels.summary()`` and the labels a
        crash kept from them. A figure a model cannot have yet (no labels) is not exported."""
        label = str(partition)
        self.models[partition] = summary
        for target, figures in summary.items():
            if not isinstance(figures, dict) or not figures.get("count"):
                continue
            self.model_examples.labels(target, label).set(figures["count"])
            if figures.get("roc_auc") is not None:
                self.model_auc.labels(target, label).set(figures["roc_auc"])
            if figures.get("log_loss") is not None:
                self.model_log_loss.labels(target, label).set(figures["log_loss"])
        self.model_missed.labels(label).set(missed)

    def read_lag(self) -> dict[int, int]:
        """Consumer lag per assigned partition; empty when the consumer cannot say (yet)."""
        try:
            return dict(self._lag())
        except Exception:  # a scrape must not fail because the consumer is rebalancing
            return {}

    def refresh_models(self) -> None:
        """Take each assigned partition's model summary from the reader, if there is one."""
        if self._read_models is not None:
            for partition, (summary, missed) in self._read_models().items():
                self.observe_models(partition, summary, missed)

    def refresh_policy(self) -> None:
        """Take each assigned partition's reward statistics; export sums and the lift."""
        if self._read_policy is None:
            return
        merged = RewardStats()
        for partition, stats in self._read_policy().items():
            merged = merged.merge(stats)
            for variant in stats.variants:
                n, mean = stats.count(variant), stats.mean(variant) or 0.0
                m2 = (stats.variance(variant) or 0.0) * max(n - 1, 0)
                labels = (variant, str(partition))
                self.reward_sums.labels(*labels, "count").set(n)
                self.reward_sums.labels(*labels, "sum").set(n * mean)
                self.reward_sums.labels(*labels, "sum_squares").set(m2 + n * mean * mean)
        self.experiment = {}
        for variant in merged.variants:
            lift = merged.lift(variant) if variant != "holdout" else None
            self.experiment[variant] = {
                "settled": merged.count(variant),
                "mean_reward": merged.mean(variant),
                "lift": None if lift is None else lift.estimate,
                "lift_low": None if lift is None else lift.low,
                "lift_high": None if lift is None else lift.high,
            }
            if lift is not None:
                self.lift.labels(variant, "estimate").set(lift.estimate)
                self.lift.labels(variant, "low").set(lift.low)
                self.lift.labels(variant, "high").set(lift.high)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric of this worker."""
        self.refresh_models()
        self.refresh_policy()
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """What the dashboard shows (``/stats.json``): totals, recent latency, mix, partitions."""
        self.refresh_models()
        self.refresh_policy()
        counters = self.counters
        lag = self.read_lag()
        return {
            "worker": {"id": self.worker_id, "pid": os.getpid()},
            "events_in": counters["events_in"],
            "decisions_out": counters["decisions_out"],
            "deadletters": _by_prefix(counters, "deadletter:"),
            "late_events": counters["note:late_event"],
            "skipped": _by_prefix(counters, "skipped:"),
            "evictions": _by_prefix(counters, "eviction:"),
            "erasures": _by_prefix(counters, "erasure:"),
            "actions": _nested(self.actions.items()),
            "latency_ms": {name: _summary(values) for name, values in self._recent.items()},
            "partitions": {
                str(p): {"watermark_ms": self.watermarks_ms.get(p), "lag": lag.get(p)}
                for p in sorted(set(self.watermarks_ms) | set(lag))
            },
            "experiment": self.experiment,
            "rewards_out": counters["rewards_out"],
            "models": [
                {"partition": partition, "target": target, **figures}
                for partition, summary in sorted(self.models.items())
                for target, figures in summary.items()
                if isinstance(figures, dict) and figures.get("count")
            ],
        }


class _LagCollector(Collector):
    """``liveprofiles_consumer_lag``, computed when scraped."""

    def __init__(self, read: LagReader) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "liveprofiles_consumer_lag",
            "Records behind the high water, per assigned events partition (high water minus "
            "the next offset this worker will process).",
            labels=["partition"],
        )
        for partition, lag in sorted(self._read().items()):
            family.add_metric([str(partition)], lag)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("liveprofiles_consumer_lag", "", labels=["partition"])


def _by_prefix(counters: Counter[str], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): n for k, n in sorted(counters.items()) if k.startswith(prefix)}


def _nested(pairs: Iterable[tuple[tuple[str, str], int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (action, variant), count in sorted(pairs):
        out.setdefault(action, {})[variant] = count
    return out


def _summary(values: deque[float]) -> dict[str, float | int | None]:
    if len(values) < 2:
        only = values[0] if values else None
        return {"n": len(values), "p50": only, "p95": only, "p99": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"n": len(values), "p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}
