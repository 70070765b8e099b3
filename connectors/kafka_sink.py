"""Alerts and dead letters to Kafka, with delivery reports.

Bytewax's own KafkaSink produces and flushes but never looks at delivery
reports, so a message the broker refused would count as written. Here every
message waits for its report before `write_batch` returns (and so before
Bytewax may close the epoch and snapshot past it); a message without a
positive report is sent again, counted, and never treated as done. While the
broker is away this blocks the flow, which is what we want: nothing is read
that could not be published.

Alerts are JSON, keyed by borrower, with the alert id in the `alert-id`
header. An id is published once: the last RECENT ids the broker confirmed are
remembered, in the recovery snapshot too, so a repeat merged into an alert, a
circle seen from each of its guarantees, or the graph alerts that the
reference data raises again at every start are not news, and an id never goes
out again with other evidence. Only after a kill -9 can the alerts confirmed
since the last snapshot go out again (the same alerts, from the same events),
so consumers still drop repeats by id. Shadow alerts (experimental rules) are
never published.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime, timezone

import msgspec
import structlog
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import KafkaException, Producer

from connectors import metrics
from connectors.redact import Redaction
from engine.batch import Batch
from engine.records import Alert

log = structlog.get_logger()
_json = msgspec.json.Encoder()
# after these an idempotent producer is stuck (seen after delivery timeouts during an outage)
_NEEDS_NEW_PRODUCER = frozenset({"PRODUCER_FENCED", "_FATAL", "INVALID_PRODUCER_EPOCH", "UNKNOWN_PRODUCER_ID",
                                 "OUT_OF_ORDER_SEQUENCE_NUMBER", "_FENCED"})


class _Outbox:
    """Messages of one batch that still lack a positive delivery report."""

    def __init__(self) -> None:
        self.waiting = 0
        self.failed: list[tuple] = []  # (topic, key, value, headers, item, error name)
        self.confirmed: list[object] = []
        self.fatal = False  # the producer cannot go on: make a new one

    def callback(self, topic: str, key: bytes, value: bytes, headers: list, item: object):
        def on_delivery(err, _msg) -> None:
            self.waiting -= 1
            if err is None:
                self.confirmed.append(item)
            else:
                self.failed.append((topic, key, value, headers, item, err.name()))
                self.fatal = self.fatal or err.fatal() or err.name() in _NEEDS_NEW_PRODUCER

        return on_delivery


RECENT = 200_000


class _Partition(StatefulSinkPartition[Batch[Alert], bytes]):
    def __init__(self, sink: "KafkaOutput", resume: bytes | None):
        self.sink = sink
        self.producer = Producer(sink.producer_config())
        # ids confirmed by the broker, newest last; snapshotted as 12 bytes an id (ids are 24 hex digits)
        self.published: OrderedDict[str, None] = OrderedDict(
            (resume[i:i + 12].hex(), None) for i in range(0, len(resume or b""), 12))
        self.saved: bytes | None = resume or b""  # the last snapshot, while nothing new was confirmed

    def write_batch(self, items: list[Batch[Alert]]) -> None:
        started = time.perf_counter()
        messages, queued = [], set()
        for batch in items:
            for a in batch.items:
                if a.shadow:
                    metrics.ALERTS_OUT.labels(rule=a.rule_id, level=a.level, published="false").inc()
                elif a.id not in self.published and a.id not in queued:
                    queued.add(a.id)
                    messages.append((self.sink.alerts_topic, a.borrower_id.encode(), _json.encode(a),
                                     [("alert-id", a.id.encode())], a))
            if self.sink.dead_topic:
                for d in map(self.sink.redaction.apply, batch.dead):
                    messages.append((self.sink.dead_topic, d.id.encode(), _json.encode(d),
                                     [("dead-letter-id", d.id.encode())], d))
        if messages:
            self._deliver(messages)
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)

    def _deliver(self, messages: list[tuple]) -> None:
        attempt = 0
        while messages:
            box = _Outbox()
            for topic, key, value, headers, item in messages:
                self._produce(topic, key, value, headers, box.callback(topic, key, value, headers, item))
                box.waiting += 1
            while box.waiting > 0:
                self.producer.flush(1.0)
            self._count(box.confirmed)
            if not box.failed:
                return
            attempt += 1
            reasons = sorted({f[5] for f in box.failed})
            for topic in {f[0] for f in box.failed}:
                metrics.DELIVERY_RETRIES.labels(topic=topic).inc(sum(f[0] == topic for f in box.failed))
            if any(r in ("_MSG_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN") for r in reasons):
                metrics.broker_down("producer", reasons[0])
            log.warning("delivery_failed", messages=len(box.failed), attempt=attempt, errors=reasons)
            messages = [f[:5] for f in box.failed]
            if box.fatal:
                self._renew(reasons)
            time.sleep(min(0.5 * attempt, 5.0))  # on SIGTERM the shutdown deadline ends this

    def _renew(self, reasons: list[str]) -> None:
        log.warning("producer_renewed", errors=reasons)
        self.producer.flush(0)
        self.producer = Producer(self.sink.producer_config())

    def _produce(self, topic: str, key: bytes, value: bytes, headers: list, callback) -> None:
        refused = 0
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=callback)
                return
            except BufferError:  # local queue full: serve reports, then try again
                self.producer.poll(0.1)
            except KafkaException as e:  # refused before sending (unknown topic, too large, ...)
                refused += 1
                metrics.DELIVERY_RETRIES.labels(topic=topic).inc()
                if refused == 1 or refused % 20 == 0:
                    log.error("produce_refused", topic=topic, error=e.args[0].name(), attempts=refused)
                self.producer.poll(min(0.25 * refused, 5.0))  # on SIGTERM the shutdown deadline ends this

    def _count(self, confirmed: list) -> None:
        if not confirmed:
            return
        metrics.broker_answered()  # a delivery report is the broker's own word
        now = datetime.now(timezone.utc)
        for item in confirmed:
            if isinstance(item, Alert):
                self.saved = None
                self.published[item.id] = None
                if len(self.published) > RECENT:
                    self.published.popitem(last=False)
                metrics.ALERTS_OUT.labels(rule=item.rule_id, level=item.level, published="true").inc()
                metrics.ALERT_DELAY.labels(stage="publish").observe(
                    max((now - item.detected_at).total_seconds(), 0.0))
                metrics.ALERT_DELAY.labels(stage="detect").observe(
                    max((item.detected_at - item.event_time).total_seconds(), 0.0))
            else:
                metrics.DEAD_LETTERS.labels(reason=item.reason.split(":", 1)[0]).inc()

    def snapshot(self) -> bytes:
        if self.saved is None:
            self.saved = b"".join(bytes.fromhex(i) for i in self.published)
        return self.saved

    def close(self) -> None:
        self.producer.flush(5.0)


class KafkaOutput(FixedPartitionedSink[Batch[Alert], bytes]):
    """One partition publishes every alert and dead letter, so it alone knows
    which ids went out; in a cluster process 0 (`owner`) holds it."""

    def __init__(self, config: dict, alerts_topic: str, dead_topic: str = "", *,
                 delivery_timeout: float = 30.0, owner: bool = True, redaction: Redaction = Redaction()):
        self.config, self.alerts_topic, self.dead_topic = config, alerts_topic, dead_topic
        self.delivery_timeout = delivery_timeout
        self.owner, self.redaction = owner, redaction

    def producer_config(self) -> dict:
        return metrics.client_config({
            **self.config,
            "enable.idempotence": True,  # the producer's own retries never duplicate
            "linger.ms": 2,
            "message.timeout.ms": int(self.delivery_timeout * 1000),
        }, "producer")

    def list_parts(self) -> list[str]:
        return ["publish"] if self.owner else []

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: bytes | None) -> _Partition:
        return _Partition(self, resume_state)
