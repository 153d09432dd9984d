"""Off-policy evaluation: what other policies would have earned, from the decision log alone.

    python -m scripts.ope decisions.ndjson.gz rewards.ndjson.gz --policy priority --policy uniform
    python -m scripts.ope log.ndjson --policy always:remind_cart --policy epsilon-greedy:0.1
    python -m scripts.ope log.ndjson --policy greedy --variant champion --json ope.json

The logs are NDJSON (gunzipped when the name ends in ``.gz``) holding ``decision.v3`` and
``reward.v1`` records, in one file or several, mixed or not; records of other schemas are
counted and ignored. Decisions are paired with their rewards by ``decision_id`` (a repeated id is
the same decision delivered again), and only decisions with a reward are evaluated.

Policies (``--policy``, repeatable): ``uniform`` (every eligible action alike), ``priority``
(the first eligible action in catalog order: the rules policy), ``greedy`` (the action the
logging policy scored highest), ``epsilon-greedy:EPS``, ``always:ACTION`` (when eligible, else
the first eligible), ``logging`` (the logging policy itself: equals the observed mean).

For each: IPS and SNIPS estimates with 95% intervals, the rows evaluated (n) and the effective
sample size (ESS: a small one means the policy goes where the log rarely went, and the estimate
rests on few rows whatever its interval says); and the logging policy's observed mean reward.
Formulas: :mod:`stream.ope`.

Exit codes: 0 done; 2 a usage error, a missing or unreadable file, a line that is not JSON or a
decision/reward record without the fields OPE needs (the message names the file and the line),
or no decision with a reward; 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from scripts.cli import InputError, run_reporting
from scripts.replay import LogError, read_numbered
from stream.ope import (
    Estimate,
    JoinResult,
    PolicySpecError,
    RecordError,
    Target,
    check_record,
    ips,
    join,
    observed,
    policy_from_spec,
    snips,
)

__all__ = ["InputError", "Records", "main", "read_records", "report"]


@dataclass(slots=True)
class Records:
    """The logs' decision and reward records, and how many records of other schemas."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[dict[str, Any]] = field(default_factory=list)
    others: Counter[str] = field(default_factory=Counter)


def read_records(paths: Sequence[Path]) -> Records:
    """Every file's records, sorted by kind; :class:`InputError` naming the file and line for a
    line that is not a JSON object or a decision/reward without what OPE needs."""
    records = Records()
    for path in paths:
        try:
            for number, line in read_numbered(path):
                _add(records, _parse_line(path, number, line), path, number)
        except LogError as exc:
            raise InputError(f"cannot read {exc}") from None
    return records


def _parse_line(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: line {number}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: line {number}: not a JSON object")
    return doc


def _add(records: Records, doc: dict[str, Any], path: Path, number: int) -> None:
    try:
        kind = check_record(doc)
    except RecordError as exc:
        raise InputError(f"{path}: line {number}: {exc}") from None
    if kind == "decision":
        records.decisions.append(doc)
    elif kind == "reward":
        records.rewards.append(doc)
    else:
        records.others[str(doc.get("schema", "(no schema)"))] += 1


# -- estimates ---------------------------------------------------------------------------------


def _row(policy: str, estimator: str, e: Estimate) -> dict[str, Any]:
    def number(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 6)

    return {
        "policy": policy,
        "estimator": estimator,
        "value": number(e.value),
        "low": number(e.low),
        "high": number(e.high),
        "n": e.n,
        "effective_sample_size": number(e.effective_sample_size),
        "max_weight": number(e.max_weight),
        "skipped": e.skipped,
    }


def report(
    joined: JoinResult, policies: Sequence[tuple[str, Target]], variant: str | None
) -> dict[str, Any]:
    """The ``--json`` document: the join's counts, the observed mean and every estimate."""
    rows = [_row("logging (observed)", "mean", observed(joined.logged, variant))]
    for spec, target in policies:
        rows.append(_row(spec, "IPS", ips(joined.logged, target, variant)))
        rows.append(_row(spec, "SNIPS", snips(joined.logged, target, variant)))
    counts = {name: getattr(joined, name) for name in JoinResult._fields if name != "logged"}
    variants = Counter(d.variant for d in joined.logged)
    return {
        "join": {"evaluable": len(joined.logged), **counts},
        "variants": dict(sorted(variants.items())),
        "variant": variant,
        "estimates": rows,
    }


def _table(doc: dict[str, Any]) -> str:
    def fmt(x: float | None, spec: str = ".4f") -> str:
        return "n/a" if x is None else format(x, spec)

    head = (
        f"{'policy':<24} {'estimator':<9} {'value':>8}  {'95% interval':<19} {'n':>8} {'ESS':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in doc["estimates"]:
        interval = f"[{fmt(r['low'])}, {fmt(r['high'])}]"
        lines.append(
            f"{r['policy']:<24} {r['estimator']:<9} {fmt(r['value']):>8}  {interval:<19} "
            f"{r['n']:>8,} {fmt(r['effective_sample_size'], ',.1f'):>10}"
        )
    return "\n".join(lines)


def _summary(doc: dict[str, Any], records: Records) -> str:
    j = doc["join"]
    others = ", ".join(f"{n:,} {schema}" for schema, n in sorted(records.others.items()))
    parts = [
        f"decisions {j['decisions']:,} (duplicates dropped {j['duplicate_decisions']:,}), "
        f"rewards {j['rewards']:,} (duplicates dropped {j['duplicate_rewards']:,}), "
        f"other records {others or 'none'}",
        f"evaluable (decision with a reward) {j['evaluable']:,}; decisions without reward "
        f"{j['decisions_without_reward']:,}; rewards without decision "
        f"{j['rewards_without_decision']:,}",
        "variants: " + ", ".join(f"{v} {n:,}" for v, n in doc["variants"].items()),
    ]
    if doc["variant"] is not None:
        parts.append(f"evaluating variant {doc['variant']!r} only")
    skipped = max(r["skipped"] for r in doc["estimates"])
    if skipped:
        parts.append(f"skipped {skipped:,} decisions with propensity <= 0")
    o = doc["estimates"][0]
    parts.append(
        f"logging policy's observed mean reward: {o['value']:.4f} "
        f"[{o['low']:.4f}, {o['high']:.4f}] over {o['n']:,} decisions"
        if o["low"] is not None
        else f"logging policy's observed mean reward: {o['value']} over {o['n']:,} decisions"
    )
    return "\n".join(parts)


# -- command -----------------------------------------------------------------------------------


def _policy(spec: str) -> tuple[str, Target]:
    try:
        return spec, policy_from_spec(spec)
    except PolicySpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.ope",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "logs", nargs="+", type=Path, metavar="LOG", help="NDJSON decisions and rewards (.gz ok)"
    )
    parser.add_argument(
        "--policy",
        dest="policies",
        action="append",
        required=True,
        type=_policy,
        metavar="SPEC",
        help="a target policy: uniform, priority, greedy, logging, always:ACTION, "
        "epsilon-greedy:EPS (repeatable)",
    )
    parser.add_argument("--variant", help="evaluate only decisions of this variant")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the estimates here")
    args = parser.parse_args(argv)
    for path in args.logs:
        if not path.is_file():
            parser.error(f"{path}: no such file")
    return args


def _run(args: argparse.Namespace) -> dict[str, Any]:
    records = read_records(args.logs)
    joined = join(records.decisions, records.rewards)
    if not joined.logged:
        raise InputError(
            f"no decision has a reward ({joined.decisions:,} decisions, {joined.rewards:,} "
            "rewards): nothing to evaluate"
        )
    doc = report(joined, args.policies, args.variant)
    if doc["estimates"][0]["n"] == 0:
        known = ", ".join(doc["variants"])
        raise InputError(f"no decision of variant {args.variant!r} has a reward (known: {known})")
    print(_summary(doc, records))
    print()
    print(_table(doc))
    return doc


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    return run_reporting(lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    doc = _run(args)
    if args.json is not None:
        args.json.write_bytes(
            orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        )
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
