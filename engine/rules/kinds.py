"""What each rule kind does with an event once its selections matched.

Every kind turns events into Hits (a finding, not yet an alert). Stateful
kinds keep their state in the dict the detector hands them: one per rule per
shard, keyed by the rule's entity key, so it is snapshotted with the shard
for recovery.

- match: every event that matches is a hit.
- aggregate: per-key event-time windows (sliding or tumbling) of count, sum,
  distinct count, max and share of the principal, tested with `having`.
  A key fires once per window length.
- absence: an expected event did not follow a start event in time; checked
  when the worker's event-time watermark passes the deadline.
- baseline: a value against the entity's own rolling or same-weekday history;
  points that break the baseline are kept out of it (protect on anomaly).
- graph: a bounded search in the guarantee graph or the identity index for
  each new relation or party (circles, chains, over-exposure, hidden related
  parties), or, for contagion, from each alert of a risky party.

State has a lifetime: `expire` drops what a key keeps once the watermark has
moved past the longest time that can still use it (a window's length, an
absence's `within`, the activity memory, a quiet baseline's memory), and
`entries` counts what is kept, for the state metric.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from msgspec import Struct

from engine.context import STREAM_OF
from engine.tracing import route_lines

Getter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]
EVIDENCE_EVENTS = 50  # event ids kept on one alert
ACTIVITY_MEMORY = timedelta(days=60)
_ACTIVITY_HOURS = int(ACTIVITY_MEMORY.total_seconds()) // 3600
BASELINE_MEMORY = timedelta(days=90)  # a baseline whose key was quiet this long starts again


def _hour(ts: datetime) -> int:
    return int(ts.timestamp()) // 3600


@dataclass
class Hit:
    key: str  # entity the finding is about (loan, borrower, site)
    trigger: str  # event (or window start) that identifies the finding
    event_ids: list[str]
    event_time: datetime
    borrower_id: str
    loan_id: str | None
    values: dict[str, Any]
    conditions: list[str]
    summary: str
    path: list[str] = field(default_factory=list)  # a money route or a graph path
    score: int | None = None  # None: the rule's risk_score (contagion decays it)
    events: list = field(default_factory=list)  # the triggering events (views, route hops, records)
    model_score: float | None = None  # a model's normalised score, 0..1 (model rules)
    models: dict[str, str] = field(default_factory=dict)  # model name -> version


class BaselineMeasures(Struct, frozen=True):
    value: float
    baseline: float
    ratio: float
    deviation: float


@dataclass
class Kind:
    """Match: the event is the finding."""

    # kinds whose findings depend on the order of events see them in event-time order: those that
    # keep per-key state, and the graph checks, which one finding may raise from several records
    ordered = False

    def on_event(self, rule: Any, view: Any, state: dict, ref: Any) -> list[Hit]:
        if not rule.in_scope(view):
            return []
        m = rule.explain(view)
        loan_id = view.loan.id if view.loan is not None else None
        trace = getattr(view, "trace", None)
        path = route_lines(trace) if trace is not None and trace.hops else []
        event_ids = [h.tx_id for h in trace.route] if path else [view.id]
        events = [*trace.route[:-1], view] if path else [view]
        return [Hit(loan_id or view.borrower.id, view.id, event_ids, view.ts, view.borrower.id, loan_id,
                    m.values, m.conditions, m.summary, path, events=events)]

    def on_watermark(self, rule: Any, watermark: datetime, state: dict) -> list[Hit]:
        return []

    def expire(self, watermark: datetime, state: dict) -> None:
        """Forget the keys nothing at or after `watermark` can still use."""

    def entries(self, state: dict) -> int:
        return len(state)


@dataclass
class MeasureSpec:
    name: str
    fn: str  # count | sum | distinct | max | share | ratio
    get: Getter | None
    where: Predicate
    of: tuple[str, str] | None = None  # ratio: numerator and denominator measures


@dataclass
class AggregateKind(Kind):
    ordered = True
    key: Getter
    size: timedelta
    tumbling: bool
    measures: list[MeasureSpec]
    having: Predicate
    measure_type: type
    tz: tzinfo = timezone.utc  # the bank's: tumbling windows start at its midnight

    def on_event(self, rule: Any, view: Any, state: dict, ref: Any) -> list[Hit]:
        if not rule.in_scope(view):
            return []
        key = self.key(view)
        if key is None:
            return []
        slot = state.setdefault(str(key), {"rows": [], "until": None})
        rows: list = slot["rows"]
        principal = view.loan.principal if getattr(view, "loan", None) is not None else None
        inputs = tuple(self._input(ms, view, principal) for ms in self.measures)
        bisect.insort(rows, (view.ts, view.id, inputs, view), key=lambda r: r[0])
        start = self._window_start(view.ts)
        while rows and (rows[0][0] < start if self.tumbling else rows[0][0] <= start):
            rows.pop(0)
        values = self._compute(rows)
        until = slot["until"]
        if not self.having(self.measure_type(**values)) or (until is not None and view.ts < until):
            return []
        slot["until"] = start + self.size if self.tumbling else view.ts + self.size
        m = rule.explain(view)
        loan_id = view.loan.id if getattr(view, "loan", None) is not None else None
        ids = [r[1] for r in rows]
        summary = rule.summary(view, values)
        return [Hit(str(key), ids[0], ids[-EVIDENCE_EVENTS:], view.ts, view.borrower.id, loan_id,
                    {**m.values, **{k: round(v, 4) for k, v in values.items()}}, m.conditions, summary,
                    events=[r[3] for r in rows[-EVIDENCE_EVENTS:]])]

    def expire(self, watermark: datetime, state: dict) -> None:
        # a window holds rows for `size`; a key that fired stays quiet until `until`
        horizon = watermark - self.size
        for key in [k for k, slot in state.items()
                    if (not slot["rows"] or slot["rows"][-1][0] < horizon)
                    and (slot["until"] is None or slot["until"] < watermark)]:
            del state[key]

    def _window_start(self, ts: datetime) -> datetime:
        if not self.tumbling:
            return ts - self.size
        local = ts.astimezone(self.tz)
        since = local.replace(tzinfo=None) - datetime(1970, 1, 1)  # local wall time since the epoch
        return ts - since % self.size

    @staticmethod
    def _input(ms: MeasureSpec, view: Any, principal: float | None) -> Any:
        if ms.fn == "ratio" or not ms.where(view):
            return None
        if ms.fn == "count":
            return 1
        value = ms.get(view)
        if ms.fn == "share":
            return None if value is None or not principal else value / principal
        return value

    def _compute(self, rows: list) -> dict[str, float]:
        out = {}
        for i, ms in enumerate(self.measures):
            xs = [r[2][i] for r in rows if r[2][i] is not None]
            if ms.fn == "distinct":
                out[ms.name] = float(len(set(xs)))
            elif ms.fn == "max":
                out[ms.name] = float(max(xs, default=0.0))
            elif ms.fn != "ratio":  # count, sum, share
                out[ms.name] = float(sum(xs))
        for ms in self.measures:
            if ms.fn == "ratio":
                num, den = out[ms.of[0]], out[ms.of[1]]
                out[ms.name] = num / den if den else 0.0
        return out


@dataclass
class Activity:
    """What counts as a sign of life for an absence rule, and whose."""

    stream: str
    where: Predicate
    key: Getter  # on the activity event
    start_key: Getter  # the same field on the rule's start event
    min_hours: int  # distinct active hours needed between the start and the deadline


@dataclass
class AbsenceKind(Kind):
    ordered = True
    key: Getter
    start: Predicate
    expect: Predicate
    within: timedelta
    recurring: bool
    activity: Activity | None

    def on_event(self, rule: Any, view: Any, state: dict, ref: Any) -> list[Hit]:
        stream = STREAM_OF[type(view)]
        act = self.activity
        if act is not None and stream == act.stream and act.where(view) and (whose := act.key(view)) is not None:
            # the hours the entity was active, for ACTIVITY_MEMORY: long enough for a
            # deadline to be checked even when this stream runs weeks ahead of the other
            # (hour numbers in an array: a list of datetimes was 83% of all detection state)
            hour = _hour(view.ts)
            active = state.setdefault("active", {})
            seen = active.get(str(whose))
            if seen is None:
                seen = active[str(whose)] = array("i")
            if hour not in seen[-3:]:
                bisect.insort(seen, hour)
            if seen[0] < seen[-1] - _ACTIVITY_HOURS:
                del seen[:bisect.bisect_left(seen, seen[-1] - _ACTIVITY_HOURS)]
        if stream != rule.stream or not rule.in_scope(view):
            return []
        key = self.key(view)
        if key is None:
            return []
        timers = state.setdefault("timers", {})
        key = str(key)
        expected, started = self.expect(view), self.start(view)
        timer = timers.get(key)
        if timer is not None and (expected or started) and view.ts > timer["deadline"]:
            # the deadline passed before this event came: the absence happened, even if the
            # watermark (held back by a slower stream) has not caught up with it yet
            state.setdefault("due", []).append((key, timers.pop(key)))
            timer = None
        met = state.setdefault("met", {})  # key -> latest expected event, for starts that arrive late
        if expected:
            timers.pop(key, None)  # met; a recurring rule's clock restarts only on a start event
            if key not in met or view.ts > met[key]:
                met[key] = view.ts
        if started and not expected and key in met and view.ts <= met[key] <= view.ts + self.within:
            return []  # already met: the expected event came first (another partition, read ahead)
        if started and (self.recurring or key not in timers):
            timers[key] = self._timer(rule, view)
        return []

    def _timer(self, rule: Any, view: Any) -> dict:
        loan = getattr(view, "loan", None)
        whose = self.activity.start_key(view) if self.activity is not None else None
        return {
            "deadline": view.ts + self.within, "start_id": view.id, "start_ts": view.ts,
            "borrower_id": view.borrower.id, "loan_id": loan.id if loan is not None else None,
            "summary": rule.summary(view, {}), "active_key": None if whose is None else str(whose),
            "start": view,  # the last event before the silence, for the alert
        }

    def on_watermark(self, rule: Any, watermark: datetime, state: dict) -> list[Hit]:
        timers = state.get("timers", {})
        waiting = state.get("due", [])
        due = [(k, t) for k, t in waiting if t["deadline"] < watermark]
        if due:
            state["due"] = [(k, t) for k, t in waiting if t["deadline"] >= watermark]
        due += [(k, timers.pop(k)) for k in [k for k, t in timers.items() if t["deadline"] < watermark]]
        hits = []
        for key, t in due:
            if self.activity is not None:
                seen = state.get("active", {}).get(t["active_key"], ())
                active = bisect.bisect_right(seen, _hour(t["deadline"])) - bisect.bisect_right(seen, _hour(t["start_ts"]))
                if active < self.activity.min_hours:
                    continue  # quiet everywhere meanwhile (a shutdown, an outage): real inactivity, not this signal
            hits.append(Hit(key, t["start_id"], [t["start_id"]], t["deadline"], t["borrower_id"], t["loan_id"],
                            {"last_seen": t["start_ts"].isoformat(), "deadline": t["deadline"].isoformat()},
                            ["start", "no expected event"], t["summary"], events=[t["start"]]))
        return hits

    def expire(self, watermark: datetime, state: dict) -> None:
        # timers end by firing or being met; `met` only serves starts up to `within` older
        met = state.get("met", {})
        for key in [k for k, ts in met.items() if ts < watermark - self.within]:
            del met[key]
        active, oldest = state.get("active", {}), _hour(watermark - ACTIVITY_MEMORY - self.within)
        for borrower in [b for b, seen in active.items() if seen[-1] < oldest]:
            del active[borrower]

    def entries(self, state: dict) -> int:
        return sum(len(state.get(part, ())) for part in ("timers", "met", "active", "due"))


@dataclass
class BaselineKind(Kind):
    ordered = True
    keys: list[Getter]
    value: Getter
    same_weekday: bool
    history: int
    min_history: int
    having: Predicate
    sustained: int
    tz: tzinfo = timezone.utc  # the bank's: a reading's weekday is its local weekday

    def on_event(self, rule: Any, view: Any, state: dict, ref: Any) -> list[Hit]:
        value = self.value(view) if rule.in_scope(view) else None
        if value is None:
            return []
        key = "/".join(str(g(view)) for g in self.keys)
        slot = state.setdefault(key, {"history": {}, "run": [], "fired": False, "last": view.ts})
        slot["last"] = max(slot["last"], view.ts)
        bucket = str(view.ts.astimezone(self.tz).weekday()) if self.same_weekday else "all"
        past: list = slot["history"].setdefault(bucket, [])
        if len(past) < self.min_history:
            past.append(value)
            return []
        mean = sum(past) / len(past)
        spread = (sum((x - mean) ** 2 for x in past) / len(past)) ** 0.5  # statistics.pstdev is exact, and slow
        measures = BaselineMeasures(
            value=float(value), baseline=mean, ratio=value / mean if mean else 1.0,
            deviation=(value - mean) / spread if spread else 0.0,
        )
        if not self.having(measures):
            slot["run"], slot["fired"] = [], False
            past.append(value)
            del past[: -self.history]
            return []
        slot["run"].append(view)  # protect on anomaly: an outlier never enters the baseline
        if slot["fired"] or len(slot["run"]) < self.sustained:
            return []
        slot["fired"] = True
        m = rule.explain(view)
        loan = getattr(view, "loan", None)
        values = {**m.values, "baseline": round(mean, 2), "ratio": round(measures.ratio, 4),
                  "deviation": round(measures.deviation, 2), "points": len(slot["run"])}
        summary = rule.summary(view, {"baseline": mean, "ratio": measures.ratio, "deviation": measures.deviation})
        run = slot["run"][-EVIDENCE_EVENTS:]
        return [Hit(key, slot["run"][0].id, [v.id for v in run], view.ts, view.borrower.id,
                    loan.id if loan is not None else None, values, m.conditions, summary, events=run)]

    def expire(self, watermark: datetime, state: dict) -> None:
        for key in [k for k, slot in state.items() if slot["last"] < watermark - BASELINE_MEMORY]:
            del state[key]


@dataclass
class GraphKind(Kind):
    ordered = True
    check: str
    max_len: int
    min_len: int
    max_fanout: int
    exposure_ratio: float
    depth: int
    decay: float
    max_holders: int

    def on_event(self, rule: Any, view: Any, state: dict, ref: Any) -> list[Hit]:
        if not rule.in_scope(view):
            return []
        graph = ref.guarantees
        if self.check == "hidden_related":
            return [self._hit(rule, view, sorted((view.id, other)), [view.id, other],
                              [f"{view.id} and {other} share {what} {value!r} but are not declared related"],
                              {"shared": what}, events=[view, ref.parties[other]])
                    for other, what, value in ref.hidden_relations(view.id, self.max_holders, view.ts.date())]
        if view.kind != "guarantee":
            return []
        src, dst, day = view.src.id, view.dst.id, view.ts.date()  # the graph as of the guarantee's first day
        if self.check == "guarantor_exposure":
            given, assets = graph.exposure(src, day), view.src.net_assets
            if not assets or given / assets <= self.exposure_ratio:
                return []
            values = {"exposure": round(given, 2), "net_assets": assets, "ratio": round(given / assets, 2)}
            lines = [f"{src} guarantees {other} for {d['amount']:.2f} ({', '.join(d['relations'])})"
                     for other, d in sorted(graph.gives(src, day).items())]
            ids = graph.relations_on([src, dst], day)
            return [self._hit(rule, view, [src], ids, lines, values, src, _records(ref, ids))]
        if self.check == "guarantee_circle":
            path = graph.cycle_through(src, dst, self.max_len, self.max_fanout, as_of=day)
            if path is None:
                return []
            ids = graph.relations_on(path, day)
            return [self._hit(rule, view, sorted(set(path)), ids, _guarantee_lines(graph, path, day),
                              {"size": len(path) - 1}, events=_records(ref, ids))]
        if graph.cycle_through(src, dst, self.max_len, self.max_fanout, as_of=day) is not None:
            return []  # a circle read round is not a chain (the circle check reports it)
        path = graph.chain_through(src, dst, self.max_len, self.max_fanout, as_of=day)
        if len(path) - 1 < self.min_len:
            return []
        ids = graph.relations_on(path, day)
        return [self._hit(rule, view, path, ids, _guarantee_lines(graph, path, day), {"length": len(path) - 1},
                          events=_records(ref, ids))]

    def _hit(self, rule: Any, view: Any, members: list[str], event_ids: list[str], path: list[str],
             values: dict, entity: str | None = None, events: list | None = None) -> Hit:
        """One finding per circle, chain or pair however many records reveal it: the key is its members."""
        key = "/".join(sorted(set(members)))
        m = rule.explain(view)
        summary = rule.summary(view, {**values, "members": ", ".join(members)})
        return Hit(key, key, event_ids, view.ts, entity or min(members), None, {**m.values, **values},
                   m.conditions, summary, path, events=events if events is not None else [view])

    def spread(self, rule: Any, alert: Any, ref: Any) -> list[Hit]:
        """Contagion: linked findings for the guarantors and guaranteed parties of a risky party."""
        if not rule.in_scope(alert):
            return []
        hits, day = [], alert.event_time.date()
        for path in ref.guarantees.contagion(alert.borrower_id, self.depth, self.max_fanout, as_of=day):
            party = path[0] if path[-1] == alert.borrower_id else path[-1]
            steps = len(path) - 1
            score = round(alert.score * self.decay ** steps)
            values = {"source_alert": alert.id, "source_rule": alert.rule_id, "steps": steps}
            summary = rule.summary(alert, {"party": party, "steps": steps, "linked_score": score})
            ids = ref.guarantees.relations_on(path, day)
            hits.append(Hit(party, alert.id, ids, alert.event_time, party, alert.loan_id, values, [alert.rule_id],
                            summary, _guarantee_lines(ref.guarantees, path, day), score,
                            events=_records(ref, ids)))
        return hits


def _records(ref: Any, relation_ids: list[str]) -> list:
    """The relation records behind a graph finding, for its evidence."""
    return [ref.relations[i] for i in relation_ids if i in ref.relations]


def _guarantee_lines(graph: Any, path: list[str], day: Any = None) -> list[str]:
    lines = []
    for a, b in zip(path, path[1:]):
        edge = graph.gives(a, day).get(b, {})
        lines.append(f"{a} guarantees {b} for {edge.get('amount') or 0:.2f} ({', '.join(edge.get('relations', []))})")
    return lines
