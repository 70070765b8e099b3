"""What a rule sees: the event plus its loan, borrower and counterparty (or pledge).

Enrichment is the one place that decides whose money moves: the payer if it
is a borrower (an outflow), else the payee (an inflow).  A reference to an
unknown account or loan is an invalid event, reported as a dead letter.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Literal

import msgspec
from msgspec import Struct

from engine.batch import Batch, Raw, dead_letter, input_partition
from engine.lateness import Lateness
from engine.records import (
    ACTIVITY_STREAMS,
    Channel,
    Loan,
    Party,
    Record,
    Relation,
    SensorKind,
    SensorReading,
    Transaction,
)
from engine.reference import Reference
from engine.tracing import Trace, Tracer


class TxView(Struct, frozen=True, kw_only=True, gc=False):  # no cycles: skip GC tracking
    # the event
    id: str
    ts: datetime
    amount: float
    currency: str
    channel: Channel
    mcc: str | None
    memo: str
    from_account: str
    to_account: str
    loan_id: str | None  # the loan the payment system named (repayments, disbursements)
    # context
    # out: the borrower pays; in: the borrower is paid; onward: two other parties move
    # money traced to the borrower's loan (set by fund tracing)
    direction: Literal["out", "in", "onward"]
    borrower: Party  # the party whose behaviour this event tells about
    counterparty: Party  # the other side; for onward payments, the payee
    loan: Loan | None
    funded_by_loan: bool  # paid out of the loan's disbursement account
    days_since_disbursement: int | None
    share_of_principal: float | None
    counterparty_contracted: bool  # a contracted payee of the loan
    counterparty_related: bool  # a declared related party of the borrower
    counterparty_known: bool  # contracted, related or a declared supply-chain partner
    self_transfer: bool  # between two accounts of the borrower
    payer_id: str  # the parties of the payment itself, whatever its direction
    payee_id: str
    trace: Trace | None = None  # loan money in this payment, from fund tracing


class SensorView(Struct, frozen=True, kw_only=True):
    id: str
    ts: datetime
    site_id: str
    kind: SensorKind
    value: float
    unit: str
    gateway_id: str | None
    device: str  # the sensor that sent it: one per site and kind
    borrower: Party
    loan: Loan | None  # the loan whose collateral sits at this site
    pledged_quantity: float | None
    pledge_cover: float | None  # inventory readings: value / pledged quantity


class RelationView(Struct, frozen=True, kw_only=True):
    """A relation record seen as an event (a new guarantee, a new ownership link)."""

    id: str
    ts: datetime  # valid_from, midnight UTC
    kind: str
    src: Party  # guarantee: the guarantor
    dst: Party  # guarantee: the guaranteed party
    amount: float | None
    share: float | None
    borrower: Party  # the party it tells about: the guaranteed party, else src


class PartyView(Struct, frozen=True, kw_only=True):
    """A party record seen as an event (a new customer, changed identifiers)."""

    id: str
    ts: datetime  # registered_on, midnight UTC
    borrower: Party  # the party itself
    is_borrower: bool


View = TxView | SensorView | RelationView | PartyView


class UnknownReference(ValueError):
    """The event names an account or loan the reference data does not have."""


def enrich(tx: Transaction, ref: Reference) -> TxView:
    payer = ref.party_of(tx.from_account)
    payee = ref.party_of(tx.to_account)
    if payer is None:
        raise UnknownReference(f"$.from_account: unknown account {tx.from_account!r}")
    if payee is None:
        raise UnknownReference(f"$.to_account: unknown account {tx.to_account!r}")
    if tx.loan_id is not None and tx.loan_id not in ref.loans:
        raise UnknownReference(f"$.loan_id: unknown loan {tx.loan_id!r}")

    disbursing = ref.loan_by_account.get(tx.from_account)
    funded = disbursing is not None and tx.channel != "disbursement"
    if funded or ref.is_borrower(payer.id):
        direction, borrower, counterparty = "out", payer, payee
    else:
        direction, borrower, counterparty = "in", payee, payer

    loan = disbursing if funded else _loan_context(tx, borrower.id, ref)
    return _view(tx, direction, borrower, counterparty, loan, funded, ref, payer.id, payee.id)


def retarget(view: TxView, trace: Trace, ref: Reference) -> TxView:
    """Attach a trace; a payment between two other parties that carries a loan's
    money becomes an `onward` event of that loan's borrower (its alerts, its state)."""
    if view.borrower.id == trace.borrower_id:
        return msgspec.structs.replace(view, trace=trace)
    borrower, loan, payee = ref.parties[trace.borrower_id], ref.loans[trace.loan_id], ref.parties[view.payee_id]
    return _view(view, "onward", borrower, payee, loan, False, ref, view.payer_id, view.payee_id, trace)


def _view(
    tx: Transaction | TxView, direction: str, borrower: Party, counterparty: Party, loan: Loan | None,
    funded: bool, ref: Reference, payer_id: str, payee_id: str, trace: Trace | None = None,
) -> TxView:
    days = share = None
    if loan is not None:
        days = (tx.ts - loan.disbursed_at).days
        share = tx.amount / loan.principal
    contracted = loan is not None and counterparty.id in loan.contracted_payees
    day = tx.ts.date()
    related = ref.is_related(borrower.id, counterparty.id, day)
    known = contracted or related or ref.is_known(borrower.id, counterparty.id, day)
    return TxView(
        id=tx.id, ts=tx.ts, amount=tx.amount, currency=tx.currency, channel=tx.channel,
        mcc=tx.mcc, memo=tx.memo, from_account=tx.from_account, to_account=tx.to_account, loan_id=tx.loan_id,
        direction=direction, borrower=borrower, counterparty=counterparty, loan=loan,
        funded_by_loan=funded, days_since_disbursement=days, share_of_principal=share,
        counterparty_contracted=contracted, counterparty_related=related, counterparty_known=known,
        self_transfer=counterparty.id == borrower.id, payer_id=payer_id, payee_id=payee_id, trace=trace,
    )


def enrich_reading(reading: SensorReading, ref: Reference) -> SensorView:
    borrower = ref.parties.get(reading.borrower_id)
    if borrower is None:
        raise UnknownReference(f"$.borrower_id: unknown party {reading.borrower_id!r}")
    loan, pledged = None, None
    pledge = ref.collateral_at.get(reading.site_id)
    if pledge is not None and pledge[0].borrower_id == borrower.id:
        loan, pledged = pledge[0], pledge[1].pledged_quantity
    cover = reading.value / pledged if pledged and reading.kind == "inventory" else None
    return SensorView(
        id=reading.id, ts=reading.ts, site_id=reading.site_id, kind=reading.kind, value=reading.value,
        unit=reading.unit, gateway_id=reading.gateway_id, device=f"{reading.site_id}/{reading.kind}",
        borrower=borrower, loan=loan, pledged_quantity=pledged, pledge_cover=cover,
    )


def _loan_context(tx: Transaction, borrower_id: str, ref: Reference) -> Loan | None:
    """The loan named on the event, else the borrower's latest loan disbursed by then."""
    if tx.loan_id is not None:
        return ref.loans[tx.loan_id]
    latest = None
    for loan in ref.loans_by_borrower.get(borrower_id, ()):
        if loan.disbursed_at > tx.ts:
            break
        latest = loan
    return latest


def enrich_relation(rel: Relation, ref: Reference) -> RelationView:
    src, dst = ref.parties.get(rel.src), ref.parties.get(rel.dst)
    if src is None:
        raise UnknownReference(f"$.src: unknown party {rel.src!r}")
    if dst is None:
        raise UnknownReference(f"$.dst: unknown party {rel.dst!r}")
    return RelationView(
        id=rel.id, ts=_midnight(rel.valid_from), kind=rel.kind, src=src, dst=dst, amount=rel.amount,
        share=rel.share, borrower=dst if rel.kind == "guarantee" else src,
    )


def enrich_party(party: Party, ref: Reference) -> PartyView:
    return PartyView(id=party.id, ts=_midnight(party.registered_on), borrower=party, is_borrower=ref.is_borrower(party.id))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), timezone.utc)


_ENRICH = {Transaction: enrich, SensorReading: enrich_reading, Relation: enrich_relation, Party: enrich_party}


def enrich_batch(
    batch: Batch[tuple[Raw, Record]], ref: Reference, lateness: Lateness | None = None, now: datetime | None = None,
) -> Batch[View]:
    """Stage 2: attach context; events naming unknown reference data become dead letters,
    and so do valid payments and readings too far behind their partition or ahead of
    `now` (only accepted ones move its clock). Every accepted event counts in its
    partition's progress; a quiet mark from a source is passed on as such."""
    out: Batch[View] = batch.passing_on(dead=batch.dead, seen=batch.seen)
    progress = out.progress = dict(batch.progress)
    for raw, record in batch.items:
        try:
            view = _ENRICH[type(record)](record, ref)
        except UnknownReference as e:
            out.dead.append(dead_letter(raw, f"invalid: {e}"))
            continue
        where = (raw.stream, input_partition(raw))
        if raw.stream in ACTIVITY_STREAMS and lateness is not None:
            refused = lateness.admit(where[1], view.ts, now)
            if refused is not None:
                out.dead.append(dead_letter(raw, refused))
                continue
        if where not in progress or view.ts > progress[where]:
            progress[where] = view.ts
        out.items.append(view)
    return out


STREAM_OF: dict[type, str] = {
    TxView: "transactions", SensorView: "sensors", RelationView: "relations", PartyView: "parties",
}


def trace_batch(batch: Batch[View], tracer: Tracer, ref: Reference) -> Batch[View]:
    """Stage 2b: fund tracing, in event order over all accounts (one tracer for the flow).

    A payment stays an event of its own payer (or payee, see enrich), with the
    trace of that borrower's own loan money if it carries any (the largest);
    the money of any other borrower's loan it carries adds an `onward` event of
    that borrower, so a repayment paid with money traced to someone else's loan
    is still the payer's repayment."""
    items: list[View] = []
    for view in batch.items:
        if type(view) is not TxView:
            items.append(view)
            continue
        traces = tracer.follow(
            view.id, view.ts, view.from_account, view.to_account, view.amount, view.payer_id, view.payee_id, ref,
        )
        if not traces:
            items.append(view)
            continue
        own = [t for t in traces if t.borrower_id == view.borrower.id]
        items.append(retarget(view, max(own, key=lambda t: t.amount), ref) if own else view)
        items.extend(retarget(view, t, ref) for t in traces if t.borrower_id != view.borrower.id)
    if items:
        tracer.expire_before(items[-1].ts)
    batch.items = items
    return batch
