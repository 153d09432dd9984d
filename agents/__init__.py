"""The Faust adapter: plumbing between Kafka topics and the pure core in :mod:`stream`."""

from __future__ import annotations

from agents.app import create_app
from agents.names import Names
from agents.settings import BrokerProfile, Settings

__all__ = ["BrokerProfile", "Names", "Settings", "create_app"]
