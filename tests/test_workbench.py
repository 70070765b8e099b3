"""The analysts' workbench on a real store: every lifecycle move legal or refused,
the audit rows they leave, who may do what (401, 403, 409), schema migrations,
encryption at rest, and the CLI on the file and through a served API."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import duckdb
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from connectors import alert_store
from connectors.alert_store import MIGRATIONS, SCHEMA_VERSION, AlertStore, StoreError, schema_version
from connectors.workbench import Conflict, Workbench
from dataflows.api.app import create_app
from dataflows.api.service import Service
from dataflows.cli import main
from engine import lifecycle
from engine.records import Alert, Evidence
from tests.workbench_kit import bearer, copy_store, served, tokens

WALK = ["new", "acknowledged", "investigating", "confirmed", "closed"]


def _alert(n: int) -> Alert:
    t = datetime(2026, 1, 1 + n % 28, tzinfo=timezone.utc)
    return Alert(id=f"a{n:03d}", rule_id="CO-001", rule_version=1, pack_version="1", score=85, level="critical",
                 borrower_id=f"B{n % 3}", loan_id=f"L{n}", event_time=t, detected_at=t, summary=f"cash out {n}",
                 evidence=Evidence(event_ids=[f"t{n}"], values={"amount": 50000}, conditions=["cash"]))


@pytest.fixture
def store(tmp_path):
    s = AlertStore(tmp_path / "w.duckdb")
    s.write([_alert(n) for n in range(40)], [])
    yield s
    s.close()


def _to(bench: Workbench, alert_id: str, status: str) -> int:
    """Walk an alert from new to `status` along legal moves; returns its version."""
    path = WALK[:WALK.index(status) + 1] if status != "dismissed" else ["new", "acknowledged", "investigating", "dismissed"]
    for version, to in enumerate(path[1:]):
        bench.transition(alert_id, to, "ann", version, disposition="add_collateral" if to == "confirmed" else None)
    return len(path) - 1


@pytest.mark.parametrize("current", lifecycle.STATUSES)
def test_every_move_from_each_status_is_legal_exactly_when_the_lifecycle_allows_it(store, current):
    bench = Workbench(store)
    for n, to in enumerate(lifecycle.STATUSES):
        alert_id = f"a{n:03d}"
        version = _to(bench, alert_id, current)
        before = bench.audit_count()
        disposition = "restructure" if to == "confirmed" else None
        if to in lifecycle.NEXT[current]:
            state = bench.transition(alert_id, to, "bob", version, "why", disposition)
            assert (state["status"], state["version"]) == (to, version + 1)
            assert bench.audit_count() == before + 1
        else:
            with pytest.raises(Conflict) as e:
                bench.transition(alert_id, to, "bob", version, "why", disposition)
            allowed = ", ".join(lifecycle.NEXT[current]) or "none: it is closed"
            assert str(e.value) == f"cannot move an alert from {current} to {to}; from {current} it can go to: {allowed}"
            assert bench.audit_count() == before
            assert store.alert(alert_id)["status"] == current


def test_dispositions_belong_to_confirming_and_dismissing(store):
    bench = Workbench(store)
    version = _to(bench, "a000", "investigating")
    for to, disposition, message in (("confirmed", None, "confirming needs a disposition"),
                                     ("confirmed", "false_positive", "confirming needs a disposition"),
                                     ("dismissed", "call_in_loan", "a dismissed alert is a false_positive")):
        with pytest.raises(Conflict, match=message):
            bench.transition("a000", to, "bob", version, disposition=disposition)
    state = bench.transition("a000", "dismissed", "bob", version, "supplier prepayment")
    assert state["disposition"] == "false_positive"


def test_audit_rows_say_who_when_from_to_and_why_and_only_grow(store):
    bench = Workbench(store)
    bench.transition("a001", "acknowledged", "ann", 0, "seen it")
    bench.assign("a001", "bob", "ann", 1, "credit officer of B1")
    bench.comment("a001", "bob", "called the borrower")
    bench.transition("a001", "investigating", "bob", 2)
    bench.transition("a001", "confirmed", "bob", 3, "paid a lender", "call_in_loan")
    rows = bench.audit("a001")
    assert [(r["actor"], r["action"], r["from_status"], r["to_status"], r["detail"]) for r in rows] == [
        ("ann", "transition", "new", "acknowledged", "seen it"),
        ("ann", "assign", "acknowledged", "acknowledged", "- -> bob: credit officer of B1"),
        ("bob", "comment", "acknowledged", "acknowledged", "called the borrower"),
        ("bob", "transition", "acknowledged", "investigating", ""),
        ("bob", "transition", "investigating", "confirmed", "call_in_loan: paid a lender"),
    ]
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    assert all(r["changed_at"] <= datetime.now(timezone.utc) for r in rows)
    alert = store.alert("a001")
    assert (alert["status"], alert["assignee"], alert["disposition"], alert["version"]) == (
        "confirmed", "bob", "call_in_loan", 4)


@pytest.fixture
def api(store):
    keys = tokens(store.path)
    with TestClient(create_app(Service(store))) as client:
        yield client, keys, Workbench(store)


def test_no_token_an_unknown_an_expired_or_a_revoked_one_is_401(api):
    client, keys, bench = api
    expiring, _ = bench.create_token("brief", "admin", "test", expires_days=1e-6)  # about 90 ms
    revoked, info = bench.create_token("gone", "admin", "test")
    bench.revoke_token(info.id, "test")
    time.sleep(0.2)
    for headers in ({}, {"Authorization": "Basic abc"}, bearer("fw_nope"), bearer(expiring), bearer(revoked)):
        r = client.get("/api/alerts", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", headers
        r = client.post("/api/alerts/a000/transition", headers=headers, json={"to": "acknowledged", "version": 0})
        assert r.status_code == 401
    assert client.get("/api/alerts", headers=bearer(keys["viewer"])).status_code == 200


def test_a_role_too_low_is_403_and_changes_nothing(api):
    client, keys, bench = api
    move = {"to": "acknowledged", "version": 0}
    r = client.post("/api/alerts/a000/transition", headers=bearer(keys["viewer"]), json=move)
    assert r.status_code == 403 and "needs the analyst role" in r.json()["detail"]
    assert client.post("/api/tokens", headers=bearer(keys["analyst"]), json={"name": "x", "role": "admin"}).status_code == 403
    assert client.get("/api/tokens", headers=bearer(keys["viewer"])).status_code == 403
    assert bench.audit("a000") == []
    assert client.post("/api/alerts/a000/transition", headers=bearer(keys["analyst"]), json=move).status_code == 200
    made = client.post("/api/tokens", headers=bearer(keys["admin"]), json={"name": "eve", "role": "viewer"})
    assert made.status_code == 201 and made.json()["token"].startswith("fw_")
    assert bench.audit("a000")[0]["actor"] == "analyst"  # the token's name


def test_two_analysts_change_the_same_alert_at_once_one_wins_the_other_gets_409(api):
    client, keys, bench = api
    seen = client.get("/api/alerts/a002", headers=bearer(keys["analyst"])).json()["version"]
    results: list = []
    start = threading.Barrier(2)

    def act(body):
        start.wait()
        results.append(client.post("/api/alerts/a002/assign", headers=bearer(keys["analyst"]), json=body))

    threads = [threading.Thread(target=act, args=({"assignee": who, "version": seen},)) for who in ("ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 409]
    loser = next(r for r in results if r.status_code == 409).json()["detail"]
    assert "was changed by analyst" in loser and f"since you loaded version {seen}" in loser
    assert len(bench.audit("a002")) == 1


def test_queue_filters_page_and_count_newest_first(api):
    client, keys, _ = api
    page = client.get("/api/alerts", headers=bearer(keys["viewer"]),
                      params={"borrower": "B1", "limit": 5, "offset": 5}).json()
    assert page["total"] == 13 and len(page["items"]) == 5
    times = [a["event_time"] for a in page["items"]]
    assert times == sorted(times, reverse=True) and {a["borrower_id"] for a in page["items"]} == {"B1"}
    page = client.get("/api/alerts", headers=bearer(keys["viewer"]),
                      params={"text": "CASH OUT 3", "since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"}).json()
    assert sorted(a["id"] for a in page["items"]) == ["a003", "a030", "a031", "a032", "a033", "a034", "a035", "a036",
                                                       "a037", "a038", "a039"]
    assert client.get("/api/alerts", headers=bearer(keys["viewer"]), params={"status": "bogus"}).status_code == 400


def test_a_store_from_before_schema_versions_is_migrated_forward_and_keeps_its_alerts(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(MIGRATIONS[0])
    con.close()
    with AlertStore(path) as s:
        s.write([_alert(1)], [])
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE schema_version; DROP TABLE alert_state; DROP TABLE audit; DROP TABLE tokens; "
                "DROP TABLE rules; DROP SEQUENCE audit_seq")
    assert schema_version(con) == 1
    con.close()
    with pytest.raises(StoreError, match="has schema version 1, this fundwatch needs"):
        AlertStore(path, read_only=True)
    with AlertStore(path) as s:
        assert schema_version(s.con) == SCHEMA_VERSION
        assert s.alert("a001")["status"] == "new"
        Workbench(s).transition("a001", "acknowledged", "ann", 0)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (99, now())")
    con.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this fundwatch"):
        AlertStore(path)


def test_encrypted_store_needs_its_key(tmp_path, monkeypatch):
    """DuckDB encrypts with the OpenSSL of its httpfs extension; extensions cannot be
    downloaded here, so this test lets DuckDB use its built-in cipher (which DuckDB
    itself calls unsafe for production) to check the store's handling of the key."""
    path = tmp_path / "enc.duckdb"
    monkeypatch.setenv(alert_store.KEY_ENV, "first key")
    monkeypatch.setattr(alert_store, "CRYPTO_SETUP", "SET force_mbedtls_unsafe = true")
    with AlertStore(path) as s:
        s.write([_alert(7)], [])
    with AlertStore(path) as s:
        assert s.alert("a007")["summary"] == "cash out 7"
    assert b"cash out 7" not in path.read_bytes()
    monkeypatch.setenv(alert_store.KEY_ENV, "wrong key")
    with pytest.raises(StoreError, match="cannot open with the key in FUNDWATCH_DB_KEY"):
        AlertStore(path)
    monkeypatch.delenv(alert_store.KEY_ENV)
    with pytest.raises(StoreError):
        AlertStore(path)
    monkeypatch.setenv(alert_store.KEY_ENV, "first key")
    monkeypatch.setattr(alert_store, "CRYPTO_SETUP", "LOAD no_such_extension")
    with pytest.raises(StoreError, match="httpfs extension, whose OpenSSL encrypts the file, is not installed"):
        AlertStore(path)


def _cli(*args: str, env: dict | None = None) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["--log-level", "error", *args], env=env, catch_exceptions=False)
    return r.exit_code, r.output


def test_cli_on_the_file_then_through_the_served_api(tmp_path, sim_store):
    db = str(copy_store(sim_store, tmp_path / "s.duckdb"))
    code, out = _cli("alerts", "list", "--db", db, "--level", "high", "--limit", "3")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 4 and lines[-1].startswith("showing 3 of ") and lines[-1].endswith("newest first")
    times = [line.split()[1] + line.split()[2] for line in lines[:3]]
    assert times == sorted(times, reverse=True)
    alert_id = lines[0].split()[0]
    assert _cli("alerts", "ack", alert_id[:10], "--db", db, "--why", "on it")[1].strip() == \
        f"{alert_id}: acknowledged (version 1)"
    code, out = _cli("alerts", "close", alert_id, "--db", db)
    assert code == 1 and "from acknowledged it can go to: investigating" in out
    code, token = _cli("tokens", "create", "--role", "analyst", "--name", "ann", "--db", db)
    token = token.splitlines()[0]
    with served(tmp_path / "s.duckdb"):
        code, out = _cli("alerts", "investigate", alert_id, "--db", db)
        assert code == 1 and "refused the token" in out
        env = {"FUNDWATCH_TOKEN": token}
        for args in (("investigate", alert_id), ("assign", alert_id, "bob"), ("comment", alert_id, "called"),
                     ("resolve", alert_id, "--disposition", "add_collateral", "--why", "pledge fell"),
                     ("close", alert_id)):
            code, out = _cli("alerts", *args, "--db", db, env=env)
            assert code == 0, out
        code, out = _cli("alerts", "show", alert_id, "--db", db, env=env)
        assert code == 0 and "status closed  version 5  assignee bob  disposition add_collateral" in out
        assert "rule: " in out and "audit: 6 entries" in out and "ann  transition confirmed -> closed" in out
        code, out = _cli("tokens", "list", "--db", db, env=env)
        assert code == 1 and "403: this needs the admin role" in out
