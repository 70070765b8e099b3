"""The one schema: inbound events, reference data and alerts as msgspec Structs.

Inbound events tolerate unknown fields so producers can evolve; everything we
author ourselves (alerts, settings, rules) forbids them.  Constraints live in
the types, so a bad value is reported with its path: `$.amount: Expected
`float` >= 0.0`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

Id = Annotated[str, Meta(min_length=1, max_length=64)]
Money = Annotated[float, Meta(ge=0)]
Share = Annotated[float, Meta(ge=0, le=1)]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$")]

# Sector codes are plain strings so rule packs can list new ones without a
# schema change; these are the ones the simulated bank and default pack use.
SECTORS = (
    "manufacturing", "wholesale", "retail", "construction", "logistics",
    "agriculture", "food", "it_services", "utilities", "household",
    "banking", "guarantee", "government", "real_estate", "securities", "futures", "crypto",
    "lending", "gambling",
)

PartyKind = Literal["firm", "person", "bank"]
AccountKind = Literal["disbursement", "settlement", "securities", "escrow", "loan_ledger", "external"]
Purpose = Literal["working_capital", "fixed_asset", "trade_finance", "consumer", "mortgage"]
RiskClass = Literal["normal", "special_mention", "substandard", "doubtful", "loss"]
RelationKind = Literal[
    "guarantee", "ownership", "control", "shared_director", "shared_legal_rep",
    "shared_address", "shared_phone", "family", "supply_chain",
]
# disbursement and repayment are book entries of the loan ledger; the rest are
# payment channels as the payment system reports them.
Channel = Literal["transfer", "cash", "card", "bill", "disbursement", "repayment"]
# heartbeat: the site gateway's "I am online", through which the other sensors report
SensorKind = Literal["headcount", "inventory", "electricity_kwh", "executive_presence", "heartbeat"]
Repayment = Literal["monthly", "quarterly_interest", "bullet"]
Level = Literal["low", "medium", "high", "critical"]
AlertStatus = Literal["new", "acknowledged", "investigating", "confirmed", "dismissed", "closed"]


class Record(Struct, frozen=True, kw_only=True):
    """Base of every record that arrives from outside: unknown fields are ignored."""


# --- reference data -------------------------------------------------------


class Party(Record, kw_only=True):
    id: Id
    kind: PartyKind
    name: str
    sector: str
    region: str
    registered_on: date
    legal_rep: str | None = None
    address: str | None = None
    phone: str | None = None
    net_assets: Money = 0.0  # sizes a guarantor's exposure


class Account(Record, kw_only=True):
    id: Id
    party_id: Id
    kind: AccountKind
    opened_on: date


class Collateral(Record, kw_only=True):
    kind: Literal["inventory", "property", "equipment", "receivables"]
    site_id: str | None = None
    pledged_quantity: Money | None = None
    unit: str | None = None


class Loan(Record, kw_only=True):
    id: Id
    borrower_id: Id
    disbursement_account: Id
    principal: Annotated[float, Meta(gt=0)]
    currency: Currency = "CNY"
    disbursed_at: datetime
    maturity: date
    purpose: Purpose
    contracted_payees: list[str] = []  # party ids for entrusted payment
    # entrusted payment (受托支付): the bank pays the contracted payees; else self-payment
    # (自主支付): the borrower draws the money to its own account and pays from there
    entrusted_payment: bool = True
    # monthly: an instalment or the interest every month; quarterly_interest: interest every
    # quarter, principal at maturity; bullet: everything at maturity
    repayment: Repayment = "monthly"
    collateral: list[Collateral] = []
    guarantors: list[str] = []
    risk_class: RiskClass = "normal"


class Relation(Record, kw_only=True):
    id: Id
    kind: RelationKind
    src: Id  # guarantee: guarantor; ownership: owner
    dst: Id  # guarantee: borrower; ownership: owned firm
    amount: Money | None = None
    share: Share | None = None
    valid_from: date
    valid_to: date | None = None


# --- event streams --------------------------------------------------------


class Transaction(Record, kw_only=True):
    id: Id
    ts: datetime  # event time
    from_account: Id
    to_account: Id
    amount: Money
    currency: Currency = "CNY"
    channel: Channel
    mcc: str | None = None  # merchant category for card payments
    memo: str = ""
    loan_id: str | None = None


class SensorReading(Record, kw_only=True):
    id: Id
    ts: datetime
    site_id: Id
    borrower_id: Id
    kind: SensorKind
    value: Annotated[float, Meta(ge=0)]
    unit: str
    gateway_id: str | None = None  # the site gateway the reading came through


# --- outputs --------------------------------------------------------------


Scalar = str | int | float | bool | None


class Evidence(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    event_ids: list[str]
    values: dict[str, Scalar]  # the fields the rule read
    conditions: list[str]  # selections that held
    path: list[str] = []  # graph path or money route, when there is one
    # the triggering events themselves, as they came in (a payment's accounts, amount, channel, memo;
    # a reading's site, kind, value; a relation's parties), so an analyst needs nothing else to read them
    events: list[dict[str, Scalar]] = []


class Alert(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str  # deterministic: see engine.alerts.alert_id
    rule_id: str
    rule_version: int
    pack_version: str
    model_versions: dict[str, str] = {}
    score: Annotated[int, Meta(ge=0, le=100)]
    level: Level
    borrower_id: str
    loan_id: str | None
    event_time: datetime
    detected_at: datetime
    summary: str
    evidence: Evidence
    shadow: bool = False  # experimental rules: stored, never published
    status: AlertStatus = "new"


class Label(Struct, frozen=True, kw_only=True):
    """Ground truth for one injected case of a risk pattern (simulator output)."""

    pattern: str  # a key of engine.patterns.PATTERNS
    borrower_id: str
    loan_id: str | None
    first_event_time: datetime
    # the events that make up the case; for reference-data patterns (graph,
    # hidden relations) the relation or party ids instead
    event_ids: list[str]
    hops: int = 0  # intermediaries between disbursement and the violating payment


# Event streams. Relations and parties are reference data and events at once: as
# events they let graph rules look at each new guarantee or party as it arrives.
STREAMS: dict[str, type[Record]] = {
    "transactions": Transaction, "sensors": SensorReading, "relations": Relation, "parties": Party,
}
ACTIVITY_STREAMS = ("transactions", "sensors")  # the streams whose event time drives deadlines
EVENT_TIME = {"transactions": "ts", "sensors": "ts", "relations": "valid_from", "parties": "registered_on"}
REFERENCE: dict[str, type[Record]] = {
    "parties": Party, "accounts": Account, "loans": Loan, "relations": Relation,
}

json_encoder = msgspec.json.Encoder()


class DeadLetter(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An inbound record we could not use, kept with why and where it came from."""

    id: str  # deterministic from source and position, so a replay stores it once
    stream: str
    source: str  # file path or topic
    position: str  # row number, line number, or partition:offset
    reason: str
    payload: str  # the raw record as text, truncated if huge
