"""The one fundwatch dataflow. The daemon, the embedded demo and backtests all
build it here; only the source, the clock and the sinks differ."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, FixedPartitionedSink, Sink

from connectors import metrics
from engine.batch import Batch, Raw, dead_letter, input_partition
from engine.context import enrich_batch, trace_batch
from engine.decode import Limits, decode
from engine.detect import Detector, split_by_shard
from engine.lateness import Lateness
from engine.timing import Timing
from engine.records import Alert, DeadLetter
from engine.reference import Reference
from engine.rules.pack import Pack
from engine.tracing import Tracer


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


Refresh = Callable[[], tuple[list[DeadLetter], list[Raw]]]


class _Snapshots:
    """Pickles a step's state for recovery, and only then: without recovery (replay,
    backtest, the embedded run) Bytewax still asks every epoch, and pickling 64
    detection shards each time cost 42% of an 8,000-borrower replay.

    The state is pickled at once (Bytewax may write it later, while the state
    changes on): cheaper than a deep copy that Bytewax pickles anyway (p50 alert
    latency 312 -> 79 ms with recovery on in benchmarks/daemon.py). A state left
    unchanged since the last snapshot gives the same bytes again, unpickled."""

    def __init__(self, recoverable: bool):
        self.recoverable = recoverable
        self.last: bytes | None = None
        self.changed = True

    def take(self, state: object) -> bytes | None:
        if not self.recoverable:
            return None
        if self.changed or self.last is None:
            self.last = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
            self.changed = False
        return self.last


def _thaw(snapshot: bytes | None):
    return None if snapshot is None else pickle.loads(snapshot)


class _EnrichLogic(StatefulBatchLogic[list[Raw], Batch, bytes]):
    """Decode and enrich one input partition's batches; its lateness clock is the state."""

    def __init__(self, reference: Reference, refresh: Refresh | None, timing: Timing,
                 present: Callable[[], datetime] | None, limits: Limits, recoverable: bool, resume: bytes | None):
        self.reference, self.refresh, self.limits, self.present = reference, refresh, limits, present
        self.lateness = Lateness(timing.lateness, timing.future, _thaw(resume))
        self.snapshots = _Snapshots(recoverable)

    def on_batch(self, values: list[list[Raw]]) -> tuple[list[Batch], bool]:
        self.snapshots.changed = self.snapshots.changed or any(values)
        now = self.present() if self.present is not None else None
        out = [_enrich(decode(raws, self.limits), self.reference, self.refresh, self.lateness, now, self.limits)
               for raws in values]
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return self.snapshots.take(self.lateness.newest)


class _TraceLogic(StatefulBatchLogic[Batch, Batch, bytes]):
    """Fund tracing needs every account's attributions, so it is one keyed state."""

    def __init__(self, reference: Reference, pack: Callable[[], Pack], recoverable: bool, resume: bytes | None):
        self.reference, self.pack = reference, pack
        self.tracer = _thaw(resume) or Tracer()
        self.snapshots = _Snapshots(recoverable)

    def on_batch(self, values: list[Batch]) -> tuple[list[Batch], bool]:
        self.tracer.bounds = self.pack().tracing  # a reloaded pack's bounds apply from the next batch
        self.snapshots.changed = self.snapshots.changed or any(b.items for b in values)
        return [trace_batch(b, self.tracer, self.reference) for b in values], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return self.snapshots.take(self.tracer)


class _DetectLogic(StatefulBatchLogic[Batch, Batch, bytes]):
    """One shard's detection state, snapshotted for recovery."""

    def __init__(self, detector: Detector, recoverable: bool, resume: bytes | None):
        self.detector = detector
        self.state: dict = _thaw(resume) or {}
        self.snapshots = _Snapshots(recoverable)
        self.entries: dict[str, int] = {}  # this shard's last state counts, added into the metric

    def on_batch(self, values: list[Batch]) -> tuple[list[Batch], bool]:
        heard = self.state.get("_progress")
        for b in values:  # a batch that only repeats how far the inputs are changes nothing
            if b.items or b.idle or b.rosters or heard is None or any(
                    where not in heard.newest or ts > heard.newest[where] for where, ts in b.progress.items()):
                self.snapshots.changed = True
        out = [self.detector.run(b, self.state) for b in values]
        entries = self.state.get("_entries", {})
        if entries is not self.entries:  # swept: report the change of this shard's counts
            for rule in entries.keys() | self.entries.keys():
                metrics.STATE_ENTRIES.labels(rule=rule).inc(entries.get(rule, 0) - self.entries.get(rule, 0))
            self.entries = entries
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes | None:
        return self.snapshots.take(self.state)


def _enrich(batch: Batch, ref: Reference, refresh: Refresh | None, lateness: Lateness, now: datetime | None,
            limits: Limits) -> Batch:
    if refresh is not None:
        dead, events = refresh()  # reference updates that arrived so far, before these events
        batch.dead.extend(dead)
        if events:  # relations and parties, as events for the graph rules
            decoded = decode(events, limits)
            batch = batch.passing_on(decoded.items + batch.items, batch.dead + decoded.dead, batch.seen)
            batch.idle = batch.idle | decoded.idle
    try:
        return enrich_batch(batch.passing_on(batch.items, list(batch.dead), batch.seen), ref, lateness, now)
    except Exception:  # noqa: BLE001 - find the record that broke it; no record may stop the flow
        out = batch.passing_on(dead=batch.dead, seen=batch.seen)
        out.progress = {}
        for raw, record in batch.items:
            try:
                one = enrich_batch(Batch([(raw, record)]), ref, lateness, now)
            except Exception as e:  # noqa: BLE001
                out.dead.append(dead_letter(raw, f"error: {type(e).__name__} in enrichment: {e}"))
                continue
            out.items += one.items
            out.dead += one.dead
            for where, ts in one.progress.items():
                out.progress[where] = max(ts, out.progress.get(where, ts))
        return out


def build_flow(
    source: Source[list[Raw]],
    reference: Reference,
    pack: Callable[[], Pack],
    sinks: list[Sink[Batch[Alert]]],
    clock: Callable[[], datetime] = utc_now,
    refresh: Refresh | None = None,
    timing: Timing = Timing(),
    present: Callable[[], datetime] | None = None,
    recoverable: bool = False,
    limits: Limits = Limits(),
) -> Dataflow:
    """raw batches -> decode and enrich (keyed by input partition) -> trace -> detect
    (sharded by each rule's key) -> sinks.

    Dead letters ride along in each batch to the sinks.

    `refresh`, when given, applies pending reference updates to `reference`
    before each batch is enriched and returns their dead letters and the
    relation and party records to look at as events (the daemon's reference
    topics). `timing`: the allowed lateness, the future tolerance and the idle
    time (engine.timing). `present`: the wall clock future dates are measured
    against (the daemon); without it, the time each partition has reached (a
    replay). `limits`: the bounds on amounts and texts. `recoverable`: snapshots
    are written (recovery on), so state is pickled; otherwise it never is."""
    flow = Dataflow("fundwatch")
    raw = op.key_on("partition", op.input("input", flow, source),
                    lambda raws: input_partition(raws[0]) if raws else "")
    enriched = op.key_rm("unpartition", op.stateful_batch(
        "enrich", raw, partial(_EnrichLogic, reference, refresh, timing, present, limits, recoverable)))
    traced = op.key_rm(
        "untrace", op.stateful_batch("trace", op.key_on("trace_key", enriched, lambda _: "all"),
                                     partial(_TraceLogic, reference, pack, recoverable)),
    )
    detector = Detector(pack, clock, reference, timing)
    sharded = op.flat_map("shard", traced, lambda batch: split_by_shard(batch, detector.routes()))
    detected = op.key_rm("unkey", op.stateful_batch("detect", sharded, partial(_DetectLogic, detector, recoverable)))
    for i, sink in enumerate(sinks):
        if isinstance(sink, FixedPartitionedSink):
            # partitioned sinks take (key, item); the store has one partition
            op.output(f"out_{i}", op.key_on(f"key_{i}", detected, lambda _: "all"), sink)
        else:
            assert isinstance(sink, DynamicSink)
            op.output(f"out_{i}", detected, sink)
    return flow
