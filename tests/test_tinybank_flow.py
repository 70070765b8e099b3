"""The whole flow on a hand-built bank: each rule fires exactly where it should."""

from __future__ import annotations

from pathlib import Path

from connectors.alert_store import AlertStore
from connectors.files import FileSource, stream_files
from dataflows import app
from tests import tinybank


def replay(data: Path, db: Path) -> app.RunResult:
    return app.run_flow(FileSource(stream_files(data)), data, db)


def test_each_rule_fires_on_its_cases_and_nowhere_else(tmp_path):
    data = tinybank.write(tmp_path / "data")
    result = replay(data, tmp_path / "a.duckdb")
    store = AlertStore(tmp_path / "a.duckdb", read_only=True)
    fired = {(a["rule_id"], a["evidence"]) for a in store.alerts()}
    got: dict[str, set[str]] = {}
    for a in store.alerts():
        import json

        got.setdefault(json.loads(a["evidence"])["event_ids"][0], set()).add(a["rule_id"])
    expected = {t.id: rules for t, rules in tinybank.CASES if rules}
    assert got == expected
    assert result.stats.events == tinybank.REFERENCE_EVENTS + len(tinybank.CASES)
    assert store.dead_letters() == []
    assert len(fired) == sum(len(r) for r in expected.values())


def test_alert_carries_explained_evidence(tmp_path):
    import json

    data = tinybank.write(tmp_path / "data")
    replay(data, tmp_path / "a.duckdb")
    store = AlertStore(tmp_path / "a.duckdb", read_only=True)
    (alert,) = store.alerts(rule="CO-001")
    evidence = json.loads(alert["evidence"])
    assert evidence["event_ids"] == ["t-cash"]
    (event,) = evidence["events"]  # the payment itself, as it came in
    assert {k: event[k] for k in ("id", "from_account", "to_account", "payer", "payee", "amount", "channel")} == \
        {"id": "t-cash", "from_account": "D1", "to_account": "CASH", "payer": "B1", "payee": "BANK",
         "amount": 50000.0, "channel": "cash"}
    assert sorted(evidence["conditions"]) == ["above_limit", "cash", "funded"]
    assert evidence["values"]["amount"] == 50000.0 and evidence["values"]["channel"] == "cash"
    assert alert["loan_id"] == "L1" and alert["borrower_id"] == "B1"
    assert alert["level"] == "critical" and alert["score"] == 85 and alert["pack_version"]
    assert alert["summary"] == "Loan L1: 50000 CNY withdrawn in cash 6 days after disbursement"


def test_replaying_twice_stores_each_alert_once(tmp_path):
    data = tinybank.write(tmp_path / "data")
    db = tmp_path / "a.duckdb"
    replay(data, db)
    first = {a["id"] for a in AlertStore(db, read_only=True).alerts()}
    second_run = replay(data, db)
    store = AlertStore(db, read_only=True)
    assert {a["id"] for a in store.alerts()} == first
    assert second_run.stats.alerts_new == 0 and sum(second_run.stats.by_rule.values()) == len(first)
