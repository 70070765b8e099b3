"""`fundwatch graph show`: a party's guarantee and related-party neighbourhood, on a hand-built data dir.

B1 guarantees B2 and B2 guarantees B1 (a mutual guarantee); G0 -> G1 -> B1 -> B2 -> C1 is
a chain; F1 is B1's declared family; X1 shares B1's phone without any declared relation,
X2 shares B1's address but is declared (shared_address); U1 is unrelated.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import msgspec
import polars as pl
import pytest
from click.testing import CliRunner

from connectors.alert_store import AlertStore
from dataflows.cli import main
from engine.records import Alert, Evidence, Party, Relation

D = date(2020, 1, 1)
T = datetime(2026, 2, 1, 10, 0, tzinfo=timezone.utc)


def _party(pid: str, phone: str | None = None, address: str | None = None, net_assets: float = 0.0) -> Party:
    return Party(id=pid, kind="firm", name=f"name of {pid}", sector="wholesale", region="SH", registered_on=D,
                 phone=phone, address=address, net_assets=net_assets)


PARTIES = [
    _party("B1", phone="13800001111", address="12 Nanjing Road", net_assets=2_000_000),
    _party("B2"), _party("G0"), _party("G1"), _party("C1"), _party("F1"),
    _party("X1", phone="+86 138 0000 1111"), _party("X2", address="12 nanjing road"), _party("U1", phone="13900000000"),
]


def _g(rid: str, src: str, dst: str, amount: float) -> Relation:
    return Relation(id=rid, kind="guarantee", src=src, dst=dst, amount=amount, valid_from=D)


RELATIONS = [
    _g("RG1", "B1", "B2", 1_000_000), _g("RG2", "B1", "B2", 500_000), _g("RG3", "B2", "B1", 800_000),
    _g("RG4", "G1", "B1", 300_000), _g("RG5", "G0", "G1", 200_000), _g("RG6", "B2", "C1", 100_000),
    Relation(id="RF1", kind="family", src="B1", dst="F1", valid_from=D),
    Relation(id="RS1", kind="shared_address", src="X2", dst="B1", valid_from=D),
]


def _alert(aid: str, path: list[str], summary: str) -> Alert:
    return Alert(id=aid, rule_id="RT-001", rule_version=1, pack_version="1", score=80, level="high",
                 borrower_id="B1", loan_id="L1", event_time=T, detected_at=T, summary=summary,
                 evidence=Evidence(event_ids=["t1"], values={}, conditions=["back"], path=path))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    out.mkdir()
    for name, records in (("parties", PARTIES), ("relations", RELATIONS)):
        pl.DataFrame(msgspec.to_builtins(records, builtin_types=(datetime, date))).write_parquet(out / f"{name}.parquet")
    return out


def show(*args: str) -> str:
    result = CliRunner().invoke(main, ["graph", "show", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_show_lists_guarantees_given_and_received_with_amounts_and_relations(data):
    out = show("B1", "--data", str(data))
    assert "guarantees given: 1, 1,500,000 in all, 0.75x net assets" in out
    assert "-> B2" in out and "RG1, RG2" in out
    assert "guarantees received: 2, 1,100,000 in all" in out
    assert "<- G1" in out and "RG4" in out


def test_show_finds_the_mutual_guarantee_and_the_chain(data):
    out = show("B1", "--data", str(data))
    assert "B1 -> B2 -> B1  (2 parties; RG1, RG2, RG3)" in out
    assert "longest guarantee chain through B1: 4 guarantee(s)" in out
    assert "G0 -> G1 -> B1 -> B2 -> C1" in out
    assert "guarantor   G0 -> G1 -> B1" in out
    assert "guaranteed  B1 -> B2 -> C1" in out


def test_show_depth_bounds_the_reach(data):
    out = show("B1", "--data", str(data), "--depth", "1")
    assert "guarantor   G1 -> B1" in out and "G0 -> G1 -> B1\n" not in out.split("within")[1]
    assert "within 1 guarantee(s): 2 guarantor(s), 1 guaranteed part(ies)" in out


def test_show_separates_declared_and_hidden_related_parties(data):
    out = show("B1", "--data", str(data))
    declared = out.split("declared related parties")[1].split("hidden related")[0]
    assert "family" in declared and "F1" in declared and "RF1" in declared
    assert "shared_address    <- X2" in declared
    hidden = out.split("hidden related parties (shared identifiers, not declared): ")[1]
    assert hidden.startswith("1\n")
    assert "X1" in hidden and "phone" in hidden and "X2 " not in hidden and "U1" not in hidden
    assert "(1 more share an identifier and are declared related)" in hidden


def test_show_lists_only_alerts_with_a_traced_path(data, tmp_path):
    db = tmp_path / "alerts.duckdb"
    store = AlertStore(db)
    store.write([_alert("a-traced", ["D1", "A-X9", "A-B1"], "funds came back"), _alert("a-plain", [], "cash")], [])
    store.close()
    out = show("B1", "--data", str(data), "--db", str(db))
    assert "alerts for B1 with a traced path: 1 (of 2" in out
    assert "a-traced" in out and "path: D1 -> A-X9 -> A-B1" in out and "a-plain" not in out
    assert "no alert store" in show("B1", "--data", str(data), "--db", str(tmp_path / "missing.duckdb"))


def test_show_a_party_without_guarantees_and_an_unknown_party(data):
    out = show("U1", "--data", str(data))
    assert "guarantees given: 0" in out and "circles through U1 (up to 6 parties): 0" in out
    assert "hidden related parties (shared identifiers, not declared): 0" in out
    result = CliRunner().invoke(main, ["graph", "show", "NOBODY", "--data", str(data)])
    assert result.exit_code != 0 and "unknown party 'NOBODY'" in result.output
