"""Shared fixtures: the Kafka-protocol test broker (see tests/kafka_broker.py)."""

from tests.kafka_broker import broker, topics  # noqa: F401
from tests.workbench_kit import sim_bank, sim_store  # noqa: F401
