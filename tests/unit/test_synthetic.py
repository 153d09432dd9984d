"""Tests for the seeded synthetic clickstream generator and its CLI."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import math
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scripts.generate import main
from stream.synthetic import (
    CATEGORIES,
    SESSION_GAP_MS,
    GeneratorConfig,
    build_catalog,
    encode_ndjson,
    generate_events,
    iso_ms,
    user_traits,
)

SMALL = GeneratorConfig(users=40, days=1.0)
# large enough for stable conversion statistics, small enough for ~1-2 s of generation
FUNNEL = GeneratorConfig(seed=11, users=500, days=3.0)
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
TRACK_EVENTS = {
    "Products Searched",
    "Product List Viewed",
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
}


def ndjson_digest(config: GeneratorConfig) -> str:
    digest = hashlib.sha256()
    for line in encode_ndjson(generate_events(config)):
        digest.update(line)
    return digest.hexdigest()


def parse_ms(text: str) -> int:
    when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round(when.timestamp() * 1000)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes() -> None:
    assert ndjson_digest(SMALL) == ndjson_digest(GeneratorConfig(users=40, days=1.0))


def test_different_seed_gives_different_bytes() -> None:
    assert ndjson_digest(SMALL) != ndjson_digest(GeneratorConfig(seed=8, users=40, days=1.0))


def test_bytes_identical_in_another_process_with_other_hash_seed() -> None:
    code = (
        "from stream.synthetic import GeneratorConfig, encode_ndjson, generate_events\n"
        "import hashlib, sys\n"
        "h = hashlib.sha256()\n"
        "for line in encode_ndjson(generate_events(GeneratorConfig(users=40, days=1.0))):\n"
        "    h.update(line)\n"
        "sys.stdout.write(h.hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, env=env, timeout=60
    )
    assert out.stdout.decode() == ndjson_digest(SMALL)


def test_traits_are_deterministic_and_match_the_events() -> None:
    traits = user_traits(SMALL)
    assert traits == user_traits(GeneratorConfig(users=40, days=1.0))
    assert traits != user_traits(GeneratorConfig(seed=8, users=40, days=1.0))
    by_anon = {a: t for t in traits.values() for a in t.anonymous_ids}
    for event in generate_events(SMALL):
        owner = by_anon[event["anonymousId"]]
        assert event["context"]["timezone"] == owner.timezone
        assert event["context"]["locale"] == owner.locale
        if "userId" in event:
            assert event["userId"] == owner.user_id


# --------------------------------------------------------------------------- config / traits


@pytest.mark.parametrize(
    "bad",
    [
        {"users": 0},
        {"days": 0},
        {"days": math.nan},
        {"products": 5},
        {"search_rate": 1.5},
        {"login_fraction": -0.1},
        {"mean_browse_steps": 0.5},
        {"sessions_per_user_per_day": -1.0},
        {"start_ms": -1},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)


def test_user_traits_are_plausible() -> None:
    traits = user_traits(GeneratorConfig(users=400))
    assert len(traits) == 400
    assert len({a for t in traits.values() for a in t.anonymous_ids}) == sum(
        len(t.devices) for t in traits.values()
    )
    for t in traits.values():
        assert 0.0 <= t.propensity <= 1.0
        assert math.isclose(sum(t.category_affinity), 1.0)
        assert len(t.category_affinity) == len(CATEGORIES)
        assert set(t.favourite_categories) <= set(CATEGORIES)
        assert t.key == (t.user_id or t.anonymous_ids[0])
        ZoneInfo(t.timezone)  # a real IANA zone
    registered = sum(t.user_id is not None for t in traits.values()) / 400
    assert 0.3 < registered < 0.6
    two_devices = [t for t in traits.values() if len(t.devices) == 2]
    assert 0.15 * 400 < len(two_devices) < 0.35 * 400
    for t in two_devices:
        platforms = {d.platform for d in t.devices}
        assert "web" in platforms and platforms & {"ios", "android"}


def test_catalog_shape() -> None:
    catalog = build_catalog(GeneratorConfig())
    assert len(catalog) == 500
    assert len({p.product_id for p in catalog}) == 500
    assert {p.category for p in catalog} == set(CATEGORIES)
    for p in catalog:
        assert p.price > 0 and round(p.price, 2) == p.price
        assert p.sku and p.brand and p.name


# --------------------------------------------------------------------------- event shape


def test_event_shape_follows_segment_spec() -> None:
    allowed = {"type", "messageId", "timestamp", "sentAt", "anonymousId", "userId", "event"}
    allowed |= {"name", "properties", "context", "traits", "channel"}
    seen_types: Counter[str] = Counter()
    for e in generate_events(SMALL):
        seen_types[e["type"]] += 1
        assert set(e) <= allowed
        assert e["channel"] == "client"
        assert ISO_RE.match(e["timestamp"]) and ISO_RE.match(e["sentAt"])
        lag = parse_ms(e["sentAt"]) - parse_ms(e["timestamp"])
        assert 0 < lag <= 5_100
        assert e["anonymousId"].startswith("anon-")
        ctx = e["context"]
        assert ctx["library"]["name"] in {"analytics.js", "analytics-ios", "analytics-android"}
        assert ctx["device"]["type"] in {"mobile", "desktop", "tablet"}
        assert {"locale", "timezone", "os"} <= set(ctx)
        web = ctx["library"]["name"] == "analytics.js"
        assert ("page" in ctx and "userAgent" in ctx) == web
        assert ("app" in ctx) == (not web)
        if e["type"] == "track":
            assert e["event"] in TRACK_EVENTS
        elif e["type"] == "page":
            assert web and e["name"]
            assert set(e["properties"]) == {"path", "url", "title", "referrer"}
            assert e["properties"] == ctx["page"]
        elif e["type"] == "screen":
            assert not web and e["name"]
        else:
            assert e["type"] == "identify"
            assert e["userId"].startswith("user-") and {"plan", "created_at"} <= set(e["traits"])
    assert {"page", "screen", "track", "identify"} <= set(seen_types)


def test_no_dict_is_shared_between_events() -> None:
    events = list(itertools.islice(generate_events(SMALL), 300))
    dicts = [e["properties"] if "properties" in e else e["traits"] for e in events]
    dicts += [d for e in events for d in (e["context"], *e["context"].values()) if type(d) is dict]
    assert len({id(d) for d in dicts}) == len(dicts)  # mutating one event never leaks


def test_iso_ms_formats_utc_with_milliseconds() -> None:
    assert iso_ms(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_700_000_059_999) == "2023-11-14T22:14:19.999Z"


# --------------------------------------------------------------------------- one pass over FUNNEL


@dataclass
class _UserRun:
    last_ms: int = -1
    sessions: int = 0
    ordered_sessions: int = 0
    ordered_this_session: bool = False
    prev: dict[str, Any] | None = None
    viewed: set[str] = field(default_factory=set)
    cart: dict[str, int] = field(default_factory=dict)
    added_this_session: int = 0
    checkout_ids: set[str] = field(default_factory=set)


@dataclass
class FunnelStats:
    events: int = 0
    ordering_violations: int = 0
    duplicate_ids: int = 0
    bad_gaps: int = 0
    orders: int = 0
    funnel_violations: list[str] = field(default_factory=list)
    local_daytime: int = 0
    identify_then_anonymous: int = 0
    runs: dict[str, _UserRun] = field(default_factory=dict)


def _check_event(e: dict[str, Any], run: _UserRun, stats: FunnelStats) -> None:
    name, props = e.get("event"), e.get("properties", {})
    pid = props.get("product_id")
    if name == "Product Viewed":
        run.viewed.add(pid)
    elif name == "Product Added":
        prev = run.prev or {}
        ok = prev.get("event") == "Product Viewed" and prev["properties"]["product_id"] == pid
        if not ok or pid not in run.viewed:
            stats.funnel_violations.append(f"add without view: {e['messageId']}")
        run.cart[pid] = props["quantity"]
        run.added_this_session += 1
    elif name == "Product Removed":
        if run.cart.pop(pid, None) is None:
            stats.funnel_violations.append(f"remove without add: {e['messageId']}")
    elif name == "Checkout Started":
        if {p["product_id"] for p in props["products"]} != set(run.cart):
            stats.funnel_violations.append(f"checkout != cart: {e['messageId']}")
        run.checkout_ids.add(props["order_id"])
    elif name == "Order Completed":
        stats.orders += 1
        _check_order(e, run, stats)


def _check_order(e: dict[str, Any], run: _UserRun, stats: FunnelStats) -> None:
    props = e["properties"]
    if run.added_this_session == 0 or props["order_id"] not in run.checkout_ids:
        stats.funnel_violations.append(f"order without add/checkout: {e['messageId']}")
    lines = props["products"]
    if {p["product_id"]: p["quantity"] for p in lines} != run.cart:
        stats.funnel_violations.append(f"order != cart: {e['messageId']}")
    revenue = round(sum(p["price"] * p["quantity"] for p in lines), 2)
    if not math.isclose(props["revenue"], revenue) or props["total"] < revenue:
        stats.funnel_violations.append(f"order amounts: {e['messageId']}")
    run.ordered_this_session = True


def _new_session(run: _UserRun) -> None:
    run.sessions += 1
    run.ordered_sessions += run.ordered_this_session
    run.ordered_this_session = False
    run.viewed.clear()
    run.cart.clear()
    run.added_this_session = 0
    run.checkout_ids.clear()


@pytest.fixture(scope="module")
def funnel_stats() -> FunnelStats:
    traits = user_traits(FUNNEL)
    owner = {a: t for t in traits.values() for a in t.anonymous_ids}
    zones = {t.timezone: ZoneInfo(t.timezone) for t in traits.values()}
    stats, seen, last_ms = FunnelStats(), set(), -1
    logged_in: set[str] = set()
    for e in generate_events(FUNNEL):
        stats.events += 1
        ms = parse_ms(e["timestamp"])
        stats.ordering_violations += ms < last_ms
        last_ms = ms
        stats.duplicate_ids += e["messageId"] in seen
        seen.add(e["messageId"])
        t = owner[e["anonymousId"]]
        run = stats.runs.setdefault(t.key, _UserRun())
        if run.last_ms < 0 or ms - run.last_ms > SESSION_GAP_MS:
            _new_session(run)
        elif ms - run.last_ms > 21 * 60_000:
            stats.bad_gaps += 1  # in-session gaps are capped at 20 min
        run.last_ms = ms
        if e["type"] == "identify":
            logged_in.add(e["anonymousId"])
        elif e["anonymousId"] in logged_in and "userId" not in e:
            stats.identify_then_anonymous += 1
        _check_event(e, run, stats)
        run.prev = e
        local = datetime.fromtimestamp(ms / 1000, tz=zones[e["context"]["timezone"]])
        stats.local_daytime += local.hour >= 8
    for run in stats.runs.values():
        _new_session(run)  # flush the last session
        run.sessions -= 1
    return stats


def test_timestamps_non_decreasing_and_message_ids_unique(funnel_stats: FunnelStats) -> None:
    assert funnel_stats.events > 50_000
    assert funnel_stats.ordering_violations == 0
    assert funnel_stats.duplicate_ids == 0


def test_sessions_are_separated_by_inactivity(funnel_stats: FunnelStats) -> None:
    assert funnel_stats.bad_gaps == 0


def test_funnel_is_consistent(funnel_stats: FunnelStats) -> None:
    assert funnel_stats.orders > 100
    assert funnel_stats.funnel_violations == []


def test_logged_in_devices_keep_the_user_id(funnel_stats: FunnelStats) -> None:
    assert funnel_stats.identify_then_anonymous == 0


def test_most_events_happen_in_local_daytime(funnel_stats: FunnelStats) -> None:
    print(f"local 08:00-23:59 share: {funnel_stats.local_daytime / funnel_stats.events:.3f}")
    assert funnel_stats.local_daytime / funnel_stats.events > 0.7


def test_planted_propensity_drives_conversion(funnel_stats: FunnelStats) -> None:
    traits = user_traits(FUNNEL)
    active = sorted(
        (t for t in traits.values() if t.key in funnel_stats.runs), key=lambda t: t.propensity
    )
    q = len(active) // 4

    def rate(group: list[Any]) -> float:
        runs = [funnel_stats.runs[t.key] for t in group]
        return sum(r.ordered_sessions for r in runs) / sum(r.sessions for r in runs)

    bottom, top = rate(active[:q]), rate(active[-q:])
    print(f"ordered sessions / sessions: bottom quartile {bottom:.3f}, top quartile {top:.3f}")
    assert top > 2.5 * bottom and top - bottom > 0.05, (bottom, top)


# --------------------------------------------------------------------------- laziness / memory


def test_generator_is_lazy() -> None:
    huge = GeneratorConfig(users=2_000, days=36_500.0)
    began = time.perf_counter()
    first = list(itertools.islice(generate_events(huge), 10))
    assert len(first) == 10
    assert time.perf_counter() - began < 2.0


def test_memory_does_not_grow_with_events() -> None:
    config = GeneratorConfig(users=100, days=365.0)
    tracemalloc.start()
    try:
        events = generate_events(config)
        for _ in itertools.islice(events, 2_000):
            pass
        _, early_peak = tracemalloc.get_traced_memory()
        for _ in itertools.islice(events, 8_000):
            pass
        _, late_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert late_peak < early_peak + 2_000_000  # 8k more events would be ~20 MB if kept


# --------------------------------------------------------------------------- decoding contract


def test_every_generated_event_decodes_as_valid() -> None:
    decode = pytest.importorskip("stream.decode")
    from stream.events import Event

    for line in encode_ndjson(generate_events(SMALL)):
        decoded = decode.decode_event(line)
        assert isinstance(decoded, Event), decoded
        assert iso_ms(decoded.timestamp_ms) in line.decode()


# --------------------------------------------------------------------------- CLI


def test_cli_writes_ndjson_and_gzip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain, packed = tmp_path / "events.ndjson", tmp_path / "events.ndjson.gz"
    args = ["--users", "30", "--days", "1", "--seed", "3", "--no-progress"]
    assert main([*args, "--out", str(plain)]) == 0
    assert main([*args, "--out", str(packed)]) == 0
    expected = b"".join(encode_ndjson(generate_events(GeneratorConfig(seed=3, users=30))))
    assert plain.read_bytes() == expected
    with gzip.open(packed, "rb") as fh:
        assert fh.read() == expected
    lines = expected.count(b"\n")
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 2 and summary[0].startswith(f"wrote {lines} events")


def test_cli_limit_and_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "limited.ndjson"
    assert main(["--users", "50", "--limit", "123", "--out", str(out)]) == 0
    assert len(out.read_bytes().splitlines()) == 123
    captured = capsys.readouterr()
    assert "ev/s" in captured.err
    assert "wrote 123 events" in captured.out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--out", "x", "--users", "0"],
        ["--out", "x", "--users", "many"],
        ["--out", "x", "--days", "-1"],
        ["--out", "x", "--limit", "0"],
    ],
)
def test_cli_bad_arguments_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_cli_unwritable_path_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--users", "2", "--out", str(tmp_path / "no" / "such.ndjson")]) == 1
    assert "error:" in capsys.readouterr().err
