"""``python -m agents worker|collector``: one worker, or the HTTP collector, with settings from
the environment (``LIVEPROFILES_*``)."""

from __future__ import annotations

import argparse
import sys

import faust
import mode.loop

from agents.admin import ensure_topics
from agents.app import create_app
from agents.collector.config import CollectorSettings
from agents.collector.main import run_collector
from agents.logs import configure, logging_config
from agents.settings import Settings
from stream.exceptions import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents", description=__doc__)
    parser.add_argument("command", choices=["worker", "collector"], help="what to run")
    command = parser.parse_args(argv).command
    settings = Settings()
    configure(settings.log_level, settings.log_format, settings.process_id)
    if command == "collector":
        return run_collector(settings, CollectorSettings())
    return _worker(settings)


def _worker(settings: Settings) -> int:
    try:
        step_config = settings.step_config()
        settings.privacy_token_names()  # a malformed token list stops the start, in one line
    except ConfigError as exc:
        print(f"cannot start the worker: {exc}", file=sys.stderr)
        return 2
    ensure_topics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    if settings.event_loop == "uvloop":
        # Before any loop exists: the consumer thread's loop is then uvloop as well.
        mode.loop.use("uvloop")
    app = create_app(settings, step_config)
    # Faust's worker replaces the root logger's handlers when it starts: give it ours.
    config = logging_config(settings.log_level, settings.log_format, settings.process_id)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, logging_config=config)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
