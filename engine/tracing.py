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
own takings and a shell that takes in little holds little. Opening-balance
rule: an account starts with no own money; a payment larger than the account
is known to hold takes all the loan money it holds (the rest was own money it
had before we saw it). Loan money that is no longer followed (below
`min_amount` in one payment, past `max_hops`, past `max_parts` attributions in
one account, past `max_age`) counts as its holder's own from then on.

In a borrower's own accounts the same rule holds, with one addition: a
payment that passes on most of one of its loans' drawn money (half of what is
left of it up to a tenth more) takes it from that draw. A borrower that draws a
self-payment loan (自主支付) to its settlement account and pays it on to one
payee pays that payee with the loan money, however busy the account is;
everyday payments in between take their proportional share.

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
MATCH = (0.5, 1.1)  # a payment passes on a draw when it is this share of what is left of it


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
    of_principal: float  # amount / the loan's principal
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
    # account -> [own receipts decayed to the last one, its time in epoch seconds]
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
            sources, untraced = [_Part(loan.id, loan.borrower_id, amount, 0, loan.disbursed_at, ())], 0.0
        elif from_account in self.parts:
            sources, untraced = self._take(from_account, amount, ts, payer)
        else:  # the common case: an account holding no loan money pays its own money
            sources, untraced = (), amount
        payee_party = ref.parties.get(payee)
        to_bank = payee_party is not None and payee_party.kind == "bank"
        traces = []
        for part in sources:
            if part.amount < b.min_amount:
                untraced += part.amount
                continue
            route = (*part.route, Hop(tx_id, payer, payee, part.amount, ts))
            returned = part.hops >= 1 and (payee == part.borrower_id or ref.is_related(part.borrower_id, payee, ts.date()))
            principal = ref.loans[part.loan_id].principal if part.loan_id in ref.loans else 0.0
            traces.append(Trace(
                loan_id=part.loan_id, borrower_id=part.borrower_id, hops=part.hops, amount=part.amount,
                share=min(part.amount / amount, 1.0), of_principal=part.amount / principal if principal else 0.0,
                returned=returned, route=route,
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
            self._add_own(to_account, untraced, ts.timestamp())
        return traces

    def _take(self, account: str, amount: float, ts: datetime, payer: str) -> tuple[list[_Part], float]:
        """The loan money worth following in a payment of `amount`, and the rest of it: the draw it
        passes on, if it passes one of the payer's own on, else in proportion to the holdings."""
        held = self.parts[account]
        oldest = ts - self.bounds.max_age
        live = [p for p in held if p.disbursed_at >= oldest]
        if len(live) < len(held):  # expired: no longer followed, the holder's own money now
            self._add_own(account, sum(p.amount for p in held if p.disbursed_at < oldest), ts.timestamp())
        low, high = MATCH
        chosen = None
        for p in reversed(live):
            if p.borrower_id == payer and low * p.amount <= amount <= high * p.amount:
                chosen, fraction = (p,), min(1.0, amount / p.amount)
                break
        if chosen is None:
            chosen = live
            fraction = min(1.0, amount / (sum(p.amount for p in live) + self.own_money(account, ts)))
        minimum, taken, left, crumbs = self.bounds.min_amount, [], amount, 0.0
        for p in chosen:
            used = p.amount * fraction
            p.amount -= used
            if used >= minimum:
                taken.append(_Part(p.loan_id, p.borrower_id, used, p.hops, p.disbursed_at, p.route))
                left -= used
        keep = []
        for p in live:  # an attribution below the minimum can never be followed again: own money
            if p.amount >= minimum:
                keep.append(p)
            else:
                crumbs += p.amount
        if crumbs:
            self._add_own(account, crumbs, ts.timestamp())
        if keep:
            self.parts[account] = keep
        else:
            del self.parts[account]
        return taken, left

    def _give(self, account: str, part: _Part, ts: datetime) -> None:
        held = self.parts.setdefault(account, [])
        held.append(part)
        if len(held) > self.bounds.max_parts:
            oldest = held.pop(0)  # bounded state: the oldest attribution becomes own money
            self._add_own(account, oldest.amount, ts.timestamp())

    def _add_own(self, account: str, amount: float, now: float) -> None:
        """Count a receipt of the account's own money (`now` in epoch seconds)."""
        if amount <= 0:
            return
        entry = self.own.get(account)
        if entry is None:
            self.own[account] = [amount, now]
        else:  # decayed to now (a late receipt does not grow what came after it)
            entry[0] = entry[0] * math.exp(min(entry[1] - now, 0.0) / _WINDOW_S) + amount
            if now > entry[1]:
                entry[1] = now

    def loan_money(self, account: str) -> float:
        return sum(p.amount for p in self.parts.get(account, ()))

    def own_money(self, account: str, now: datetime) -> float:
        """The account's own money at `now`: its own receipts, each decayed with its age."""
        entry = self.own.get(account)
        if entry is None:
            return 0.0
        received, last = entry
        return received * math.exp(min(last - now.timestamp(), 0.0) / _WINDOW_S)

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
                self._add_own(account, sum(p.amount for p in held) - sum(p.amount for p in kept), now.timestamp())
            if kept:
                self.parts[account] = kept
            else:
                del self.parts[account]
        cutoff = (now - max_age).timestamp()
        for account in [a for a, (_, last) in self.own.items() if last < cutoff]:
            del self.own[account]


def route_lines(trace: Trace) -> list[str]:
    """The route money took, one payment per line, for an alert's evidence."""
    return [f"{h.tx_id}: {h.from_party} -> {h.to_party} {h.amount:.2f} at {h.ts.isoformat(timespec='seconds')}"
            for h in trace.route]
