"""Fund tracing on hand-built cases: the route on the alert, the hop and age
bounds, and the mixing rule (loan money first, oldest first)."""

from __future__ import annotations

import json
from datetime import timedelta

from connectors.alert_store import AlertStore
from connectors.files import FileSource, stream_files
from dataflows import app
from engine.reference import Reference
from engine.tracing import Tracer
from tests import tinybank
from tests.tinybank import T0, tx


def reference() -> Reference:
    ref = Reference()
    ref.add_all([*tinybank.PARTIES, *tinybank.ACCOUNTS, *tinybank.LOANS, *tinybank.RELATIONS])
    return ref


def follow(tracer: Tracer, ref: Reference, t):
    return tracer.follow(t.id, t.ts, t.from_account, t.to_account, t.amount,
                         ref.party_of(t.from_account).id, ref.party_of(t.to_account).id, ref)


def test_loan_money_is_spent_first_and_oldest_first():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 300_000))
    # S1 pays 500,000: 300,000 of it is taken to be loan money, the rest its own
    (trace,) = follow(tracer, ref, tx("b", 2, "A-S1", "A-N1", 500_000))
    assert trace.amount == 300_000 and trace.share == 0.6 and trace.hops == 1
    # nothing of the loan is left with S1
    assert follow(tracer, ref, tx("c", 3, "A-S1", "A-BAD", 100_000)) == []
    # N1 spends part of what it got; the remainder stays attributed
    (trace,) = follow(tracer, ref, tx("d", 4, "A-N1", "A-SEC", 100_000))
    assert trace.amount == 100_000 and trace.share == 1.0 and trace.hops == 2
    (trace,) = follow(tracer, ref, tx("e", 5, "A-N1", "A-SEC", 500_000))
    assert trace.amount == 200_000


def test_a_conduit_passes_on_the_receipt_its_payment_matches():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 300_000))
    tracer.parts["A-S1"].insert(0, tracer.parts["A-S1"][0].__class__("L9", "N1", 2_000_000, 1, T0, ()))
    # 280,000 out: it matches B1's 300,000 receipt, not the other loan's 2,000,000
    (trace,) = follow(tracer, ref, tx("b", 2, "A-S1", "A-S2", 280_000))
    assert trace.loan_id == "L1" and trace.amount == 280_000


def test_when_several_receipts_fit_the_payment_each_gives_its_share():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 300_000))
    tracer.parts["A-S1"].append(tracer.parts["A-S1"][0].__class__("L9", "N1", 300_000, 1, T0, ()))
    traces = follow(tracer, ref, tx("b", 2, "A-S1", "A-S2", 280_000))
    assert sorted((t.loan_id, t.amount) for t in traces) == [("L1", 140_000), ("L9", 140_000)]


def test_money_going_back_to_the_borrower_is_taken_to_be_its_own_loan_money():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 300_000))
    tracer.parts["A-S1"].append(tracer.parts["A-S1"][0].__class__("L9", "N1", 250_000, 1, T0, ()))
    (trace,) = follow(tracer, ref, tx("b", 2, "A-S1", "A-F1", 250_000))  # F1 is B1's family
    assert trace.loan_id == "L1" and trace.returned


def test_hop_bound_stops_the_trace():
    ref, tracer = reference(), Tracer(max_hops=2)
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 100_000))
    assert follow(tracer, ref, tx("b", 2, "A-S1", "A-S2", 100_000))[0].hops == 1
    assert follow(tracer, ref, tx("c", 3, "A-S2", "A-N1", 100_000))[0].hops == 2
    assert follow(tracer, ref, tx("d", 4, "A-N1", "A-SEC", 100_000)) == []  # a third intermediary: untraced


def test_age_bound_expires_attribution():
    ref, tracer = reference(), Tracer(max_age=timedelta(days=30))
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 100_000))
    assert follow(tracer, ref, tx("b", 31, "A-S1", "A-BAD", 50_000)) == []
    tracer.expire_before(T0 + timedelta(days=40))
    assert tracer.parts == {}


def test_own_accounts_add_no_hop_and_payments_to_the_bank_end_the_trace():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-B1", 100_000))  # to the borrower's own settlement account
    (trace,) = follow(tracer, ref, tx("b", 2, "A-B1", "A-SEC", 60_000))
    assert trace.hops == 0 and not trace.returned
    follow(tracer, ref, tx("c", 3, "A-B1", "CASH", 40_000, "cash"))
    assert "CASH" not in tracer.parts


def test_alert_carries_the_route_with_amounts_and_times(tmp_path):
    txs = [
        tx("t-disb", 0, "LEDGER", "D1", 1_000_000, "disbursement", loan_id="L1"),
        tx("t1", 1, "D1", "A-S1", 600_000),
        tx("t2", 2, "A-S1", "A-N1", 580_000),
        tx("t3", 3, "A-N1", "A-F1", 500_000),  # back to the borrower's family: a round trip
    ]
    data = tinybank.write(tmp_path / "data", txs)
    app.run_flow(FileSource(stream_files(data)), data, tmp_path / "a.duckdb")
    (alert,) = AlertStore(tmp_path / "a.duckdb", read_only=True).alerts(rule="RT-001")
    evidence = json.loads(alert["evidence"])
    assert evidence["event_ids"] == ["t1", "t2", "t3"]
    assert [line.split(" at ")[0] for line in evidence["path"]] == [
        "t1: B1 -> S1 600000.00", "t2: S1 -> N1 580000.00", "t3: N1 -> F1 500000.00",
    ]
    assert evidence["path"][2].endswith("at 2026-01-08T09:00:00+00:00")
    assert alert["borrower_id"] == "B1" and alert["loan_id"] == "L1"
