"""Every topic and table name, in one place, with version suffixes.

A name changes version when its record format changes incompatibly, so old and new workers never
read each other's bytes by accident. Names derive from one prefix so that tests (and several
deployments on one cluster) can keep their topics apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.decision import DECISION_SCHEMA
from stream.erasure import ERASURE_AUDIT_SCHEMA, ERASURE_REQUEST_SCHEMA, SUPPRESSION_SCHEMA
from stream.identity import HANDOFF_SCHEMA
from stream.partition import LEARNER_SCHEMA
from stream.profile import PROFILE_SCHEMA
from stream.rewards import REWARD_SCHEMA
from stream.router import LINK_SCHEMA

__all__ = ["DEFAULT_PREFIX", "Names"]

DEFAULT_PREFIX = "liveprofiles"


@dataclass(frozen=True, slots=True)
class Names:
    """Topic, table and consumer-group names for one deployment prefix."""

    prefix: str = DEFAULT_PREFIX

    @property
    def app_id(self) -> str:
        """Faust app id: the consumer group, and the prefix Faust gives changelog topics."""
        return f"{self.prefix}-worker-v1"

    @property
    def events(self) -> str:
        """Segment events in, keyed by user key (``userId``, else ``anonymousId``)."""
        return f"{self.prefix}.events.v1"

    @property
    def ingest(self) -> str:
        """Segment events in when identity stitching is on: one partition, the one order the
        identity stage (stream.router) routes every event in, to its person's events
        partition."""
        return f"{self.prefix}.ingest.v1"

    @property
    def handoffs(self) -> str:
        """What a key's partition hands over to its person's (``identity-handoff.v1``), keyed
        by the person, co-partitioned with the events."""
        return f"{self.prefix}.handoffs." + HANDOFF_SCHEMA.removeprefix("identity-handoff.")

    @property
    def identities_table(self) -> str:
        """The identity stage's links: key -> the person it forwards to (one partition, like
        the ingest topic)."""
        return "identities-" + LINK_SCHEMA.removeprefix("identity-link.")

    @property
    def identities_changelog(self) -> str:
        return f"{self.app_id}-{self.identities_table}-changelog"

    @property
    def handoffs_table(self) -> str:
        """Handoffs arrived and not yet taken over, keyed by (key, person, link time)."""
        return "handoffs-" + HANDOFF_SCHEMA.removeprefix("identity-handoff.")

    @property
    def handoffs_changelog(self) -> str:
        return f"{self.app_id}-{self.handoffs_table}-changelog"

    @property
    def decisions(self) -> str:
        """Decisions out (``decision.v3`` JSON), keyed by user key; the topic's version is the
        schema's."""
        return f"{self.prefix}.decisions." + DECISION_SCHEMA.removeprefix("decision.")

    @property
    def rewards(self) -> str:
        """Settled decisions (``reward.v1`` JSON: what each earned), keyed by user key."""
        return f"{self.prefix}.rewards." + REWARD_SCHEMA.removeprefix("reward.")

    @property
    def deadletters(self) -> str:
        """Rejected input (``deadletter.v1`` JSON), keyed like the input record."""
        return f"{self.prefix}.deadletters.v1"

    @property
    def erasures(self) -> str:
        """Erasure requests in (``erasure-request.v1`` JSON), keyed by the user key to erase and
        co-partitioned with the events, so a request reaches the worker holding the user's state
        (agents.erasure)."""
        return f"{self.prefix}.erasures." + ERASURE_REQUEST_SCHEMA.removeprefix("erasure-request.")

    @property
    def audit(self) -> str:
        """What each erasure removed (``erasure-audit.v1`` JSON), keyed by the subject pseudonym
        (never the user's id)."""
        return f"{self.prefix}.audit." + ERASURE_AUDIT_SCHEMA.removeprefix("erasure-audit.")

    @property
    def suppressions_table(self) -> str:
        """Erased users whose in-flight events are still dropped, keyed by subject pseudonym
        (stream.erasure.Suppression)."""
        return "suppressions-" + SUPPRESSION_SCHEMA.removeprefix("suppression.")

    @property
    def suppressions_changelog(self) -> str:
        return f"{self.app_id}-{self.suppressions_table}-changelog"

    @property
    def profiles_table(self) -> str:
        """The profiles table (one ``profile.v7`` value per user).

        Its version follows the profile schema's: a worker of a new schema starts from a new
        table (rebuilt from the events it replays) instead of failing on every stored profile.
        """
        return "profiles-" + PROFILE_SCHEMA.removeprefix("profile.")

    @property
    def profiles_changelog(self) -> str:
        """The profiles table's changelog topic, as Faust names it."""
        return f"{self.app_id}-{self.profiles_table}-changelog"

    @property
    def learners_table(self) -> str:
        """One partition learner snapshot (models, label clock, pending-label index) per
        events partition, keyed by the partition number and co-partitioned with the events, so
        it moves with its partition (see stream.partition)."""
        return "learners-" + LEARNER_SCHEMA.removeprefix("partition-learner.")

    @property
    def learners_changelog(self) -> str:
        return f"{self.app_id}-{self.learners_table}-changelog"
