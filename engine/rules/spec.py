"""The rule file format as types: what a rule author may write, nothing more."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from engine.records import Level

RuleId = Annotated[str, Meta(pattern=r"^[A-Z]{2,4}-[0-9]{3}$")]
Duration = Annotated[str, Meta(pattern=r"^[0-9]+(s|m|h|d|w)$")]  # 90s, 30m, 2h, 1d, 1w


class Strict(Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Base of every authored structure: a misspelt key is an error, not ignored."""


class AppliesTo(Strict, kw_only=True):
    # relations and parties: reference records as they arrive; alerts: other rules' alerts
    stream: Literal["transactions", "sensors", "relations", "parties", "alerts"]
    where: dict[str, Any] = {}


class Exception_(Strict, kw_only=True):
    """A documented case where the rule must not fire (e.g. a known payee)."""

    name: str
    reason: str
    where: dict[str, Any]


class Output(Strict, kw_only=True):
    summary: str
    # repeats for the same rule and entity within this long are merged into the
    # first alert (they carry its id) instead of being raised again
    suppress_for: Duration | None = None


class Measure(Strict, kw_only=True):
    """One aggregate over the window: exactly one of count/sum/distinct/max/share/ratio."""

    count: bool = False
    sum: str | None = None
    distinct: str | None = None
    max: str | None = None
    share: str | None = None  # sum of this field divided by the loan's principal
    ratio: list[str] | None = None  # [numerator, denominator]: two other measures
    where: dict[str, Any] = {}  # only events matching this selection count


class Window(Strict, kw_only=True):
    size: Duration
    type: Literal["sliding", "tumbling"] = "sliding"


class Aggregate(Strict, kw_only=True):
    key: str = "borrower.id"
    window: Window
    measures: dict[str, Measure]
    having: dict[str, Any]


class Activity(Strict, kw_only=True):
    """Events that show the entity was alive while the expected event did not come."""

    stream: Literal["transactions", "sensors"]
    where: dict[str, Any] = {}
    key: str = "borrower.id"  # read on these events and on the start event: the same value links them
    # distinct hours with activity needed between the start and the deadline (a gateway that
    # reports every few hours and was up for most of a 3-day silence has a dozen)
    min_hours: Annotated[int, Meta(ge=1)] = 1


class Absence(Strict, kw_only=True):
    key: str
    start: dict[str, Any]  # an event that starts the clock
    expect: dict[str, Any]  # the event that must follow within `within`
    within: Duration
    recurring: bool = False  # a start event restarts a running clock (each repayment, each reading)
    # only fire if there was activity meanwhile: tells a sensor that went silent
    # while its gateway kept reporting (tampering) from a site that went offline
    require_activity: Activity | None = None


class GraphCheck(Strict, kw_only=True):
    """A bounded search in the guarantee or identity graph, run for each new record."""

    check: Literal["guarantee_circle", "guarantee_chain", "guarantor_exposure", "hidden_related", "contagion"]
    max_len: Annotated[int, Meta(ge=2, le=20)] = 6  # largest circle, longest chain searched
    min_len: Annotated[int, Meta(ge=2)] = 5  # chain: guarantees in a chain worth an alert
    max_fanout: Annotated[int, Meta(ge=1)] = 200
    exposure_ratio: Annotated[float, Meta(gt=0)] = 2.0  # guarantees given / net assets
    depth: Annotated[int, Meta(ge=1, le=4)] = 2  # contagion: guarantee steps from the risky party
    decay: Annotated[float, Meta(gt=0, le=1)] = 0.5  # contagion: score factor per step
    # hidden_related: an identifier held by more parties is a business centre or an agent, not a link
    max_holders: Annotated[int, Meta(ge=2)] = 5


class Baseline(Strict, kw_only=True):
    key: list[str]
    value: str
    compare: Literal["rolling", "same_weekday"]
    history: Annotated[int, Meta(ge=1, le=60)] = 4  # points (rolling) or weeks (same_weekday)
    min_history: Annotated[int, Meta(ge=1)] = 3
    having: dict[str, Any]  # over value, baseline, ratio, deviation
    sustained: Annotated[int, Meta(ge=1)] = 1  # consecutive points before it fires


class Expect(Strict, kw_only=True):
    alerts: Annotated[int, Meta(ge=0)]


class RuleTest(Strict, kw_only=True):
    name: str
    context: dict[str, list[dict[str, Any]]] = {}  # reference records by kind
    events: list[dict[str, Any]]
    expect: Expect


class RuleSpec(Strict, kw_only=True):
    id: RuleId
    title: str
    version: Annotated[int, Meta(ge=1)]
    status: Literal["experimental", "test", "stable", "deprecated"]
    severity: Level
    risk_score: Annotated[int, Meta(ge=0, le=100)]
    kind: Literal["match", "aggregate", "absence", "baseline", "graph"] = "match"
    tags: list[str] = []
    owner: str | None = None
    description: str | None = None
    false_positives: list[str] = []
    investigation: str | None = None
    applies_to: AppliesTo
    detection: dict[str, Any] = {}  # named selections plus `condition`; none: every event in scope
    aggregate: Aggregate | None = None
    absence: Absence | None = None
    baseline: Baseline | None = None
    graph: GraphCheck | None = None
    exceptions: list[Exception_] = []
    output: Output
    tests: list[RuleTest] = []


class SuppressionSpec(Strict, kw_only=True):
    """An analyst's decision that some alerts are known and accepted, for a while."""

    id: Annotated[str, Meta(pattern=r"^SUP-[A-Za-z0-9-]+$")]
    rules: Annotated[list[RuleId], Meta(min_length=1)]
    borrowers: list[str] = []
    loans: list[str] = []
    reason: Annotated[str, Meta(min_length=10)]
    owner: str
    created: date
    expires: date  # required: a suppression nobody renews lapses


class TracingSpec(Strict, kw_only=True, frozen=True):
    """How far fund tracing follows loan money (engine.tracing.Bounds)."""

    max_hops: Annotated[int, Meta(ge=0, le=6)] = 3  # intermediary parties
    max_age: Duration = "90d"  # after disbursement
    min_amount: Annotated[float, Meta(ge=0)] = 10_000  # loan money in one payment worth following
    max_parts: Annotated[int, Meta(ge=1, le=64)] = 8  # attributions per account


class PackSpec(Strict, kw_only=True):
    id: str
    version: str
    language: Literal[1] = 1
    description: str | None = None
    timezone: str = "UTC"  # the bank's time zone (an IANA name such as Asia/Shanghai): its calendar days
    tracing: TracingSpec = TracingSpec()
    lists: list[str] = []  # list files, relative to pack.yaml
    test_context: str | None = None  # reference records shared by the rules' embedded tests
    filters: str | None = None  # directory of suppressions, relative to pack.yaml


class ListSpec(Strict, kw_only=True):
    description: str | None = None
    items: list[str | int | float]


def duration(text: str) -> timedelta:
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[text[-1]]
    return timedelta(**{unit: int(text[:-1])})
