"""Normal traffic: disbursements, loan use, repayments, the borrowers' business and the
counterparties' own business. README.md in this folder describes every flow and its rate.

Vectorised per kind of flow: a Poisson count per (party, day) from a rate, a
weekday profile and the party's business intensity that day (holidays,
shutdowns, seasons: reference._activity), then counterparties, amounts and
times of day drawn for all rows at once. Normal traffic holds the look-alikes
of every risk pattern a real bank sees: self-payment moves loan money to the
borrower's own account, suppliers that hold loan money pay their rent and buy
securities with money of their own, customers that are also suppliers pay
the borrower, repayments come late within the grace period, and so on.
"""

from __future__ import annotations

import numpy as np

from .events import CHANNEL, MCC, MEMO, TxBuffer
from .reference import SHOPS, World

WEEKDAY, SAT, SUN = 0, 5, 6


def _day_profile(w: World, weekday: float, sat: float, sun: float) -> np.ndarray:
    wd = w.h.weekday
    return np.where(wd < 5, weekday, np.where(wd == SAT, sat, sun))


def _counts(rng, rate: np.ndarray, profile: np.ndarray, intensity: np.ndarray):
    """Row indices (party, day) with a Poisson number of events each."""
    n = rng.poisson(rate[:, None] * profile[None, :] * intensity)
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
    """What a normal loan's money pays for.

    Entrusted payment: the bank pays 1-4 tranches to contracted payees, up to
    all that is left, within 1-20 days (fixed-asset loans: on delivery, 5-45
    days). Self-payment: the borrower draws 70-100% to its own settlement account
    within two working days, then pays its suppliers (a person: a retail
    merchant) from there over the next 1-30 days; one in ten pays a first
    invoice of 20-50% the same day. 30% of loans pay the bank an arrangement fee
    on the day of disbursement."""
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
        b = w.index_of[L["borrower"][loan]]
        person = not w.firm[b]
        payees = [p for p in L["payees"][loan] if p not in w.fronts] or L["payees"][loan]
        memo = "equipment payment" if L["purpose"][loan] == "fixed_asset" else "goods payment"
        if L["entrusted"][loan]:
            m = 1 if person else int(rng.integers(1, 5))
            lo, hi = (5, 45) if L["purpose"][loan] == "fixed_asset" else (1, 20)
            days = sorted({h.next_workday(day0 + int(o)) for o in rng.choice(np.arange(lo, hi + 1), m, replace=False)})
            days = [d for d in days if d < h.days]
            for d, a in zip(days, use * rng.dirichlet(np.full(max(len(days), 1), 2.0))):
                payee = payees[int(rng.integers(len(payees)))]
                buf.add(h.ts(d, office_hours(rng, 1)[0]), acc, w.acc_of[payee], a, "transfer", memo, loan)
            continue
        settle = w.acc_of[L["borrower"][loan]]
        d = min(h.next_workday(day0 + int(rng.integers(0, 3))), h.days - 1)
        sec = float(office_hours(rng, 1)[0]) if d != day0 else L["sec"][loan] + float(rng.uniform(600, 7200))
        buf.add(h.ts(d, sec), acc, settle, use, "transfer", "transfer to own account", loan)
        spend = use * rng.uniform(0.85, 1.0)
        if person:
            targets = payees
            m = int(rng.integers(1, 4))
        else:
            targets = [int(x) for x in w.sup[b, : w.n_sup[b]]]
            m = int(rng.integers(2, 7))
        amounts = spend * rng.dirichlet(np.full(m, 2.0))
        for i, a in enumerate(amounts):
            if i == 0 and rng.random() < 0.1:  # a first invoice the same day
                day, when, a = d, sec + rng.uniform(2, 6) * 3600, use * rng.uniform(0.2, 0.5)
            else:
                day, when = h.next_workday(d + int(rng.integers(1, 31))), float(office_hours(rng, 1)[0])
            if day >= h.days or when >= 86_400:
                continue
            payee = targets[int(rng.integers(len(targets)))]
            buf.add(h.ts(day, when), settle, w.acc_of[payee], a, "card" if person else "transfer",
                    "" if person else memo, -1, MCC["5712"] if person else -1)


def repayments(w: World, rng, buf: TxBuffer, skip_from: dict[int, int]) -> dict[int, list[int]]:
    """Repayments from the settlement account on the loan's schedule (w.due_days); keys by loan.

    Consumer loans and mortgages pay an annuity instalment monthly; other
    monthly loans and quarterly ones pay interest; a bullet loan pays principal
    and interest at maturity. 3% of payments come 1-7 days late (the auto-debit
    failed and the borrower paid by hand). A loan in `skip_from` stops paying from
    that due date on (missed repayment)."""
    h, L = w.h, w.loans
    keys: dict[int, list[int]] = {}
    for loan in range(len(L)):
        P, r, purpose, schedule = L["principal"][loan], L["rate"][loan], L["purpose"][loan], L["repay"][loan]
        if schedule == "bullet":
            amount, memo = P * (1 + r * L["term"][loan] / 365), "loan repayment"
        elif schedule == "quarterly_interest":
            amount, memo = P * r / 4, "loan interest"
        elif purpose in ("consumer", "mortgage"):
            months = 24 if purpose == "consumer" else 240
            amount, memo = P * (r / 12) / (1 - (1 + r / 12) ** -months), "loan instalment"
        else:
            amount, memo = P * r / 12, "loan interest"
        settle = w.acc_of[L["borrower"][loan]]
        keys[loan] = []
        for due in w.due_days(loan)[: skip_from.get(loan, 10**6)]:
            day, sec = due, L["repay_sec"][loan]
            late = h.next_workday(due + int(rng.integers(1, 8)))
            if rng.random() < 0.03 and late < h.days:
                day, sec = late, float(office_hours(rng, 1)[0])
            keys[loan].append(buf.add(h.ts(day, sec), settle, w.ledger, amount, "repayment", memo, loan))
    return keys


def business(w: World, rng, buf: TxBuffer) -> None:
    """The borrowers' ordinary business through their settlement accounts, vectorised per kind of flow."""
    h, acc = w.h, np.asarray(w.acc_of)
    settle = acc[w.borrower]
    firm = w.firm.astype(float)
    person = 1.0 - firm
    intensity = w.active * w.activity
    D = h.days

    def emit(days, src, dst, amount, seconds, channel, memo, mcc=-1):
        buf.extend(h.ts(days, seconds), src, dst, amount, channel, memo, -1, mcc)

    # supplier payments: weekdays, a few on Saturdays; bigger ones by acceptance bill
    b, d = _counts(rng, 2.5 * np.sqrt(w.scale) * firm, _day_profile(w, 1, 0.15, 0), intensity)
    amt = _lognormal(rng, 30_000 * w.scale[b], 0.8, len(b))
    bill = rng.random(len(b)) < 0.12
    memo = np.where(rng.random(len(b)) < 0.5, MEMO["goods payment"], MEMO["purchase of materials"])
    # 15% of firms are owner-run and pay a third of their suppliers from online banking in the evening
    late = (rng.random(len(w.borrower)) < 0.15)[b] & (rng.random(len(b)) < 0.35)
    when = np.where(late, rng.uniform(19 * 3600, 23.5 * 3600, len(b)), office_hours(rng, len(b)))
    emit(d, settle[b], acc[_pick(rng, w.sup, w.n_sup, b)], np.where(bill, amt * 3, amt), when,
         np.where(bill, CHANNEL["bill"], CHANNEL["transfer"]), memo)

    # sales receipts: retail and food shops sell every day (more at weekends), others mostly on weekdays;
    # a customer may be one of the borrower's suppliers too (two-way trade)
    shop = np.isin(w.sector, SHOPS)
    b1, d1 = _counts(rng, 7.0 * np.sqrt(w.scale) * (shop & w.firm), _day_profile(w, 1, 1.4, 1.2), intensity)
    b2, d2 = _counts(rng, 5.0 * np.sqrt(w.scale) * (~shop & w.firm), _day_profile(w, 1, 0.4, 0.2), intensity)
    b, d = np.concatenate([b1, b2]), np.concatenate([d1, d2])
    amt = _lognormal(rng, 12_000 * w.scale[b], 0.9, len(b))
    emit(d, acc[_pick(rng, w.cus, w.n_cus, b)], settle[b], amt,
         np.where(shop[b], shop_hours(rng, len(b)), office_hours(rng, len(b))), "transfer",
         np.where(rng.random(len(b)) < 0.5, MEMO["sales receipt"], MEMO["payment for goods"]))

    # card spending: firms' corporate cards and persons' cards at merchants
    b, d = _counts(rng, 1.0 * firm + 2.5 * person, np.ones(D), intensity)
    m = rng.integers(len(w.pools["merchant"]), size=len(b))
    amt = _lognormal(rng, np.where(w.firm[b], 600.0, 150.0), 1.0, len(b))
    emit(d, settle[b], acc[w.pools["merchant"][m]], amt, shop_hours(rng, len(b)), "card", "", w.merchant_mcc[m])

    # small cash withdrawals (<= 20,000) to the bank's cash account; farms and food processors also buy
    # from farmers in cash, 50,000-200,000 at a time, from their own money
    b, d = _counts(rng, 0.03 * firm + 0.05 * person, _day_profile(w, 1, 0.3, 0.3), intensity)
    amt = np.round(np.where(w.firm[b], rng.uniform(2_000, 20_000, len(b)), rng.uniform(300, 5_000, len(b))), -2)
    emit(d, settle[b], w.cash, amt, office_hours(rng, len(b)), "cash", "cash withdrawal")
    farm = np.isin(w.sector, ("agriculture",)).astype(float)
    b, d = _counts(rng, 0.04 * farm, _day_profile(w, 1, 0.5, 0), intensity)
    emit(d, settle[b], w.cash, np.round(rng.uniform(50_000, 200_000, len(b)), -3), office_hours(rng, len(b)), "cash",
         "cash withdrawal")

    # own money to prohibited sectors from the settlement account: legitimate noise for
    # rules that forget to check the loan attribution (hedging, brokerage, lottery...)
    for target, rate, median, memo, channel in (
        (w.futures, 0.03, 150_000, "margin deposit", "transfer"),
        (w.securities, 0.06, 20_000, "securities transfer", "transfer"),
        (w.crypto, 0.02, 5_000, "wallet top-up", "transfer"),
        (w.gambling, 0.15, 100, "", "card"),
    ):
        has = (target >= 0).astype(float)
        b, d = _counts(rng, rate * has, _day_profile(w, 1, 0.5, 0.5), intensity)
        amt = _lognormal(rng, median * np.where(w.firm[b], w.scale[b], 1.0), 0.7, len(b))
        emit(d, settle[b], acc[target[b]], amt, shop_hours(rng, len(b)), channel, memo,
             MCC["7995"] if channel == "card" else -1)

    # persons: household transfers to the spouse
    b, d = _counts(rng, 0.08 * person, np.ones(D), intensity)
    emit(d, settle[b], acc[w.spouse[b]], _lognormal(rng, 1_500, 0.8, len(b)), shop_hours(rng, len(b)),
         "transfer", "household transfer")

    _monthly(w, rng, emit, settle, acc)
    _large(w, rng, emit, settle, acc)


def _large(w: World, rng, emit, settle, acc) -> None:
    """Legitimate large payments from the settlement account, once in the horizon for some firms:
    a dividend to the owner (15% of firms, 2-6% of net assets) and an equipment purchase from a firm
    never paid before (10% of manufacturers, builders and hauliers, 0.5-3 million times its size)."""
    h = w.h
    workdays = np.nonzero(h.workday)[0]
    net = np.asarray(w.parties["net_assets"])
    for b in np.nonzero(w.firm)[0]:
        if rng.random() < 0.15:
            d = int(rng.choice(workdays))
            if w.active[b, d]:
                emit(np.array([d]), settle[[b]], acc[[w.owner[b]]], np.array([net[w.borrower[b]] * rng.uniform(0.02, 0.06)]),
                     office_hours(rng, 1), "transfer", "dividend")
        if w.sector[b] in ("manufacturing", "construction", "logistics") and rng.random() < 0.1:
            d = int(rng.choice(workdays))
            if w.active[b, d]:
                seller = int(rng.choice(w.pools["market"]))
                emit(np.array([d]), settle[[b]], acc[[seller]], np.array([rng.uniform(5e5, 3e6) * w.scale[b]]),
                     office_hours(rng, 1), "transfer", "equipment payment")


def _bonus_month_end(h, d: int) -> bool:
    """The last payroll before a Spring Festival carries the year-end bonus (年终奖)."""
    return any(0 < first - d <= 35 for first, _ in h.spring_festivals())


def _taxes(w: World, rng, emit, settle, acc, firms: np.ndarray, base: float) -> None:
    """VAT and surcharges monthly on the 15th (the next working day when it is off), corporate income tax
    quarterly (January, April, July, October), to the tax bureau of the firm's region."""
    h = w.h
    for d in np.nonzero(h.dom == 15)[0]:
        day = h.next_workday(int(d))
        if day >= h.days:
            continue
        quarter = h.dates[d].month in (1, 4, 7, 10)
        amount = base * w.scale[firms] * rng.uniform(0.7, 1.3, len(firms)) * (6.0 if quarter else 1.0)
        emit(np.full(len(firms), day), settle[firms], acc[w.tax[w.region[firms]]], amount,
             office_hours(rng, len(firms)), "transfer", "tax payment")


def _monthly(w: World, rng, emit, settle, acc) -> None:
    """Payroll (a year-end bonus of 1.5 months before the Spring Festival), rent and taxes, utilities
    mid-month, salaries for persons."""
    h, n = w.h, len(w.borrower)
    ends = np.array(h.month_ends(), dtype=np.int64)
    firms = np.nonzero(w.firm)[0]
    _taxes(w, rng, emit, settle, acc, firms, 8_000)
    for d in ends:
        b = firms[w.active[firms, d]]
        # payroll: each of the firm's aggregated payroll accounts
        rows = np.repeat(b, w.n_pay[b])
        col = np.concatenate([np.arange(k) for k in w.n_pay[b]]) if len(b) else np.zeros(0, np.int64)
        bonus = 2.5 if _bonus_month_end(h, d) else 1.0
        amount = bonus * 40 * 7_000 * w.scale[rows] / w.n_pay[rows] * rng.uniform(0.95, 1.05, len(rows))
        emit(np.full(len(rows), d), settle[rows], acc[w.pay[rows, col]], amount,
             rng.uniform(9.5, 11.5, len(rows)) * 3600, "transfer", "year-end bonus" if bonus > 1 else "salary")
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


def counterparties(w: World, rng, buf: TxBuffer) -> None:
    """The suppliers', customers' and traders' own business (reference._counterparty_profiles).

    Each sells to the market (and to other counterparties) and buys from it,
    pays payroll and rent at month end and taxes mid-month, and some invest in
    securities or futures, repay a microcredit lender or buy property: money of
    their own, which fund tracing must not mistake for the loan money they also
    hold. Sizes are lognormal around 1.35 times a median borrower's; suppliers
    sell 1.5, traders 2.0, customers 0.8 times a working day (times the square
    root of their size). They close on official days off and around the Spring
    Festival like the borrowers (shops excepted)."""
    h, cp, acc = w.h, w.cp, np.asarray(w.acc_of)
    parties, scale, n, D = cp["party"], cp["scale"], len(cp["party"]), w.h.days
    shop = np.isin([w.parties["sector"][p] for p in parties], SHOPS)
    intensity = np.ones((n, D))
    intensity[np.ix_(~shop, h.holiday)] = 0.1
    days = np.arange(D)
    for first, last in h.spring_festivals():  # the typical closure; each borrower has its own
        intensity[np.ix_(~shop, (days >= first - 3) & (days <= last + 6))] = 0.15
    mine = acc[parties]
    market = w.pools["market"]

    def emit(i, d, src, dst, amount, memo, seconds=None):
        buf.extend(h.ts(d, office_hours(rng, len(i)) if seconds is None else seconds), src, dst, amount,
                   "transfer", memo)

    def other(i):  # another counterparty, never itself
        j = rng.integers(n - 1, size=len(i))
        return j + (j >= i)

    rate = np.array([1.5, 0.8, 2.0])[cp["kind"]] * np.sqrt(scale)
    profile = _day_profile(w, 1, 0.2, 0.05)
    i, d = _counts(rng, rate, profile, intensity)  # sales
    peer = rng.random(len(i)) < 0.15
    src = np.where(peer, mine[other(i)], acc[rng.choice(market, len(i))])
    emit(i, d, src, mine[i], np.minimum(_lognormal(rng, 40_000 * scale[i], 0.8, len(i)), 5e6),
         np.where(rng.random(len(i)) < 0.5, MEMO["sales receipt"], MEMO["payment for goods"]))
    i, d = _counts(rng, 0.8 * rate, profile, intensity)  # purchases
    peer = rng.random(len(i)) < 0.3
    dst = np.where(peer, mine[other(i)], acc[rng.choice(market, len(i))])
    emit(i, d, mine[i], dst, np.minimum(_lognormal(rng, 36_000 * scale[i], 0.8, len(i)), 5e6),
         np.where(rng.random(len(i)) < 0.5, MEMO["goods payment"], MEMO["purchase of materials"]))

    everyone = np.arange(n)
    for d in h.month_ends():
        staff = acc[rng.choice(w.pools["staff"], n)]
        bonus = 2.5 if _bonus_month_end(h, d) else 1.0
        emit(everyone, np.full(n, d), mine, staff, bonus * 120_000 * scale * rng.uniform(0.9, 1.1, n),
             MEMO["year-end bonus"] if bonus > 1 else MEMO["salary"])
        r = np.nonzero(cp["landlord"] >= 0)[0]
        emit(r, np.full(len(r), d), mine[r], acc[cp["landlord"][r]], np.round(25_000 * scale[r], -2), MEMO["rent"])
        r = np.nonzero(cp["lender"] >= 0)[0]
        emit(r, np.full(len(r), d), mine[r], acc[cp["lender"][r]], np.round(rng.uniform(10_000, 50_000, len(r)), -2),
             MEMO["loan repayment"])
    for dom in np.nonzero(h.dom == 15)[0]:
        day = h.next_workday(int(dom))
        if day < h.days:
            emit(everyone, np.full(n, day), mine, acc[w.tax[cp["region"]]], 15_000 * scale * rng.uniform(0.7, 1.3, n),
                 MEMO["tax payment"])
    for target, per_month, median, memo in ((cp["securities"], 0.3, 200_000, "securities transfer"),
                                            (cp["futures"], 0.3, 150_000, "margin deposit")):
        i, d = _counts(rng, per_month / 22 * (target >= 0), _day_profile(w, 1, 0, 0), intensity)
        emit(i, d, mine[i], acc[target[i]], _lognormal(rng, median * scale[i], 0.6, len(i)), MEMO[memo])
    # now and then a counterparty buys an office or a warehouse from a developer
    i, d = _counts(rng, np.full(n, 0.01 / 22), _day_profile(w, 1, 0, 0), intensity)
    emit(i, d, mine[i], acc[rng.choice(w.pools["developer"], len(i))], rng.uniform(1e6, 5e6, len(i)) * scale[i],
         MEMO["property purchase"])
