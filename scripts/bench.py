"""Benchmark: the pure step on one core, and the whole pipeline on the embedded broker.

    python -m scripts.bench                     # defaults: about 2 minutes
    python -m scripts.bench --out artifacts/bench.json --plot artifacts/bench.png
    python -m scripts.bench --plot-only artifacts/bench.json   # redraw the plot of a report

Pure step: decode + step + serialize the decision, over a generated log, in this process
(one core); the median of ``--repeats`` runs.

State size: bytes per stored profile after a week of heavy activity (``--state-sessions``
sessions per user per day, about 200 events a day each), as written to the profiles table.

End to end (broker, the workers and this load driver share the machine's cores):

* peak: send ``--peak-events`` as fast as possible; sustained events/s is events divided by the
  time from the first send to the last decision's arrival;
* offered loads: at each fraction of that peak (``--loads``), send at that rate for
  ``--seconds`` and report the achieved rate and the event-to-decision latency (p50/p95/p99),
  from the moment the event was handed to the producer to the moment its decision arrived.

Before the peak, the cores the idle pipeline keeps busy (``--idle-seconds``: polling, timers);
for the peak and each load, the CPU each process used per event (read from ``/proc``: the
workers, the broker, this load driver) and the cores busy on average: the shared cores are what
bounds the peak, and the split says which part a faster step would speed up.

The report is JSON (``--out``); the plot, latency against offered load with the peak marked, is a
PNG (``--plot``, by default next to the JSON: ``--out`` with ``.png``), drawn by
:mod:`scripts.benchplot`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from scripts.cpuusage import CpuMeter
from scripts.kafkaio import new_producer
from scripts.load import Prepared, prepare, send_paced
from scripts.pipeline import DecisionWatcher, LocalPipeline
from scripts.procs import exit_on_termination_signals
from scripts.stats import median, percentile
from stream import Decision, StepConfig
from stream.replay import replay, replay_outputs
from stream.synthetic import GeneratorConfig, generate_events

__all__ = ["bench_pure_step", "main"]


def _event_stream(seed: int, users: int, partitions: int) -> Iterator[Prepared]:
    return prepare(generate_events(GeneratorConfig(seed=seed, users=users, days=30.0)), partitions)


def bench_pure_step(events: int, users: int, repeats: int, stitch: bool = False) -> dict[str, Any]:
    """Events/s of decode + step + decision serialization on one core."""
    lines = [e.value for e in itertools.islice(_event_stream(3, users, 1), events)]
    rates = []
    config = StepConfig(stitch_identities=stitch)
    for _ in range(repeats):
        started = time.perf_counter()
        for output in replay_outputs(lines, config):
            if isinstance(output, Decision):
                output.to_bytes(emitted_at_ms=0)
        rates.append(len(lines) / (time.perf_counter() - started))
    return {
        "events": len(lines),
        "runs_events_per_s": [round(r) for r in rates],
        "median_events_per_s": round(median(rates)),
    }


def bench_state_size(users: int, days: float, sessions_per_day: float) -> dict[str, Any]:
    """Bytes per stored profile after ``days`` of heavy activity (``sessions_per_day`` each)."""
    config = GeneratorConfig(
        seed=5, users=users, days=days, sessions_per_user_per_day=sessions_per_day
    )
    lines = [orjson.dumps(event) for event in generate_events(config)]
    result = replay(lines, StepConfig())
    sizes = sorted(len(profile.to_bytes()) for profile in result.profiles.values())
    return {
        "users": len(sizes),
        "days": days,
        "events_per_user": round(len(lines) / max(1, len(sizes))),
        "bytes_per_user": {
            "p50": round(percentile(sizes, 50)),
            "p99": round(percentile(sizes, 99)),
            "max": sizes[-1] if sizes else 0,
        },
    }


def _measure(
    pipeline: LocalPipeline,
    watcher: DecisionWatcher,
    batch: list[Prepared],
    rate: float | None,
    processes: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Send ``batch`` (at ``rate``, or as fast as possible) and wait for its decisions; with
    ``processes``, also the CPU each used per event meanwhile."""
    meter = CpuMeter(processes) if processes else None
    sent_ms: dict[str, int] = {}
    producer = new_producer(pipeline.settings.bootstrap_servers)
    before = watcher.count()
    started = time.monotonic()
    send_paced(producer, pipeline.settings.ingress_topic, batch, rate, sent_ms)
    producer.close()
    complete = watcher.wait_for(before + len(batch), timeout_s=180.0)
    elapsed = time.monotonic() - started
    latencies = sorted(
        watcher.arrived_ms[m] - sent_ms[m] for m in sent_ms if m in watcher.arrived_ms
    )
    measured: dict[str, Any] = {
        "offered_events_per_s": rate,
        "events": len(batch),
        "complete": complete,
        "achieved_events_per_s": round(len(batch) / elapsed),
        "seconds": round(elapsed, 3),
        "latency_ms": {f"p{q}": round(percentile(latencies, q), 1) for q in (50, 95, 99)},
    }
    if meter is not None:
        measured["cpu"] = _cpu_split(meter.used(), len(batch), elapsed)
    return measured


def bench_end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    # With stitching, events go to the one-partition ingest topic.
    ingress_partitions = 1 if args.stitch_identities else args.partitions
    stream = _event_stream(args.seed, args.users, ingress_partitions)
    with LocalPipeline(
        run_dir=args.run_dir,
        partitions=args.partitions,
        workers=args.workers,
        stitch_identities=args.stitch_identities,
    ) as pipeline:
        watcher = DecisionWatcher(
            pipeline.settings.bootstrap_servers, pipeline.settings.names.decisions
        )
        watcher.start()
        try:
            _measure(pipeline, watcher, list(itertools.islice(stream, 2000)), None)  # warm-up
            processes = _processes(pipeline)
            idle = _idle(processes, args.idle_seconds)
            print(f"idle: {idle}", file=sys.stderr)
            peak = _measure(
                pipeline, watcher, list(itertools.islice(stream, args.peak_events)), None, processes
            )
            print(f"peak: {peak['achieved_events_per_s']:,} events/s", file=sys.stderr)
            loads = []
            for fraction in args.loads:
                rate = peak["achieved_events_per_s"] * fraction
                batch = list(itertools.islice(stream, int(rate * args.seconds)))
                result = _measure(pipeline, watcher, batch, rate, processes)
                result["fraction_of_peak"] = fraction
                print(f"{fraction:.0%} of peak: {result}", file=sys.stderr)
                loads.append(result)
        finally:
            watcher.stop()
    return {
        "idle": idle,
        "peak": peak,
        "loads": loads,
        "partitions": args.partitions,
        "workers": args.workers,
    }


def _processes(pipeline: LocalPipeline) -> dict[str, int]:
    """The run's processes by role: the broker, each worker, and this one (the load driver:
    producer, decision watcher)."""
    processes = {"load driver": os.getpid()}
    if pipeline.broker.process is not None:
        processes["broker"] = pipeline.broker.process.pid
    for index, worker in enumerate(pipeline.started):
        if worker.process is not None:
            processes[f"worker {index}"] = worker.process.pid
    return processes


def _idle(processes: dict[str, int], seconds: float) -> dict[str, Any]:
    """Cores each process keeps busy with nothing sent (polling, timers) for ``seconds``."""
    meter = CpuMeter(processes)
    time.sleep(seconds)
    used = meter.used()
    cores = {name: None if cpu is None else round(cpu / seconds, 3) for name, cpu in used.items()}
    known = [c for c in cores.values() if c is not None]
    return {"seconds": seconds, "cores": cores, "cores_busy": round(sum(known), 2)}


def _cpu_split(used: dict[str, float | None], events: int, seconds: float) -> dict[str, Any]:
    """From the CPU seconds each process ``used`` (:meth:`CpuMeter.used`) over ``events`` in
    ``seconds``: CPU ms per event of each process, of all workers together, and of everything;
    and how many cores were busy on average. The machine's cores bound the rate: ``cores /
    total`` events per ms at best."""
    per_event = {
        name: None if cpu is None else round(1000.0 * cpu / events, 3) for name, cpu in used.items()
    }
    known = [cpu for cpu in used.values() if cpu is not None]
    workers = [cpu for name, cpu in used.items() if name.startswith("worker") and cpu is not None]
    return {
        "ms_per_event": per_event,
        "workers_ms_per_event": round(1000.0 * sum(workers) / events, 3),
        "total_ms_per_event": round(1000.0 * sum(known) / events, 3),
        "cores_busy": round(sum(known) / seconds, 2) if seconds > 0 else None,
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pure-events", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-events", type=int, default=30_000)
    parser.add_argument("--loads", type=float, nargs="*", default=[0.3, 0.5, 0.7, 0.9])
    parser.add_argument("--seconds", type=float, default=10.0, help="per offered load")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=5.0,
        help="after the warm-up, measure the CPU the idle pipeline uses for this long",
    )
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--workers", type=int, default=2, help="workers in the consumer group (2: one per core)"
    )
    parser.add_argument("--state-users", type=int, default=40, help="users in the state-size run")
    parser.add_argument(
        "--state-sessions", type=float, default=12.0, help="sessions per user per day (heavy)"
    )
    parser.add_argument("--skip-e2e", action="store_true", help="only the pure step")
    parser.add_argument(
        "--stitch-identities",
        action="store_true",
        help="with identity stitching (end to end: through the identity stage)",
    )
    parser.add_argument("--run-dir", type=Path, default=Path(".run"))
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench.json"))
    parser.add_argument(
        "--plot", type=Path, help="the PNG plot (default: --out, or --plot-only, with .png)"
    )
    parser.add_argument(
        "--plot-only", type=Path, metavar="JSON", help="only draw the plot of this report"
    )
    args = parser.parse_args(argv)
    if args.plot is None:
        args.plot = (args.plot_only or args.out).with_suffix(".png")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.plot_only is not None:
        return _plot_only(args.plot_only, args.plot)
    exit_on_termination_signals()
    report: dict[str, Any] = {
        "pure_step": bench_pure_step(
            args.pure_events, args.users, args.repeats, args.stitch_identities
        ),
        "stitch_identities": args.stitch_identities,
    }
    print(
        f"pure step: {report['pure_step']['median_events_per_s']:,} events/s on one core",
        file=sys.stderr,
    )
    report["state_size"] = bench_state_size(args.state_users, 7.0, args.state_sessions)
    print(f"state after a heavy week: {report['state_size']}", file=sys.stderr)
    if not args.skip_e2e:
        report["end_to_end"] = bench_end_to_end(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    if args.skip_e2e:
        return 0  # nothing to plot: the plot is of the end-to-end loads
    return _plot(report, args.plot)


def _plot_only(source: Path, target: Path) -> int:
    try:
        report = json.loads(source.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"cannot read the report {source}: {exc}", file=sys.stderr)
        return 2
    return _plot(report, target)


def _plot(report: dict[str, Any], target: Path) -> int:
    try:
        # Imported here: matplotlib is the optional `bench` extra, the measurements don't need it.
        from scripts.benchplot import ReportError, render_plot
    except ImportError as exc:
        print(f"no plot: {exc} (pip install -e '.[bench]')", file=sys.stderr)
        return 2
    try:
        render_plot(report, target)
    except ReportError as exc:
        print(f"no plot: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot write the plot {target}: {exc}", file=sys.stderr)
        return 2
    print(f"plot: {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
