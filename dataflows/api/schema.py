"""What the API sends and accepts, as msgspec Structs (its OpenAPI document is made from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct

from engine.records import AlertStatus, Evidence, Level

Text = Annotated[str, Meta(max_length=2000)]
Name = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]
Disposition = Literal["call_in_loan", "add_collateral", "raise_risk_class", "restructure", "refer_to_legal",
                      "false_positive"]
Role = Literal["viewer", "analyst", "admin"]


class AlertRow(Struct, kw_only=True):
    id: str
    rule_id: str
    rule_version: int
    pack_version: str
    score: int  # the alert's own, combined from its rule, model, graph signals and the loan's class
    borrower_score: int | None  # the borrower's combined score over its open alerts when this one came
    level: Level
    borrower_id: str
    loan_id: str | None
    event_time: datetime
    detected_at: datetime
    summary: str
    shadow: bool
    status: AlertStatus
    assignee: str | None
    disposition: str | None
    version: int  # of the lifecycle state; send it back with a change
    updated_at: datetime | None
    updated_by: str | None


class AlertPage(Struct, kw_only=True):
    total: int  # alerts matching the filters
    limit: int
    offset: int
    items: list[AlertRow]


class RuleInfo(Struct, kw_only=True):
    title: str
    description: str | None
    investigation: str | None
    false_positives: list[str]


class GraphEdge(Struct, kw_only=True):
    src: str
    dst: str
    kind: Literal["payment", "guarantee", "shared"]
    label: str
    ref: str | None = None  # the transaction or relation ids


class Graph(Struct, kw_only=True):
    """The money route or guarantee path of the evidence, as parties and edges."""

    nodes: list[str]
    edges: list[GraphEdge]
    circle: bool  # the edges close a guarantee circle
    notes: list[str]  # path lines that are not edges


class AuditEntry(Struct, kw_only=True):
    seq: int
    changed_at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    detail: str


class AlertDetail(AlertRow, kw_only=True):
    borrower_score_now: int  # the borrower's combined score over its open alerts now
    evidence: Evidence
    model_versions: dict[str, str] | None
    rule: RuleInfo | None  # the rule's own words for the analyst, from its pack
    graph: Graph
    audit: list[AuditEntry]
    next: list[str]  # statuses it can move to from here


class Transition(Struct, kw_only=True, forbid_unknown_fields=True):
    to: AlertStatus
    version: Annotated[int, Meta(ge=0)]
    reason: Text = ""
    disposition: Disposition | None = None


class Assignment(Struct, kw_only=True, forbid_unknown_fields=True):
    assignee: Name | None
    version: Annotated[int, Meta(ge=0)]
    reason: Text = ""


class Comment(Struct, kw_only=True, forbid_unknown_fields=True):
    text: Annotated[str, Meta(min_length=1, max_length=2000)]


class State(Struct, kw_only=True):
    status: AlertStatus
    assignee: str | None
    disposition: str | None
    version: int
    updated_by: str | None


class TokenRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    role: Role
    expires_days: Annotated[float, Meta(gt=0, le=3650)] | None = None


class TokenInfo(Struct, kw_only=True):
    id: str
    name: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class NewToken(Struct, kw_only=True):
    token: str  # shown once; only its hash is stored
    info: TokenInfo


class Me(Struct, kw_only=True):
    name: str
    role: Role


class Count(Struct, kw_only=True):
    key: str
    alerts: int


class DayCount(Struct, kw_only=True):
    day: str
    level: Level
    alerts: int


class Overview(Struct, kw_only=True):
    by_level: list[Count]
    by_rule: list[Count]
    by_status: list[Count]
    per_day: list[DayCount]
    top_borrowers: list[Count]  # most open alerts


class DeadLetterRow(Struct, kw_only=True):
    id: str
    stream: str
    source: str
    position: str
    reason: str
    payload: str
    stored_at: datetime


class PackRow(Struct, kw_only=True):
    pack_id: str
    version: str
    digest: str
    rules: dict[str, int]
    loaded_at: datetime
