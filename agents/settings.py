"""Worker settings, read from the environment (prefix ``LIVEPROFILES_``) with pydantic.

Broker profiles differ only in settings:

* ``embedded``: the local Tansu broker. Its quirks (see the project's BROKER notes) are handled
  here and nowhere else: high-waters read from Fetch (the ``tansu://`` transport), a 10 s session
  timeout (Tansu's group join waits half of it), at-least-once processing.
* ``kafka``: Apache Kafka or any compatible cluster, with Faust's stock transport.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.logs import default_worker_id
from agents.names import DEFAULT_PREFIX, Names
from stream.config import StepConfig, parse_properties
from stream.exceptions import ConfigError
from stream.policyconfig import DEFAULT_POLICY, load_policy

__all__ = ["BrokerProfile", "Settings"]


class BrokerProfile(StrEnum):
    EMBEDDED = "embedded"
    KAFKA = "kafka"


class Settings(BaseSettings):
    """Everything a worker needs to know; immutable once built."""

    model_config = SettingsConfigDict(env_prefix="LIVEPROFILES_", frozen=True)

    broker_profile: BrokerProfile = BrokerProfile.EMBEDDED
    #: ``host:port`` of one or more bootstrap servers, comma-separated.
    bootstrap_servers: str = "127.0.0.1:9092"
    prefix: str = DEFAULT_PREFIX
    partitions: int = Field(default=4, ge=1, le=1024)
    replication: int = Field(default=1, ge=1)
    data_dir: Path = Path(".state")
    #: Micro-batch: at most this many events, waiting at most ``batch_within_s`` for more.
    batch_max: int = Field(default=2000, ge=1)
    batch_within_s: float = Field(default=0.01, gt=0)
    #: The worker's web server: ``/metrics`` (Prometheus), ``/dashboard``, ``/stats.json``.
    web_enabled: bool = False
    web_port: int = Field(default=6066, ge=1, le=65535)
    web_host: str = "127.0.0.1"
    log_level: str = "warning"
    #: ``json``: one object per line with consistent fields (agents.logs); ``text``: for humans.
    log_format: Literal["json", "text"] = "json"
    #: Names this worker in logs, metrics and the dashboard; empty means ``host:pid``.
    worker_id: str = ""
    #: Idle profiles (stream.eviction): profiles looked at per micro-batch, and event time the
    #: partition watermark must move before a new pass over a partition starts.
    eviction_budget: int = Field(default=100, ge=0)
    eviction_every_ms: int = Field(default=3_600_000, ge=1)
    #: Profiles a worker keeps restored between batches (agents.profilecache), about 15-40 KB
    #: of memory each; 0 decodes every profile from the table on every batch.
    profile_cache_size: int = Field(default=2048, ge=0)
    #: Event times in each partition's watermark sample (stream.watermark).
    watermark_sample: int = Field(default=101, ge=1)
    #: Tests only (agents.faults): drop the first delivery of every Nth record; 0 is off.
    fault_lose_every: int = Field(default=0, ge=0)
    #: The next-best-action policy (catalog, variants, rewards) as a JSON file
    #: (stream.policyconfig); unset: the built-in default policy.
    policy_file: Path | None = None
    #: The privacy API (agents.privacy): bearer tokens as ``name:token`` pairs, comma-separated.
    #: The name is who the audit record says asked. Empty: the privacy endpoints answer 503.
    privacy_tokens: str = ""
    #: Key of the HMAC that names an erased user in the audit topic and the suppression table
    #: (stream.erasure.subject_of). Set a secret of your own in production.
    privacy_secret: str = "liveprofiles-dev-secret"
    #: An erased user's events up to this much event time after the request are dropped as
    #: still in flight (client clocks run ahead by this much at most).
    erasure_skew_ms: int = Field(default=10 * 60 * 1000, ge=0)
    #: Data minimization: the event properties profiles may keep, comma-separated (see
    #: stream.config.StepConfig.stored_properties; empty: none); unset: every one features read.
    stored_properties: str | None = None
    #: Identity stitching (stream.identity, stream.router): producers then send events to the
    #: one-partition ingest topic, and the worker's identity stage routes each to its person's
    #: events partition.
    stitch_identities: bool = False
    #: How long (processing time) a person's partition waits at an identity link for the
    #: other key's handoff before linking without merging (agents.identity; a failure path).
    identity_handoff_timeout_s: float = Field(default=30.0, gt=0)
    #: uvloop roughly halves the event-loop overhead that dominates a Faust worker's CPU time.
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"

    @property
    def process_id(self) -> str:
        """``worker_id``, else ``host:pid``: how this process names itself in logs and metrics."""
        return self.worker_id or default_worker_id()

    def privacy_token_names(self) -> dict[str, str]:
        """token -> name, from ``privacy_tokens`` (:class:`ConfigError` when malformed)."""
        tokens: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in self.privacy_tokens.split(","))):
            name, sep, token = pair.partition(":")
            if not sep or not name.strip() or len(token.strip()) < 16:
                raise ConfigError(
                    "LIVEPROFILES_PRIVACY_TOKENS: each entry is name:token, the token at least "
                    f"16 characters (got {name.strip() or '?'}:...)"
                )
            tokens[token.strip()] = name.strip()
        return tokens

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    @property
    def ingress_topic(self) -> str:
        """Where producers send events: the ingest topic when identities are stitched (the
        identity stage routes them on), else the events topic."""
        names = self.names
        return names.ingest if self.stitch_identities else names.events

    def step_config(self) -> StepConfig:
        """The pure step's configuration these settings ask for (:class:`ConfigError` when the
        policy file is unreadable or invalid, or the allow-list names a property no feature
        reads)."""
        policy = DEFAULT_POLICY if self.policy_file is None else load_policy(self.policy_file)
        if self.stored_properties is None:
            return StepConfig(policy=policy, stitch_identities=self.stitch_identities)
        return StepConfig(
            policy=policy,
            stored_properties=parse_properties(self.stored_properties),
            stitch_identities=self.stitch_identities,
        )

    def broker_urls(self) -> list[str]:
        """Faust broker URLs; the scheme picks the transport."""
        scheme = "tansu" if self.broker_profile is BrokerProfile.EMBEDDED else "kafka"
        return [f"{scheme}://{server.strip()}" for server in self.bootstrap_servers.split(",")]

    def faust_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`faust.App`."""
        options: dict[str, Any] = {
            "broker": self.broker_urls(),
            "store": "rocksdb://",
            "datadir": str(self.data_dir),
            "topic_partitions": self.partitions,
            "topic_replication_factor": self.replication,
            "topic_allow_declare": True,
            "processing_guarantee": "at_least_once",
            "consumer_auto_offset_reset": "earliest",
            "recovery_consistency_check": True,
            "table_standby_replicas": 0,
            # On rebalance, finish and acknowledge the batch in flight before partitions move.
            "stream_wait_empty": True,
            "web_enabled": self.web_enabled,
            "web_port": self.web_port,
            "web_host": self.web_host,
            "broker_commit_every": 1000,
            "broker_commit_interval": 1.0,
            # Larger producer batches: decisions are ~1 KB, and the 16 KB default meant a produce
            # request every ~15 decisions (the worker's biggest cost after the step itself).
            "producer_linger": 0.005,
            "producer_max_batch_size": 512 * 1024,
            "producer_max_request_size": 4 * 1024 * 1024,
        }
        if self.broker_profile is BrokerProfile.EMBEDDED:
            options.update(broker_session_timeout=10, broker_heartbeat_interval=1)
        else:
            options.update(broker_session_timeout=30)
        return options
