"""Erasure and transparency on the real broker, through the worker's privacy API.

One user is erased while the others go on; then every table (the worker's RocksDB stores, read
after it stopped), every changelog (its compacted view: the latest record per key) and every
topic the worker writes is scanned for the user's ids. The append-only output topics may still
hold what was sent *before* the erasure (they age out with retention); nothing names the user
after it, although events the user sent before the erasure keep arriving.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from rocksdict import AccessType, Rdict

from agents.settings import Settings
from scripts.kafkaio import consume, new_producer, send_lines
from scripts.procs import free_port, wait_for_port
from stream.partitioning import partition_for
from stream.timeutil import ms_to_iso
from tests.integration.conftest import WorkerFactory

pytestmark = pytest.mark.broker

T0 = 1_700_000_000_000
TOKEN = "s3cret-token-for-tests"
ERASED_ID, ERASED_ANON = "erase-me@example.com", "anon-erase-me-7f3a"
OTHERS = [f"other-{i}" for i in range(6)]


def _event(user: str, n: int, at_ms: int, name: str = "Product Viewed", **extra: Any) -> bytes:
    doc: dict[str, Any] = {
        "type": "track",
        "event": name,
        "messageId": f"{user}-{n}",
        "userId": user,
        "timestamp": ms_to_iso(at_ms),
        "properties": {"product_id": f"p{n % 4}", "category": "shoes", "price": 25.0},
        **extra,
    }
    return orjson.dumps(doc)


def _anonymous_visit(count: int, start: int = 0) -> list[bytes]:
    """The erased user's visits before logging in: keyed by their anonymous id alone (so a
    profile of their own, on another partition than the known user's)."""
    lines = []
    for n in range(start, start + count):
        doc = orjson.loads(_event(ERASED_ANON, n, T0 - 3_600_000 + n * 10_000))
        del doc["userId"]
        doc["anonymousId"] = ERASED_ANON
        lines.append(orjson.dumps(doc))
    return lines


def _history(user: str, start: int, count: int, **extra: Any) -> list[bytes]:
    names = ["Product Viewed", "Product Viewed", "Product Added", "Product Viewed"]
    return [
        _event(user, start + n, T0 + (start + n) * 15_000, names[n % 4], **extra)
        for n in range(count)
    ]


def _call(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15.0) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def _decisions_for(settings: Settings, expected: int) -> list[dict[str, Any]]:
    # Reads on for 3 s past the expected count: a decision too many must be seen.
    records = consume(
        settings.bootstrap_servers, settings.names.decisions, expected, idle_s=20.0, linger_s=3.0
    )
    return [orjson.loads(value) for _, value in records]


def _by_id(decision: dict[str, Any]) -> str:
    return str(decision["decision_id"])


def _latest(settings: Settings, topic: str) -> dict[bytes | None, bytes | None]:
    """The compacted view of a changelog: the latest value of each key (``None``: tombstone)."""
    latest: dict[bytes | None, bytes | None] = {}
    for key, value in consume(settings.bootstrap_servers, topic, idle_s=3.0):
        latest[key] = value
    return latest


def _mentions(raw: bytes | None) -> bool:
    return raw is not None and (ERASED_ID.encode() in raw or ERASED_ANON.encode() in raw)


def _count_mentions(settings: Settings, topic: str) -> int:
    return sum(
        1
        for key, value in consume(settings.bootstrap_servers, topic, idle_s=3.0)
        if _mentions(key) or _mentions(value)
    )


def _rocksdb_stores(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*.db") if p.is_dir())


def assert_changelogs_forget(settings: Settings, changelogs: list[str]) -> None:
    """Only tombstones keep the erased user's keys in each changelog's compacted view (a
    tombstone is the key alone, by design: compaction drops it in turn, after the topic's
    delete.retention.ms), and no value names them."""
    for changelog in changelogs:
        for key, value in _latest(settings, changelog).items():
            assert value is None or not _mentions(key), (changelog, key)
            assert not _mentions(value), (changelog, key)


def assert_stores_forget(data_dir: Path) -> int:
    """No key or value of any RocksDB store (read after the worker stopped) names the erased
    user; the number of stores read."""
    stores = _rocksdb_stores(data_dir)
    for store in stores:
        db = Rdict(str(store), access_type=AccessType.read_only())
        try:
            for key, value in db.items():
                # The project's tables hold raw bytes (Faust's "raw" codec).
                raw_key, raw_value = cast(bytes, key), cast(bytes, value)
                assert not _mentions(raw_key) and not _mentions(raw_value), store
        finally:
            db.close()
    return len(stores)


def test_an_erased_user_is_gone_from_every_table_changelog_and_later_output(
    settings: Settings, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    port = free_port()
    worker = start_worker(web_enabled="true", web_port=port, privacy_tokens=f"support-desk:{TOKEN}")
    wait_for_port("127.0.0.1", port, timeout_s=30.0, proc=worker.process)
    base = worker.web_url
    assert base is not None

    assert partition_for(ERASED_ID.encode(), settings.partitions) != partition_for(
        ERASED_ANON.encode(), settings.partitions
    )
    ids = {"anonymousId": ERASED_ANON}
    before = (
        _anonymous_visit(4)
        + _history(ERASED_ID, 0, 12, **ids)
        + [line for user in OTHERS for line in _history(user, 0, 4)]
    )
    send_lines(settings.bootstrap_servers, settings.names.events, before)
    decisions = _decisions_for(settings, len(before))
    assert len(decisions) == len(before)
    own = [d for d in decisions if d["user"]["key"] in (ERASED_ID, ERASED_ANON)]
    assert len(own) == 4 + 12

    # Transparency: authenticated, and it explains the last decision.
    assert _call("GET", f"{base}/privacy/users/{ERASED_ID}", token=None)[0] == 401
    assert _call("GET", f"{base}/privacy/users/{ERASED_ID}", token="x" * 22)[0] == 401
    status, doc = _call("GET", f"{base}/privacy/users/{ERASED_ID}")
    assert status == 200, doc
    assert doc["user"] == {
        "key": ERASED_ID,
        "user_id": ERASED_ID,
        "anonymous_id": ERASED_ANON,
        "merged_keys": [],  # identities are not stitched here (tests/integration/test_identity)
        "merged_into": None,
    }
    last_own = [d for d in own if d["user"]["key"] == ERASED_ID][-1]
    assert doc["last_decision"]["decision_id"] == last_own["decision_id"]
    assert _call("GET", f"{base}/privacy/users/{ERASED_ANON}")[0] == 200
    assert [r[0] for r in doc["last_decision"]["reasons"]] == [
        r["detail"] for r in last_own["reasons"]
    ]
    assert doc["activity"]["events_by_name"] == {"Product Viewed": 9, "Product Added": 3}
    assert doc["features"], "the features the decision read are shown"

    rewards_before = _count_mentions(settings, settings.names.rewards)

    # The erasure request, over the API.
    status, accepted = _call(
        "POST", f"{base}/privacy/erasures", {"user_key": ERASED_ID, "reason": "ticket 1"}
    )
    assert status == 202, accepted
    audit = [
        orjson.loads(v)
        for _, v in consume(settings.bootstrap_servers, settings.names.audit, 2, linger_s=3.0)
    ]
    assert len(audit) == 2
    record, derived = sorted(audit, key=lambda a: a["cascaded_from"] is not None)
    # The anonymous profile of the visits before login went too, by a derived request.
    assert derived["cascaded_from"] == accepted["request_id"]
    assert record["cascaded"] == [derived["subject"]]
    assert derived["removed"]["profile"] is True and derived["removed"]["events_seen"] == 4
    assert derived["partition"] == partition_for(ERASED_ANON.encode(), settings.partitions)
    assert record["request_id"] == accepted["request_id"]
    assert record["subject"] == accepted["subject"]
    assert record["requested_by"] == "support-desk" and record["reason"] == "ticket 1"
    assert record["removed"]["profile"] is True and record["removed"]["events_seen"] == 12
    assert record["tombstones"] == [settings.names.profiles_changelog]
    assert record["partition"] == partition_for(ERASED_ID.encode(), settings.partitions)

    # Events the user sent before the erasure, still in flight, then the others' next events.
    in_flight = _history(ERASED_ID, 12, 5, **ids) + _anonymous_visit(3, start=4)
    after = [line for user in OTHERS for line in _history(user, 4, 2)]
    send_lines(settings.bootstrap_servers, settings.names.events, in_flight + after)
    total = len(before) + len(after)
    decisions = _decisions_for(settings, total)
    assert len(decisions) == total, "the erased user's in-flight events make no decision"
    again = [d for d in decisions if d["user"]["key"] in (ERASED_ID, ERASED_ANON)]
    assert sorted(again, key=_by_id) == sorted(own, key=_by_id)  # two partitions: any order

    status, gone = _call("GET", f"{base}/privacy/users/{ERASED_ID}")
    assert status == 404 and gone["erased_by_request"] == accepted["request_id"], gone
    status, gone = _call("GET", f"{base}/privacy/users/{ERASED_ANON}")
    assert status == 404 and gone["erased_by_request"] == derived["request_id"], gone
    status, other = _call("GET", f"{base}/privacy/users/{OTHERS[0]}")
    assert status == 200 and other["activity"]["events_by_name"]["Product Viewed"] == 3 + 2

    names = settings.names
    profiles = _latest(settings, names.profiles_changelog)
    for key in (ERASED_ID, ERASED_ANON):
        assert key.encode() in profiles and profiles[key.encode()] is None, f"tombstone of {key}"
    assert_changelogs_forget(
        settings,
        [names.profiles_changelog, names.learners_changelog, names.suppressions_changelog],
    )
    assert _count_mentions(settings, names.audit) == 0
    # The append-only outputs: nothing new names the user after the erasure (the decisions
    # were compared above; the user's pending decisions went with the profile, unsettled).
    assert _count_mentions(settings, names.rewards) == rewards_before
    assert _count_mentions(settings, names.deadletters) == 0

    worker.stop(timeout_s=15.0)
    # profiles, learners and suppressions, per partition
    assert assert_stores_forget(settings.data_dir) >= 3


def test_the_control_topic_forwards_a_miskeyed_request_and_dead_letters_garbage(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    worker = start_worker()
    user = "keyed-wrongly"
    home = partition_for(user.encode(), settings.partitions)
    wrong_key = next(
        k
        for k in (f"k{i}".encode() for i in range(100))
        if partition_for(k, settings.partitions) != home
    )
    send_lines(settings.bootstrap_servers, settings.names.events, _history(user, 0, 3))
    assert len(_decisions_for(settings, 3)) == 3
    request = {
        "schema": "erasure-request.v1",
        "request_id": "by-topic-1",
        "user_key": user,
        "requested_by": "a batch job",
        "requested_at_ms": T0 + 86_400_000,
        "reason": "",
    }
    producer = new_producer(settings.bootstrap_servers)
    try:
        producer.send(settings.names.erasures, key=b"garbage", value=b'{"not": "a request"}')
        producer.send(settings.names.erasures, key=wrong_key, value=orjson.dumps(request))
        producer.flush()
    finally:
        producer.close()
    audit = [
        orjson.loads(v) for _, v in consume(settings.bootstrap_servers, settings.names.audit, 1)
    ]
    assert [a["request_id"] for a in audit] == ["by-topic-1"]
    assert audit[0]["partition"] == home and audit[0]["removed"]["events_seen"] == 3
    letters = [
        orjson.loads(v)
        for _, v in consume(settings.bootstrap_servers, settings.names.deadletters, 1)
    ]
    assert [d["reason"] for d in letters] == ["invalid_erasure_request"]
    latest = _latest(settings, settings.names.profiles_changelog)
    assert latest[user.encode()] is None

    # The erasure stays in force across a restart that rebuilds every table from its changelog:
    # the user's in-flight events are still dropped, a new visit starts a new profile.
    worker.stop(timeout_s=15.0)
    shutil.rmtree(settings.data_dir)
    start_worker()
    in_flight = _history(user, 3, 2)  # event times before the request's
    new_visit = [_event(user, 99, T0 + 2 * 86_400_000)]
    send_lines(settings.bootstrap_servers, settings.names.events, in_flight + new_visit)
    decisions = _decisions_for(settings, 3 + 1)
    assert len(decisions) == 4
    assert decisions[-1]["event"]["message_id"] == f"{user}-99"
    assert _latest(settings, settings.names.profiles_changelog)[user.encode()] is not None


def _with_consent(line: bytes, granted: bool) -> bytes:
    doc = orjson.loads(line)
    doc["context"] = {"consent": {"categoryPreferences": {"Personalization": granted}}}
    return orjson.dumps(doc)


def test_consent_withdrawn_mid_stream_leaves_only_the_consent_record(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    port = free_port()
    worker = start_worker(web_enabled="true", web_port=port, privacy_tokens=f"desk:{TOKEN}")
    wait_for_port("127.0.0.1", port, timeout_s=30.0, proc=worker.process)
    base = worker.web_url
    user = "changes-their-mind"
    history = _history(user, 0, 6)
    withdrawn = [_with_consent(history[5], False)]  # the 6th event says "no"
    while_out = _history(user, 6, 3)  # say nothing: the user stays opted out
    back_in = [_with_consent(line, True) for line in _history(user, 9, 2)]
    send_lines(
        settings.bootstrap_servers, settings.names.events, history[:5] + withdrawn + while_out
    )
    decisions = _decisions_for(settings, 9)
    assert len(decisions) == 9
    rules = [d["reasons"][0]["rule"] for d in decisions]
    assert all(rule != "opted_out" for rule in rules[:5])
    assert rules[5:] == ["opted_out"] * 4
    assert all(d["action"] == "none" and d["propensity"] == 1.0 for d in decisions[5:])
    assert [d["predictions"] for d in decisions[5:]] == [None] * 4, "no model reads them"

    # While opted out, the profile is the consent record alone: in the changelog, and as the
    # transparency endpoint tells it.
    stored = [
        orjson.loads(value)
        for key, value in consume(settings.bootstrap_servers, settings.names.profiles_changelog)
        if key == user.encode() and value is not None
    ]
    record = stored[-1]
    assert record["consent"] is False
    assert record["counts"] == {} and record["labels"] == [] and record["decisions"] == []
    assert record["final"]["cart"] == {} and record["final"]["categories"] == {}
    assert record["last_decision"] is None and record["pending"] == []
    status, doc = _call("GET", f"{base}/privacy/users/{user}")
    assert status == 200 and doc["consent"]["personalization"] is False, doc
    assert doc["features"] == {} and doc["activity"]["events_by_name"] == {}

    # Opted back in, the profile starts from clean: only the two events since.
    send_lines(settings.bootstrap_servers, settings.names.events, back_in)
    decisions = _decisions_for(settings, 11)
    assert [d["reasons"][0]["rule"] != "opted_out" for d in decisions[9:]] == [True, True]
    status, doc = _call("GET", f"{base}/privacy/users/{user}")
    assert status == 200 and doc["consent"]["personalization"] is True, doc
    assert sum(doc["activity"]["events_by_name"].values()) == 2
