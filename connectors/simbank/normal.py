"""Normal traffic: disbursements, entrusted payments, ordinary business and repayments.

Vectorised per kind of flow: a Poisson count per (borrower, day) from a rate
and a weekday profile, then counterparties, amounts and times of day drawn for
all rows at once.  Loan funds (payments from a disbursement account) go ONLY
to the loan's contracted payees, plus an occasional tiny fee to the bank; every
other flow runs through the borrower's settlement account, so normal traffic
shows none of the risk patterns.
"""

from __future__ import annotations

import numpy as np

from .events import CHANNEL, MCC, MEMO, TxBuffer
from .reference import World

WEEKDAY, SAT, SUN = 0, 5, 6


def _day_profile(w: World, weekday: float, sat: float, sun: float) -> np.ndarray:
    wd = w.h.weekday
    return np.where(wd < 5, weekday, np.where(wd == SAT, sat, sun))


def _counts(rng, rate: np.ndarray, profile: np.ndarray, active: np.ndarray):
    """Row indices (borrower, day) with a Poisson number of events each."""
    n = rng.poisson(rate[:, None] * profile[None, :] * active)
    flat = np.repeat(np.arange(n.size), n.ravel())
    return np.divmod(flat, n.shape[1])


def _hours(rng, n: int, peaks: tuple[float, float], p_first: float, sd: float, lo: float, hi: float) -> np.ndarray:
    """Seconds after local midnight from two daily peaks; draws outside [lo, hi) are redrawn uniformly
    (clipping would pile events up at the opening and closing second)."""
    x = rng.normal(np.where(rng.random(n) < p_first, *peaks), sd, n)
    out = (x < lo) | (x >= hi)
    x[out] = rng.uniform(lo, hi, int(out.sum()))
    return x * 3600


def office_hours(rng, n: int) -> np.ndarray:
    """Office payments: a morning and an afternoon peak, 08:30-18:30."""
    return _hours(rng, n, (10.5, 15.0), 0.5, 1.2, 8.5, 18.5)


def shop_hours(rng, n: int) -> np.ndarray:
    """Card and retail hours: lunch and evening peaks, 08:00-23:50."""
    return _hours(rng, n, (12.5, 19.0), 0.45, 2.2, 8.0, 23.83)


def _pick(rng, mat: np.ndarray, counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One of each row's first counts[row] entries of a padded matrix."""
    return mat[rows, (rng.random(len(rows)) * counts[rows]).astype(np.int64)]


def _lognormal(rng, median, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


def disbursements(w: World, buf: TxBuffer) -> np.ndarray:
    """One disbursement per loan (BANK ledger -> the loan's disbursement account); keys by loan."""
    L = w.loans
    n = len(L)
    return buf.extend(
        ts=w.h.ts(np.array(L["day"]), np.array(L["sec"])), src=w.ledger, dst=np.array(L["account"]),
        amount=np.array(L["principal"]), channel="disbursement", memo="loan disbursement", loan=np.arange(n))


def loan_use(w: World, rng, buf: TxBuffer, spent: np.ndarray) -> None:
    """Entrusted payments: 1-4 tranches to contracted payees within 1-20 days, up to 100% of what is left.

    Tranche amounts avoid 40,000-49,999.99 so a normal loan never looks like
    splitting under the 50,000 reporting threshold.
    """
    h, L = w.h, w.loans
    for loan in range(len(L)):
        if L["use"][loan] != "normal":
            continue
        P, acc, day0 = L["principal"][loan], L["account"][loan], L["day"][loan]
        left = P - spent[loan]
        if rng.random() < 0.3:  # arrangement fee to the lender itself, same day
            fee = round(P * rng.uniform(0.0005, 0.002), 2)
            buf.add(h.ts(day0, L["sec"][loan] + rng.integers(600, 7200)), acc, w.ledger, fee, "transfer",
                    "loan service fee", loan)
            left -= fee
        use = left * (1.0 if rng.random() < 0.35 else rng.uniform(0.7, 1.0))
        m = 1 if w.parties["kind"][L["borrower"][loan]] == "person" else int(rng.integers(1, 5))
        days = sorted({h.next_workday(day0 + int(o)) for o in rng.choice(np.arange(1, 21), m, replace=False)})
        days = [d for d in days if d < h.days]
        if not days:
            continue
        amounts = use * rng.dirichlet(np.full(len(days), 2.0))
        amounts = np.where((amounts >= 40_000) & (amounts < 50_000), amounts * 0.75, amounts)
        payees = L["payees"][loan]
        for d, a in zip(days, amounts):
            payee = payees[int(rng.integers(len(payees)))]
            buf.add(h.ts(d, office_hours(rng, 1)[0]), acc, w.acc_of[payee], a, "transfer",
                    "equipment payment" if L["purpose"][loan] == "fixed_asset" else "goods payment", loan)


def repayments(w: World, buf: TxBuffer, skip_from: dict[int, int]) -> dict[int, list[int]]:
    """Monthly auto-debit from the settlement account on the loan's fixed day; keys by loan.

    Firms pay interest only; consumer loans and mortgages pay an annuity instalment.
    A loan in `skip_from` stops paying from that due date on (missed repayment).
    """
    h, L = w.h, w.loans
    keys: dict[int, list[int]] = {}
    for loan in range(len(L)):
        P, r, purpose = L["principal"][loan], L["rate"][loan] / 12, L["purpose"][loan]
        if purpose in ("consumer", "mortgage"):
            months = 24 if purpose == "consumer" else 240
            amount, memo = P * r / (1 - (1 + r) ** -months), "loan instalment"
        else:
            amount, memo = P * r, "loan interest"
        settle = w.acc_of[L["borrower"][loan]]
        keys[loan] = [buf.add(h.ts(d, L["repay_sec"][loan]), settle, w.ledger, amount, "repayment", memo, loan)
                      for d in w.due_days(loan)[: skip_from.get(loan, 10**6)]]
    return keys


def business(w: World, rng, buf: TxBuffer) -> None:
    """Ordinary business through settlement accounts, vectorised per kind of flow."""
    h, acc = w.h, np.asarray(w.acc_of)
    settle = acc[w.borrower]
    firm = w.firm.astype(float)
    person = 1.0 - firm
    active = w.active
    D = h.days

    def emit(days, src, dst, amount, seconds, channel, memo, mcc=-1):
        buf.extend(h.ts(days, seconds), src, dst, amount, channel, memo, -1, mcc)

    # supplier payments: weekdays, a few on Saturdays; bigger ones by acceptance bill
    b, d = _counts(rng, 2.5 * np.sqrt(w.scale) * firm, _day_profile(w, 1, 0.15, 0), active)
    amt = _lognormal(rng, 30_000 * w.scale[b], 0.8, len(b))
    bill = rng.random(len(b)) < 0.12
    memo = np.where(rng.random(len(b)) < 0.5, MEMO["goods payment"], MEMO["purchase of materials"])
    emit(d, settle[b], acc[_pick(rng, w.sup, w.n_sup, b)], np.where(bill, amt * 3, amt), office_hours(rng, len(b)),
         np.where(bill, CHANNEL["bill"], CHANNEL["transfer"]), memo)

    # sales receipts: retail and food shops sell every day (more at weekends), others mostly on weekdays
    shop = np.array([s in ("retail", "food") for s in w.sector])
    b1, d1 = _counts(rng, 7.0 * np.sqrt(w.scale) * (shop & w.firm), _day_profile(w, 1, 1.4, 1.2), active)
    b2, d2 = _counts(rng, 5.0 * np.sqrt(w.scale) * (~shop & w.firm), _day_profile(w, 1, 0.4, 0.2), active)
    b, d = np.concatenate([b1, b2]), np.concatenate([d1, d2])
    amt = _lognormal(rng, 12_000 * w.scale[b], 0.9, len(b))
    emit(d, acc[_pick(rng, w.cus, w.n_cus, b)], settle[b], amt,
         np.where(shop[b], shop_hours(rng, len(b)), office_hours(rng, len(b))), "transfer",
         np.where(rng.random(len(b)) < 0.5, MEMO["sales receipt"], MEMO["payment for goods"]))

    # card spending: firms' corporate cards and persons' cards at merchants
    b, d = _counts(rng, 1.0 * firm + 2.5 * person, np.ones(D), active)
    m = rng.integers(len(w.pools["merchant"]), size=len(b))
    amt = _lognormal(rng, np.where(w.firm[b], 600.0, 150.0), 1.0, len(b))
    emit(d, settle[b], acc[w.pools["merchant"][m]], amt, shop_hours(rng, len(b)), "card", "", w.merchant_mcc[m])

    # small cash withdrawals (<= 20,000) to the bank's cash account
    b, d = _counts(rng, 0.03 * firm + 0.05 * person, _day_profile(w, 1, 0.3, 0.3), active)
    amt = np.round(np.where(w.firm[b], rng.uniform(2_000, 20_000, len(b)), rng.uniform(300, 5_000, len(b))), -2)
    emit(d, settle[b], w.cash, amt, office_hours(rng, len(b)), "cash", "cash withdrawal")

    # own money to prohibited sectors from the settlement account: legitimate noise for
    # rules that forget to check the loan attribution (hedging, brokerage, lottery...)
    for target, rate, median, memo, channel in (
        (w.futures, 0.03, 150_000, "margin deposit", "transfer"),
        (w.securities, 0.06, 20_000, "securities transfer", "transfer"),
        (w.crypto, 0.02, 5_000, "wallet top-up", "transfer"),
        (w.gambling, 0.15, 100, "", "card"),
    ):
        has = (target >= 0).astype(float)
        b, d = _counts(rng, rate * has, _day_profile(w, 1, 0.5, 0.5), active)
        amt = _lognormal(rng, median * np.where(w.firm[b], w.scale[b], 1.0), 0.7, len(b))
        emit(d, settle[b], acc[target[b]], amt, shop_hours(rng, len(b)), channel, memo,
             MCC["7995"] if channel == "card" else -1)

    # persons: household transfers to the spouse
    b, d = _counts(rng, 0.08 * person, np.ones(D), active)
    emit(d, settle[b], acc[w.spouse[b]], _lognormal(rng, 1_500, 0.8, len(b)), shop_hours(rng, len(b)),
         "transfer", "household transfer")

    _monthly(w, rng, emit, settle, acc)


def _monthly(w: World, rng, emit, settle, acc) -> None:
    """Payroll and rent at month end, utilities mid-month, salaries for persons."""
    h, n = w.h, len(w.borrower)
    ends = np.array(h.month_ends(), dtype=np.int64)
    firms = np.nonzero(w.firm)[0]
    for d in ends:
        b = firms[w.active[firms, d]]
        # payroll: each of the firm's aggregated payroll accounts
        rows = np.repeat(b, w.n_pay[b])
        col = np.concatenate([np.arange(k) for k in w.n_pay[b]]) if len(b) else np.zeros(0, np.int64)
        amount = 40 * 7_000 * w.scale[rows] / w.n_pay[rows] * rng.uniform(0.95, 1.05, len(rows))
        emit(np.full(len(rows), d), settle[rows], acc[w.pay[rows, col]], amount,
             rng.uniform(9.5, 11.5, len(rows)) * 3600, "transfer", "salary")
        # rent to the landlord (a real-estate company): legitimate, from the settlement account
        rb = b[w.landlord[b] >= 0]
        rd = np.maximum(d - rng.integers(0, 3, len(rb)), 0)
        ok = w.active[rb, rd]
        rb, rd = rb[ok], rd[ok]
        emit(rd, settle[rb], acc[w.landlord[rb]], np.round(30_000 * w.scale[rb], -2), office_hours(rng, len(rb)),
             "transfer", "rent")
        # small-loan repayments to a lending company, again from the firm's own account
        lb = b[w.lender[b] >= 0]
        emit(np.full(len(lb), d), settle[lb], acc[w.lender[lb]], np.round(rng.uniform(10_000, 50_000, len(lb)), -2),
             office_hours(rng, len(lb)), "transfer", "loan repayment")
    # utilities: one bill per (borrower, utility) on a fixed day of month
    memos = ("electricity bill", "water bill", "gas bill", "telecom fee")
    util_memo = {int(p): MEMO[memos[i % 4]] for i, p in enumerate(w.pools["utility"])}
    for b in range(n):
        for j in range(w.n_util[b]):
            dom = 10 + (b * 3 + j * 2) % 9
            days = np.nonzero((h.dom == dom) & w.active[b])[0]
            base = (3_000 * w.scale[b] if w.firm[b] else 150) * (1 + j)
            emit(days, settle[b], acc[w.util[b, j]],
                 base * rng.uniform(0.8, 1.2, len(days)), office_hours(rng, len(days)), "transfer",
                 util_memo[int(w.util[b, j])])
    # salaries for persons from their employer, on the 10th or the 15th
    people = np.nonzero(~w.firm)[0]
    for dom in (10, 15):
        for d in np.nonzero(h.dom == dom)[0]:
            b = people[(people % 2 == (dom == 15)) & w.active[people, d]]
            emit(np.full(len(b), d), acc[w.employer[b]], settle[b], np.round(rng.uniform(6_000, 40_000, len(b)), -2),
                 rng.uniform(9.0, 10.0, len(b)) * 3600, "transfer", "salary")


def background(w: World, rng, buf: TxBuffer) -> None:
    """Counterparties' own business among suppliers and traders (allowed sectors, modest amounts).

    It gives the accounts that receive loan funds a life of their own, so fund
    tracing has to follow money through accounts that also carry other traffic.
    Nothing here pays a borrower, a related party or a prohibited sector.
    """
    h, acc = w.h, np.asarray(w.acc_of)
    payers = np.concatenate([w.pools["supplier"], w.pools["trader"]])
    rate = np.concatenate([np.full(len(w.pools["supplier"]), 0.3), np.full(len(w.pools["trader"]), 1.0)])
    i, d = _counts(rng, rate, _day_profile(w, 1, 0.1, 0), np.ones((len(payers), h.days)))
    j = rng.integers(len(payers) - 1, size=len(i))
    j = j + (j >= i)  # never to itself
    amt = np.minimum(_lognormal(rng, 20_000, 0.8, len(i)), 200_000)
    buf.extend(h.ts(d, office_hours(rng, len(i))), acc[payers[i]], acc[payers[j]], amt, "transfer", "goods payment")
