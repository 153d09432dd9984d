"""Frequency caps and cooldowns (stream/guardrails.py): boundaries, late events, and the invariant
that no window of event time ever holds more starts than a cap allows, whatever the order."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stream import StepConfig, step
from stream.actions import ActionCatalog, ActionSpec, Condition, FrequencyCap
from stream.guardrails import Start, blocked, horizon_ms, late_limit, record_start
from stream.policyconfig import DEFAULT_CATALOG, PolicyConfig, Variant
from stream.windows import DAY_MS, MINUTE_MS
from tests.unit.test_step import ev

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: Three guarded actions with different caps and cooldowns, and the default.
CATALOG = ActionCatalog(
    actions=(
        ActionSpec(
            name="a", priority=3, cooldown_ms=10, caps=(FrequencyCap(max=2, window_ms=100),)
        ),
        ActionSpec(
            name="b",
            priority=2,
            caps=(FrequencyCap(max=1, window_ms=40), FrequencyCap(max=3, window_ms=300)),
        ),
        ActionSpec(name="c", priority=1, cooldown_ms=30),
        ActionSpec(name="none", priority=0),
    )
)
SPECS = {spec.name: spec for spec in CATALOG.actions}

#: One event: the action it tries to start (``None``: an event that starts nothing, which still
#: moves the user's latest event time) and its event time.
Attempt = tuple[str | None, int]
attempts = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", None]), st.integers(min_value=0, max_value=700)),
    max_size=40,
)
in_order_attempts = attempts.map(lambda xs: sorted(xs, key=lambda x: x[1]))


def violations(accepted: Sequence[Start], catalog: ActionCatalog) -> list[str]:
    """Every cap window holding too many starts and every pair of starts closer than a
    cooldown, checked over all of ``accepted`` (a window is ``[t, t + window_ms)``: two starts
    exactly ``window_ms`` apart are not within one)."""
    found: list[str] = []
    for spec in catalog.actions:
        times = sorted(t for action, t in accepted if action == spec.name)
        for i, t in enumerate(times):
            for cap in spec.caps:
                inside = [u for u in times if t <= u < t + cap.window_ms]
                if len(inside) > cap.max:
                    found.append(f"{spec.name}: {inside} within {cap.window_ms} (max {cap.max})")
            if spec.cooldown_ms and i and t - times[i - 1] < spec.cooldown_ms:
                found.append(f"{spec.name}: {times[i - 1]} and {t} closer than the cooldown")
    return found


def apply_as_the_policy_does(events: Sequence[Attempt], prune: bool = True) -> list[Start]:
    """Each attempt checked by ``blocked`` and recorded by ``record_start`` exactly as
    stream.policy does (latest = the user's latest event time, this one included); returns
    every accepted start (``record_start`` prunes its own list)."""
    starts: list[Start] = []
    accepted: list[Start] = []
    latest: int | None = None
    for action, t in events:
        latest = t if latest is None else max(latest, t)
        if action is None:
            continue
        late_at = late_limit(latest, CATALOG) if prune else None
        if blocked(SPECS[action], starts, t, late_at) is None:
            if prune:
                starts = record_start(starts, action, t, latest, CATALOG)
            else:
                starts = [*starts, (action, t)]
            accepted.append((action, t))
    return accepted


def test_the_violation_checker_finds_what_it_should() -> None:
    """The checker used below is not vacuous."""
    assert violations([("a", 0), ("a", 50), ("a", 99)], CATALOG)
    assert not violations([("a", 0), ("a", 50), ("a", 100)], CATALOG)
    assert violations([("a", 0), ("a", 9)], CATALOG)
    assert violations([("c", 100), ("c", 71)], CATALOG)
    assert not violations([("c", 100), ("c", 70), ("b", 0), ("b", 40)], CATALOG)


@SETTINGS
@given(attempts)
def test_blocked_alone_never_lets_a_window_overflow_in_any_order(events: list[Attempt]) -> None:
    """Checked against every earlier start (nothing pruned), ``blocked`` keeps every window of
    every cap within its max and every pair of starts a cooldown apart, whatever the order."""
    accepted = apply_as_the_policy_does(events, prune=False)
    assert violations(accepted, CATALOG) == []


@SETTINGS
@given(in_order_attempts)
def test_with_pruning_in_event_time_order_no_window_overflows(events: list[Attempt]) -> None:
    accepted = apply_as_the_policy_does(events)
    assert violations(accepted, CATALOG) == []
    # In order, nothing is ever late: the first start attempted is always accepted.
    first = next((e for e in events if e[0] is not None), None)
    if first is not None:
        assert accepted[0] == first


@SETTINGS
@example([("a", 0), ("a", 60), ("b", 300), ("a", 30)])  # a at 0, 30, 60: 3 within 100 (max 2)
@given(attempts)
def test_with_pruning_in_any_order_no_window_overflows(events: list[Attempt]) -> None:
    accepted = apply_as_the_policy_does(events)
    assert violations(accepted, CATALOG) == []


def test_a_late_event_just_inside_the_limit_still_sees_the_starts_near_it() -> None:
    """The case that broke a cap when starts were pruned at one horizon (found by the property
    above): a start at 0 is still remembered when the latest event is at 300, so a late start
    at 30 is refused by the cap (0 and 60 are within 100 ms of it)."""
    spec = SPECS["a"]
    starts = record_start([], "a", 0, 0, CATALOG)
    starts = record_start(starts, "a", 60, 60, CATALOG)
    starts = record_start(starts, "b", 300, 300, CATALOG)  # horizon 300: b's longest window
    assert starts == [("a", 0), ("a", 60), ("b", 300)]
    assert late_limit(300, CATALOG) == 0
    assert blocked(spec, starts, 30, late_limit(300, CATALOG)) == "cap: 2 starts within 100 ms"


M = MINUTE_MS
T0 = 1_700_000_000_000
_PING_PONG = ActionCatalog(
    actions=(
        ActionSpec(
            name="pong", priority=2, when=(Condition(feature="event", op="==", value="Pong"),)
        ),
        ActionSpec(
            name="ping",
            priority=1,
            when=(Condition(feature="event", op="!=", value="Pong"),),
            caps=(FrequencyCap(max=2, window_ms=120 * M),),
        ),
        ActionSpec(name="none", priority=0),
    )
)
_PING_PONG_CONFIG = StepConfig(
    policy=PolicyConfig(
        catalog=_PING_PONG, variants=(Variant(name="rules", share=1.0, kind="priority"),)
    )
)


def test_a_late_event_cannot_start_a_capped_action_beyond_its_cap_end_to_end() -> None:
    """ping is capped at 2 starts per 120 minutes. Starts at 0 and 70 min (new sessions); a
    'Pong' at 120 min starts pong and prunes the start at 0; a late event at 35 min (a new
    session between the others) then starts ping: 0, 35 and 70 lie within 120 minutes."""
    profile = None
    started: list[Start] = []
    for name, minute in (("Seen", 0), ("Seen", 70), ("Pong", 120), ("Seen", 35)):
        before: list[Start] | None = profile.starts if profile is not None else None
        profile, _ = step(profile, ev(name, user="pp", ts=T0 + minute * M), _PING_PONG_CONFIG)
        if profile.starts is not before and profile.starts:
            started.append(profile.starts[-1])
    assert violations(started, _PING_PONG) == []


def test_a_cap_counts_starts_strictly_within_its_window_on_both_sides() -> None:
    spec = ActionSpec(name="x", priority=1, caps=(FrequencyCap(max=2, window_ms=100),))
    starts: list[Start] = [("x", 0), ("x", 50), ("y", 60), ("y", 70)]
    assert blocked(spec, starts, 99) == "cap: 2 starts within 100 ms"
    assert blocked(spec, starts, 100) is None  # exactly window_ms after 0: outside it
    assert blocked(spec, starts, -49) == "cap: 2 starts within 100 ms"  # 99 before 50
    assert blocked(spec, starts, -50) is None
    # Other actions' starts never count.
    assert blocked(spec, [("y", 10), ("y", 20), ("x", 0)], 5) is None


def test_every_cap_is_checked() -> None:
    spec = ActionSpec(
        name="x",
        priority=1,
        caps=(FrequencyCap(max=5, window_ms=10), FrequencyCap(max=1, window_ms=1_000)),
    )
    assert blocked(spec, [("x", 0)], 500) == "cap: 1 starts within 1000 ms"
    assert blocked(spec, [("x", 0)], 1_000) is None


def test_a_cooldown_keeps_starts_apart_on_both_sides() -> None:
    spec = ActionSpec(name="x", priority=1, cooldown_ms=10)
    assert blocked(spec, [("x", 100)], 109) == "cooldown: started 9 ms away, needs 10 ms"
    assert blocked(spec, [("x", 100)], 91) == "cooldown: started 9 ms away, needs 10 ms"
    assert blocked(spec, [("x", 100)], 110) is None
    assert blocked(spec, [("x", 100)], 90) is None
    assert blocked(spec, [("x", 100)], 100) == "cooldown: started 0 ms away, needs 10 ms"


def test_late_events_beyond_the_horizon_are_refused_for_capped_actions() -> None:
    h = horizon_ms(CATALOG)
    assert h == 300  # the longest window or cooldown of the catalog
    latest = 10_000
    late_at = late_limit(latest, CATALOG)
    assert late_at == latest - h
    for name in ("a", "b", "c"):
        reason = blocked(SPECS[name], [], late_at, late_at)
        assert reason is not None and reason.startswith("late:"), reason
        assert blocked(SPECS[name], [], late_at - 5_000, late_at) is not None
        assert blocked(SPECS[name], [], late_at + 1, late_at) is None


def test_uncapped_actions_are_never_blocked() -> None:
    spec = ActionSpec(name="x", priority=1)
    crowded: list[Start] = [("x", t) for t in range(0, 100)]
    for at in (-(10**12), 0, 50, 99, 10**12):
        assert blocked(spec, crowded, at, late_at_ms=10**12) is None


def test_record_start_keeps_what_any_event_after_the_late_limit_can_see() -> None:
    h = horizon_ms(CATALOG)
    starts: list[Start] = [("a", 100), ("b", 101), ("c", 400)]
    kept = record_start(starts, "a", 350, latest_ms=100 + 2 * h, catalog=CATALOG)
    assert kept == [("b", 101), ("c", 400), ("a", 350)]  # 100 <= latest - 2h: dropped
    assert starts == [("a", 100), ("b", 101), ("c", 400)]  # the input is not mutated


def test_the_default_catalogs_horizon_is_its_longest_window() -> None:
    assert horizon_ms(DEFAULT_CATALOG) == DAY_MS
