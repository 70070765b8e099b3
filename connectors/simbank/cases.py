"""Injected risk cases: who gets which case, and the labels that describe them.

Allocation.  Every *stream* case (a transaction or sensor pattern) gets its
own borrower: no borrower carries two.  Reference-data cases (guarantee
circles and chains, hidden related parties) prefer borrowers without a stream
case and share one only when a small run has no free borrower left; graph
labels for guarantors (over-exposure, contagion) name the guarantor.

Labels.  `first_event_time` is the moment the case's shape, as specified for
its pattern, is complete in the data: the forwarding payment that reaches the
prohibited sector, the 5th split transfer, the transfer that takes a fan-out
past 8 counterparties and 60% of the principal, the 3rd day of an electricity
collapse, the 10th day of absence.  For absences it is when the expected event
went missing (the due time of a missed repayment, the first reading a silent
site did not send) and, for idle funds, the disbursement (the only event).
For reference patterns it is the day the last relation took effect (00:00 UTC),
or the start of the horizon for what existed before it.
"""

from __future__ import annotations

import numpy as np

from . import network_cases
from .labels import Case, LabelRow
from .reference import World

SENSOR_CASES = ("headcount_drop", "inventory_shortfall", "electricity_collapse", "executive_absent", "sensor_silent")
FIRM_CASES = ("round_trip", "splitting", "fan_out", "pass_through", "large_outflow", "loan_refinancing",
              "payment_anomaly")
ANY_CASES = ("entrusted_payment_mismatch", "cash_out", "idle_funds", "missed_repayment")


def per_pattern(borrowers: int) -> int:
    """Cases per pattern: 3 for tiny runs, about one per 100 borrowers, at most 25."""
    return int(np.clip(round(borrowers / 100), 3, 25))


def plan(w: World, rng: np.random.Generator) -> list[Case]:
    """Allocate cases to borrowers and apply what normal traffic must obey (then finalize the world)."""
    k = per_pattern(len(w.borrower))
    requests: list[tuple[str, int, str]] = []  # pattern, hops, pool
    for pattern in SENSOR_CASES:
        requests += [(pattern, 0, "site")] * k
    requests += [("shutdown", 0, "site")] * max(1, k // 4)
    requests += [("purpose_violation", 1 + i % 2, "firm") for i in range(k - k // 3)]
    for pattern in FIRM_CASES:
        requests += [(pattern, 1 + i % 2 if pattern == "round_trip" else 0, "firm") for i in range(k)]
    requests += [("purpose_violation", 0, "any")] * (k // 3)
    for pattern in ANY_CASES:
        requests += [(pattern, 0, "any")] * k

    # one shuffle per pool: with a shared order the "any" cases would land on the persons that
    # the firm-only pools skipped over
    shuffled = lambda: [int(b) for b in rng.permutation(len(w.borrower))]  # noqa: E731
    pools = {"site": [b for b in shuffled() if w.site_of[b] >= 0], "firm": [b for b in shuffled() if w.firm[b]],
             "any": shuffled()}
    used: set[int] = set()
    cases = []
    for pattern, hops, pool in requests:
        b = next((b for b in pools[pool] if b not in used), None)
        if b is None:
            continue  # a tiny run ran out of borrowers: fewer cases of this kind
        used.add(b)
        c = Case(pattern, b, w.loans_of[b][0], hops)
        _prepare(w, rng, c)
        cases.append(c)
    cases += network_cases.plan(w, rng, k, used)
    rel = w.relations
    guaranteed = {p for r in range(len(rel)) if rel["kind"][r] == "guarantee" for p in (rel["src"][r], rel["dst"][r])}
    for c in cases:  # contagion needs a guarantee edge around every cash-out / idle-funds borrower
        if c.pattern in ("cash_out", "idle_funds") and w.borrower[c.b] not in guaranteed:
            w.guarantee(int(w.owner[c.b] if w.firm[c.b] else w.spouse[c.b]), c.loan)
    w.finalize()
    network_cases.size_overexposure(w, rng, cases)
    return cases


def _prepare(w: World, rng, c: Case) -> None:
    """Per-case changes to reference data and to the flags normal traffic follows."""
    L, h, D = w.loans, w.h, w.h.days
    loan = c.loan
    if c.pattern in ("splitting", "fan_out", "pass_through") and L["principal"][loan] < 2e6:
        L["principal"][loan] = float(round(rng.uniform(2e6, 6e6), -4))  # room for 5-12 x 49,999 < 30%
    if c.pattern in ("purpose_violation", "round_trip") and c.hops:
        c.p["fronts"] = [w.front_company(c.b) for _ in range(c.hops)]
        if L["entrusted"][loan]:  # the contract names the front as a payee; normal use pays the others
            L["payees"][loan] = [*L["payees"][loan], c.p["fronts"][0]]
            w.fronts.add(c.p["fronts"][0])
    if c.pattern == "entrusted_payment_mismatch":
        L["entrusted"][loan] = True
    if c.pattern == "cash_out" and L["principal"][loan] < 1e6:
        L["principal"][loan] = float(round(rng.uniform(1e6, 3e6), -4))
    if c.pattern == "idle_funds":
        L["use"][loan] = "none"
        wait = 65 if L["purpose"][loan] == "fixed_asset" else 35  # the idle-funds rules' 60 and 30 days
        L["day"][loan] = h.disbursement_day(int(rng.integers(3, max(4, min(D // 3, D - wait - 15) + 1))))
    elif c.pattern == "loan_refinancing":
        day_a = int(rng.integers(3, max(4, D // 3 - 11)))
        L["day"][loan] = h.disbursement_day(day_a)
        b_day = min(L["day"][loan] + int(rng.integers(7, 12)), D // 3)
        payees = [int(x) for x in rng.choice(w.sup[c.b, : w.n_sup[c.b]], 2, replace=False)]
        new = w.add_loan(c.b, "working_capital", float(round(L["principal"][loan] * rng.uniform(0.8, 1.2), -4)),
                         b_day, payees, [{"kind": "receivables"}])
        L["use"][new] = "none"  # its funds go to repay loan A (fund_cases)
        if w.g_class[c.b] != "free":
            w.guarantee(int(w.owner[c.b]), new)
        c.p["new_loan"] = new
    elif c.pattern == "missed_repayment":
        L["repay"][loan] = "monthly"  # a quarterly or bullet loan has too few due dates in the horizon to miss one
        # two instalments due at least two weeks before the end, so the gap can be seen (MR-001 waits
        # 40 days from the last payment); every third case misses the very first one
        for _ in range(200):
            due = [d for d in w.due_days(loan) if d <= D - 14]
            if len(due) >= 2:
                break
            L["day"][loan] = h.disbursement_day(int(rng.integers(3, D // 3 + 1)))
            L["repay_dom"][loan] = int(rng.integers(1, 29))
        c.p["skip"] = 0 if len(w.repay_skip) % 3 == 0 or len(due) < 2 else int(rng.integers(1, len(due)))
        w.repay_skip[loan] = c.p["skip"]  # this and every later instalment never come
    elif c.pattern in ("sensor_silent", "shutdown"):
        due = {d for lo in w.loans_of[c.b] for d in w.due_days(lo)}
        first = 14 if c.pattern == "sensor_silent" else max(14, max(L["day"][lo] for lo in w.loans_of[c.b]) + 21)
        for _ in range(100):
            start = int(rng.integers(first, max(first + 1, D - 4)))
            length = int(rng.integers(3, max(4, min(7, D - start - 1) + 1)))
            if c.pattern == "sensor_silent" or not due & set(range(start, start + length)):
                break
        c.p.update(start=start, length=length)
        if c.pattern == "shutdown":  # genuine: the business stops too, so its payments stop
            w.active[c.b, start: start + length] = False


def missed_labels(w: World, cases: list[Case], rep_keys: dict[int, list[int]], disb_keys) -> list[LabelRow]:
    """A missed repayment's event is the last one paid before it, or the disbursement when the first is missed."""
    out = []
    for c in cases:
        if c.pattern != "missed_repayment":
            continue
        skip, due = c.p["skip"], w.due_days(c.loan)
        last = rep_keys[c.loan][skip - 1] if skip else int(disb_keys[c.loan])
        out.append(LabelRow("missed_repayment", w.borrower[c.b], c.loan,
                            w.h.ts(due[skip], w.loans["repay_sec"][c.loan]), "tx", [last]))
    return out
