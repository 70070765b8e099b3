"""Stage 3: evaluate the live rule pack on a batch of enriched events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from engine.alerts import make_alert
from engine.batch import Batch
from engine.context import TxView
from engine.records import Alert, SensorReading
from engine.rules.pack import Pack


class Detector:
    """Runs whatever pack `current()` returns, so a reload swaps rules between batches."""

    def __init__(self, current: Callable[[], Pack], clock: Callable[[], datetime]):
        self.current = current
        self.clock = clock

    def run(self, batch: Batch[TxView | SensorReading]) -> Batch[Alert]:
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
