"""agents.metrics: batch results to Prometheus metrics and the dashboard's JSON, no Faust."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from agents.batch import BatchResult, RawRecord, process_records
from agents.metrics import WorkerMetrics
from stream import SourcePosition, StepConfig
from stream.experiments import RewardStats
from stream.timeutil import ms_to_iso
from tests.support import INVALID_EVENTS, viewed_event

EVENT_MS = 1_700_000_000_000
KAFKA_MS = EVENT_MS + 40
EMITTED_MS = EVENT_MS + 100


def _event(i: int, user: str) -> bytes:
    return viewed_event(i, user, ms_to_iso(EVENT_MS))


def _batch(values: list[bytes]) -> BatchResult:
    records = [
        RawRecord(SourcePosition("events", 0, i), None, v, timestamp_ms=KAFKA_MS)
        for i, v in enumerate(values)
    ]
    return process_records(records, lambda _: None, StepConfig())


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_real_batch_counts_events_decisions_dead_letters_and_duplicates() -> None:
    valid = [_event(i, f"u{i % 2}") for i in range(4)]
    duplicate = _event(0, "u0")  # same messageId: applied once
    result = _batch([*valid, *(raw for raw, _ in INVALID_EVENTS), duplicate])
    metrics = WorkerMetrics("w1")

    metrics.observe_batch(result, EMITTED_MS)
    samples = _samples(metrics)

    assert samples[("liveprofiles_events_in_total", ())] == 4 + len(INVALID_EVENTS) + 1
    decided = {
        labels: n
        for (name, labels), n in samples.items()
        if name == "liveprofiles_decisions_out_total"
    }
    assert sum(decided.values()) == 4
    assert all(dict(labels)["variant"] == "champion" for labels in decided)
    expected = Counter(reason for _, reason in INVALID_EVENTS)
    for reason, count in expected.items():
        assert samples[("liveprofiles_deadletters_total", (("reason", reason),))] == count
    assert samples[("liveprofiles_deadletters_total", (("reason", "processing_error"),))] == 0
    assert samples[("liveprofiles_skipped_events_total", (("reason", "duplicate"),))] == 1


def test_latency_histograms_measure_from_event_time_and_from_the_kafka_timestamp() -> None:
    metrics = WorkerMetrics("w1")
    metrics.observe_batch(_batch([_event(i, "u") for i in range(3)]), EMITTED_MS)
    samples = _samples(metrics)

    def bucket(name: str, le: str) -> float:
        return samples[(f"liveprofiles_{name}_seconds_bucket", (("le", le),))]

    # Kafka -> emit is 60 ms: not within 50 ms, within 100 ms. Event -> emit is 100 ms.
    assert bucket("kafka_to_decision", "0.05") == 0 and bucket("kafka_to_decision", "0.1") == 3
    assert samples[("liveprofiles_kafka_to_decision_seconds_sum", ())] == 3 * 0.06
    assert bucket("event_to_decision", "0.05") == 0 and bucket("event_to_decision", "0.1") == 3
    latency = metrics.snapshot()["latency_ms"]
    assert latency["kafka_to_emit"] == {"n": 3, "p50": 60.0, "p95": 60.0, "p99": 60.0}


def test_a_fake_result_maps_notes_evictions_and_watermarks() -> None:
    fake = BatchResult(
        counters=Counter(
            {
                "events_in": 5,
                "note:late_event": 2,
                "note:key_mismatch": 1,
                "skipped:already_applied": 3,
                "eviction:looked": 10,
                "eviction:evicted": 4,
            }
        )
    )
    metrics = WorkerMetrics("w1", lag=lambda: {0: 7, 3: 0})
    metrics.observe_batch(fake, EMITTED_MS)
    metrics.observe_watermark(3, EVENT_MS)
    metrics.observe_watermark(1, None)  # unknown yet: no sample
    samples = _samples(metrics)

    assert samples[("liveprofiles_late_events_total", ())] == 2
    assert samples[("liveprofiles_notes_total", (("note", "key_mismatch"),))] == 1
    assert samples[("liveprofiles_skipped_events_total", (("reason", "already_applied"),))] == 3
    assert samples[("liveprofiles_idle_profiles_total", (("outcome", "evicted"),))] == 4
    assert samples[("liveprofiles_idle_profiles_total", (("outcome", "looked"),))] == 10
    watermark = "liveprofiles_partition_watermark_timestamp_seconds"
    assert samples[(watermark, (("partition", "3"),))] == EVENT_MS / 1000
    assert (watermark, (("partition", "1"),)) not in samples
    assert samples[("liveprofiles_consumer_lag", (("partition", "0"),))] == 7
    partitions = metrics.snapshot()["partitions"]
    assert partitions == {
        "0": {"watermark_ms": None, "lag": 7},
        "3": {"watermark_ms": EVENT_MS, "lag": 0},
    }


def test_model_quality_is_declared_without_made_up_samples() -> None:
    metrics = WorkerMetrics("w1")
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}

    for name in ("liveprofiles_model_online_auc", "liveprofiles_model_online_log_loss"):
        assert families[name].type == "gauge" and families[name].samples == []
    assert metrics.snapshot()["models"] == []

    summary = {
        "conversion": {"count": 40, "positives": 4, "roc_auc": 0.71, "log_loss": 0.42},
        "abandonment": {"count": 0, "positives": 0, "roc_auc": None, "log_loss": None},
        "next_category": {"count": 30, "k": 3, "accuracy": 0.2, "top_k": 0.5, "log_loss": 2.1},
        "refused": 0,
    }
    metrics.observe_models(2, summary, missed=3)
    samples = _samples(metrics)
    conversion = (("partition", "2"), ("target", "conversion"))
    assert samples[("liveprofiles_model_online_auc", conversion)] == 0.71
    assert samples[("liveprofiles_model_examples", conversion)] == 40
    assert samples[("liveprofiles_model_missed_labels", (("partition", "2"),))] == 3
    # no labels yet: no figures made up for abandonment
    assert not any(
        labels == (("target", "abandonment"), ("partition", "2")) for _, labels in samples
    )
    assert [(m["partition"], m["target"]) for m in metrics.snapshot()["models"]] == [
        (2, "conversion"),
        (2, "next_category"),
    ]


def test_a_failing_lag_reader_does_not_fail_the_scrape() -> None:
    def rebalancing() -> dict[int, int]:
        raise RuntimeError("no assignment yet")

    metrics = WorkerMetrics("w1", lag=rebalancing)
    assert b"liveprofiles_consumer_lag" in metrics.render()
    assert metrics.snapshot()["partitions"] == {}


def test_registries_are_per_app() -> None:
    first, second = WorkerMetrics("a"), WorkerMetrics("b")
    first.observe_batch(BatchResult(counters=Counter({"events_in": 2})), EMITTED_MS)
    assert _samples(second)[("liveprofiles_events_in_total", ())] == 0


def test_model_figures_are_read_when_scraped() -> None:
    summaries = {1: ({"conversion": {"count": 5, "roc_auc": 0.6, "log_loss": 0.5}}, 0)}
    metrics = WorkerMetrics("w1", models=lambda: summaries)
    assert metrics.snapshot()["models"] == [
        {"partition": 1, "target": "conversion", "count": 5, "roc_auc": 0.6, "log_loss": 0.5}
    ]
    summaries[1] = ({"conversion": {"count": 9, "roc_auc": 0.7, "log_loss": 0.4}}, 2)
    samples = _samples(metrics)
    assert (
        samples[("liveprofiles_model_online_auc", (("partition", "1"), ("target", "conversion")))]
        == 0.7
    )
    assert samples[("liveprofiles_model_missed_labels", (("partition", "1"),))] == 2


def test_the_experiment_is_read_when_scraped_and_adds_up_across_partitions() -> None:
    rng = random.Random(5)
    stats = {0: RewardStats(), 3: RewardStats()}
    rewards: dict[str, list[float]] = {"holdout": [], "champion": []}
    arms = [(0, "holdout", 0.1), (3, "holdout", 0.1), (0, "champion", 0.3), (3, "champion", 0.3)]
    for partition, variant, p in arms:
        for _ in range(400):
            reward = float(rng.random() < p)
            stats[partition].observe(variant, reward)
            rewards[variant].append(reward)
    metrics = WorkerMetrics("w1", policy=lambda: stats)
    samples = _samples(metrics)

    def sample(variant: str, partition: int, stat: str) -> float:
        key = (("partition", str(partition)), ("stat", stat), ("variant", variant))
        return samples[("liveprofiles_policy_rewards", key)]

    # per-partition sums add up to the whole: what a query across workers does
    for variant, values in rewards.items():
        assert sum(sample(variant, p, "count") for p in (0, 3)) == len(values)
        assert math.isclose(sum(sample(variant, p, "sum") for p in (0, 3)), sum(values))
        squares = sum(sample(variant, p, "sum_squares") for p in (0, 3))
        assert math.isclose(squares, sum(v * v for v in values), rel_tol=1e-9)
    lift = statistics.mean(rewards["champion"]) - statistics.mean(rewards["holdout"])
    estimate = samples[
        ("liveprofiles_policy_lift", (("bound", "estimate"), ("variant", "champion")))
    ]
    low = samples[("liveprofiles_policy_lift", (("bound", "low"), ("variant", "champion")))]
    high = samples[("liveprofiles_policy_lift", (("bound", "high"), ("variant", "champion")))]
    assert math.isclose(estimate, lift) and low < estimate < high and low > 0
    assert not any(
        name == "liveprofiles_policy_lift" and ("variant", "holdout") in labels
        for name, labels in samples
    )
    experiment = metrics.snapshot()["experiment"]
    assert experiment["champion"]["settled"] == 800
    assert experiment["holdout"]["lift"] is None
