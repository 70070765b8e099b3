"""Stage 3: evaluate the live rule pack on a batch of enriched events.

Detection is keyed by borrower so per-entity state (windows, baselines, absence
timers) lives with one worker. Borrowers are bucketed into a fixed number of
shards and a shard's events travel as one batch: keying single events would
cost the stream engine's per-item overhead on every event.

Time inside detection is event time only. The watermark drives absence
deadlines: the event time every input partition (a file, a topic's partition)
has reached, as far as this shard has heard, less the allowed lateness. The
slowest partition sets it, so a partition read ahead (a replayed sensor file
read before the payments, a Kafka partition that catches up faster after a
restart) cannot fire deadlines that events still queued elsewhere could meet.
It is kept per shard because the stream engine may hand a worker one shard's
events of a whole epoch before another's. A deadline is also proven by the
next event of its key arriving after it (see engine.rules.kinds.AbsenceKind).

What a shard keeps: per rule (by id and version) that rule kind's per-key
state; `_suppress` (rule, entity) -> the first alert's id until its
suppression ends; `_progress` input partition -> latest event time heard of.
Once a day of event time the watermark sweeps it: keys no window can use any
more, ended suppressions and the state of rules no longer in the pack go, and
`_entries` counts what is left, per rule (the state metric).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from engine.alerts import alert_id, make_alert
from engine.batch import MAX_PAYLOAD, Batch
from engine.context import STREAM_OF, View
from engine.records import Alert, DeadLetter
from engine.reference import Reference
from engine.rules.compiler import CompiledRule
from engine.rules.kinds import Hit
from engine.rules.pack import Pack

SHARDS = 64
ALLOWED_LATENESS = timedelta(minutes=10)
SWEEP_EVERY = timedelta(days=1)


def split_by_shard(batch: Batch[View], shards: int = SHARDS) -> list[tuple[str, Batch[View]]]:
    """A sub-batch for every shard, even an empty one: each shard must hear how far
    every input has got, or a partition whose events all went to other shards
    would not hold its watermark back. Dead letters and the input count ride on
    the first."""
    groups = [Batch(progress=batch.progress) for _ in range(shards)]
    for item in batch.items:
        groups[zlib.crc32(item.borrower.id.encode()) % shards].items.append(item)  # stable, unlike hash()
    groups[0].dead, groups[0].seen = batch.dead, batch.seen
    return [(str(i), group) for i, group in enumerate(groups) if group.items or group.progress or i == 0]


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
        for view in batch.items:
            for rule in by_stream[STREAM_OF[type(view)]]:
                try:
                    hits += [(rule, hit) for hit in rule.kind.on_event(rule, view, own[rule], self.ref)]
                except Exception as e:  # noqa: BLE001 - a rule's bug must not stop the flow or lose the event
                    out.dead.append(failed(view, f"error: {type(e).__name__} in rule {rule.id}: {e}"))
        progress = state.setdefault("_progress", {})  # input partition -> latest event time heard of
        for where, ts in batch.progress.items():
            if where not in progress or ts > progress[where]:
                progress[where] = ts
        if progress:
            watermark = min(progress.values()) - ALLOWED_LATENESS
            for rule in pack.rules:
                for hit in rule.kind.on_watermark(rule, watermark, own[rule]):
                    hits.append((rule, hit))
            _sweep(pack, watermark, state)
        alerts = self._alerts(pack, hits, state, now)
        spreading = by_stream["alerts"]
        if spreading and alerts:
            linked = [(rule, hit) for rule in spreading for alert in alerts
                      for hit in rule.kind.spread(rule, alert, self.ref)]
            alerts += self._alerts(pack, linked, state, now)  # contagion: linked alerts, one step, no echo
        out.items = alerts
        return out

    def _alerts(self, pack: Pack, hits: list[tuple[CompiledRule, Hit]], state: dict, now: datetime) -> list[Alert]:
        alerts, ids = [], set()
        for rule, hit in hits:
            if pack.suppressed(rule.id, hit.borrower_id, hit.loan_id, hit.event_time):
                continue  # an analyst accepted these alerts until the suppression expires
            alert = make_alert(rule, pack.version, hit, now, _merged_id(rule, hit, state))
            if alert.id not in ids:  # one circle seen from each of its guarantees is one alert
                ids.add(alert.id)
                alerts.append(alert)
        return alerts


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
