"""stream.transparency: what a support agent reads about one user, from the stored profile."""

from __future__ import annotations

import itertools

import orjson

from stream import Profile, StepConfig
from stream.features import feature_vector
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from stream.transparency import NOT_KEPT, describe
from tests.support import viewed_event

CONFIG = StepConfig()


def _replayed() -> tuple[list[bytes], dict[str, Profile], dict[str, bytes]]:
    lines = [
        orjson.dumps(e)
        for e in itertools.islice(generate_events(GeneratorConfig(seed=11, users=15)), 1200)
    ]
    result = replay(lines, CONFIG)
    last = {d.user_key: d.to_bytes() for d in result.decisions}
    return lines, result.profiles, last


def test_the_document_explains_the_users_last_decision_from_the_stored_profile() -> None:
    _, profiles, last = _replayed()
    for user, profile in profiles.items():
        stored = Profile.from_bytes(profile.to_bytes())  # what the endpoint reads
        doc = orjson.loads(orjson.dumps(describe(stored, CONFIG)))  # plain JSON
        decision = orjson.loads(last[user])
        explained = doc["last_decision"]
        assert explained["decision_id"] == decision["decision_id"]
        assert explained["action"] == decision["action"]
        assert explained["event"] == [decision["event"]["name"], decision["event"]["time_ms"]]
        assert [r[0] for r in explained["reasons"]] == [r["detail"] for r in decision["reasons"]]
        assert [r[1] if len(r) > 1 else {} for r in explained["reasons"]] == [
            r["features"] for r in decision["reasons"]
        ]
        assert explained["policy"] == decision["policy"]["version"]
        assert explained["scores"] == {
            a: round(v, 4)
            for a, v in decision["policy"]["scores"].items()
            if a in decision["policy"]["eligible"]
        }
        assert explained["not_eligible"] == {
            a["action"]: a["rule"] for a in decision["alternatives"] if not a["eligible"]
        }
        predicted = decision["predictions"]
        assert explained["predictions"]["conversion"] == [
            predicted["conversion"]["p"],
            [w["says"] for w in predicted["conversion"]["why"]],
        ]
        assert explained["predictions"]["next_category"] == [
            label for label, _ in predicted["next_category"]["top"]
        ]
        assert doc["user"]["key"] == user
        assert doc["activity"]["events_by_name"] == profile.counts
        assert doc["features"] == orjson.loads(orjson.dumps(dict(feature_vector(profile, CONFIG))))
        assert doc["not_kept"] == list(NOT_KEPT)
        assert doc["properties_allow_list"] == sorted(CONFIG.stored_properties)


def test_describing_leaves_the_profile_as_it_was() -> None:
    _, profiles, _ = _replayed()
    for profile in profiles.values():
        stored = Profile.from_bytes(profile.to_bytes())
        before = stored.to_bytes()
        describe(stored, CONFIG)
        assert stored.to_bytes() == before and stored.head is None


def test_an_opted_out_user_is_described_by_their_consent_record_alone() -> None:
    opt_out = orjson.loads(viewed_event(2, "u1", "2024-01-01T00:01:00Z"))
    opt_out["context"] = {"consent": {"categoryPreferences": {"personalization": False}}}
    result = replay([viewed_event(1, "u1"), orjson.dumps(opt_out)], CONFIG)
    doc = describe(result.profiles["u1"], CONFIG)
    assert doc["consent"]["personalization"] is False
    assert "opted out" in doc["consent"]["meaning"]
    assert doc["features"] == {} and doc["activity"]["events_by_name"] == {}
    assert doc["last_decision"] is None, "an opted-out user's record keeps no decision"


def test_the_last_decision_keeps_no_client_free_text() -> None:
    odd = orjson.loads(viewed_event(1, "u1"))
    odd["event"] = "<script>alert(1)</script>"
    result = replay([orjson.dumps(odd)], CONFIG)
    summary = describe(result.profiles["u1"], CONFIG)["last_decision"]
    assert summary["event"][0] == "track:other"
    assert b"script" not in orjson.dumps(summary) and b"m1" not in orjson.dumps(summary)
