"""Identity stitching through the real broker: the identity stage in front of four events
partitions (stream.router), against the offline replay."""

from __future__ import annotations

import itertools

import orjson
import pytest

from agents.settings import Settings
from scripts.kafkaio import consume
from scripts.procs import free_port, wait_for_port
from scripts.replay import collect_decisions, offline_decisions, send_log
from stream import StepConfig
from stream.partitioning import partition_for
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from stream.timeutil import ms_to_iso
from tests.integration.conftest import WorkerFactory
from tests.integration.test_pipeline import (
    _stored_profiles,
    _without_positions,
    differing_profiles,
)
from tests.integration.test_privacy import (
    ERASED_ANON,
    ERASED_ID,
    OTHERS,
    TOKEN,
    _anonymous_visit,
    _call,
    _count_mentions,
    _decisions_for,
    _history,
    assert_changelogs_forget,
    assert_stores_forget,
)

pytestmark = pytest.mark.broker

ON = StepConfig(stitch_identities=True)
T0 = 1_700_000_000_000


def _event(n: int, t_s: int, **fields: object) -> bytes:
    doc: dict[str, object] = {"type": "track", "event": "Product Viewed", "messageId": f"hand-{n}"}
    doc.update(fields)
    doc["timestamp"] = ms_to_iso(T0 + t_s * 1000)
    doc.setdefault("properties", {"product_id": f"p{n % 3}", "category": "shoes", "price": 9.5})
    return orjson.dumps(doc)


def _hand_written() -> list[bytes]:
    """The orders the synthetic log lacks: a login before the device's anonymous events, an
    alias of an old user id, and the same identify sent twice."""
    return [
        _event(1, 0, type="identify", userId="first", anonymousId="dev-1"),
        _event(2, 10, anonymousId="dev-1"),  # only the device's id, after the login
        _event(3, 20, anonymousId="dev-1"),
        _event(4, 30, userId="old-id"),
        _event(5, 40, type="alias", userId="new-id", previousId="old-id"),
        _event(6, 50, userId="old-id"),  # still sent under the old id
        _event(7, 60, anonymousId="dev-2"),
        _event(8, 70, type="identify", userId="second", anonymousId="dev-2"),
        # The same identify sent again (an SDK retry): applied once.
        _event(9, 70, type="identify", userId="second", anonymousId="dev-2", messageId="hand-8"),
    ]


def _log() -> list[bytes]:
    generated = itertools.islice(generate_events(GeneratorConfig(seed=71, users=50, days=2.0)), 900)
    return [orjson.dumps(e) for e in generated] + _hand_written()


def test_stitched_identities_through_kafka_equal_an_offline_replay(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    """Decisions byte for byte and every stored profile (persons and forwarders) as offline,
    with keys on different partitions, a restart halfway and records delivered twice (a fault
    that drops first deliveries)."""
    lines = _log()
    half = len(lines) // 2
    bootstrap, names = settings.bootstrap_servers, settings.names
    worker = start_worker(stitch_identities="true", fault_lose_every=9)
    send_log(lines[:half], bootstrap, names.ingest)
    assert collect_decisions(lines[:half], bootstrap, names.decisions, idle_s=6.0).count(b"\n") > 0
    assert not worker.stop(), "the worker should stop on SIGTERM without being killed"
    start_worker(stitch_identities="true")
    send_log(lines[half:], bootstrap, names.ingest)
    collected = collect_decisions(lines, bootstrap, names.decisions, idle_s=8.0)
    assert collected == offline_decisions(lines, ON, partitions=settings.partitions)

    expected = replay(lines, ON, partitions=settings.partitions).profiles
    stored = _stored_profiles(settings)
    assert not differing_profiles(
        _without_positions(stored),
        _without_positions({k: p.to_dict() for k, p in expected.items()}),
    )
    # The stories the hand-written events tell.
    assert stored["first"]["counts"] == {"identify": 1, "Product Viewed": 2}
    assert stored["dev-1"]["merged_into"] == "first"
    assert stored["new-id"]["counts"] == {"Product Viewed": 2, "alias": 1}
    assert stored["old-id"]["merged_into"] == "new-id"
    assert stored["second"]["counts"] == {"Product Viewed": 1, "identify": 1}
    merged = sum(1 for p in stored.values() if p["merged_into"] is not None)
    assert merged >= 3 + 3, merged  # the hand-written three, and logins of the synthetic log


def test_erasing_a_stitched_person_leaves_no_key_link_or_handoff(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    """The person's anonymous history, merged from another partition, goes with them: no
    profile, forwarder, link (the identity stage's table) or handoff names either key after."""
    port = free_port()
    worker = start_worker(
        stitch_identities="true",
        web_enabled="true",
        web_port=port,
        privacy_tokens=f"support-desk:{TOKEN}",
    )
    wait_for_port("127.0.0.1", port, timeout_s=30.0, proc=worker.process)
    base = worker.web_url
    assert base is not None
    assert partition_for(ERASED_ID.encode(), 4) != partition_for(ERASED_ANON.encode(), 4)
    ids = {"anonymousId": ERASED_ANON}
    before = (
        _anonymous_visit(4)
        + _history(ERASED_ID, 0, 12, **ids)
        + [line for user in OTHERS for line in _history(user, 0, 4)]
    )
    bootstrap, names = settings.bootstrap_servers, settings.names
    send_log(before, bootstrap, names.ingest)
    assert len(_decisions_for(settings, len(before))) == len(before)
    status, doc = _call("GET", f"{base}/privacy/users/{ERASED_ID}")
    assert status == 200, doc
    assert doc["user"]["merged_keys"] == [ERASED_ANON]
    assert doc["activity"]["events_by_name"]["Product Viewed"] == 4 + 9  # merged

    status, accepted = _call("POST", f"{base}/privacy/erasures", {"user_key": ERASED_ID})
    assert status == 202, accepted
    audit = [orjson.loads(v) for _, v in consume(bootstrap, names.audit, 2, linger_s=3.0)]
    assert len(audit) == 2
    record = next(a for a in audit if a["cascaded_from"] is None)
    assert record["tombstones"] == [names.profiles_changelog, names.identities_changelog]

    # In flight: the person's events and the device's anonymous ones (routed to the person
    # until the stage forgot the link, to the device's own key after): no decision.
    in_flight = _history(ERASED_ID, 12, 3, **ids) + _anonymous_visit(3, start=4)
    after = [line for user in OTHERS for line in _history(user, 4, 2)]
    send_log(in_flight + after, bootstrap, names.ingest)
    decisions = _decisions_for(settings, len(before) + len(after))
    assert len(decisions) == len(before) + len(after)
    assert _call("GET", f"{base}/privacy/users/{ERASED_ANON}")[0] == 404

    assert_changelogs_forget(
        settings,
        [
            names.profiles_changelog,
            names.learners_changelog,
            names.suppressions_changelog,
            names.identities_changelog,
            names.handoffs_changelog,
        ],
    )
    assert _count_mentions(settings, names.audit) == 0
    worker.stop(timeout_s=15.0)
    assert assert_stores_forget(settings.data_dir) >= 5  # and the identity stage's tables
