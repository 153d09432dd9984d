"""The main job on the embedded default: broker, topics, worker, a realistic stream, decisions.

    python -m scripts.run                 # 20,000 generated events as fast as possible
    python -m scripts.run --rate 500      # a live-looking stream, 500 events/s
    python -m scripts.run --via-collector 0.25   # a quarter of the users' events over HTTP

It starts the embedded Kafka-compatible broker on a free loopback port, creates the topics,
starts one Faust worker and the HTTP collector (printing its URL and a fresh write key, so you
can send your own events while it runs), feeds the worker events from the seeded generator
(straight to Kafka, or for a share of the users through the collector), prints a sample of the
decisions as they arrive and a summary at the end, then stops everything it started (also on
Ctrl-C). Exit code 0 when every event got its decision, 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from scripts.httpload import CollectorRefused, post_batches
from scripts.kafkaio import new_producer
from scripts.load import Prepared, partition_for, prepare, send_paced
from scripts.pipeline import DecisionWatcher, LocalPipeline
from scripts.procs import exit_on_termination_signals
from scripts.stats import percentile
from stream.synthetic import GeneratorConfig, generate_events

__all__ = ["main"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=20_000, help="how many events to send")
    parser.add_argument("--users", type=int, default=2_000, help="simulated users")
    parser.add_argument("--seed", type=int, default=7, help="generator seed")
    parser.add_argument("--rate", type=float, default=None, help="events/s (default: max)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="workers in the consumer group")
    parser.add_argument("--show", type=int, default=12, help="decisions to print as they come")
    parser.add_argument("--run-dir", type=Path, default=Path(".run"))
    parser.add_argument(
        "--stay",
        action="store_true",
        help="after the summary, keep everything running (dashboard included) until Ctrl-C",
    )
    parser.add_argument(
        "--via-collector",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of the users (0-1) whose events go through the HTTP collector (default 0)",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.users < 1:
        parser.error("--events and --users must be positive")
    if not 0.0 <= args.via_collector <= 1.0:
        parser.error("--via-collector must be between 0 and 1")
    return args


def _events(args: argparse.Namespace) -> list[Prepared]:
    config = GeneratorConfig(seed=args.seed, users=args.users, days=7.0)
    return list(prepare(itertools.islice(generate_events(config), args.events), args.partitions))


def _split(events: list[Prepared], share: float) -> tuple[list[Prepared], list[Prepared]]:
    """(straight to Kafka, through the collector), by user: one user's events keep their order."""
    direct: list[Prepared] = []
    http: list[Prepared] = []
    for event in events:
        (http if partition_for(event.key, 10_000) < share * 10_000 else direct).append(event)
    return direct, http


def _send_via_collector(
    url: str, write_key: str, events: list[Prepared], rate: float | None, sent_ms: dict[str, int]
) -> threading.Thread:
    def send() -> None:
        began = time.monotonic()
        try:
            posted = post_batches(url, write_key, events, sent_ms, rate_per_s=rate)
        except (OSError, CollectorRefused) as exc:
            tqdm.write(f"sending through the collector failed: {exc}")
            return
        if posted:
            took_s = max(time.monotonic() - began, 1e-3)
            tqdm.write(f"{posted:,} events went through the collector ({posted / took_s:,.0f}/s)")

    sender = threading.Thread(target=send, name="http-sender", daemon=True)
    sender.start()
    return sender


def _describe(decision: dict[str, object]) -> str:
    user, event = decision["user"], decision["event"]
    assert isinstance(user, dict) and isinstance(event, dict)
    params = decision.get("params") or {}
    extra = (
        f" ({', '.join(map(str, params.values()))})" if isinstance(params, dict) and params else ""
    )
    reasons = decision.get("reasons") or [{}]
    rule = reasons[0].get("rule") if isinstance(reasons, list) else "?"
    return (
        f"  {str(user['key'])[:22]:<22} {str(event['name'])[:18]:<18} -> "
        f"{decision['action']}{extra}  score {decision['score']}  [{rule}]"
    )


def _show_live(watcher: DecisionWatcher, budget: int, done: threading.Event) -> None:
    shown = 0
    while not done.wait(0.25) and shown < budget:
        for decision in watcher.drain_latest()[: budget - shown]:
            if decision["action"] != "none" or shown % 3 == 0:
                tqdm.write(_describe(decision))
                shown += 1


def _summary(
    sent: int,
    watcher: DecisionWatcher,
    sent_ms: dict[str, int],
    wall_s: float,
    rate: float | None,
) -> str:
    latencies = sorted(
        watcher.arrived_ms[m] - sent_ms[m] for m in watcher.arrived_ms if m in sent_ms
    )
    mix = Counter(watcher.actions)
    # Sent as fast as possible, later events wait behind a backlog: say so next to the figure.
    backlog = "" if rate else "; sent as fast as possible, so it includes queueing (see --rate)"
    lines = [
        "summary",
        f"  events sent        {sent:,}",
        f"  decisions received {watcher.count():,}",
        f"  throughput         {sent / wall_s:,.0f} events/s end to end ({wall_s:.1f} s)",
        f"  latency p50 / p99  {percentile(latencies, 50):.0f} ms / "
        f"{percentile(latencies, 99):.0f} ms (produce -> decision arrival{backlog})",
        "  action mix         " + ", ".join(f"{a} {n:,}" for a, n in mix.most_common()),
        "  variants           "
        + ", ".join(f"{v} {n:,}" for v, n in Counter(watcher.variants).most_common()),
    ]
    return "\n".join(lines)


def _learning(stats: dict[str, Any] | None) -> list[str]:
    """The models' progressive validation and the experiment, from a worker's ``/stats.json``."""
    if stats is None:
        return ["  models/experiment (the worker's figures could not be read)"]
    lines = ["  models             online, each label scored before it is learned (first worker)"]
    by_target: dict[str, list[str]] = {}
    for m in stats.get("models", []):
        figure = (
            f"AUC {m['roc_auc']:.3f}"
            if m.get("roc_auc") is not None
            else f"top-{m.get('k', 3)} {m['top_k']:.3f}"
            if m.get("top_k") is not None
            else "-"
        )
        by_target.setdefault(m["target"], []).append(
            f"p{m['partition']} {figure} ({m['count']:,} labels)"
        )
    lines += [f"    {target:<16} " + ", ".join(parts) for target, parts in by_target.items()]
    if not by_target:
        lines.append("    no label resolved yet (labels need 30 min of event time)")
    lines.append("  experiment         mean reward per settled decision; lift over the holdout")
    experiment: dict[str, dict[str, Any]] = stats.get("experiment", {})
    for variant, e in sorted(experiment.items()):
        lift = (
            f"lift {e['lift']:+.4f} [{e['lift_low']:+.4f}, {e['lift_high']:+.4f}]"
            if e.get("lift") is not None
            else "baseline"
            if variant == "holdout"
            else "lift -"
        )
        lines.append(
            f"    {variant:<16} mean {e['mean_reward']:.4f}  {lift}  ({e['settled']:,} settled)"
        )
    if not experiment:
        lines.append("    no decision settled yet (a reward window is 30 min of event time)")
    return lines


def _stats(web: str | None) -> dict[str, Any] | None:
    if web is None:
        return None
    try:
        with urllib.request.urlopen(f"{web}/stats.json", timeout=5.0) as response:
            doc = orjson.loads(response.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _explained(web: str | None, token: str, decision: dict[str, Any] | None) -> list[str]:
    """One user's last decision, as the transparency endpoint explains it to a support agent."""
    if web is None or decision is None:
        return []
    user = str(decision["user"]["key"])
    url = f"{web}/privacy/users/{urllib.parse.quote(user, safe='')}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5.0) as response:
            doc = orjson.loads(response.read())
    except (OSError, ValueError) as exc:
        return [f"  transparency       could not read {url}: {exc}"]
    return explanation_lines(user, doc)


def explanation_lines(user: str, doc: dict[str, Any]) -> list[str]:
    """The summary's lines for one ``transparency.v1`` document (stream.transparency)."""
    last = doc.get("last_decision") or {}
    reasons = "; ".join(str(reason[0]) for reason in last.get("reasons", [])[:2])
    return [
        f"  transparency       GET /privacy/users/{{key}} (bearer token printed above): {user!r}",
        f"    last decision    {last.get('action')} ({last.get('variant')}): {reasons}",
        f"    holds            {sum(doc['activity']['events_by_name'].values()):,} events "
        f"counted, {len(doc['features'])} features, consent {doc['consent']['personalization']}",
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    exit_on_termination_signals()
    print(f"generating {args.events:,} events for {args.users:,} users (seed {args.seed})...")
    events = _events(args)
    print("starting the embedded broker, a worker and the collector (about 10 s)...")
    with LocalPipeline(
        run_dir=args.run_dir,
        partitions=args.partitions,
        workers=args.workers,
        collector=True,
        web=True,
    ) as pipeline:
        names = pipeline.settings.names
        pids = ", ".join(str(w.pid) for w in pipeline.started)
        print(f"broker {pipeline.settings.bootstrap_servers}, worker pid(s) {pids}")
        assert pipeline.http is not None
        print(f"collector {pipeline.http.url} (Segment API; write key {pipeline.write_key})")
        web = pipeline.worker.web_url
        print(f"dashboard {web}/dashboard (metrics {web}/metrics; first worker's figures)")
        print(f"privacy API {web}/privacy/... (Authorization: Bearer {pipeline.privacy_token})")
        direct, via_http = _split(events, args.via_collector)
        watcher = DecisionWatcher(pipeline.settings.bootstrap_servers, names.decisions)
        watcher.start()
        done = threading.Event()
        shower = threading.Thread(target=_show_live, args=(watcher, args.show, done), daemon=True)
        shower.start()
        sent_ms: dict[str, int] = {}
        producer = new_producer(pipeline.settings.bootstrap_servers)
        started = time.monotonic()
        share = len(via_http) / len(events)
        http_rate = args.rate * share if args.rate else None
        sender = _send_via_collector(
            pipeline.http.url, pipeline.write_key, via_http, http_rate, sent_ms
        )
        with tqdm(total=len(direct), unit="ev", desc="sent", file=sys.stderr, disable=None) as bar:
            rate = args.rate * (1 - share) if args.rate else None
            sent = send_paced(producer, names.events, direct, rate, sent_ms, bar.update)
        producer.close()
        sender.join()
        sent += len(via_http)
        complete = watcher.wait_for(sent, timeout_s=120.0)
        wall_s = time.monotonic() - started
        done.set()
        shower.join(timeout=2.0)
        watcher.stop()
        print(_summary(sent, watcher, sent_ms, wall_s, args.rate))
        print("\n".join(_learning(_stats(web))))
        print("\n".join(_explained(web, pipeline.privacy_token, watcher.last_personalized)))
        if args.stay:
            print(f"still running: dashboard {web}/dashboard; Ctrl-C stops everything")
            threading.Event().wait()
    print("stopped the worker(s), the collector and the broker")
    return 0 if complete else 1


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted: stopped everything that was started", file=sys.stderr)
        raise SystemExit(130) from None
