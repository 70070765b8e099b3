"""Fund tracing: follow disbursed money forward through the accounts it reaches.

Every payment out of a loan's disbursement account is loan money. The payee
account then carries an attribution (loan, amount, hops, route) and its own
later payments are attributed in turn, for at most `max_hops` intermediaries
and `max_age` after disbursement. An intermediary is a party other than the
borrower that held the money: a move between the borrower's own accounts adds
no hop, so loan money parked in the settlement account and then paid to a
broker is still a direct (0-hop) payment of loan money.

Mixing rule, loan money first: when an account that holds attributed money
pays out, the payment is taken from the attributed money before the account's
own money. For surveillance this is the cautious choice: money that arrived
from a loan is assumed to be what moves on, so a conduit cannot hide loan money
behind its own balance. Among the loans' money it holds, the account first
passes on money of a loan whose borrower is the payee or related to it (money
going back where it came from is taken to be that money), then the receipt the
payment passes on (the payment is between half and all of it: a conduit
forwards most of what it got; when several receipts fit, each gives its share,
since nothing tells them apart), then the most recent receipts. So a busy
supplier paid by many borrowers forwards the receipt that matches, not
whatever arrived last. `share` is the part of the payment that is loan money;
a payment can carry money of several loans. Loan money below `min_amount` in
one payment is not followed further.

State is bounded: per account at most `max_parts` attributions (the oldest are
dropped), and attributions expire with age. Payments to the bank (repayments,
cash withdrawals) end a trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from msgspec import Struct

from engine.reference import Reference


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

    max_hops: int = 3
    max_age: timedelta = timedelta(days=90)
    max_parts: int = 8
    min_amount: float = 1000.0  # loan money below this is not followed: crumbs of pro-rata mixing
    parts: dict[str, list[_Part]] = field(default_factory=dict)  # account -> attributions
    swept_at: datetime | None = None  # event time of the last expiry sweep

    def follow(
        self, tx_id: str, ts: datetime, from_account: str, to_account: str, amount: float,
        payer: str, payee: str, ref: Reference,
    ) -> list[Trace]:
        """Attribute one payment; returns a Trace per loan whose money it carries."""
        if amount <= 0:
            return []
        loan = ref.loan_by_account.get(from_account)
        if loan is not None:
            sources = [_Part(loan.id, loan.borrower_id, amount, 0, loan.disbursed_at, ())]
        else:
            sources = self._take(from_account, amount, ts, payee, ref)
        traces = []
        to_bank = ref.parties.get(payee) is not None and ref.parties[payee].kind == "bank"
        for part in sources:
            if part.amount < self.min_amount:
                continue
            route = (*part.route, Hop(tx_id, payer, payee, part.amount, ts))
            related = ref.related.get(part.borrower_id, ())
            returned = part.hops >= 1 and (payee == part.borrower_id or payee in related)
            traces.append(Trace(
                loan_id=part.loan_id, borrower_id=part.borrower_id, hops=part.hops, amount=part.amount,
                share=min(part.amount / amount, 1.0), returned=returned, route=route,
            ))
            hops = part.hops + (payee != part.borrower_id)
            if not to_bank and hops <= self.max_hops and from_account != to_account:
                self._give(to_account, _Part(part.loan_id, part.borrower_id, part.amount, hops, part.disbursed_at, route))
        return traces

    def _take(self, account: str, amount: float, ts: datetime, payee: str, ref: Reference) -> list[_Part]:
        held = self.parts.get(account)
        if not held:
            return []
        live = [p for p in held if ts - p.disbursed_at <= self.max_age]
        back = [p for p in live if payee == p.borrower_id or payee in ref.related.get(p.borrower_id, ())]
        taken, left = [], amount
        for part in reversed(back):  # money going back where it came from, latest first
            if left <= 0:
                break
            left -= self._use(part, min(part.amount, left), taken)
        rest = [p for p in reversed(live) if p.amount > 1e-6 and p not in back]  # latest first ...
        matches = [p for p in rest if left <= p.amount <= 2 * left]  # ... after the receipt it passes on
        if len(matches) > 1:  # several receipts fit: the evidence cannot tell, so each gets its share
            total, paying = sum(p.amount for p in matches), left
            for part in matches:
                left -= self._use(part, min(part.amount, paying * part.amount / total), taken)
            left = max(left, 0.0)
        elif matches:
            rest.remove(matches[0])
            rest.insert(0, matches[0])
        for part in rest:
            if left <= 0:
                break
            left -= self._use(part, min(part.amount, left), taken)
        keep = [p for p in live if p.amount > 1e-6]
        if keep:
            self.parts[account] = keep
        else:
            del self.parts[account]
        return taken

    @staticmethod
    def _use(part: _Part, used: float, taken: list[_Part]) -> float:
        part.amount -= used
        taken.append(_Part(part.loan_id, part.borrower_id, used, part.hops, part.disbursed_at, part.route))
        return used

    def _give(self, account: str, part: _Part) -> None:
        held = self.parts.setdefault(account, [])
        held.append(part)
        if len(held) > self.max_parts:
            del held[0]  # bounded state: the oldest attribution goes first

    def expire_before(self, now: datetime) -> None:
        """Drop attributions older than max_age; sweeps at most once a day of event time."""
        if self.swept_at is not None and now - self.swept_at < timedelta(days=1):
            return
        self.swept_at = now
        for account in list(self.parts):
            kept = [p for p in self.parts[account] if now - p.disbursed_at <= self.max_age]
            if kept:
                self.parts[account] = kept
            else:
                del self.parts[account]


def route_lines(trace: Trace) -> list[str]:
    """The route money took, one payment per line, for an alert's evidence."""
    return [f"{h.tx_id}: {h.from_party} -> {h.to_party} {h.amount:.2f} at {h.ts.isoformat(timespec='seconds')}"
            for h in trace.route]
