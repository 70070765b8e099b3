"""The daemon against a real broker: the alerts topic and the DuckDB store hold
exactly what a file replay of the same events stores; reference updates on
topics take effect for later events; SIGTERM stops it cleanly."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import msgspec
import polars as pl
import pytest

from engine.records import Account, Loan, Relation
from tests import daemon_kit as kit
from tests import tinybank

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def daemon_factory(tmp_path):
    started: list[kit.Daemon] = []

    def make(*args, **kw) -> kit.Daemon:
        d = kit.Daemon(tmp_path, *args, **kw)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop_quietly()


def test_alerts_topic_and_store_match_a_file_replay(broker, topics, tmp_path, daemon_factory):
    t = topics(partitions=3)
    b = kit.bank(12)
    txs = kit.traffic(b, 40)
    rules = kit.match_pack(tmp_path)
    expected = kit.replay_alerts(b, txs, tmp_path, rules)
    published = kit.published(expected)
    assert len(published) > 50 and len(expected) > len(published)  # the shadow rule fired too

    kit.produce_reference(broker.bootstrap, t, b)
    daemon = daemon_factory(broker.bootstrap, t, rules).start()
    kit.produce_records(broker.bootstrap, t["transactions"], txs, key=kit.borrower_key(b))

    messages = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=len(published))
    _check_endpoint(daemon, expected, len(txs))
    assert daemon.terminate() == 0
    by_id = {m["id"]: m for m in messages}
    assert set(by_id) == published  # shadow alerts are never published
    for m in messages:
        assert m["_key"] == m["borrower_id"]
        assert kit.comparable(m) == expected[m["id"]]
    assert kit.stored_alerts(daemon.db) == expected
    assert kit.read_topic(broker.bootstrap, t["dead_letters"], settle=0.5) == []
    events = [e["event"] for e in daemon.log_lines()]
    assert events.index("daemon_started") < events.index("shutdown_requested") < events.index("daemon_stopped")


def test_reference_update_on_a_topic_applies_to_later_events(broker, topics, tmp_path, daemon_factory):
    t = topics()
    rules = kit.match_pack(tmp_path)
    data = tinybank.write(tmp_path / "snapshot")  # the start-up snapshot knows B1 and L1 only
    daemon = daemon_factory(broker.bootstrap, t, rules, snapshot=data).start()
    cash = tinybank.tx("cash-L9", 6, "D9", "CASH", 60_000, "cash")
    kit.produce_records(broker.bootstrap, t["transactions"], [cash])
    dead = kit.read_topic(broker.bootstrap, t["dead_letters"], at_least=1)
    assert msgspec.json.decode(dead[0].value())["reason"] == "invalid: $.from_account: unknown account 'D9'"

    kit.produce_records(broker.bootstrap, t["accounts"], [
        Account(id="D9", party_id="B1", kind="disbursement", opened_on=tinybank.T0.date())])
    kit.produce_records(broker.bootstrap, t["loans"], [
        Loan(id="L9", borrower_id="B1", disbursement_account="D9", principal=500_000, disbursed_at=tinybank.T0,
             maturity=tinybank.T0.date().replace(year=2027), purpose="working_capital")])
    kit.produce(broker.bootstrap, t["loans"], [(b"L10", b'{"id": "L10", "principal": "lots"}'), (b"L11", None)])
    # the loan is applied (between two batches, within about a second while idle) before the event is sent
    daemon.wait_until(lambda: daemon.metric("fundwatch_reference_in_total", kind="loans") == 1, 30, "loan applied")
    later = tinybank.tx("cash-L9-again", 7, "D9", "CASH", 60_000, "cash")
    kit.produce_records(broker.bootstrap, t["transactions"], [later])
    (alert,) = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=1)
    assert alert["rule_id"] == "CO-001" and alert["loan_id"] == "L9"
    reference_dead = [msgspec.json.decode(m.value()) for m in kit.read_topic(broker.bootstrap, t["dead_letters"], 3)]
    assert [(d["stream"], d["position"], d["reason"].split(":")[0]) for d in reference_dead[1:]] == [
        ("loans", "0:1", "invalid"), ("loans", "0:2", "unsupported")]
    assert alert["evidence"]["event_ids"] == ["cash-L9-again"]
    assert daemon.terminate() == 0


def _check_endpoint(daemon: kit.Daemon, expected: dict[str, dict], events: int) -> None:
    assert daemon.get("/healthz") == (200, "ok\n") and daemon.get("/readyz") == (200, "ready\n")
    assert daemon.get("/nope")[0] == 404
    m = daemon.metric
    assert m("fundwatch_events_in_total", stream="transactions") == events
    for rule in {v["rule_id"] for v in expected.values()}:
        mine = [v for v in expected.values() if v["rule_id"] == rule]
        level, shadow = mine[0]["level"], mine[0]["shadow"]
        published = "false" if shadow else "true"
        assert m("fundwatch_alerts_total", rule=rule, level=level, published=published) == len(mine), rule
    published = sum(not v["shadow"] for v in expected.values())
    assert m("fundwatch_alert_delay_seconds_count", stage="publish") == published
    assert m("fundwatch_pack_info", pack="daemon_test", version="1") == 1
    assert m("fundwatch_broker_up") == 1 and m("fundwatch_ready") == 1
    assert m("fundwatch_consumer_lag") == 0  # every partition read to its end
    assert m("fundwatch_dead_letters_total") == 0


def test_guarantees_from_the_snapshot_and_the_relations_topic_reach_the_graph_rules(
        broker, topics, tmp_path, daemon_factory):
    t = topics()
    pack = kit.match_pack(tmp_path)
    shutil.copy(ROOT / "rules" / "post_loan" / "GC-001.yaml", pack)
    mutual = [Relation(id=f"G{i}", kind="guarantee", src=a, dst=b, amount=100_000, valid_from=date(2025, 6, 1))
              for i, (a, b) in enumerate((("S1", "N1"), ("N1", "S1")))]
    data = tinybank.write(tmp_path / "snapshot")
    pl.DataFrame(msgspec.to_builtins([*tinybank.RELATIONS, *mutual], builtin_types=(date,))).write_parquet(
        data / "relations.parquet")
    daemon = daemon_factory(broker.bootstrap, t, pack, snapshot=data).start()
    (from_snapshot,) = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=1)  # each edge finds it: one alert
    assert from_snapshot["rule_id"] == "GC-001" and from_snapshot["summary"] == "Guarantee circle of 2: N1, S1"

    kit.produce_records(broker.bootstrap, t["relations"], [
        Relation(id="C1", kind="guarantee", src="B1", dst="S2", amount=50_000, valid_from=date(2026, 2, 1)),
        Relation(id="C2", kind="guarantee", src="S2", dst="BAD", amount=50_000, valid_from=date(2026, 2, 1)),
        Relation(id="C3", kind="guarantee", src="BAD", dst="B1", amount=50_000, valid_from=date(2026, 2, 2)),
    ])
    messages = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=2)
    (circle,) = [m for m in messages if m["id"] != from_snapshot["id"]]
    assert circle["summary"] == "Guarantee circle of 3: B1, BAD, S2"
    assert sorted(circle["evidence"]["event_ids"]) == ["C1", "C2", "C3"] and len(circle["evidence"]["path"]) == 3
    assert daemon.terminate() == 0
