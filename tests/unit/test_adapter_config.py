"""Settings, names and the load driver's partitioning: the adapter's configuration surface."""

from __future__ import annotations

import pytest
from kafka.partitioner.default import DefaultPartitioner
from pydantic import ValidationError

from agents.names import Names
from agents.settings import BrokerProfile, Settings
from scripts.load import partition_for
from stream.config import DEFAULT_STORED_PROPERTIES
from stream.exceptions import ConfigError


def test_names_carry_the_prefix_and_a_version() -> None:
    names = Names("acme")
    assert names.events == "acme.events.v1"
    assert names.decisions == "acme.decisions.v3"
    assert names.deadletters == "acme.deadletters.v1"
    assert names.profiles_changelog == "acme-worker-v1-profiles-v7-changelog"
    assert (names.erasures, names.audit) == ("acme.erasures.v1", "acme.audit.v1")
    assert names.suppressions_changelog == "acme-worker-v1-suppressions-v1-changelog"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEPROFILES_BOOTSTRAP_SERVERS", "a:1,b:2")
    monkeypatch.setenv("LIVEPROFILES_PARTITIONS", "8")
    monkeypatch.setenv("LIVEPROFILES_BROKER_PROFILE", "kafka")
    settings = Settings()
    assert settings.partitions == 8
    assert settings.broker_profile is BrokerProfile.KAFKA
    assert settings.broker_urls() == ["kafka://a:1", "kafka://b:2"]


def test_the_stored_properties_allow_list_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().step_config().stored_properties == DEFAULT_STORED_PROPERTIES
    monkeypatch.setenv("LIVEPROFILES_STORED_PROPERTIES", " product_id, price,,category ")
    assert Settings().step_config().stored_properties == {"product_id", "price", "category"}
    monkeypatch.setenv("LIVEPROFILES_STORED_PROPERTIES", "")
    assert Settings().step_config().stored_properties == frozenset()  # set and empty: none
    monkeypatch.setenv("LIVEPROFILES_STORED_PROPERTIES", "price,brnad")
    with pytest.raises(ConfigError, match="no feature reads brnad"):
        Settings().step_config()


def test_privacy_tokens_are_name_token_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().privacy_token_names() == {}  # unset: the privacy API is off
    monkeypatch.setenv(
        "LIVEPROFILES_PRIVACY_TOKENS", " desk:0123456789abcdef , ops:fedcba9876543210x"
    )
    assert Settings().privacy_token_names() == {
        "0123456789abcdef": "desk",
        "fedcba9876543210x": "ops",
    }
    for bad in ("desk", "desk:short", ":0123456789abcdef"):
        monkeypatch.setenv("LIVEPROFILES_PRIVACY_TOKENS", bad)
        with pytest.raises(ConfigError, match="name:token"):
            Settings().privacy_token_names()


def test_a_malformed_privacy_token_stops_the_worker_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents.__main__ import main

    monkeypatch.setenv("LIVEPROFILES_PRIVACY_TOKENS", "desk:short")
    monkeypatch.setenv("LIVEPROFILES_LOG_FORMAT", "text")
    assert main(["worker"]) == 2
    assert "cannot start the worker: LIVEPROFILES_PRIVACY_TOKENS" in capsys.readouterr().err


def test_embedded_profile_uses_the_tansu_transport_and_short_sessions() -> None:
    options = Settings(bootstrap_servers="127.0.0.1:9").faust_options()
    assert options["broker"] == ["tansu://127.0.0.1:9"]
    assert options["broker_session_timeout"] == 10
    assert options["processing_guarantee"] == "at_least_once"
    assert options["consumer_auto_offset_reset"] == "earliest"
    assert options["recovery_consistency_check"] is True


def test_kafka_profile_keeps_the_stock_transport() -> None:
    options = Settings(broker_profile=BrokerProfile.KAFKA).faust_options()
    assert all(url.startswith("kafka://") for url in options["broker"])
    assert options["broker_session_timeout"] == 30


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(partitions=0)


@pytest.mark.parametrize("key", [b"user-1", b"anon-ffee", "ünïcode".encode(), b""])
def test_partition_for_matches_kafkas_default_partitioner(key: bytes) -> None:
    class Cluster:
        def topics(self) -> set[str]:
            return {"t"}

        def partitions_for_topic(self, topic: str) -> set[int]:
            return set(range(7))

        def available_partitions_for_topic(self, topic: str) -> set[int]:
            return set(range(7))

    expected = DefaultPartitioner().partition("t", key, key, None, None, Cluster())
    assert partition_for(key, 7) == expected


def test_producers_send_to_the_ingest_topic_when_identities_are_stitched() -> None:
    assert Settings(prefix="p").ingress_topic == "p.events.v1"
    assert Settings(prefix="p", stitch_identities=True).ingress_topic == "p.ingest.v1"
