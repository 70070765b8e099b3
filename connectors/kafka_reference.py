"""Reference topics (parties, accounts, loans, relations) applied to a process's Reference.

Every process reads every partition of every reference topic itself, from the
beginning (the topics are compacted, so the beginning is the current state):
Kafka is the broadcast, and no worker depends on another for its reference
data. Ordering guarantee:

- at start-up the topics are read to their end before the first event is
  enriched (bounded by `wait`);
- afterwards, before each event batch is enriched, every reference record
  fetched so far is applied. The consumer fetches continuously (10 ms fetch
  wait), so a record the broker acknowledged before an event was produced is
  applied before that event unless the two were produced within about one
  fetch round trip of each other. A producer that needs a strict order (a loan
  before its disbursement) sends the loan first and the event after the ack.

Reference records are not part of Bytewax snapshots: after a restart they are
read again from the beginning, so replayed events see the latest reference.
A record that does not decode, or a tombstone (deletion is not supported),
becomes a dead letter reported once per cluster (by process 0).

Relations and parties are also events, for the graph rules (a guarantee that
closes a circle, a borrower sharing a phone with another): process 0 hands each
applied one to the flow once, after it is in the reference data. After a
restart they come again; their alerts have the same ids.
"""

from __future__ import annotations

import threading
import time

import msgspec
import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from connectors import metrics
from connectors.kafka_source import partitions_of
from engine.batch import MAX_PAYLOAD, Raw, dead_letter
from engine.records import REFERENCE, STREAMS, DeadLetter
from engine.reference import Reference

log = structlog.get_logger()
_decoders = {kind: msgspec.json.Decoder(cls) for kind, cls in REFERENCE.items()}


class ReferenceFeed:
    def __init__(self, config: dict, topics: dict[str, str], ref: Reference, *,
                 report_dead: bool = True, stopping: threading.Event | None = None):
        self.ref = ref
        self.kind_of = {topic: kind for kind, topic in topics.items()}
        self.report_dead = report_dead  # this process reports for the cluster: dead letters, graph events
        self.lock = threading.Lock()
        self.dead: list[DeadLetter] = []
        self.events: list[Raw] = []
        self.applied = 0
        stopping = stopping or threading.Event()
        base = metrics.client_config({"group.id": "fundwatch-reference", **config, "enable.auto.commit": False,
                                      "enable.partition.eof": True, "fetch.wait.max.ms": 10}, "reference")
        self.parts = [TopicPartition(topic, p, OFFSET_BEGINNING)
                      for topic in self.kind_of for p in partitions_of(base, topic, stopping)]
        self.consumer = Consumer(base)
        self.consumer.assign(self.parts)

    def catch_up(self, wait: float) -> bool:
        """Read every partition to its end (EOF) or until `wait` seconds passed."""
        pending = {(tp.topic, tp.partition) for tp in self.parts}
        deadline = time.monotonic() + wait
        while pending and time.monotonic() < deadline:
            for m in self.consumer.consume(10_000, 0.2):
                err = m.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    pending.discard((m.topic(), m.partition()))
                elif err is None:
                    self._apply(m)
        log.info("reference_loaded", records=self.applied, complete=not pending,
                 parties=len(self.ref.parties), loans=len(self.ref.loans))
        return not pending

    def apply(self) -> None:
        """Apply what has been fetched. The event sources call this too, so every
        process keeps its reference data current, even one that enriches nothing."""
        with self.lock:
            while True:
                messages = self.consumer.consume(10_000, 0)
                for m in messages:
                    if m.error() is None:
                        self._apply(m)
                if len(messages) < 10_000:
                    break

    def refresh(self) -> tuple[list[DeadLetter], list[Raw]]:
        """Apply what has been fetched; return the dead letters and the relation and
        party events not yet handed over."""
        self.apply()
        with self.lock:
            dead, self.dead = self.dead, []
            events, self.events = self.events, []
        return dead, events

    def _apply(self, m) -> None:
        kind = self.kind_of[m.topic()]
        value = m.value()
        raw = Raw(kind, m.topic(), f"{m.partition()}:{m.offset()}", (value or b"")[:MAX_PAYLOAD])
        if value is None and kind == "relations":  # a withdrawn relation: keyed by its id, it leaves the graph
            relation_id = (m.key() or b"").decode("utf-8", "replace")
            if self.ref.remove_relation(relation_id):
                self.applied += 1
                metrics.REFERENCE_IN.labels(kind="relations_removed").inc()
            else:
                self._dead(raw, f"invalid: tombstone for unknown relation {relation_id!r}")
            return
        try:
            if value is None:
                raise ValueError("unsupported: deletion (tombstone) of a party, account or loan")
            record = _decoders[kind].decode(value)
        except msgspec.ValidationError as e:
            self._dead(raw, f"invalid: {e}")
            return
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            self._dead(raw, f"undecodable: {e}")
            return
        except ValueError as e:
            self._dead(raw, str(e))
            return
        self.ref.add(record)
        self.applied += 1
        if self.report_dead and kind in STREAMS:
            self.events.append(Raw(kind, raw.source, raw.position, value))
        metrics.REFERENCE_IN.labels(kind=kind).inc()

    def _dead(self, raw: Raw, reason: str) -> None:
        log.warning("reference_dead_letter", topic=raw.source, position=raw.position, reason=reason.split(":")[0])
        if self.report_dead:
            self.dead.append(dead_letter(raw, reason))

    def close(self) -> None:
        self.consumer.close()
