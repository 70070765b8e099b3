"""Fund tracing: follow disbursed money forward through the accounts it reaches.

Every payment out of a loan's disbursement account is loan money. The payee
account then holds an attribution (loan, amount, hops, route) and its own
later payments carry that loan's money in turn, for at most `max_hops`
intermediaries and `max_age` after disbursement. An intermediary is a party
other than the borrower that held the money: a move between the borrower's own
accounts adds no hop, so loan money parked in the settlement account and then
paid to a broker is still a direct (0-hop) payment of loan money.

Mixing rule, proportional: an account holds loan money (its attributions) and
money of its own, and a payment out of it carries each in proportion to what
the account holds. Of a payment of p from an account holding loan money L and
own money O, p * L / (L + O) is loan money, split over the loans in proportion
to their amounts, and the loan money left shrinks by the same fraction. So a
supplier with millions of its own that received 600,000 of loan money pays its
rent mostly with its own money, while a conduit, which has little of its own,
forwards loan money: a real conduit shows itself by passing on most of what it
got, soon.

Own money is estimated from what the account has received from other sources
(every receipt that is not followed loan money) since monitoring began: the
sum of those receipts, each weighing less as it ages (time constant
`OWN_WINDOW`, a month), so a busy account is taken to hold about a month of its
own takings. Opening-balance rule: monitoring starts from nothing, so in an
account's first month its takings so far are scaled up to a month (seen for
two weeks, it holds about 2.7 times what it took in them; seen for a week or
less, 4.8 times); an account that receives nothing of its own holds nothing of
its own. A payment larger than L + O takes
all the loan money (the rest was own money held before we saw it). Loan money
that is no longer followed (below `min_amount` in one payment, past
`max_hops`, past `max_parts` attributions in one account, past `max_age`)
counts as its holder's own from then on.

`Trace.share` is the part of the payment that is loan money of that loan; a
payment can carry money of several loans. Payments to the bank (repayments,
cash withdrawals) end a trace.

State, per account: at most `max_parts` attributions (the oldest becomes own
money first) and one own-money balance; attributions expire `max_age` after
their disbursement and an own-money estimate `max_age` after the account's
last receipt. The bounds are pack settings (`tracing:` in pack.yaml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from msgspec import Struct

from engine.reference import Reference

SWEEP_EVERY = timedelta(days=1)  # event time between expiry sweeps
OWN_WINDOW = timedelta(days=30)  # time constant of the own-money estimate
_WINDOW_S = OWN_WINDOW.total_seconds()
_MIN_WATCH_S = 7 * 86_400.0  # a first week is scaled up as if it were a week: at most about 4.8 times


class Hop(Struct, frozen=True, array_like=True):
    tx_id: str
    from_party: str
    to_party: str
    amount: float  # loan money moved by this payment
    ts: datetime


class Trace(Struct, frozen=True, kw_only=True):
    """What tracing knows about one payment."""

    loan_id: str
    borrower_id: str
    hops: int  # intermediary parties that held the money before this payment
    amount: float  # loan money in this payment
    share: float  # amount / payment amount
    returned: bool  # paid back to the borrower or to a declared related party of it
    route: tuple[Hop, ...]  # disbursement to here, this payment last


@dataclass(frozen=True)
class Bounds:
    """How far tracing follows loan money: the pack's `tracing:` settings."""

    max_hops: int = 3
    max_age: timedelta = timedelta(days=90)
    min_amount: float = 10_000.0  # loan money below this in one payment is not followed
    max_parts: int = 8  # attributions per account


@dataclass(eq=False)
class _Part:
    loan_id: str
    borrower_id: str
    amount: float
    hops: int  # intermediary parties that held it, the current holder included
    disbursed_at: datetime
    route: tuple[Hop, ...]


@dataclass
class Tracer:
    """Tracing state for all accounts; snapshotted for recovery."""

    bounds: Bounds = field(default_factory=Bounds)
    parts: dict[str, list[_Part]] = field(default_factory=dict)  # account -> loan-money attributions
    # account -> [decayed own receipts, time of the last, first time seen]
    own: dict[str, list] = field(default_factory=dict)
    swept_at: datetime | None = None  # event time of the last expiry sweep

    def follow(
        self, tx_id: str, ts: datetime, from_account: str, to_account: str, amount: float,
        payer: str, payee: str, ref: Reference,
    ) -> list[Trace]:
        """Attribute one payment; returns a Trace per loan whose money it carries."""
        if amount <= 0 or from_account == to_account:
            return []
        b = self.bounds
        loan = ref.loan_by_account.get(from_account)
        if loan is not None:
            sources, own_paid = [_Part(loan.id, loan.borrower_id, amount, 0, loan.disbursed_at, ())], 0.0
        else:
            sources, own_paid = self._take(from_account, amount, ts)
        payee_party = ref.parties.get(payee)
        to_bank = payee_party is not None and payee_party.kind == "bank"
        traces, untraced = [], own_paid
        for part in sources:
            if part.amount < b.min_amount:
                untraced += part.amount
                continue
            route = (*part.route, Hop(tx_id, payer, payee, part.amount, ts))
            related = ref.related.get(part.borrower_id, ())
            returned = part.hops >= 1 and (payee == part.borrower_id or payee in related)
            traces.append(Trace(
                loan_id=part.loan_id, borrower_id=part.borrower_id, hops=part.hops, amount=part.amount,
                share=min(part.amount / amount, 1.0), returned=returned, route=route,
            ))
            hops = part.hops + (payee != part.borrower_id)
            if to_bank:
                continue
            if hops <= b.max_hops:
                self._give(to_account, _Part(part.loan_id, part.borrower_id, part.amount, hops, part.disbursed_at,
                                             route), ts)
            else:
                untraced += part.amount
        if not to_bank:
            self._add_own(to_account, untraced, ts)
        return traces

    def _take(self, account: str, amount: float, ts: datetime) -> tuple[list[_Part], float]:
        """The loan money and own money in a payment of `amount`, in proportion to the holdings."""
        held = self.parts.get(account)
        if held is None:
            return [], amount
        own = self.own_money(account, ts)
        live, loan_money, expired = [], 0.0, 0.0
        for p in held:
            if ts - p.disbursed_at <= self.bounds.max_age:
                live.append(p)
                loan_money += p.amount
            else:
                expired += p.amount
        if expired:  # no longer followed: it is the holder's own money now
            self._add_own(account, expired, ts)
            own += expired
        if not live:
            del self.parts[account]
            return [], amount
        fraction = min(1.0, amount / (loan_money + own))  # all of it when paying more than it is known to hold
        taken = []
        for p in live:
            used = p.amount * fraction
            p.amount -= used
            taken.append(_Part(p.loan_id, p.borrower_id, used, p.hops, p.disbursed_at, p.route))
        live = [p for p in live if p.amount > 1e-6]
        if live:
            self.parts[account] = live
        else:
            del self.parts[account]
        return taken, amount - loan_money * fraction

    def _give(self, account: str, part: _Part, ts: datetime) -> None:
        held = self.parts.setdefault(account, [])
        held.append(part)
        if len(held) > self.bounds.max_parts:
            oldest = held.pop(0)  # bounded state: the oldest attribution becomes own money
            self._add_own(account, oldest.amount, ts)

    def _add_own(self, account: str, amount: float, ts: datetime) -> None:
        if amount <= 0:
            return
        entry = self.own.get(account)
        if entry is None:
            self.own[account] = [amount, ts, ts]
        else:
            entry[0] = entry[0] * math.exp(-max((ts - entry[1]).total_seconds(), 0.0) / _WINDOW_S) + amount
            entry[1] = max(entry[1], ts)

    def loan_money(self, account: str) -> float:
        return sum(p.amount for p in self.parts.get(account, ()))

    def own_money(self, account: str, now: datetime) -> float:
        """The account's own money at `now`: its decayed own receipts, scaled up to a month in its first month."""
        entry = self.own.get(account)
        if entry is None:
            return 0.0
        received, last, first = entry
        decayed = received * math.exp(-max((now - last).total_seconds(), 0.0) / _WINDOW_S)
        watched = max((now - first).total_seconds(), _MIN_WATCH_S)
        return decayed / -math.expm1(-watched / _WINDOW_S)

    def expire_before(self, now: datetime) -> None:
        """Drop attributions older than max_age and own balances quiet that long; at most once a day of event time."""
        if self.swept_at is not None and now - self.swept_at < SWEEP_EVERY:
            return
        self.swept_at = now
        max_age = self.bounds.max_age
        for account in list(self.parts):
            held = self.parts[account]
            kept = [p for p in held if now - p.disbursed_at <= max_age]
            if len(kept) < len(held):
                self._add_own(account, sum(p.amount for p in held) - sum(p.amount for p in kept), now)
            if kept:
                self.parts[account] = kept
            else:
                del self.parts[account]
        for account in [a for a, (_, last, _) in self.own.items() if now - last > max_age]:
            del self.own[account]


def route_lines(trace: Trace) -> list[str]:
    """The route money took, one payment per line, for an alert's evidence."""
    return [f"{h.tx_id}: {h.from_party} -> {h.to_party} {h.amount:.2f} at {h.ts.isoformat(timespec='seconds')}"
            for h in trace.route]
