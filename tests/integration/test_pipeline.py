"""End to end on the real embedded broker: events topic -> worker -> decisions / dead letters."""

from __future__ import annotations

import shutil
from collections import Counter

import orjson
import pytest

from agents.settings import Settings
from scripts.kafkaio import consume, send_lines
from stream import Profile, StepConfig
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from tests.integration.conftest import WorkerFactory, read_json
from tests.support import INVALID_EVENTS

pytestmark = pytest.mark.broker


def _log(users: int, limit: int, seed: int = 11) -> list[bytes]:
    events = generate_events(GeneratorConfig(seed=seed, users=users, days=1.0))
    return [orjson.dumps(e) for _, e in zip(range(limit), events, strict=False)]


def _send(settings: Settings, lines: list[bytes]) -> None:
    send_lines(settings.bootstrap_servers, settings.names.events, lines)


def _decisions(settings: Settings, expected: int) -> list[dict[str, object]]:
    """Every decision on the topic: waits for ``expected``, then reads on for 3 s so that any
    extra (duplicate or unexpected) decision is counted too."""
    return read_json(settings, settings.names.decisions, expected)


def _stored_profiles(settings: Settings) -> dict[str, dict[str, object]]:
    """The latest value per key in the profiles changelog: what a rebuild would restore."""
    latest: dict[str, dict[str, object]] = {}
    for key, value in consume(
        settings.bootstrap_servers, settings.names.profiles_changelog, idle_s=3.0
    ):
        assert key is not None
        latest[key.decode()] = Profile.from_bytes(value).to_dict()
    return latest


def _without_positions(profiles: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    return {k: {f: v for f, v in p.items() if f != "applied"} for k, p in profiles.items()}


#: What a crash can leave different from a replay: the pending labels (the partition's label
#: clock settles them), the policy's record of its decisions (the bandit chose them) and the
#: kept last decision (what the models predicted): all share the models' semantics after a
#: crash (stream.partition), not the profiles'.
LEARNER_DEPENDENT = frozenset({"labels", "decisions", "starts", "choice", "last_decision"})


def _without_pending_labels(
    profiles: dict[str, dict[str, object]],
) -> dict[str, dict[str, object]]:
    """Profiles without what follows the partition's learner (:data:`LEARNER_DEPENDENT`)."""
    return {
        k: {f: v for f, v in p.items() if f not in LEARNER_DEPENDENT} for k, p in profiles.items()
    }


def differing_profiles(
    stored: dict[str, dict[str, object]], expected: dict[str, dict[str, object]]
) -> list[tuple[str, list[str]]]:
    """(user, fields that differ) for each profile not as expected: a short failure message
    where comparing the whole dicts made pytest diff megabytes of text (for minutes)."""
    differ = []
    for key in sorted(stored.keys() | expected.keys()):
        mine, theirs = stored.get(key, {}), expected.get(key, {})
        if mine != theirs:
            fields = sorted(f for f in mine.keys() | theirs.keys() if mine.get(f) != theirs.get(f))
            differ.append((key, fields))
    return differ


def _expected_profiles(lines: list[bytes]) -> dict[str, dict[str, object]]:
    result = replay(lines, StepConfig())
    return _without_positions({k: p.to_dict() for k, p in result.profiles.items()})


def test_valid_and_invalid_events_give_decisions_and_dead_letters(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    valid = _log(users=40, limit=600)
    invalid = [raw for raw, _ in INVALID_EVENTS]
    mixed = valid[:300] + invalid + valid[300:]
    start_worker()
    _send(settings, mixed)

    decisions = _decisions(settings, expected=len(valid))
    letters = read_json(settings, settings.names.deadletters, len(invalid), idle_s=10.0)

    assert len(decisions) == len(valid)
    assert len({d["decision_id"] for d in decisions}) == len(valid)
    assert Counter(d["reason"] for d in letters) == Counter(r for _, r in INVALID_EVENTS)
    offline = replay(valid, StepConfig())
    assert {d.decision_id for d in offline.decisions} == {d["decision_id"] for d in decisions}
    assert not differing_profiles(
        _without_positions(_stored_profiles(settings)), _expected_profiles(valid)
    )


def test_clean_restart_resumes_without_double_counting(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    lines = _log(users=30, limit=500, seed=12)
    worker = start_worker()
    _send(settings, lines[:300])
    assert len(_decisions(settings, expected=300)) == 300
    assert not worker.stop(), "the worker should stop on SIGTERM without being killed"

    start_worker()
    _send(settings, lines[300:])
    decisions = _decisions(settings, expected=500)
    assert len(decisions) == 500, "a clean restart must not reprocess committed events"
    assert not differing_profiles(
        _without_positions(_stored_profiles(settings)), _expected_profiles(lines)
    )


def test_state_recovers_from_changelog_after_local_state_is_deleted(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    lines = _log(users=30, limit=500, seed=13)
    worker = start_worker()
    _send(settings, lines[:300])
    assert len(_decisions(settings, expected=300)) == 300
    worker.stop()
    shutil.rmtree(settings.data_dir)

    start_worker()
    _send(settings, lines[300:])
    decisions = _decisions(settings, expected=500)
    assert len({d["decision_id"] for d in decisions}) == 500
    # Counts continue from the recovered values: a lost profile would restart them from zero.
    assert not differing_profiles(
        _without_positions(_stored_profiles(settings)), _expected_profiles(lines)
    )
