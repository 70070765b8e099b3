"""Compile one validated rule file into fast predicates over the rule's view.

Stages, as in pySigma: the source is parsed with positions (source.py),
validated against the rule types (spec.py), then every selection entry is
resolved against the record schema and turned into a closure.  All problems
of a file are collected, each at `file:line:col`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

import msgspec

from engine.context import PartyView, RelationView, SensorView, TxView
from engine.records import Alert
from engine.rules import condition as cond
from engine.rules.errors import Problem, RuleError
from engine.rules.fields import Field, UnknownField, resolve
from engine.rules.kinds import (
    AbsenceKind,
    Activity,
    AggregateKind,
    BaselineKind,
    BaselineMeasures,
    GraphKind,
    Kind,
    MeasureSpec,
)
from engine.rules.predicates import (
    MODIFIERS,
    Predicate,
    check,
    combine,
    conjunction,
    predicate,
)
from engine.models.compile import compile_model
from engine.rules.source import Located
from engine.rules.spec import RuleSpec, duration

VIEWS: dict[str, type] = {
    "transactions": TxView, "sensors": SensorView, "relations": RelationView, "parties": PartyView, "alerts": Alert,
}
GRAPH_STREAM = {
    "guarantee_circle": "relations", "guarantee_chain": "relations", "guarantor_exposure": "relations",
    "hidden_related": "parties", "contagion": "alerts",
}
GRAPH_VALUES = {
    "guarantee_circle": {"size", "members"}, "guarantee_chain": {"length", "members"},
    "guarantor_exposure": {"exposure", "net_assets", "ratio", "members"}, "hidden_related": {"shared", "members"},
    "contagion": {"party", "steps", "linked_score"},
}



@dataclass(frozen=True)
class Partition:
    """The field a rule's events are routed by, and its getter on each stream's events."""

    field: str
    get: dict[str, Callable[[Any], Any]]


@dataclass(frozen=True)
class Match:
    """A rule held on one event: what held and the values it read (for evidence)."""

    conditions: list[str]
    values: dict[str, Any]
    summary: str


@dataclass(eq=False)  # identity: rules key per-batch lookups
class CompiledRule:
    spec: RuleSpec
    file: str
    applies: Predicate
    selections: dict[str, Predicate]
    condition: Predicate
    exceptions: list[tuple[str, Predicate]]
    fields: list[Field]
    summary: Callable[[Any, dict], str]  # (view, kind-specific values such as measures)
    kind: Kind
    patterns: tuple[str, ...] = field(default=())
    version_at: tuple[int, int] = (1, 1)  # line, column of `version:` for lock problems
    lists: dict[str, list] = field(default_factory=dict)  # the shared lists it reads, by name
    partition: Partition = Partition("borrower.id", {})

    @property
    def ordered(self) -> bool:
        """Whether the rule's findings depend on the order of events, so it must see them in event-time order."""
        return self.kind.ordered or self.spec.output.suppress_for is not None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def stream(self) -> str:
        return self.spec.applies_to.stream

    @property
    def observes(self) -> set[str]:
        """Streams whose events this rule must see (absence rules watch activity elsewhere)."""
        activity = self.spec.absence.require_activity if self.spec.absence else None
        return {self.stream, activity.stream if activity else None} - {None}

    @property
    def suppress_for(self) -> timedelta | None:
        return duration(self.spec.output.suppress_for) if self.spec.output.suppress_for else None

    def in_scope(self, view: Any) -> bool:
        return self.applies(view) and self.condition(view) and not (self.exceptions and self._excepted(view))

    def _excepted(self, view: Any) -> bool:
        return any(pred(view) for _, pred in self.exceptions)

    @property
    def state_key(self) -> str:
        # a new version of a rule starts from empty state: its windows may mean something else
        return f"{self.spec.id}@{self.spec.version}"

    def explain(self, view: Any) -> Match:
        """What held and what was read, for an event in scope that produced a finding."""
        held = [name for name, pred in self.selections.items() if pred(view)]
        values = {f.path: _plain(f.get(view)) for f in self.fields}
        return Match(held, values, self.summary(view, {}))


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.2f}"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return "-" if value is None else str(value)


# --- msgspec errors to positions -------------------------------------------

_AT = re.compile(r" - at `\$(.*)`$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")


def schema_problem(loc: Located, err: msgspec.ValidationError, rule_id: str | None = None) -> Problem:
    text = str(err)
    m = _AT.search(text)
    path: tuple = ()
    if m:
        path = tuple(int(i) if i else k for k, i in _SEGMENT.findall(m.group(1)))
        text = text[: m.start()]
    unknown = _UNKNOWN.match(text)
    if unknown:
        return loc.key_problem((*path, unknown.group(1)), f"unknown key '{unknown.group(1)}'", rule_id)
    return loc.problem(path, f"{text[0].lower()}{text[1:]} (at '{'.'.join(map(str, path)) or 'top level'}')", rule_id)


# --- compile ----------------------------------------------------------------


def compile_rule(loc: Located, lists: dict[str, list], tz: tzinfo = timezone.utc) -> CompiledRule:
    """`tz` is the bank's time zone (the pack's `timezone`): calendar days are its days."""
    rule_id = loc.data.get("id") if isinstance(loc.data, dict) else None
    try:
        spec = msgspec.convert(loc.data, RuleSpec)
    except msgspec.ValidationError as e:
        raise RuleError([schema_problem(loc, e, rule_id)]) from None
    c = _Compiler(loc, lists, spec, VIEWS[spec.applies_to.stream], tz)
    rule = c.build()
    if c.problems:
        raise RuleError(c.problems)
    return rule


class _Compiler:
    def __init__(self, loc: Located, lists: dict[str, list], spec: RuleSpec, view: type, tz: tzinfo):
        self.loc, self.lists, self.spec, self.view, self.tz = loc, lists, spec, view, tz
        self.problems: list[Problem] = []
        self.read: dict[str, Field] = {}
        self.lists_read: dict[str, list] = {}  # the lists the rule reads, for its logic hash

    def fail(self, path: tuple, message: str, key: bool = False) -> None:
        make = self.loc.key_problem if key else self.loc.problem
        self.problems.append(make(path, message, self.spec.id))

    def build(self) -> CompiledRule:
        spec = self.spec
        applies = self.selection(("applies_to", "where"), spec.applies_to.where)
        detection = dict(spec.detection)
        text = detection.pop("condition", None)
        selections = {}
        for name, body in detection.items():
            if not isinstance(body, dict) or not body:
                self.fail(("detection", name), f"selection '{name}' must be a mapping of field tests")
                continue
            selections[name] = self.selection(("detection", name), body)
        if isinstance(text, str):
            condition = self.condition(text, selections)
        elif selections:
            self.fail(("detection",), "detection needs a 'condition' over its selections")
            condition = lambda v: False  # noqa: E731 - never used: the rule fails to load
        else:
            condition = lambda v: True  # noqa: E731 - no selections: every event in scope
        exceptions = [
            (ex.name, self.selection(("exceptions", i, "where"), ex.where)) for i, ex in enumerate(spec.exceptions)
        ]
        kind, extras = self.kind()
        summary = self.template(spec.output.summary, extras)
        patterns = tuple(t.removeprefix("pattern.") for t in spec.tags if t.startswith("pattern."))
        fires = any(t.expect.alerts > 0 for t in spec.tests)
        quiet = any(t.expect.alerts == 0 for t in spec.tests)
        if not (fires and quiet):
            missing = " and ".join(w for w, ok in (("one that fires", fires), ("one that does not", quiet)) if not ok)
            self.fail(("tests",) if spec.tests else ("id",), f"rule needs embedded tests: {missing}")
        return CompiledRule(
            spec, self.loc.file, applies, selections, condition, exceptions,
            list(self.read.values()), summary, kind, patterns, self.loc.where(("version",)), self.lists_read,
            self.partition(),
        )

    def partition(self) -> Partition:
        """Where the rule's state lives: the field every event it keeps state on is routed by.

        A stateful rule is routed by its own key (an absence with activity by the
        activity's key, so the activity and the timers it proves meet), any other
        rule by the borrower. The field must be a plain value on every stream the
        rule reads, or the runtime could not put all of a key's events in one place."""
        spec = self.spec
        where: tuple = ()
        if spec.aggregate is not None and spec.kind == "aggregate":
            field_path, where = spec.aggregate.key, ("aggregate", "key")
        elif spec.absence is not None and spec.kind == "absence":
            act = spec.absence.require_activity
            field_path, where = (act.key, ("absence", "require_activity", "key")) if act else \
                (spec.absence.key, ("absence", "key"))
        elif spec.baseline is not None and spec.kind == "baseline" and spec.baseline.key:
            field_path, where = spec.baseline.key[0], ("baseline", "key", 0)
        elif spec.model is not None and spec.kind == "model":
            field_path, where = spec.model.key[0], ("model", "key", 0)
        else:
            field_path = "borrower.id"
        getters = {}
        streams = {spec.applies_to.stream}
        if spec.absence is not None and spec.absence.require_activity is not None:
            streams.add(spec.absence.require_activity.stream)
        for stream in sorted(streams - {"alerts"}):
            view = VIEWS[stream]
            try:
                f = resolve(view, field_path)
            except UnknownField:
                if where:
                    self.fail(where, f"key '{field_path}' cannot be routed: {view.__name__} events have no such field")
                continue
            if f.kind not in ("str", "number", "bool"):
                self.fail(where or ("applies_to",), f"key '{field_path}' cannot be routed: it is a {f.kind}, "
                                                    f"not one value (key on one of its fields)")
                continue
            getters[stream] = f.get
        return Partition(field_path, getters)

    def kind(self) -> tuple[Kind, set[str]]:
        """The kind's evaluator and the extra names its summary may use."""
        spec = self.spec
        sections = {"aggregate": spec.aggregate, "absence": spec.absence, "baseline": spec.baseline, "graph": spec.graph,
                    "model": spec.model}
        for name, section in sections.items():
            if section is not None and name != spec.kind:
                self.fail((name,), f"a '{name}' section needs kind: {name} (this rule is kind: {spec.kind})", key=True)
        if spec.kind != "match" and sections[spec.kind] is None:
            self.fail(("kind",), f"kind {spec.kind} needs an '{spec.kind}' section")
            return Kind(), set()
        if spec.kind == "aggregate":
            return self.aggregate(spec.aggregate), set(spec.aggregate.measures)
        if spec.kind == "absence":
            a = spec.absence
            activity = None
            if a.require_activity is not None:
                act, path = a.require_activity, ("absence", "require_activity")
                view = VIEWS[act.stream]
                key = self.getter((*path, "key"), act.key, view)
                start_key = key if view is self.view else self.getter((*path, "key"), act.key)
                activity = Activity(act.stream, self.selection((*path, "where"), act.where, view), key, start_key,
                                    act.min_hours)
            return AbsenceKind(
                self.getter(("absence", "key"), a.key), self.selection(("absence", "start"), a.start),
                self.selection(("absence", "expect"), a.expect), duration(a.within), a.recurring, activity,
            ), set()
        if spec.kind == "baseline":
            b = spec.baseline
            having = self.selection(("baseline", "having"), b.having, BaselineMeasures)
            if b.min_history > b.history and b.compare == "rolling":
                self.fail(("baseline", "min_history"), "min_history cannot exceed history")
            return BaselineKind(
                [self.getter(("baseline", "key", i), k) for i, k in enumerate(b.key)],
                self.getter(("baseline", "value"), b.value), b.compare == "same_weekday",
                b.history, b.min_history, having, b.sustained, self.tz,
            ), {"baseline", "ratio", "deviation"}
        if spec.kind == "model":
            if spec.applies_to.stream not in ("transactions", "sensors"):
                self.fail(("applies_to", "stream"), "model rules run on transactions or sensors")
                return Kind(), set()
            return compile_model(self, spec.model), {"model_score", "top_features"}
        if spec.kind == "graph":
            g = spec.graph
            wanted = GRAPH_STREAM[g.check]
            if spec.applies_to.stream != wanted:
                self.fail(("applies_to", "stream"), f"check {g.check} runs on the {wanted} stream")
            return GraphKind(g.check, g.max_len, g.min_len, g.max_fanout, g.exposure_ratio, g.depth, g.decay,
                             g.max_holders), \
                GRAPH_VALUES[g.check]
        if spec.applies_to.stream == "alerts":
            self.fail(("applies_to", "stream"), "only graph rules with check: contagion run on alerts")
        return Kind(), set()

    def aggregate(self, agg) -> AggregateKind:
        measures = []
        for name, m in agg.measures.items():
            path = ("aggregate", "measures", name)
            chosen = [(fn, arg) for fn, arg in (
                ("count", m.count or None), ("sum", m.sum), ("distinct", m.distinct), ("max", m.max),
                ("share", m.share), ("ratio", m.ratio),
            ) if arg]
            if len(chosen) != 1:
                self.fail(path, f"measure '{name}' needs exactly one of count, sum, distinct, max, share, ratio", key=True)
                continue
            fn, arg = chosen[0]
            if fn == "ratio":
                others = [n for n in agg.measures if n != name and not agg.measures[n].ratio]
                if len(arg) != 2 or any(a not in others for a in arg):
                    self.fail((*path, "ratio"), f"ratio takes [numerator, denominator] from: {', '.join(others)}")
                    continue
                measures.append(MeasureSpec(name, fn, None, lambda v: True, tuple(arg)))
                continue
            get = None if fn == "count" else self.getter((*path, fn), arg)
            measures.append(MeasureSpec(name, fn, get, self.selection((*path, "where"), m.where)))
        measure_type = msgspec.defstruct("Measures", [(name, float) for name in agg.measures], frozen=True)
        having = self.selection(("aggregate", "having"), agg.having, measure_type)
        window = agg.window
        return AggregateKind(
            self.getter(("aggregate", "key"), agg.key), duration(window.size), window.type == "tumbling",
            measures, having, measure_type, self.tz,
        )

    def getter(self, path: tuple, field_path: str, view: type | None = None) -> Callable[[Any], Any]:
        try:
            f = resolve(view or self.view, field_path)
        except UnknownField as e:
            where = f" on {view.__name__} events" if view not in (None, self.view) else ""
            self.fail(path, f"{e}{where}")
            return lambda v: None
        if view in (None, self.view):
            self.read.setdefault(f.path, f)
        return f.get

    def condition(self, text: str, selections: dict[str, Predicate]) -> Predicate:
        try:
            tree = cond.parse(text, list(selections))
        except cond.ConditionError as e:
            line, col = self.loc.where(("detection", "condition"))
            self.problems.append(Problem(self.loc.file, line, col + e.offset, str(e), self.spec.id))
            return lambda v: False
        unused = sorted(set(selections) - cond.names(tree))
        for name in unused:
            self.fail(("detection", name), f"selection '{name}' is not used in the condition", key=True)
        return combine(tree, selections)

    def selection(self, path: tuple, body: dict[str, Any], view: type | None = None) -> Predicate:
        preds = [self.entry((*path, key), key, value, view or self.view) for key, value in body.items()]
        preds = [p for p in preds if p is not None]
        return conjunction(preds)

    def entry(self, path: tuple, key: str, value: Any, view: type) -> Predicate | None:
        field_path, *mods = key.split("|")
        try:
            f = resolve(view, field_path)
        except UnknownField as e:
            self.fail(path, str(e), key=True)
            return None
        if view is self.view:
            self.read.setdefault(f.path, f)
        if len(mods) > 1:
            self.fail(path, f"'{key}': one modifier per test", key=True)
            return None
        mod = mods[0] if mods else ("in" if isinstance(value, list) else "eq")
        if mod not in MODIFIERS:
            hint = difflib.get_close_matches(mod, MODIFIERS, n=1)
            self.fail(path, f"unknown modifier '{mod}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""), key=True)
            return None
        if value is None:
            self.fail(path, f"'{key}': a test needs a value (to test that a field has none: {field_path}|exists: false)")
            return None
        value = self.deref(path, value)
        if value is None:
            return None  # an unknown list: reported
        error = check(f, mod, value)
        if error:
            self.fail(path, f"'{key}': {error}")
            return None
        return predicate(f, mod, value, self.tz)

    def deref(self, path: tuple, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("$list:"):
            name = value.removeprefix("$list:")
            if name not in self.lists:
                hint = difflib.get_close_matches(name, self.lists, n=1)
                self.fail(path, f"unknown list '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
                return None
            self.lists_read[name] = list(self.lists[name])
            return list(self.lists[name])
        return value

    def template(self, text: str, extras: set[str]) -> Callable[[Any, dict], str]:
        """`{field.path}` from the event, or `{name}` of a kind's value (a measure, the baseline)."""
        parts: list[Callable[[Any, dict], str]] = []
        pos = 0
        for m in re.finditer(r"\{([^{}]+)\}", text):
            literal = text[pos : m.start()]
            parts.append(lambda v, x, s=literal: s)
            name = m.group(1)
            if name in extras:
                parts.append(lambda v, x, n=name: format_value(x.get(n)))
            else:
                try:
                    get = resolve(self.view, name).get
                    parts.append(lambda v, x, g=get: format_value(g(v)))
                except UnknownField as e:
                    self.fail(("output", "summary"), f"summary: {e}")
            pos = m.end()
        tail = text[pos:]
        parts.append(lambda v, x: tail)
        return lambda v, x: "".join(p(v, x) for p in parts)
