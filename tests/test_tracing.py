"""Fund tracing on hand-built cases: proportional attribution with exact numbers,
the opening-balance rule, the bounds, a payment that stays its payer's event,
and through the whole flow: a busy supplier's rent and purchases raise nothing
while a real conduit still fires, with the route on the alert."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pytest

from connectors.alert_store import AlertStore
from connectors.files import FileSource, stream_files
from dataflows import app
from engine.batch import Batch
from engine.context import enrich, trace_batch
from engine.records import Account, Loan, Party
from engine.reference import Reference
from engine.tracing import Bounds, Tracer
from tests import tinybank
from tests.tinybank import T0, tx


def reference() -> Reference:
    ref = Reference()
    ref.add_all([*tinybank.PARTIES, *tinybank.ACCOUNTS, *tinybank.LOANS, *tinybank.RELATIONS])
    return ref


def follow(tracer: Tracer, ref: Reference, t):
    return tracer.follow(t.id, t.ts, t.from_account, t.to_account, t.amount,
                         ref.party_of(t.from_account).id, ref.party_of(t.to_account).id, ref)


def own_estimate(received: float, age_days: float) -> float:
    """The documented own-money rule: takings decayed with their age (time constant 30 days)."""
    return received * math.exp(-age_days / 30)


def test_a_payment_carries_loan_money_in_proportion_to_the_holdings():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("own", -30, "A-N1", "A-S1", 300_000))  # S1's own business, a month ago
    follow(tracer, ref, tx("a", 0, "D1", "A-S1", 100_000))  # loan money
    own = own_estimate(300_000, 30)  # 300,000 a month ago counts as about 110,000 now
    assert tracer.own_money("A-S1", T0) == pytest.approx(own)
    (trace,) = follow(tracer, ref, tx("b", 0, "A-S1", "A-S2", 80_000))
    share = 100_000 / (100_000 + own)
    assert trace.amount == pytest.approx(80_000 * share) and trace.share == pytest.approx(share) and trace.hops == 1
    assert tracer.loan_money("A-S1") == pytest.approx(100_000 * (1 - 80_000 / (100_000 + own)))
    # the payee holds the loan money as L1's and the rest as its own receipt
    assert tracer.loan_money("A-S2") == pytest.approx(80_000 * share)
    assert tracer.own["A-S2"][0] == pytest.approx(80_000 * (1 - share))


def test_a_busy_account_holds_about_a_month_of_its_takings():
    ref, tracer = reference(), Tracer()
    for day in range(-90, 0):
        follow(tracer, ref, tx(f"sale{day}", day, "A-N1", "A-S1", 100_000))  # 100,000 a day for 90 days
    month = sum(own_estimate(100_000, age) for age in range(1, 91))  # 2.8 million: about 30 days of takings
    assert tracer.own_money("A-S1", T0) == pytest.approx(month) and 27 < month / 100_000 < 30


def test_loan_money_of_several_loans_is_split_by_their_amounts():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 300_000))
    tracer.parts["A-S1"].append(tracer.parts["A-S1"][0].__class__("L9", "N1", 100_000, 1, T0, ()))
    traces = follow(tracer, ref, tx("b", 2, "A-S1", "A-S2", 200_000))  # half of the loan money S1 holds
    assert sorted((t.loan_id, round(t.amount)) for t in traces) == [("L1", 150_000), ("L9", 50_000)]


def test_a_borrower_paying_on_most_of_a_draw_pays_it_with_the_loan_money():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("sales", 0, "A-N1", "A-B1", 2_000_000))  # the borrower's own business
    follow(tracer, ref, tx("draw", 0, "D1", "A-B1", 300_000))  # self-payment: drawn to its own account
    # an everyday payment takes its proportional share: 3,000 of it is loan money, too little to follow
    assert follow(tracer, ref, tx("rent", 0, "A-B1", "A-S2", 23_000)) == []
    left = 300_000 - 3_000
    assert tracer.loan_money("A-B1") == pytest.approx(left)
    # a payment of most of what is left of the draw passes it on
    (trace,) = follow(tracer, ref, tx("pay", 0, "A-B1", "A-N1", 280_000))
    assert trace.amount == pytest.approx(280_000) and trace.share == 1.0 and trace.hops == 0
    assert trace.of_principal == pytest.approx(0.28)
    assert tracer.loan_money("A-B1") == pytest.approx(left - 280_000)


def test_an_account_first_seen_paying_more_than_it_holds_had_own_money_before():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 100_000))
    # 150,000 out of 100,000 known: the 50,000 more were S1's own, so the payment carries all the loan money
    (trace,) = follow(tracer, ref, tx("b", 2, "A-S1", "A-S2", 150_000))
    assert trace.amount == pytest.approx(100_000) and trace.share == pytest.approx(2 / 3)
    assert tracer.loan_money("A-S1") == 0 and "A-S1" not in tracer.parts


def test_loan_money_below_the_minimum_is_not_followed_and_becomes_the_payees_own():
    ref, tracer = reference(), Tracer(Bounds(min_amount=20_000))
    follow(tracer, ref, tx("own", 0, "A-N1", "A-S1", 5_000_000))
    follow(tracer, ref, tx("a", 0, "D1", "A-S1", 600_000))
    assert follow(tracer, ref, tx("rent", 0, "A-S1", "A-BAD", 80_000)) == []  # 80,000 x 6/56: about 8,600 of loan money
    assert tracer.loan_money("A-BAD") == 0 and tracer.own["A-BAD"][0] == pytest.approx(80_000)


def test_hop_bound_stops_the_trace():
    ref, tracer = reference(), Tracer(Bounds(max_hops=2))
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 100_000))
    assert follow(tracer, ref, tx("b", 2, "A-S1", "A-S2", 100_000))[0].hops == 1
    assert follow(tracer, ref, tx("c", 3, "A-S2", "A-N1", 100_000))[0].hops == 2
    assert follow(tracer, ref, tx("d", 4, "A-N1", "A-SEC", 100_000)) == []  # a third intermediary: untraced
    assert "A-N1" not in tracer.parts and tracer.own["A-N1"][0] == pytest.approx(100_000)  # N1's own from then on


def test_age_bound_expires_attribution_into_own_money():
    ref, tracer = reference(), Tracer(Bounds(max_age=timedelta(days=30)))
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 100_000))
    assert follow(tracer, ref, tx("b", 31, "A-S1", "A-BAD", 50_000)) == []
    tracer.expire_before(T0 + timedelta(days=40))
    assert tracer.parts == {} and tracer.own["A-S1"][0] == pytest.approx(100_000)  # counted as its own takings
    tracer.expire_before(T0 + timedelta(days=80))  # quiet for longer than max_age: forgotten
    assert "A-S1" not in tracer.own


def test_attributions_per_account_are_bounded_oldest_first():
    ref, tracer = reference(), Tracer(Bounds(max_parts=2))
    for i in range(3):
        follow(tracer, ref, tx(f"a{i}", 1 + i, "D1", "A-S1", 100_000 * (i + 1)))
    # three receipts, two kept: the oldest (100,000) became S1's own money
    assert [p.amount for p in tracer.parts["A-S1"]] == [200_000, 300_000]
    assert tracer.own["A-S1"][0] == pytest.approx(100_000)


def test_own_accounts_add_no_hop_and_payments_to_the_bank_end_the_trace():
    ref, tracer = reference(), Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-B1", 100_000))  # to the borrower's own settlement account
    (trace,) = follow(tracer, ref, tx("b", 2, "A-B1", "A-SEC", 60_000))
    assert trace.hops == 0 and not trace.returned
    follow(tracer, ref, tx("c", 3, "A-B1", "CASH", 40_000, "cash"))
    assert "CASH" not in tracer.parts and "CASH" not in tracer.own


def test_a_repayment_paid_with_another_borrowers_loan_money_stays_the_payers():
    ref = reference()
    ref.add_all([
        Party(id="B2", kind="firm", name="name of B2", sector="retail", region="SH", registered_on=date(2015, 1, 1)),
        Account(id="A-B2", party_id="B2", kind="settlement", opened_on=date(2020, 1, 1)),
        Account(id="D2", party_id="B2", kind="disbursement", opened_on=date(2026, 1, 1)),
        Loan(id="L2", borrower_id="B2", disbursement_account="D2", principal=500_000, disbursed_at=T0,
             maturity=date(2027, 1, 5), purpose="working_capital"),
    ])
    tracer = Tracer()
    follow(tracer, ref, tx("a", 1, "D1", "A-S1", 600_000))
    follow(tracer, ref, tx("b", 2, "A-S1", "A-B2", 500_000))  # S1 buys from B2 with L1's money
    repayment = tx("r", 3, "A-B2", "LEDGER", 20_000, "repayment", loan_id="L2")
    views = trace_batch(Batch([enrich(repayment, ref)]), tracer, ref).items
    by_direction = {v.direction: v for v in views}
    assert set(by_direction) == {"out", "onward"}
    own = by_direction["out"]
    assert own.borrower.id == "B2" and own.loan.id == "L2" and own.trace is None
    onward = by_direction["onward"]
    assert onward.borrower.id == "B1" and onward.trace.loan_id == "L1" and onward.trace.amount == pytest.approx(20_000)


def _replay(tmp_path, txs):
    """The whole flow over a file of these payments (in time order, as a file must be within its lateness)."""
    data = tinybank.write(tmp_path / "data", txs)
    db = tmp_path / "a.duckdb"
    app.run_flow(FileSource(stream_files(data)), data, db)
    store = AlertStore(db, read_only=True)
    try:
        return store.alerts()
    finally:
        store.close()


DISBURSE = tx("t-disb", 0, "LEDGER", "D1", 1_000_000, "disbursement", loan_id="L1")


def test_a_busy_supplier_paying_rent_and_buying_from_the_borrower_raises_nothing(tmp_path):
    alerts = _replay(tmp_path, [
        *[tx(f"sale{d}", d - 30, "A-N1", "A-S1", 150_000) for d in range(30)],  # S1 has a business of its own
        DISBURSE,
        tx("t1", 1, "D1", "A-S1", 600_000),  # the contracted payee is paid
        tx("rent", 2, "A-S1", "A-BAD", 80_000),  # S1's rent to its landlord (real estate)
        tx("goods", 3, "A-S1", "A-B1", 300_000),  # S1 buys goods from the borrower
    ])
    assert [a["rule_id"] for a in alerts if a["rule_id"] in ("PV-002", "RT-001")] == []


def test_a_real_conduit_still_fires(tmp_path):
    alerts = _replay(tmp_path, [
        tx("own", -20, "A-N1", "A-S1", 20_000),  # a little money of its own
        DISBURSE,
        tx("t1", 1, "D1", "A-S1", 600_000),
        tx("t2", 2, "A-S1", "A-SEC", 550_000),  # most of it forwarded to a broker the next day
    ])
    (alert,) = [a for a in alerts if a["rule_id"] == "PV-002"]
    evidence = json.loads(alert["evidence"])
    assert evidence["event_ids"] == ["t1", "t2"]
    share = 600_000 / (600_000 + own_estimate(20_000, 22))
    assert evidence["values"]["trace.amount"] == pytest.approx(550_000 * share, abs=0.01)


def test_alert_carries_the_route_with_amounts_and_times(tmp_path):
    alerts = _replay(tmp_path, [
        DISBURSE,
        tx("t1", 1, "D1", "A-S1", 600_000),
        tx("t2", 2, "A-S1", "A-N1", 580_000),
        tx("t3", 3, "A-N1", "A-F1", 500_000),  # back to the borrower's family: a round trip
    ])
    (alert,) = [a for a in alerts if a["rule_id"] == "RT-001"]
    evidence = json.loads(alert["evidence"])
    assert evidence["event_ids"] == ["t1", "t2", "t3"]
    assert [line.split(" at ")[0] for line in evidence["path"]] == [
        "t1: B1 -> S1 600000.00", "t2: S1 -> N1 580000.00", "t3: N1 -> F1 500000.00",
    ]
    assert evidence["path"][2].endswith("at 2026-01-08T09:00:00+00:00")
    # the payments themselves: the earlier hops with the loan money they moved, the last one whole
    assert [(e["id"], e["payer"], e["payee"]) for e in evidence["events"]] == [
        ("t1", "B1", "S1"), ("t2", "S1", "N1"), ("t3", "N1", "F1")]
    assert evidence["events"][0]["loan_money"] == 600_000 and evidence["events"][2]["to_account"] == "A-F1"
    assert alert["borrower_id"] == "B1" and alert["loan_id"] == "L1"
