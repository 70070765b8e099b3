"""Stage 3: evaluate the live rule pack on batches of enriched events.

Keys. Every rule's state lives where its key is routed (`Partition` of the
compiled rule: a window's or an absence's key, a baseline's first key; the
borrower for rules without state). An event goes once to the shard of every
distinct routing field some rule of its stream needs (a payment: its borrower,
its loan; a reading: its site, its gateway), so a rule sees every event of its
key in one place. Keys are bucketed into a fixed number of shards, whatever
the number of workers, so one worker and several give the same alerts; a
shard's events travel as one batch, not one by one.

Time. Event time only. A match rule looks at each event as it comes. A rule
whose findings depend on the order of events (windows, absences, baselines,
graph checks, a match that merges repeats) sees its events in event-time
order: the shard holds them until the
watermark of their stream has passed them (engine.timing), then feeds them in
order of (time, event id), so the same events in any arrival order within the
allowed lateness give the same alerts. Deadlines are checked against the
watermark of the streams a rule reads. A stream whose partitions have all
gone quiet (a replay's files at their end) releases everything it read.

What a shard keeps, each with its lifetime: per rule (by id and version) that
rule kind's per-key state, expired by the kind; `_pending` the events waiting
for their watermark, at most `lateness` plus the lag of the slowest partition;
`_suppress` (rule, key) -> the first alert's id until its suppression ends;
`_progress` how far every input partition has got. Once a day of event time
the watermark sweeps it: keys no window can use any more, ended suppressions
and the state of rules no longer in the pack go, and `_entries` counts what is
left, per rule (the state metric).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from engine.alerts import alert_id, make_alert
from engine.batch import MAX_PAYLOAD, Batch
from engine.context import STREAM_OF, TxView, View
from engine.records import Alert, DeadLetter
from engine.reference import Reference
from engine.rules.compiler import CompiledRule
from engine.rules.kinds import Hit
from engine.rules.pack import Pack
from engine.timing import Progress, Timing

SHARDS = 64
SWEEP_EVERY = timedelta(days=1)

Routes = dict[str, list[tuple[str, Callable[[Any], Any]]]]  # stream -> (routing field, its getter)


def routes_of(pack: Pack) -> Routes:
    """The distinct routing fields the pack's rules need on each stream."""
    out: Routes = {}
    for rule in pack.rules:
        for stream, get in rule.partition.get.items():
            fields = out.setdefault(stream, [])
            if all(f != rule.partition.field for f, _ in fields):
                fields.append((rule.partition.field, get))
    return out


def split_by_shard(batch: Batch[View], routes: Routes, shards: int = SHARDS) -> list[tuple[str, Batch]]:
    """A sub-batch of (routing field, event) for every shard, even an empty one: each
    shard must hear how far every input has got, or a partition whose events all went
    to other shards would not hold its watermark back. Dead letters and the input
    count ride on the first."""
    groups = [batch.passing_on() for _ in range(shards)]
    for view in batch.items:
        for field, get in routes.get(STREAM_OF[type(view)], ()):
            value = get(view)
            if value is not None:  # stable, unlike hash()
                groups[zlib.crc32(f"{field}={value}".encode()) % shards].items.append((field, view))
    groups[0].dead, groups[0].seen = batch.dead, batch.seen
    return [(str(i), group) for i, group in enumerate(groups)
            if group.items or group.progress or group.idle or group.rosters or i == 0]


class Detector:
    """Runs whatever pack `current()` returns, so a reload swaps rules between batches."""

    def __init__(self, current: Callable[[], Pack], clock: Callable[[], datetime], ref: Reference,
                 timing: Timing = Timing()):
        self.current = current
        self.clock = clock
        self.ref = ref
        self.timing = timing
        self._plan_of: tuple[Pack, dict, Routes] | None = None
        self._seq = itertools.count()  # breaks ties between copies of one event (a replayed duplicate)

    def _plan(self, pack: Pack) -> dict:
        """(stream, routing field) -> (rules that look now, rules that wait for order); cached per pack."""
        if self._plan_of is None or self._plan_of[0] is not pack:
            plan: dict[tuple[str, str], tuple[list, list]] = {}
            for rule in pack.rules:
                for stream in rule.observes - {"alerts"}:
                    now, later = plan.setdefault((stream, rule.partition.field), ([], []))
                    (later if rule.ordered else now).append(rule)
            self._plan_of = (pack, plan, routes_of(pack))
        return self._plan_of[1]

    def routes(self) -> Routes:
        """Where the live pack wants each stream's events (for split_by_shard)."""
        pack = self.current()
        self._plan(pack)
        return self._plan_of[2]

    def run(self, batch: Batch, state: dict[str, Any]) -> Batch[Alert]:
        """Evaluate one shard's batch; `state` is that shard's state, kept by rule and version."""
        pack = self.current()
        plan = self._plan(pack)
        out: Batch[Alert] = Batch(dead=batch.dead, seen=batch.seen)
        now = self.clock()
        hits: list[tuple[CompiledRule, Hit]] = []
        own = {rule: state.setdefault(rule.state_key, {}) for rule in pack.rules}
        pending: dict[str, list] = state.setdefault("_pending", {})  # stream -> heap of events waiting
        for field, view in batch.items:
            stream = STREAM_OF[type(view)]
            looking, waiting = plan.get((stream, field), ((), ()))
            for rule in looking:
                hits += self._evaluate(rule, view, own, out)
            if waiting:
                heapq.heappush(pending.setdefault(stream, []), (view.ts, view.id, _tie(view), field, next(self._seq), view))
        progress: Progress = state.setdefault("_progress", Progress())
        progress.hear(batch.progress, batch.idle, batch.rosters)
        marks = {stream: progress.watermark(stream, self.timing) for stream in {w[0] for w in progress.newest}}
        for stream, heap in pending.items():
            mark = marks.get(stream)
            while heap and mark is not None and heap[0][0] <= mark:
                _, _, _, field, _, view = heapq.heappop(heap)
                for rule in plan.get((stream, field), ((), ()))[1]:
                    hits += self._evaluate(rule, view, own, out)
        for rule in pack.rules:
            if rule.ordered:
                rule_marks = [marks.get(s) for s in rule.observes]
                if rule_marks and None not in rule_marks:
                    hits += [(rule, hit) for hit in rule.kind.on_watermark(rule, min(rule_marks), own[rule])]
        known = [m for m in marks.values() if m is not None]
        if known:
            _sweep(pack, min(known), state)
        alerts = self._alerts(pack, hits, state, now)
        spreading = [rule for rule in pack.rules if "alerts" in rule.observes]
        if spreading and alerts:
            linked = [(rule, hit) for rule in spreading for alert in alerts
                      for hit in rule.kind.spread(rule, alert, self.ref)]
            alerts += self._alerts(pack, linked, state, now)  # contagion: linked alerts, one step, no echo
        out.items = alerts
        return out

    def _evaluate(self, rule: CompiledRule, view: View, own: dict, out: Batch) -> list[tuple[CompiledRule, Hit]]:
        try:
            return [(rule, hit) for hit in rule.kind.on_event(rule, view, own[rule], self.ref)]
        except Exception as e:  # noqa: BLE001 - a rule's bug must not stop the flow or lose the event
            out.dead.append(failed(view, f"error: {type(e).__name__} in rule {rule.id}: {e}"))
            return []

    def _alerts(self, pack: Pack, hits: list[tuple[CompiledRule, Hit]], state: dict, now: datetime) -> list[Alert]:
        alerts, ids = [], set()
        for rule, hit in hits:
            if pack.suppressed(rule.id, hit.borrower_id, hit.loan_id, hit.event_time):
                continue  # an analyst accepted these alerts until the suppression expires
            alert = make_alert(rule, pack, hit, now, self.ref, _merged_id(rule, hit, state))
            if alert.id not in ids:  # one circle seen from each of its guarantees is one alert
                ids.add(alert.id)
                alerts.append(alert)
        return alerts


def _tie(view: View) -> tuple:
    """Orders the views one payment gives (its own, and the onward ones of traced loans)."""
    return (view.direction, view.borrower.id) if type(view) is TxView else ("", view.borrower.id)


def _sweep(pack: Pack, watermark: datetime, state: dict) -> None:
    """Expire what no window can still use; at most once per SWEEP_EVERY of event time."""
    swept = state.get("_swept")
    if swept is not None and watermark - swept < SWEEP_EVERY:
        return
    state["_swept"] = watermark
    live = {rule.state_key: rule for rule in pack.rules}
    for key in [k for k in state if not k.startswith("_") and k not in live]:
        del state[key]  # a rule removed from the pack or replaced by a new version
    slots = state.get("_suppress", {})
    for slot in [k for k, (_, until) in slots.items() if until < watermark]:
        del slots[slot]
    entries = {rule.id: 0 for rule in pack.rules}
    for rule_id, _ in slots:
        entries[rule_id] = entries.get(rule_id, 0) + 1
    for key, rule in live.items():
        rule.kind.expire(watermark, state[key])
        entries[rule.id] += rule.kind.entries(state[key])
    state["_entries"] = entries


def failed(view: View, reason: str) -> DeadLetter:
    """A dead letter for an event a rule could not evaluate, kept whole for a replay."""
    stream = STREAM_OF[type(view)]
    return DeadLetter(
        id=hashlib.sha256(f"{stream}\x1fdetect\x1f{view.id}\x1f{reason}".encode()).hexdigest()[:24],
        stream=stream, source="detect", position=view.id, reason=reason,
        payload=msgspec.json.encode(view).decode()[:MAX_PAYLOAD],
    )


def _merged_id(rule: CompiledRule, hit: Hit, state: dict) -> str | None:
    """Within `suppress_for`, a repeat for the same rule and key takes the first alert's id."""
    window = rule.suppress_for
    if window is None:
        return None
    slots = state.setdefault("_suppress", {})
    first = slots.get((rule.id, hit.key))
    if first is not None and hit.event_time < first[1]:
        return first[0]
    own = alert_id(rule.id, hit.key, hit.trigger)
    slots[(rule.id, hit.key)] = (own, hit.event_time + window)
    return own
