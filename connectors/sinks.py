"""Bytewax sinks for the flow's output batches: the DuckDB store and the console."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bytewax.outputs import DynamicSink, FixedPartitionedSink, StatefulSinkPartition, StatelessSinkPartition

from connectors.alert_store import AlertStore
from connectors.redact import Redaction
from engine.batch import Batch
from engine.records import Alert


@dataclass
class RunStats:
    """What the store sink saw, for the end-of-run summary (single-process runs)."""

    events: int = 0
    alerts_new: int = 0
    dead_new: int = 0
    by_rule: Counter = field(default_factory=Counter)  # distinct alerts: a merged repeat counts once
    seen: set = field(default_factory=set)
    by_reason: Counter = field(default_factory=Counter)


class _StorePartition(StatefulSinkPartition[Batch[Alert], None]):
    def __init__(self, path: Path, stats: RunStats | None, redaction: Redaction):
        self.store = AlertStore(path)
        self.stats = stats
        self.redaction = redaction

    def write_batch(self, values: list[Batch[Alert]]) -> None:
        alerts = [a for b in values for a in b.items]
        dead = [self.redaction.apply(d) for b in values for d in b.dead]
        new_alerts, new_dead = self.store.write(alerts, dead)
        if self.stats is not None:
            self.stats.events += sum(b.seen for b in values)
            self.stats.alerts_new += new_alerts
            self.stats.dead_new += new_dead
            for a in alerts:  # distinct ids: the same alert can come from two shards in one write
                if a.id not in self.stats.seen:
                    self.stats.seen.add(a.id)
                    self.stats.by_rule[a.rule_id] += 1
            self.stats.by_reason.update(d.reason.split(":")[0] for d in dead)

    def snapshot(self) -> None:
        return None  # every write is idempotent; nothing to resume

    def close(self) -> None:
        self.store.close()


class StoreSink(FixedPartitionedSink[Batch[Alert], None]):
    """DuckDB allows one writing process, so the store is a single partition:
    exactly one worker of a cluster owns the file. In a cluster only the
    process built with `owner=True` lists the partition, so the file stays on
    that process's machine."""

    def __init__(self, path: Path, stats: RunStats | None = None, owner: bool = True,
                 redaction: Redaction = Redaction()):
        self.path, self.stats, self.owner, self.redaction = path, stats, owner, redaction

    def list_parts(self) -> list[str]:
        return ["store"] if self.owner else []

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _StorePartition:
        return _StorePartition(self.path, self.stats, self.redaction)


def alert_line(a: Alert) -> str:
    loan = a.loan_id or "-"
    return f"{a.event_time:%Y-%m-%d %H:%M} {a.level.upper():8} {a.score:3d} {a.rule_id} {a.borrower_id} {loan}  {a.summary}"


class _PrintPartition(StatelessSinkPartition[Batch[Alert]]):
    def __init__(self, emit: Callable[[str], None]):
        self.emit = emit
        self.printed: set[str] = set()  # a repeat merged into an alert (same id) is not news

    def write_batch(self, items: list[Batch[Alert]]) -> None:
        for batch in items:
            for alert in batch.items:
                if alert.id not in self.printed:
                    self.printed.add(alert.id)
                    self.emit(alert_line(alert))


class ConsoleSink(DynamicSink[Batch[Alert]]):
    """Prints each alert as one line as it fires."""

    def __init__(self, emit: Callable[[str], None] = print):
        self.emit = emit

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PrintPartition:
        return _PrintPartition(self.emit)
