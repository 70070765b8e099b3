"""Injected misuse of loan funds: the payments of each case and their labels.

Shapes follow the thresholds the default rule pack uses: a single payment
below 30% of the principal is not "large"; 35-80% is; splitting stays under
the 50,000 reporting threshold; fan-out moves 60%+ to 8+ new counterparties in
one day.  Payments out of a disbursement account carry the loan id, as the
ledger knows it; payments further down a chain do not (tracing must find them).

A case that genuinely shows a second pattern gets a second label: on a loan
under entrusted payment, a direct payment from the disbursement account to
anyone but a contracted payee (or the bank itself: fees, cash, refinancing
repayments) is also an entrusted-payment mismatch.

Purpose violations through intermediaries and round trips go through front
companies (World.front_company): firms registered shortly before, with a
trickle of business of their own (`front_business`), named as the contracted
payee of an entrusted loan or paid from the borrower's own account.
"""

from __future__ import annotations

import numpy as np

from .events import BUSINESS_MEMOS, TxBuffer
from .labels import Case, LabelRow
from .normal import office_hours
from .reference import World

PROHIBITED_FOR = {  # mortgage money is meant for real estate
    "mortgage": ("securities", "futures", "crypto", "lending", "gambling"),
}
DEFAULT_PROHIBITED = ("real_estate", "securities", "futures", "crypto", "lending", "gambling")


class FundCases:
    def __init__(self, w: World, rng: np.random.Generator, buf: TxBuffer, disb_keys: np.ndarray):
        self.w, self.rng, self.buf, self.disb = w, rng, buf, disb_keys
        self.spent = np.zeros(len(w.loans))
        self.first: dict[int, int] = {}  # borrower index -> first_event_time (for contagion)

    # --- helpers ---------------------------------------------------------------

    def pay(self, day: int, sec: float, src_acc: int, dst_acc: int, amount: float, c: Case,
            channel: str = "transfer", memo: str | None = None) -> tuple[int, int]:
        """Book one payment; returns (key, ts).  Loan id only on disbursement-account payments."""
        w = self.w
        own = src_acc == w.loans["account"][c.loan]
        memo = memo or BUSINESS_MEMOS[int(self.rng.integers(len(BUSINESS_MEMOS)))]
        ts = w.h.ts(day, sec)
        if own:
            self.spent[c.loan] += round(amount, 2)
        return self.buf.add(ts, src_acc, dst_acc, amount, channel, memo, c.loan if own else -1), ts

    def day0(self, c: Case) -> int:
        """A working day 1-15 days after disbursement, leaving a week for the case to unfold."""
        h = self.w.h
        d = h.next_workday(self.w.loans["day"][c.loan] + int(self.rng.integers(1, 16)))
        return d if d < h.days - 8 else h.next_workday(self.w.loans["day"][c.loan] + 1)

    def later(self, day: int, lo: int, hi: int) -> int:
        return min(self.w.h.next_workday(day + int(self.rng.integers(lo, hi + 1))), self.w.h.days - 1)

    def hours(self) -> float:
        return float(office_hours(self.rng, 1)[0])

    def acc(self, party: int) -> int:
        return self.w.acc_of[party]

    def traders(self, k: int) -> list[int]:
        """Counterparties the borrower has never paid: third-party traders (allowed sectors)."""
        return [int(x) for x in self.rng.choice(self.w.pools["trader"], k, replace=False)]

    def label(self, pattern: str, c: Case, first: int, keys: list[int], hops: int = 0) -> LabelRow:
        return LabelRow(pattern, self.w.borrower[c.b], c.loan, int(first), "tx", list(keys), hops)

    def P(self, c: Case) -> float:
        return self.w.loans["principal"][c.loan]

    def disb_acc(self, c: Case) -> int:
        return self.w.loans["account"][c.loan]

    # --- cases -----------------------------------------------------------------

    def entrusted(self, c: Case) -> bool:
        return bool(self.w.loans["entrusted"][c.loan])

    def mismatch(self, c: Case, first: int, keys: list[int]) -> list[LabelRow]:
        """Loan money paid straight to anyone but a contracted payee breaks entrusted payment (only there)."""
        return [self.label("entrusted_payment_mismatch", c, first, keys)] if self.entrusted(c) else []

    def to_front(self, c: Case, d: int, amount: float) -> tuple[list[int], int, list[LabelRow]]:
        """Loan money reaches the case's front company: the bank pays it as a contracted payee (entrusted
        payment), or the borrower draws the money to its own account and pays it from there half an hour
        to a day and a half later (self-payment). Returns the payments' keys, the day the front has the
        money, and a pass-through label when the borrower's account passed 100,000 or more on within two
        hours (it did what PT-001 looks for)."""
        front = c.p["fronts"][0]
        if self.entrusted(c):
            return [self.pay(d, self.hours(), self.disb_acc(c), self.acc(front), amount, c, memo="goods payment")[0]], d, []
        settle = self.acc(self.w.borrower[c.b])
        sec = self.hours()
        drawn = amount * self.rng.uniform(1.0, 1.05)
        k1, t1 = self.pay(d, sec, self.disb_acc(c), settle, drawn, c, memo="transfer to own account")
        later = sec + self.rng.uniform(0.5, 36) * 3600
        d2, sec2 = d + int(later // 86_400), later % 86_400
        if d2 >= self.w.h.days:
            d2, sec2 = d, sec + 1800
        k2, t2 = self.pay(d2, sec2, settle, self.acc(front), amount, c, memo="goods payment")
        quick = t2 - t1 <= 2 * 3600 * 1_000_000 and drawn >= 100_000
        return [k1, k2], d2, [self.label("pass_through", c, t2, [k1, k2])] if quick else []

    def purpose_violation(self, c: Case) -> list[LabelRow]:
        w, rng = self.w, self.rng
        sectors = PROHIBITED_FOR.get(w.loans["purpose"][c.loan], DEFAULT_PROHIBITED)
        target = int(rng.choice(w.pools[str(rng.choice(sectors))]))
        d = self.day0(c)
        if c.hops == 0:
            a = rng.uniform(0.05, 0.28) * self.P(c)
            k, ts = self.pay(d, self.hours(), self.disb_acc(c), self.acc(target), a, c)
            return [self.label("purpose_violation", c, ts, [k])] + self.mismatch(c, ts, [k])
        # via a front company (in the contract, or paid from the borrower's account), which forwards most
        # of it within 1-3 days, through a second front for two intermediaries
        a = rng.uniform(0.10, 0.28) * self.P(c)
        keys, d, also = self.to_front(c, d, a)
        fronts = c.p["fronts"]
        for hop in range(c.hops):
            last = hop == c.hops - 1
            dst = target if last else fronts[hop + 1]
            a *= rng.uniform(0.70, 0.95) if last else rng.uniform(0.85, 0.98)
            d = self.later(d, 1, 3)
            k, ts = self.pay(d, self.hours(), self.acc(fronts[hop]), self.acc(dst), a, c)
            keys.append(k)
        return [self.label("purpose_violation", c, ts, keys, c.hops)] + also

    def entrusted_payment_mismatch(self, c: Case) -> list[LabelRow]:
        w, rng = self.w, self.rng
        if w.firm[c.b]:  # a regular supplier of the borrower, just not one named in the contract
            others = [int(x) for x in w.sup[c.b, : w.n_sup[c.b]] if x not in w.loans["payees"][c.loan]]
        else:
            others = [int(x) for x in w.pools["merchant"] if x not in w.loans["payees"][c.loan]]
        payee = int(rng.choice(others)) if others else self.traders(1)[0]
        k, ts = self.pay(self.day0(c), self.hours(), self.disb_acc(c), self.acc(payee),
                         rng.uniform(0.05, 0.28) * self.P(c), c)
        return [self.label("entrusted_payment_mismatch", c, ts, [k])]

    def round_trip(self, c: Case) -> list[LabelRow]:
        """Loan money to a front company (-> a second front) -> back to the borrower or its owner, 80-95%."""
        w, rng = self.w, self.rng
        back = int(w.borrower[c.b] if rng.random() < 0.5 else w.owner[c.b])  # owner: declared ownership
        a = rng.uniform(0.10, 0.28) * self.P(c)
        keys, d, also = self.to_front(c, self.day0(c), a)
        fronts = c.p["fronts"]
        ret, src = a * rng.uniform(0.80, 0.95), fronts[0]
        if c.hops == 2:
            d = self.later(d, 1, 2)
            keys.append(self.pay(d, self.hours(), self.acc(src), self.acc(fronts[1]), a * rng.uniform(0.96, 0.99), c)[0])
            src = fronts[1]
        d = self.later(d, 1, 3 if c.hops == 1 else 2)
        k, ts = self.pay(d, self.hours(), self.acc(src), self.acc(back), ret, c)
        return [self.label("round_trip", c, ts, keys + [k], c.hops)] + also

    def splitting(self, c: Case) -> list[LabelRow]:
        """5-12 transfers of 45,000-49,999.99 in one morning to 2-4 non-contracted payees."""
        rng, m = self.rng, int(self.rng.integers(5, 13))
        payees = self.traders(int(rng.integers(2, 5)))
        d, sec = self.day0(c), rng.uniform(9.5, 11) * 3600
        keys, times = [], []
        for i in range(m):
            k, ts = self.pay(d, sec, self.disb_acc(c), self.acc(payees[i % len(payees)]),
                             rng.uniform(45_000, 49_999.99), c)
            keys.append(k)
            times.append(ts)
            sec += rng.uniform(5, 40) * 60
        return [self.label("splitting", c, times[4], keys)] + self.mismatch(c, times[0], keys)

    def fan_out(self, c: Case) -> list[LabelRow]:
        """60-85% of the principal to 8-14 never-seen counterparties within one business day, each < 28%."""
        rng, P = self.rng, self.P(c)
        m = int(rng.integers(8, 15))
        total = rng.uniform(0.62, 0.85) * P
        shares = rng.dirichlet(np.full(m, 4.0))
        while shares.max() * total >= 0.28 * P:
            shares = rng.dirichlet(np.full(m, 4.0))
        d, sec = self.day0(c), rng.uniform(9, 11) * 3600
        keys, times, first, cum = [], [], None, 0.0
        for i, x in enumerate(self.traders(m)):
            k, ts = self.pay(d, sec, self.disb_acc(c), self.acc(x), shares[i] * total, c)
            keys.append(k)
            times.append(ts)
            cum += round(shares[i] * total, 2)
            if first is None and i + 1 >= 8 and cum >= 0.6 * P:
                first = ts
            sec += rng.uniform(10, 50) * 60
        return [self.label("fan_out", c, first, keys)] + self.mismatch(c, times[0], keys)

    def pass_through(self, c: Case) -> list[LabelRow]:
        """Disbursement -> own settlement account -> 90-99% out to a new party within 2 hours."""
        rng = self.rng
        a = rng.uniform(0.15, 0.28) * self.P(c)
        d, sec = self.day0(c), rng.uniform(9, 15) * 3600
        settle = self.acc(self.w.borrower[c.b])
        k1, t1 = self.pay(d, sec, self.disb_acc(c), settle, a, c, memo="transfer to own account")
        k2, t2 = self.pay(d, sec + rng.uniform(10, 110) * 60, settle, self.acc(self.traders(1)[0]),
                          a * rng.uniform(0.90, 0.99), c)
        return [self.label("pass_through", c, t2, [k1, k2])] + self.mismatch(c, t1, [k1])

    def large_outflow(self, c: Case) -> list[LabelRow]:
        k, ts = self.pay(self.day0(c), self.hours(), self.disb_acc(c), self.acc(self.traders(1)[0]),
                         self.rng.uniform(0.35, 0.80) * self.P(c), c)
        return [self.label("large_outflow", c, ts, [k])] + self.mismatch(c, ts, [k])

    def cash_out(self, c: Case) -> list[LabelRow]:
        """1-3 cash withdrawals of 50,000-200,000 (each < 28% of the principal) on consecutive working days."""
        rng = self.rng
        d, keys, times = self.day0(c), [], []
        for i in range(int(rng.integers(1, 4))):
            a = round(rng.uniform(50_000, min(200_000, 0.28 * self.P(c))), -2)
            k, ts = self.pay(d, self.hours(), self.disb_acc(c), self.w.cash, a, c, "cash", "cash withdrawal")
            keys.append(k)
            times.append(ts)
            d = self.later(d, 1, 1)
        self.first[c.b] = min(times)
        return [self.label("cash_out", c, min(times), keys)]

    def idle_funds(self, c: Case) -> list[LabelRow]:
        ts = self.w.h.ts(self.w.loans["day"][c.loan], self.w.loans["sec"][c.loan])
        self.first[c.b] = ts
        return [self.label("idle_funds", c, ts, [int(self.disb[c.loan])])]

    def payment_anomaly(self, c: Case) -> list[LabelRow]:
        """The borrower's own money leaves in a burst unlike its business: 3-5 transfers within two
        days from its settlement account, each 5-12 times its usual supplier payment, to traders it
        never paid, in the evening (19:00-23:30), 40 days or more into the horizon. No loan money:
        only its model, not a loan-funds rule, can see it."""
        w, rng, h = self.w, self.rng, self.w.h
        settle = self.acc(w.borrower[c.b])
        lo = min(max(h.days // 2, 40), h.days - 4)  # after the model's month of warm-up where there is room
        d = int(rng.integers(lo, max(lo + 1, h.days - 3)))
        keys, times = [], []
        for i, trader in enumerate(self.traders(int(rng.integers(3, 6)))):
            day = min(d + (int(rng.integers(0, 2)) if i else 0), h.days - 1)  # the first on day d
            amount = float(round(30_000 * w.scale[c.b] * rng.uniform(5, 12), -2))
            k, ts = self.pay(day, float(rng.uniform(19 * 3600, 23.5 * 3600)), settle, self.acc(trader), amount, c)
            keys.append(k)
            times.append(ts)
        return [self.label("payment_anomaly", c, sorted(times)[1], keys)]  # a burst from its second transfer

    def loan_refinancing(self, c: Case) -> list[LabelRow]:
        """Loan B's disbursement account repays loan A within 0-3 working days (channel repayment, loan_id A)."""
        w, rng, new = self.w, self.rng, c.p["new_loan"]
        L = w.loans
        d = w.h.next_workday(L["day"][new] + int(rng.integers(0, 4)))
        d = min(d, w.h.days - 1)
        sec = L["sec"][new] + rng.uniform(1, 3) * 3600 if d == L["day"][new] else self.hours()
        amount = min(L["principal"][c.loan] * rng.uniform(0.5, 1.0), 0.98 * L["principal"][new])
        ts = w.h.ts(d, sec)
        k = self.buf.add(ts, L["account"][new], w.ledger, amount, "repayment", "loan repayment", c.loan)
        return [LabelRow("loan_refinancing", w.borrower[c.b], new, ts, "tx", [int(self.disb[new]), k])]


def front_business(w: World, rng: np.random.Generator, buf: TxBuffer, front: int) -> None:
    """A front company's own trickle: a receipt from the market about every seven working days
    and a payment to it about every ten, of 8,000 or so (lognormal, sigma 0.5)."""
    h, acc, market = w.h, w.acc_of, w.pools["market"]
    for days, outgoing in ((np.nonzero(rng.random(h.days) < h.workday / 7)[0], False),
                           (np.nonzero(rng.random(h.days) < h.workday / 10)[0], True)):
        for d in days:
            other = acc[int(rng.choice(market))]
            src, dst = (acc[front], other) if outgoing else (other, acc[front])
            buf.add(h.ts(int(d), office_hours(rng, 1)[0]), src, dst, 8_000 * np.exp(0.5 * rng.standard_normal()),
                    "transfer", "goods payment")


def emit(w: World, rng: np.random.Generator, cases: list[Case], buf: TxBuffer, disb_keys: np.ndarray):
    """Book every fund case; returns (labels, amount spent per loan, first_event_time per borrower)."""
    fc = FundCases(w, rng, buf, disb_keys)
    labels = []
    for c in cases:
        fn = getattr(fc, c.pattern, None) if c.pattern in _FUND_PATTERNS else None
        if fn is not None:
            labels += fn(c)
        for front in c.p.get("fronts", ()):
            front_business(w, rng, buf, front)
    return labels, fc.spent, fc.first


_FUND_PATTERNS = {"purpose_violation", "entrusted_payment_mismatch", "round_trip", "splitting", "fan_out",
                  "pass_through", "large_outflow", "cash_out", "idle_funds", "loan_refinancing", "payment_anomaly"}
