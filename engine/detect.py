"""Stage 3: evaluate the live rule pack on a batch of enriched events.

Detection is keyed by borrower so per-entity state (windows, baselines, absence
timers) lives with one worker. Borrowers are bucketed into a fixed number of
shards and a shard's events travel as one batch: keying single events would
cost the stream engine's per-item overhead on every event.

Time inside detection is event time only. The watermark drives absence
deadlines: per shard, for each stream the latest event time of the shard's own
events, the earliest of those, less the allowed lateness. Per shard, because
the stream engine may hand a worker one shard's events of a whole epoch before
another's; the earliest stream, so that a stream read ahead (a replayed sensor
file read before the payments) does not fire deadlines the slower one could
still meet. A deadline is also proven by the next event of its key arriving
after it (see engine.rules.kinds.AbsenceKind).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from engine.alerts import alert_id, make_alert
from engine.batch import Batch
from engine.context import STREAM_OF, View
from engine.records import ACTIVITY_STREAMS, Alert
from engine.reference import Reference
from engine.rules.compiler import CompiledRule
from engine.rules.kinds import Hit
from engine.rules.pack import Pack

SHARDS = 64
ALLOWED_LATENESS = timedelta(minutes=10)


def shard_of(entity: str, shards: int = SHARDS) -> str:
    return str(zlib.crc32(entity.encode()) % shards)  # stable across processes, unlike hash()


def split_by_shard(batch: Batch[View], shards: int = SHARDS) -> list[tuple[str, Batch[View]]]:
    """One sub-batch per shard; dead letters and the input count ride on the first."""
    groups: dict[str, Batch[View]] = {}
    for item in batch.items:
        key = shard_of(item.borrower.id, shards)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Batch()
        group.items.append(item)
    if not groups:
        return [("0", Batch(dead=batch.dead, seen=batch.seen))]
    first = next(iter(groups.values()))
    first.dead, first.seen = batch.dead, batch.seen
    return list(groups.items())


class Detector:
    """Runs whatever pack `current()` returns, so a reload swaps rules between batches."""

    def __init__(self, current: Callable[[], Pack], clock: Callable[[], datetime], ref: Reference):
        self.current = current
        self.clock = clock
        self.ref = ref
        self._rules_of: tuple[Pack, dict[str, list[CompiledRule]]] | None = None

    def _by_stream(self, pack: Pack) -> dict[str, list[CompiledRule]]:
        if self._rules_of is None or self._rules_of[0] is not pack:
            by_stream: dict[str, list[CompiledRule]] = {s: [] for s in (*STREAM_OF.values(), "alerts")}
            for rule in pack.rules:
                for stream in rule.observes:
                    by_stream[stream].append(rule)
            self._rules_of = (pack, by_stream)
        return self._rules_of[1]

    def run(self, batch: Batch[View], state: dict[str, Any]) -> Batch[Alert]:
        """Evaluate one shard's batch; `state` is that shard's state, kept by rule and version."""
        pack = self.current()
        by_stream = self._by_stream(pack)
        out: Batch[Alert] = Batch(dead=batch.dead, seen=batch.seen)
        now = self.clock()
        hits: list[tuple[CompiledRule, Hit]] = []
        own = {rule: state.setdefault(rule.state_key, {}) for rule in pack.rules}
        latest = state.setdefault("_latest", {})  # stream -> latest event time in this shard
        for view in batch.items:
            stream = STREAM_OF[type(view)]
            if stream in ACTIVITY_STREAMS and (stream not in latest or view.ts > latest[stream]):
                latest[stream] = view.ts
            for rule in by_stream[stream]:
                for hit in rule.kind.on_event(rule, view, own[rule], self.ref):
                    hits.append((rule, hit))
        if latest:
            watermark = min(latest.values()) - ALLOWED_LATENESS
            for rule in pack.rules:
                for hit in rule.kind.on_watermark(rule, watermark, own[rule]):
                    hits.append((rule, hit))
        alerts = self._alerts(pack, hits, state, now)
        spreading = by_stream["alerts"]
        if spreading and alerts:
            linked = [(rule, hit) for rule in spreading for alert in alerts for hit in rule.kind.spread(rule, alert, self.ref)]
            alerts += self._alerts(pack, linked, state, now)
        out.items = alerts
        return out

    def _alerts(self, pack: Pack, hits: list[tuple[CompiledRule, Hit]], state: dict, now: datetime) -> list[Alert]:
        alerts = []
        for rule, hit in hits:
            if pack.suppressed(rule.id, hit.borrower_id, hit.loan_id, hit.event_time):
                continue  # an analyst accepted these alerts until the suppression expires
            alerts.append(make_alert(rule, pack.version, hit, now, _merged_id(rule, hit, state)))
        return alerts


def _merged_id(rule: CompiledRule, hit: Hit, state: dict) -> str | None:
    """Within `suppress_for`, a repeat for the same rule and entity takes the first alert's id."""
    window = rule.suppress_for
    if window is None:
        return None
    entity = hit.loan_id or hit.borrower_id
    slots = state.setdefault("_suppress", {})
    first = slots.get((rule.id, entity))
    if first is not None and hit.event_time < first[1]:
        return first[0]
    own = alert_id(rule.id, hit.key, hit.trigger)
    slots[(rule.id, entity)] = (own, hit.event_time + window)
    return own
