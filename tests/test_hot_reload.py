"""A rule edited under a running flow takes effect between batches; a broken
edit is reported and the old pack stays live."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import msgspec
import structlog
from bytewax.testing import TestingSource

from connectors.alert_store import AlertStore
from dataflows import app
from engine.batch import Raw
from tests import tinybank

ROOT = Path(__file__).resolve().parents[1]


def raw(tx) -> list[Raw]:
    return [Raw("transactions", "test", tx.id, msgspec.json.encode(tx))]


def test_edit_is_picked_up_and_broken_edit_keeps_old_pack(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    co = rules / "post_loan" / "CO-001.yaml"
    data = tinybank.write(tmp_path / "data")
    printed: list[str] = []

    def wait_for(n_lines: int):
        while len(printed) < n_lines:
            yield TestingSource.PAUSE(timedelta(milliseconds=20))

    def feed():
        yield raw(tinybank.tx("c1", 1, "D1", "CASH", 60_000, "cash"))
        yield from wait_for(1)
        co.write_text(co.read_text().replace("version: 1", "version: 2").replace("gte: 50000", "gte: 20000"))
        yield raw(tinybank.tx("c2", 2, "D1", "CASH", 30_000, "cash"))  # fires only under version 2
        yield from wait_for(2)
        co.write_text(co.read_text().replace("channel: cash}", "channel: cahs}"))  # broken
        yield raw(tinybank.tx("c3", 3, "D1", "CASH", 25_000, "cash"))  # version 2 still live

    with structlog.testing.capture_logs() as logs:
        app.run_flow(TestingSource(feed()), data, tmp_path / "a.duckdb", rules / "post_loan",
                     emit=printed.append, reload_interval=0)

    versions = {a["evidence"].split('"event_ids":["')[1][:2]: a["rule_version"]
                for a in AlertStore(tmp_path / "a.duckdb", read_only=True).alerts(rule="CO-001")}
    assert versions == {"c1": 1, "c2": 2, "c3": 2}
    refused = [e for e in logs if e["event"] == "pack_refused"]
    assert len(refused) == 1
    assert "CO-001.yaml:16:19: 'channel': 'cahs' is not a valid channel" in refused[0]["problems"][0]


def test_reload_refuses_a_logic_change_without_a_bump_and_records_every_pack_it_loads(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    co = rules / "post_loan" / "CO-001.yaml"
    data = tinybank.write(tmp_path / "data")
    printed: list[str] = []

    def wait_for(n_lines: int):
        while len(printed) < n_lines:
            yield TestingSource.PAUSE(timedelta(milliseconds=20))

    def feed():
        yield raw(tinybank.tx("c1", 1, "D1", "CASH", 60_000, "cash"))
        yield from wait_for(1)
        co.write_text(co.read_text().replace("gte: 50000", "gte: 20000"))  # new logic under version 1
        yield raw(tinybank.tx("c2", 2, "D1", "CASH", 30_000, "cash"))  # version 1 stays as it was
        yield TestingSource.PAUSE(timedelta(milliseconds=200))
        co.write_text(co.read_text().replace("version: 1", "version: 2"))  # now bumped: it goes live
        yield TestingSource.PAUSE(timedelta(milliseconds=200))
        yield raw(tinybank.tx("c3", 3, "D1", "CASH", 25_000, "cash"))
        yield from wait_for(2)

    db = tmp_path / "a.duckdb"
    with structlog.testing.capture_logs() as logs:
        app.run_flow(TestingSource(feed()), data, db, rules / "post_loan", emit=printed.append, reload_interval=0)

    store = AlertStore(db, read_only=True)
    versions = {a["evidence"].split('"event_ids":["')[1][:2]: a["rule_version"] for a in store.alerts(rule="CO-001")}
    assert versions == {"c1": 1, "c3": 2}
    refused = [e for e in logs if e["event"] == "pack_refused"]
    assert len(refused) == 1 and "logic changed without a version bump" in refused[0]["problems"][0]
    assert len({p["digest"] for p in store.packs()}) == 2  # the pack at start and the bumped one
