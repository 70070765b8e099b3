"""The flow's stages in one process, without the stream engine: decode, enrich,
trace, route by each rule's key, detect, shard by shard.

For the rules' embedded tests, the contract tests and the benchmarks: the same
engine code the Bytewax flow (dataflows.flow) runs, fed a batch at a time, so
a rule can be tried on a few events the way Bytewax's TestingSource tries a
flow. `end()` says every input went quiet, as a replay's files do at their
end: what waited for its watermark is released and deadlines up to the last
event are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from engine.batch import Batch, Raw, quiet
from engine.context import enrich_batch, trace_batch
from engine.decode import decode
from engine.detect import Detector, split_by_shard
from engine.lateness import Lateness
from engine.records import Alert, DeadLetter
from engine.reference import Reference
from engine.rules.pack import Pack
from engine.timing import Timing
from engine.tracing import Tracer


class Pipeline:
    def __init__(self, pack: Pack | Callable[[], Pack], ref: Reference, timing: Timing = Timing(),
                 clock: Callable[[], datetime] = lambda: datetime(2000, 1, 1, tzinfo=timezone.utc)):
        current = pack if callable(pack) else (lambda: pack)
        self.ref, self.timing = ref, timing
        self.detector = Detector(current, clock, ref, timing)
        self.tracer = Tracer(current().tracing)
        self.lateness = Lateness(timing.lateness, timing.future)
        self.states: dict[str, dict] = {}  # shard -> its detection state
        self.dead: list[DeadLetter] = []
        self._partitions: set[tuple[str, str]] = set()

    def feed(self, raws: list[Raw], now: datetime | None = None) -> list[Alert]:
        """One batch through every stage; the alerts it raised. `now`: the wall clock
        future dates are measured against (a daemon), else none (a replay)."""
        self.tracer.bounds = self.detector.current().tracing
        enriched = enrich_batch(decode(raws), self.ref, self.lateness, now)
        return self.detect(trace_batch(enriched, self.tracer, self.ref))

    def detect(self, batch: Batch) -> list[Alert]:
        """An enriched (and traced) batch through routing and detection."""
        self._partitions |= batch.progress.keys()
        self.dead += batch.dead
        alerts = []
        for shard, part in split_by_shard(batch, self.detector.routes()):
            out = self.detector.run(part, self.states.setdefault(shard, {}))
            alerts += out.items
            self.dead += out.dead
        return alerts

    def end(self) -> list[Alert]:
        """Every input partition went quiet: release what waits, check the deadlines."""
        return self.feed([quiet(stream, partition) for stream, partition in sorted(self._partitions)])
