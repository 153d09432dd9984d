"""Evaluate the online models offline: replay a log, compare them with baselines, write a report.

    python -m scripts.evaluate --synthetic 1000,14,1
    python -m scripts.evaluate --rees46 ../shared/data/rees46/events.csv
    python -m scripts.evaluate --taobao ../shared/data/taobao/user_behavior.csv
    python -m scripts.evaluate events.ndjson.gz --partitions 4 --out artifacts/eval/mylog

The log is replayed exactly as ``python -m scripts.replay --offline`` does (one learner per
partition, labels resolved in event time), and every example a model learns is recorded with the
prediction it was validated with *before* learning it (progressive validation). From those:

* per binary target (conversion, abandonment): examples, positives, ROC AUC (exact, rank based),
  log loss and Brier score, overall and after a warm-up (the first ``--warmup`` fraction of the
  target's examples, in the order learned, is left out), and a 10-bin calibration table;
* baselines on the same examples after the warm-up: the running base rate; the running rate of
  the examples in the same bucket of the user's session event count ("popularity"); a batch
  logistic regression trained on the first half of the examples and tested on the second (next
  to the online model on that second half); and, for a synthetic log, the users' planted
  conversion propensity used as the score (the AUC the issue asks the online model to come
  within 0.05 of);
* next category: top-1 accuracy and top-3 hit rate against the most frequent categories so far.

The report is ``report.md`` with PNG plots and ``metrics.json`` (same figures) in ``--out``
(default ``artifacts/eval/<name>``). Same input, same numbers.

Exit codes: 0 done; 2 a usage error, a missing or unreadable file, or a file in the wrong format
(one line on stderr); 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from tqdm import tqdm

from scripts.cli import InputError, run_reporting
from scripts.importer import FormatError, encode_events, import_file
from scripts.replay import LogError, read_lines
from stream.config import StepConfig
from stream.deadletter import DeadLetter
from stream.importers import ImportStats
from stream.labels import ABANDONMENT, CONVERSION, NEXT_CATEGORY, Example
from stream.models.inputs import model_inputs
from stream.partition import PartitionLearner
from stream.replay import DEFAULT_PARTITIONS, replay_outputs
from stream.synthetic import GeneratorConfig, encode_ndjson, generate_events, user_traits

__all__ = [
    "BINARY_TARGETS",
    "POPULARITY_FEATURE",
    "BinaryLog",
    "CategoryLog",
    "Collector",
    "InputError",
    "LogisticFit",
    "base_rate_scores",
    "brier",
    "bucket_rate_scores",
    "calibration",
    "choose_l2",
    "evaluate",
    "fit_logistic",
    "log_loss",
    "main",
    "popularity_top_k",
    "roc_auc",
    "roc_curve",
    "session_bucket",
]

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]

BINARY_TARGETS = (CONVERSION, ABANDONMENT)
#: The model input the popularity baseline buckets on (see :func:`session_bucket`).
POPULARITY_FEATURE = "log_session_events"
#: Bucket names of :func:`session_bucket`: the session's event count, in powers of two.
SESSION_BUCKETS = ("1", "2-3", "4-7", "8-15", "16-31", "32+")
_EPS = 1e-15


# -- what the observer sees --------------------------------------------------------------------


@dataclass(slots=True)
class BinaryLog:
    """One binary target's examples, in the order learned."""

    at_ms: list[int] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    predictions: list[float] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)
    inputs: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def matrix(self, width: int) -> Floats:
        """The examples' inputs as an (examples x inputs) float64 array."""
        flat = np.frombuffer(b"".join(self.inputs), dtype="<f4")
        return flat.reshape(len(self.inputs), width).astype(np.float64)


@dataclass(slots=True)
class CategoryLog:
    """Next-category examples: the online model's top 3 before learning, and the category."""

    users: list[str] = field(default_factory=list)
    top: list[tuple[str, ...]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


class Collector:
    """The learners' observer: records every (target, at_ms, user, prediction, label, inputs)."""

    def __init__(self) -> None:
        self.binary = {target: BinaryLog() for target in BINARY_TARGETS}
        self.category = CategoryLog()

    def __call__(
        self, user: str, example: Example, prediction: float | list[tuple[str, float]]
    ) -> None:
        if example.target == NEXT_CATEGORY:
            assert isinstance(prediction, list)
            self.category.users.append(user)
            self.category.top.append(tuple(label for label, _ in prediction[:3]))
            self.category.labels.append(str(example.label))
            return
        assert isinstance(prediction, float | int)
        log = self.binary[example.target]
        log.at_ms.append(example.at_ms)
        log.users.append(user)
        log.predictions.append(float(prediction))
        log.labels.append(bool(example.label))
        log.inputs.append(example.inputs)


# -- metrics -----------------------------------------------------------------------------------


def roc_auc(scores: Sequence[float] | Floats, labels: Sequence[bool] | Bools) -> float:
    """ROC AUC: the chance a random positive scores above a random negative, ties counting
    half (Mann-Whitney U from average ranks); NaN without both classes.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    >>> roc_auc([0.5, 0.5], [False, True])
    0.5
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranked = s[order]
    # Average rank (1-based) of each run of tied scores.
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(ranked)]
    run_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    u = ranks[y].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def roc_curve(
    scores: Sequence[float] | Floats, labels: Sequence[bool] | Bools
) -> tuple[Floats, Floats]:
    """(false positive rates, true positive rates) at every distinct threshold, from (0, 0)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_run = np.r_[s[1:] != s[:-1], True]
    tp = np.cumsum(y)[last_of_run]
    fp = np.cumsum(~y)[last_of_run]
    tpr = np.r_[0.0, tp / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, fp / max(int((~y).sum()), 1)]
    return fpr, tpr


def log_loss(p: Sequence[float] | Floats, labels: Sequence[bool] | Bools) -> float:
    """Mean negative log-likelihood (probabilities clipped to [1e-15, 1 - 1e-15]); NaN if empty.

    >>> round(log_loss([0.5, 0.5], [True, False]), 6)
    0.693147
    """
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    y = np.asarray(labels, dtype=bool)
    if len(y) == 0:
        return math.nan
    return float(-np.mean(np.where(y, np.log(q), np.log1p(-q))))


def brier(p: Sequence[float] | Floats, labels: Sequence[bool] | Bools) -> float:
    """Mean squared error of the probabilities; NaN if empty.

    >>> brier([1.0, 0.5], [True, False])
    0.125
    """
    q = np.asarray(p, dtype=np.float64)
    if len(q) == 0:
        return math.nan
    return float(np.mean((q - np.asarray(labels, dtype=np.float64)) ** 2))


def calibration(
    p: Sequence[float] | Floats, labels: Sequence[bool] | Bools, bins: int = 10
) -> list[dict[str, Any]]:
    """Reliability table: equal-width probability bins with their count, mean predicted
    probability and observed positive rate (``None`` for an empty bin)."""
    q = np.asarray(p, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    index = np.minimum((q * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        rows.append(
            {
                "bin": [b / bins, (b + 1) / bins],
                "count": count,
                "mean_predicted": _finite(float(q[mask].mean())) if count else None,
                "observed_rate": _finite(float(y[mask].mean())) if count else None,
            }
        )
    return rows


# -- baselines ---------------------------------------------------------------------------------


def base_rate_scores(labels: Sequence[bool] | Bools) -> Floats:
    """Predict-then-update running positive rate, Laplace-smoothed: ``(k + 1) / (n + 2)`` after
    ``k`` positives in ``n`` labels (so the first prediction is 0.5 and none is 0 or 1).

    >>> base_rate_scores([True, False, False, True]).tolist()
    [0.5, 0.6666666666666666, 0.5, 0.4]
    """
    y = np.asarray(labels, dtype=np.float64)
    seen = np.arange(len(y), dtype=np.float64)
    positives = np.r_[0.0, np.cumsum(y)[:-1]] if len(y) else y
    return (positives + 1.0) / (seen + 2.0)


def bucket_rate_scores(buckets: Sequence[int], labels: Sequence[bool] | Bools) -> Floats:
    """Predict-then-update running positive rate per bucket, with one pseudo-example at the
    overall running rate (:func:`base_rate_scores`): ``(k_b + r) / (n_b + 1)``, so a new bucket
    starts at the overall rate.

    >>> bucket_rate_scores([0, 1, 0, 1], [True, False, True, False]).tolist()
    [0.5, 0.6666666666666666, 0.75, 0.3]
    """
    overall = base_rate_scores(labels)
    out = np.empty(len(overall), dtype=np.float64)
    seen: Counter[int] = Counter()
    positives: Counter[int] = Counter()
    for i, (bucket, label) in enumerate(zip(buckets, labels, strict=True)):
        out[i] = (positives[bucket] + overall[i]) / (seen[bucket] + 1)
        seen[bucket] += 1
        positives[bucket] += bool(label)
    return out


def session_bucket(log_session_events: float) -> int:
    """Index into :data:`SESSION_BUCKETS` of a ``log1p(session events)`` input.

    >>> [session_bucket(math.log1p(n)) for n in (0, 1, 2, 3, 4, 31, 32, 500)]
    [0, 0, 1, 1, 2, 4, 5, 5]
    """
    count = round(math.expm1(log_session_events))
    return min(max(count, 1).bit_length() - 1, len(SESSION_BUCKETS) - 1)


def popularity_top_k(labels: Sequence[str], k: int = 3) -> list[tuple[str, ...]]:
    """Predict-then-update: the ``k`` most frequent labels so far before each example (ties:
    the label seen first).

    >>> popularity_top_k(["a", "b", "b", "c"], k=2)
    [(), ('a',), ('a', 'b'), ('b', 'a')]
    """
    counts: Counter[str] = Counter()  # insertion order = first seen: most_common keeps it on ties
    out: list[tuple[str, ...]] = []
    for label in labels:
        out.append(tuple(name for name, _ in counts.most_common(k)))
        counts[label] += 1
    return out


@dataclass(frozen=True, slots=True)
class LogisticFit:
    """A batch logistic regression on standardized inputs."""

    mean: Floats
    scale: Floats
    weights: Floats
    intercept: float
    iterations: int

    def predict(self, x: Floats) -> Floats:
        return _sigmoid(((x - self.mean) / self.scale) @ self.weights + self.intercept)


def _sigmoid(z: Floats) -> Floats:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))


def fit_logistic(
    x: Floats, y: Sequence[bool] | Bools, l2: float = 1.0, max_iter: int = 100, tol: float = 1e-9
) -> LogisticFit:
    """L2-regularized logistic regression by Newton's method (IRLS), on inputs standardized with
    their own mean and standard deviation (a constant input gets scale 1). The penalty
    ``l2 * |w|^2 / 2`` is on the weights, not the intercept. Deterministic."""
    labels = np.asarray(y, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0.0] = 1.0
    design = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    penalty = np.full(design.shape[1], float(l2))
    penalty[-1] = 1e-9  # keeps the Hessian invertible when a class is missing
    theta = np.zeros(design.shape[1])
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        p = _sigmoid(design @ theta)
        gradient = design.T @ (p - labels) + penalty * theta
        hessian = (design.T * (p * (1.0 - p))) @ design + np.diag(penalty)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        theta -= step
        if float(np.max(np.abs(step))) < tol:
            break
    return LogisticFit(mean, scale, theta[:-1].copy(), float(theta[-1]), iterations)


#: The L2 penalties :func:`choose_l2` tries.
L2_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


def choose_l2(x: Floats, y: Bools, grid: Sequence[float] = L2_GRID) -> float:
    """The penalty with the lowest log loss on the last quarter of the (time-ordered) training
    examples when fit on the first three quarters; the first of equals. Deterministic."""
    cut = len(y) * 3 // 4
    fit_y, check_y = y[:cut], y[cut:]
    if fit_y.all() or not fit_y.any() or len(check_y) == 0:
        return grid[len(grid) // 2]
    losses = [
        log_loss(fit_logistic(x[:cut], fit_y, l2=l2).predict(x[cut:]), check_y) for l2 in grid
    ]
    return grid[int(np.argmin(losses))]


# -- evaluation --------------------------------------------------------------------------------


@dataclass(slots=True)
class BinaryEval:
    """One binary target's figures and the arrays the plots need (in the order learned)."""

    metrics: dict[str, Any]
    labels: Bools
    online: Floats
    base_rate: Floats
    popularity: Floats
    warmup: int
    #: (scores, labels) per extra ROC curve: batch logistic (second half), planted truth.
    extra_curves: dict[str, tuple[Floats, Bools]] = field(default_factory=dict)


def _figures(p: Floats, y: Bools) -> dict[str, Any]:
    return {
        "examples": len(y),
        "positives": int(y.sum()),
        "auc": _finite(roc_auc(p, y)),
        "log_loss": _finite(log_loss(p, y)),
        "brier": _finite(brier(p, y)),
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def evaluate_binary(
    log: BinaryLog,
    input_names: Sequence[str],
    warmup_fraction: float,
    propensity: dict[str, float] | None,
    target: str,
) -> BinaryEval:
    """Online metrics and baselines of one binary target."""
    y = np.asarray(log.labels, dtype=bool)
    online = np.asarray(log.predictions, dtype=np.float64)
    n = len(y)
    warm = int(n * warmup_fraction)
    x = log.matrix(len(input_names)) if n else np.zeros((0, len(input_names)))
    column = input_names.index(POPULARITY_FEATURE)
    buckets = [session_bucket(float(v)) for v in x[:, column]]
    base = base_rate_scores(y)
    popular = bucket_rate_scores(buckets, y)
    after = slice(warm, n)
    metrics: dict[str, Any] = {
        "examples": n,
        "positives": int(y.sum()),
        "warmup_examples": warm,
        "online": {"all": _figures(online, y), "after_warmup": _figures(online[after], y[after])},
        "calibration": calibration(online[after], y[after]),
        "baselines": {
            "base_rate": _figures(base[after], y[after]),
            "popularity": _figures(popular[after], y[after]),
        },
    }
    result = BinaryEval(metrics, y, online, base, popular, warm)
    metrics["baselines"]["batch_logistic"] = _batch(x, y, online, result)
    if propensity is not None and target == CONVERSION:
        metrics["baselines"]["planted_truth"] = _planted(log, propensity, online, warm, result)
    online_after = metrics["online"]["after_warmup"]
    metrics["beats"] = {
        name: _beats(online_after, metrics["baselines"][name])
        for name in ("base_rate", "popularity")
    }
    return result


def _batch(x: Floats, y: Bools, online: Floats, result: BinaryEval) -> dict[str, Any]:
    half = len(y) // 2
    train, test = slice(0, half), slice(half, len(y))
    doc: dict[str, Any] = {
        "train_examples": half,
        "train_positives": int(y[train].sum()),
        "online_on_test": _figures(online[test], y[test]),
    }
    if y[train].all() or not y[train].any():
        doc["test"] = None
        doc["note"] = "the first half has only one class: no model to fit"
        return doc
    l2 = choose_l2(x[train], y[train])
    fit = fit_logistic(x[train], y[train], l2=l2)
    scores = fit.predict(x[test])
    doc["test"] = _figures(scores, y[test])
    doc["l2"] = l2
    doc["iterations"] = fit.iterations
    result.extra_curves["batch logistic (2nd half)"] = (scores, y[test])
    return doc


def _planted(
    log: BinaryLog, propensity: dict[str, float], online: Floats, warm: int, result: BinaryEval
) -> dict[str, Any]:
    users = log.users[warm:]
    known = np.asarray([user in propensity for user in users], dtype=bool)
    scores = np.asarray([propensity.get(user, math.nan) for user in users])[known]
    y = result.labels[warm:][known]
    planted = roc_auc(scores, y)
    online_auc = roc_auc(online[warm:][known], y)
    result.extra_curves["planted propensity"] = (scores, y)
    gap = online_auc - planted
    return {
        "examples": int(known.sum()),
        "positives": int(y.sum()),
        "unknown_users": int((~known).sum()),
        "auc": _finite(planted),
        "online_auc": _finite(online_auc),
        "online_minus_planted": _finite(gap),
        "within_0_05": None if math.isnan(gap) else bool(gap >= -0.05),
    }


def _beats(online: dict[str, Any], baseline: dict[str, Any]) -> dict[str, bool | None]:
    auc, base_auc = online["auc"], baseline["auc"]
    loss, base_loss = online["log_loss"], baseline["log_loss"]
    return {
        "auc": None if auc is None or base_auc is None else bool(auc > base_auc),
        "log_loss": None if loss is None or base_loss is None else bool(loss < base_loss),
    }


def evaluate_category(log: CategoryLog, warmup_fraction: float) -> dict[str, Any]:
    """Top-1 accuracy and top-3 hit rate, online and popularity, after the warm-up."""
    n = len(log)
    warm = int(n * warmup_fraction)
    popular = popularity_top_k(log.labels, 3)

    def rates(tops: Sequence[tuple[str, ...]]) -> dict[str, float | None]:
        pairs = list(zip(tops[warm:], log.labels[warm:], strict=True))
        if not pairs:
            return {"top1": None, "top3": None}
        top1 = sum(bool(top) and top[0] == label for top, label in pairs) / len(pairs)
        top3 = sum(label in top[:3] for top, label in pairs) / len(pairs)
        return {"top1": round(top1, 6), "top3": round(top3, 6)}

    return {
        "examples": n,
        "warmup_examples": warm,
        "categories": len(set(log.labels)),
        "online": rates(log.top),
        "popularity": rates(popular),
    }


def propensity_by_key(config: GeneratorConfig) -> dict[str, float]:
    """Each synthetic user's planted propensity under every key their events can carry: the
    ``userId`` and the ``anonymousId`` of each device (events before a login carry only that)."""
    out: dict[str, float] = {}
    for traits in user_traits(config).values():
        for key in (traits.user_id, *traits.anonymous_ids):
            if key is not None:
                out[key] = traits.propensity
    return out


def evaluate(
    collector: Collector,
    input_names: Sequence[str],
    warmup_fraction: float,
    propensity: dict[str, float] | None = None,
) -> tuple[dict[str, Any], dict[str, BinaryEval]]:
    """Every target's figures (``metrics.json``'s ``targets``) and the binary targets' arrays."""
    binary = {
        target: evaluate_binary(
            collector.binary[target], input_names, warmup_fraction, propensity, target
        )
        for target in BINARY_TARGETS
    }
    targets: dict[str, Any] = {target: binary[target].metrics for target in BINARY_TARGETS}
    targets[NEXT_CATEGORY] = evaluate_category(collector.category, warmup_fraction)
    return targets, binary


# -- input -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Source:
    name: str
    description: str
    lines: list[bytes]
    propensity: dict[str, float] | None = None


def _synthetic(spec: str) -> Source:
    try:
        users_text, days_text, seed_text = spec.split(",")
        config = GeneratorConfig(seed=int(seed_text), users=int(users_text), days=float(days_text))
    except ValueError as exc:
        raise InputError(f"--synthetic {spec!r}: expected USERS,DAYS,SEED ({exc})") from None
    lines = list(
        tqdm(
            encode_ndjson(generate_events(config)),
            unit="ev",
            desc="generate",
            file=sys.stderr,
            disable=None,
        )
    )
    description = (
        f"synthetic log: {config.users:,} users, {config.days:g} days, seed {config.seed}"
        " (stream.synthetic, planted conversion propensity)"
    )
    name = f"synthetic-{config.users}-{config.days:g}-{config.seed}"
    return Source(name, description, lines, propensity_by_key(config))


def _imported(fmt: str, path: Path) -> Source:
    stats = ImportStats()
    try:
        lines = list(encode_events(import_file(fmt, path, True, stats)))
    except FormatError as exc:
        raise InputError(f"{path}: {exc}") from None
    except OSError as exc:
        raise InputError(f"{exc.filename or path}: {exc.strerror or exc}") from None
    if not lines:
        problem = (
            f" (line {stats.problems[0][0]}: {stats.problems[0][1]})" if stats.problems else ""
        )
        raise InputError(f"{path}: no valid {fmt} rows{problem}")
    skipped = f", {stats.rows_skipped:,} rows skipped" if stats.rows_skipped else ""
    description = f"{fmt} sample `{path}` ({len(lines):,} events sorted by time{skipped})"
    return Source(fmt, description, lines)


def _ndjson(path: Path) -> Source:
    try:
        lines = list(read_lines(path))
    except LogError as exc:
        raise InputError(f"cannot read {exc}") from None
    name = path.name.removesuffix(".gz").removesuffix(".ndjson").removesuffix(".jsonl")
    return Source(name or "log", f"Segment NDJSON log `{path}` ({len(lines):,} lines)", lines)


def read_source(args: argparse.Namespace) -> Source:
    if args.synthetic is not None:
        return _synthetic(args.synthetic)
    if args.rees46 is not None:
        return _imported("rees46", args.rees46)
    if args.taobao is not None:
        return _imported("taobao", args.taobao)
    return _ndjson(args.log)


# -- replay ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Replayed:
    collector: Collector
    events: int
    dead_letters: int
    first_dead_letter: str | None
    users: int


def run(lines: list[bytes], partitions: int, config: StepConfig) -> Replayed:
    """Replay the log with an observer on every partition's learner."""
    collector = Collector()
    learners = {p: PartitionLearner.new(p, config) for p in range(partitions)}
    for learner in learners.values():
        learner.observer = collector
    profiles: dict[str, Any] = {}
    dead, first_dead = 0, None
    progress: Iterator[bytes] = tqdm(lines, unit="ev", desc="replay", file=sys.stderr, disable=None)
    for output in replay_outputs(progress, config, profiles, partitions, learners):
        if isinstance(output, DeadLetter):
            dead += 1
            first_dead = first_dead or f"{output.reason}: {output.message}"
    return Replayed(collector, len(lines) - dead, dead, first_dead, len(profiles))


# -- command -----------------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "log", nargs="?", type=Path, help="Segment NDJSON log (.ndjson or .ndjson.gz)"
    )
    source.add_argument(
        "--synthetic", metavar="USERS,DAYS,SEED", help="generate a log with planted propensity"
    )
    source.add_argument("--rees46", type=Path, metavar="CSV", help="a REES46 CSV file")
    source.add_argument("--taobao", type=Path, metavar="CSV", help="a Taobao UserBehavior CSV")
    parser.add_argument(
        "--partitions",
        type=int,
        default=DEFAULT_PARTITIONS,
        help=f"replay with this many partitions (each has its own models; default "
        f"{DEFAULT_PARTITIONS})",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.2,
        help="leave out this fraction of each target's first examples (default 0.2)",
    )
    parser.add_argument("--out", type=Path, help="report directory (default artifacts/eval/NAME)")
    args = parser.parse_args(argv)
    for path in (args.log, args.rees46, args.taobao):
        if path is not None and not path.is_file():
            parser.error(f"{path}: no such file")
    if args.partitions < 1:
        parser.error("--partitions must be >= 1")
    if not 0.0 <= args.warmup < 1.0:
        parser.error("--warmup must be in [0, 1)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # Imported here: matplotlib is the bench extra, and the metrics above do not need it.
    from scripts.evalreport import write_report

    return run_reporting(lambda: _evaluate(args, write_report))


def _evaluate(args: argparse.Namespace, write_report: Callable[..., object]) -> int:
    source = read_source(args)
    config = StepConfig()
    replayed = run(source.lines, args.partitions, config)
    if replayed.events == 0:
        raise InputError(f"no valid events in the log (first line: {replayed.first_dead_letter})")
    names = model_inputs(config.features.catalog).names
    targets, binary = evaluate(replayed.collector, names, args.warmup, source.propensity)
    out = args.out if args.out is not None else Path("artifacts/eval") / source.name
    metrics = {
        "data": {
            "name": source.name,
            "description": source.description,
            "events": replayed.events,
            "dead_letters": replayed.dead_letters,
            "users": replayed.users,
            "partitions": args.partitions,
            "warmup_fraction": args.warmup,
            "popularity_feature": POPULARITY_FEATURE,
            "popularity_buckets": list(SESSION_BUCKETS),
        },
        "targets": targets,
    }
    write_report(out, metrics, binary)
    (out / "metrics.json").write_bytes(
        orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    print(f"wrote {out / 'report.md'} and {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
