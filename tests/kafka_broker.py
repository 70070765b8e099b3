"""The test broker: one Tansu process on a free loopback port for the whole
session (a test that cannot reach it fails, it never skips), and topics named
per test and deleted afterwards, because Tansu keeps every message in memory."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.broker import Tansu

_ids = itertools.count()


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    tansu = Tansu(log=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    yield tansu
    tansu.stop()


@pytest.fixture
def topics(broker):
    """A fresh set of daemon topic names (a prefix per test) created on the broker."""
    created: list[str] = []

    def make(partitions: int = 1, **names: str) -> dict[str, str]:
        prefix = f"t{os.getpid()}-{next(_ids)}"
        kinds = ("transactions", "sensors", "parties", "accounts", "loans", "relations", "alerts", "dead_letters")
        out = {k: f"{prefix}.{k}" for k in kinds} | names
        fresh = [t for t in out.values() if t]
        broker.create_topics([t for k, t in out.items() if t and k in ("transactions", "sensors")], partitions)
        broker.create_topics([t for k, t in out.items() if t and k not in ("transactions", "sensors")], 1)
        created.extend(fresh)
        return out

    yield make
    broker.delete_topics(created)
