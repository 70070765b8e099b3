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


class Feature(Strict, kw_only=True):
    """One input of a model: exactly one of these, each a number (or nothing: the point waits).

    Declared: `field` (a number on the event), `log` (log(1 + a number)). Derived, from the
    entity's own past (engine.models.features): `hour_of_day` or `hour_of_week` in the bank's time zone,
    `novelty` (1 if the entity never met this value of a field before, such as a counterparty),
    `since_previous` (hours since the entity's previous event), `same_weekday` (a number over its
    mean on the same local weekday of recent weeks), `site_ratio` (that ratio over the same ratio
    of the site's other sensors, `others`), `site_silence` (days the site's gateway reported
    while this sensor said nothing)."""

    field: str | None = None
    log: str | None = None
    hour_of_day: bool = False
    hour_of_week: bool = False
    novelty: str | None = None
    since_previous: bool = False
    same_weekday: str | None = None
    site_ratio: str | None = None
    others: list[str] = []  # site_ratio: the site's sensor kinds it is compared with
    site_silence: bool = False
    range: Annotated[list[float], Meta(min_length=2, max_length=2)] | None = None  # [low, high]: mapped onto [0, 1]


class Step(Strict, kw_only=True):
    """A River estimator or transformer by name, with its parameters (scalars only)."""

    name: str
    params: dict[str, Any] = {}


class Model(Strict, kw_only=True):
    name: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{1,40}$")]  # recorded on every alert with its version
    key: Annotated[list[str], Meta(min_length=1)]  # the entity a model is kept for; the first is routed by
    preprocessing: list[Step] = []
    estimator: Step
    features: Annotated[dict[str, Feature], Meta(min_length=1)]
    history: Annotated[int, Meta(ge=1, le=12)] = 3  # weeks of same-weekday history
    warm_up: Annotated[int, Meta(ge=1)] = 20  # points an entity's model learns before it may flag one
    warm_up_for: Duration = "0d"  # and time since the entity's first event (a month: monthly payees are known)
    threshold: Annotated[float, Meta(gt=0, lt=1)] = 0.9  # normalised score at or above which a point is a finding
    sustained: Annotated[int, Meta(ge=1)] = 1  # flagged points in a row before it fires
    forget_after: Duration = "30d"  # an entity quiet this long starts again
    memory: Annotated[int, Meta(ge=1, le=1000)] = 50  # novelty: values remembered per entity


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
    kind: Literal["match", "aggregate", "absence", "baseline", "graph", "model"] = "match"
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
    model: Model | None = None
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


Weight = Annotated[float, Meta(ge=0, le=1)]


class RiskClassWeights(Strict, kw_only=True, frozen=True):
    normal: Weight = 0.0
    special_mention: Weight = 0.15
    substandard: Weight = 0.3
    doubtful: Weight = 0.5
    loss: Weight = 0.7


class ScoringSpec(Strict, kw_only=True, frozen=True):
    """How one alert's score combines what is known (engine.scoring): each signal, 0..1, times
    its weight, joined as independent evidence: 100 x (1 - product of (1 - weight x signal))."""

    rule: Weight = 1.0  # x the rule's risk_score / 100
    model: Weight = 0.5  # x a model's normalised score
    circle: Weight = 0.3  # the borrower is in a guarantee circle on the alert's day
    contagion: Weight = 0.2  # x the share of `reach` parties within two guarantees of the borrower
    reach: Annotated[int, Meta(ge=1)] = 5
    risk_class: RiskClassWeights = RiskClassWeights()  # the loan's five-level class


class PackSpec(Strict, kw_only=True):
    id: str
    version: str
    language: Literal[1] = 1
    description: str | None = None
    timezone: str = "UTC"  # the bank's time zone (an IANA name such as Asia/Shanghai): its calendar days
    tracing: TracingSpec = TracingSpec()
    scoring: ScoringSpec = ScoringSpec()
    lists: list[str] = []  # list files, relative to pack.yaml
    test_context: str | None = None  # reference records shared by the rules' embedded tests
    filters: str | None = None  # directory of suppressions, relative to pack.yaml


class ListSpec(Strict, kw_only=True):
    description: str | None = None
    items: list[str | int | float]


def duration(text: str) -> timedelta:
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[text[-1]]
    return timedelta(**{unit: int(text[:-1])})
