"""Stage 3: evaluate the live rule pack on a batch of enriched events.

Detection is keyed by borrower so per-entity state (windows, baselines, absence
timers) lives with one worker. Borrowers are bucketed into a fixed number of
shards and a shard's events travel as one batch: keying single events would
cost the stream engine's per-item overhead on every event.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.alerts import make_alert
from engine.batch import Batch
from engine.context import TxView, entity_of
from engine.records import Alert, SensorReading
from engine.rules.pack import Pack

SHARDS = 64

Enriched = TxView | SensorReading


def shard_of(entity: str, shards: int = SHARDS) -> str:
    return str(zlib.crc32(entity.encode()) % shards)  # stable across processes, unlike hash()


def split_by_shard(batch: Batch[Enriched], shards: int = SHARDS) -> list[tuple[str, Batch[Enriched]]]:
    """One sub-batch per shard; dead letters and the input count ride on the first."""
    groups: dict[str, Batch[Enriched]] = {}
    for item in batch.items:
        key = shard_of(entity_of(item), shards)
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

    def __init__(self, current: Callable[[], Pack], clock: Callable[[], datetime]):
        self.current = current
        self.clock = clock

    def run(self, batch: Batch[Enriched], state: dict[str, Any]) -> Batch[Alert]:
        """Evaluate one shard's batch; `state` is that shard's per-entity state."""
        pack = self.current()
        rules = pack.for_stream("transactions")
        out: Batch[Alert] = Batch(dead=batch.dead, seen=batch.seen)
        now = self.clock()
        for view in batch.items:
            if not isinstance(view, TxView):
                continue  # sensor rules arrive with the rule-language issue
            for rule in rules:
                match = rule.evaluate(view)
                if match is not None:
                    out.items.append(make_alert(rule, pack.version, view, match, now))
        return out
