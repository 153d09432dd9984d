"""Create the project's topics up front, with explicit partition counts (kafka-python admin).

Faust would otherwise let the broker auto-create source topics with the broker's default count
(4 on Tansu), and then crash with ``PartitionsMismatch`` against the table's changelog.
"""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from agents.settings import Settings

__all__ = ["ensure_topics", "topic_specs"]

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> list[NewTopic]:
    """Every topic the worker reads or writes, with its partitions and cleanup policy."""
    names, parts, repl = settings.names, settings.partitions, settings.replication
    compacted = {"cleanup.policy": "compact"}
    return [
        NewTopic(names.events, parts, repl),
        NewTopic(names.decisions, parts, repl),
        NewTopic(names.rewards, parts, repl),
        NewTopic(names.deadletters, parts, repl),
        NewTopic(names.erasures, parts, repl),
        NewTopic(names.audit, parts, repl),
        NewTopic(names.suppressions_changelog, parts, repl, topic_configs=compacted),
        NewTopic(names.profiles_changelog, parts, repl, topic_configs=compacted),
        NewTopic(names.learners_changelog, parts, repl, topic_configs=compacted),
        # Identity stitching (stream.router): one ordered ingest partition, its links table.
        NewTopic(names.ingest, 1, repl),
        NewTopic(names.identities_changelog, 1, repl, topic_configs=compacted),
        NewTopic(names.handoffs, parts, repl),
        NewTopic(names.handoffs_changelog, parts, repl, topic_configs=compacted),
    ]


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; return the names created. Existing topics are left as they are."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        request_timeout_ms=int(timeout_s * 1000),
    )
    created: list[str] = []
    try:
        existing = set(admin.list_topics())
        for spec in topic_specs(settings):
            if spec.name in existing:
                continue
            try:
                admin.create_topics([spec], timeout_ms=int(timeout_s * 1000))
                created.append(spec.name)
            except TopicAlreadyExistsError:
                log.debug("topic %s appeared concurrently", spec.name)
    finally:
        admin.close()
    return created
