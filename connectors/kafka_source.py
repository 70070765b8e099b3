"""Event topics (transactions, sensors) as raw batches for the flow.

One Bytewax partition per Kafka partition, so Kafka partitions are the unit of
parallelism. Offsets live in Bytewax's recovery snapshots, not in consumer
groups: a restart resumes every partition exactly where its last snapshot
ended, whatever the group says.

The source screens what the decoder cannot judge: a message with no value, one
over the size limit, one with a byte-order mark (UTF-16), an unsupported
schema version (header `schema-version` or field `schema_version`; absent
means 1) and an event time without a zone. Such a message goes on as a `Raw`
with `reject` set and becomes a dead letter. Lateness is judged later, after
validation (engine.lateness), so a rejected message never moves a clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import msgspec
import structlog
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from connectors import metrics
from engine.batch import MAX_PAYLOAD, Raw, quiet, roster

log = structlog.get_logger()

SUPPORTED_VERSIONS = frozenset({"1"})
HEARTBEAT = 1.0  # seconds: an idle partition still sends an empty batch this often


class _Peek(msgspec.Struct):
    """The two fields the source reads before decoding; everything else is skipped."""

    ts: datetime | None = None
    schema_version: int | str | None = None


_peek = msgspec.json.Decoder(_Peek)
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class PartState:
    offset: int  # next offset to read


def screen(message: Message, value: bytes | None, max_bytes: int) -> str | None:
    """Why a message cannot go on as an event, or None."""
    if value is None:
        return "empty: message has no value"
    if len(value) > max_bytes:
        return f"oversized: {len(value)} bytes > limit {max_bytes}"
    if value[:2] in _UTF16_BOMS or value[:3] == _UTF8_BOM:
        return "encoding: byte-order mark (UTF-16, or UTF-8 with BOM); expected UTF-8 JSON"
    version = _header(message, "schema-version")
    try:
        peek = _peek.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        peek = None  # the decoder reports it, with the reason
    if version is None and peek is not None and peek.schema_version is not None:
        version = str(peek.schema_version)
    if version is not None and version not in SUPPORTED_VERSIONS:
        return f"unsupported version: {version!r} (supported: {', '.join(sorted(SUPPORTED_VERSIONS))})"
    if peek is not None and peek.ts is not None and peek.ts.tzinfo is None:
        return "invalid: $.ts: timestamp without a time zone"  # must be comparable with the loans' times
    return None


def _header(message: Message, name: str) -> str | None:
    for key, value in message.headers() or ():
        if key == name:
            return value.decode("utf-8", "replace") if value is not None else ""
    return None


class _Partition(StatefulSourcePartition[list[Raw], PartState]):
    def __init__(self, source: "KafkaInput", stream: str, topic: str, partition: int, resume: PartState | None):
        self.source, self.stream, self.topic, self.partition = source, stream, topic, partition
        self.state = resume or PartState(OFFSET_BEGINNING)
        self.consumer = Consumer(source.consumer_config())
        self.tp = TopicPartition(topic, partition, self.state.offset)
        self.consumer.assign([self.tp])
        self.awake: datetime | None = None
        self.stopped_at: float | None = None
        self.snapshot_after_stop = False
        self.since_snapshot = 0  # messages read since the last snapshot
        self.last_emit = self.last_message = time.monotonic()
        self.quiet = False  # said that it went quiet, and nothing came since
        # said first: every partition of this topic now, so one retired while we were down is forgotten
        self.roster: list[Raw] | None = [roster(stream, [f"{topic}#{p}" for p in source.partitions(topic)])]
        self.labels = {"topic": topic, "partition": str(partition)}
        self.events_in = metrics.EVENTS_IN.labels(stream=stream)
        log.info("partition_assigned", topic=topic, partition=partition,
                 offset=self.state.offset if self.state.offset >= 0 else "beginning")

    def next_batch(self) -> list[list[Raw]]:
        if self.source.stopping.is_set():
            return self._stop()
        if self.roster is not None:
            first, self.roster = self.roster, None
            return [first]
        if self.source.on_poll is not None:
            self.source.on_poll()
        room = self.source.snapshot_events - self.since_snapshot
        if room <= 0:  # enough read since the last snapshot: wait for the next one
            self.awake = datetime.now(timezone.utc) + timedelta(seconds=0.01)
            return []
        out: list[Raw] = []
        for m in self.consumer.consume(min(self.source.batch_size, room), 0):
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    metrics.log_limited("consume_error", f"{self.topic}:{self.partition}", err.name())
                continue
            out.append(self._raw(m))
            self.state.offset = m.offset() + 1
        self.since_snapshot += len(out)
        now = time.monotonic()
        if out:
            self.awake = None
            self.last_emit = self.last_message = now
            self.quiet = False
            self.events_in.inc(len(out))
            self._lag()
            return [out]
        self.awake = datetime.now(timezone.utc) + timedelta(seconds=self.source.idle_wait)
        if not self.quiet and now - self.last_message >= self.source.idle_after:
            self.quiet, self.last_emit = True, now
            return [[quiet(self.stream, self.topic, str(self.partition))]]
        if now - self.last_emit >= HEARTBEAT:
            self.last_emit = now
            self._lag()
            return [[]]  # lets reference updates and their dead letters move while idle
        return []

    def _stop(self) -> list[list[Raw]]:
        """Read nothing more; end once a snapshot has recorded where we stopped, so a
        restart resumes there instead of replaying the last epoch."""
        now = time.monotonic()
        if self.stopped_at is None:
            self.stopped_at = now
        if self.snapshot_after_stop or now - self.stopped_at > self.source.stop_wait:
            raise StopIteration  # the flow drains what it has and finishes
        self.awake = datetime.now(timezone.utc) + timedelta(seconds=0.05)
        return []

    def _raw(self, m: Message) -> Raw:
        value = m.value()
        position = f"{m.partition()}:{m.offset()}"
        try:
            reason = screen(m, value, self.source.max_bytes)
        except Exception as e:  # a screening bug must not stop the daemon
            reason = f"unscreenable: {type(e).__name__}"
        if reason is None:
            return Raw(self.stream, self.topic, position, value)
        return Raw(self.stream, self.topic, position, (value or b"")[:MAX_PAYLOAD], reject=reason)

    def _lag(self) -> None:
        # cached: the watermark of the last fetch response, no round trip
        _, high = self.consumer.get_watermark_offsets(self.tp, cached=True)
        if high >= 0 and self.state.offset >= 0:
            metrics.CONSUMER_LAG.labels(**self.labels).set(max(high - self.state.offset, 0))

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> PartState:
        self.since_snapshot = 0
        if self.stopped_at is not None:
            self.snapshot_after_stop = True
        return PartState(self.state.offset)

    def close(self) -> None:
        self.consumer.close()


class KafkaInput(FixedPartitionedSource[list[Raw], PartState]):
    """Event topics by stream name, e.g. {"transactions": "bank.tx", "sensors": "iot.readings"}."""

    def __init__(
        self, config: dict, topics: dict[str, str], *, batch_size: int = 5000,
        max_bytes: int = 1_048_576, idle_wait: float = 0.005, idle_after: float = 300.0,
        stopping: threading.Event | None = None, wait_for_topics: float | None = None,
        stop_wait: float = 0.0, snapshot_events: int = 1 << 62, on_poll: Callable[[], None] | None = None,
    ):
        """`stop_wait`: once `stopping` is set, how long to wait for a snapshot
        (the epoch length when recovery is on) before ending the partition.
        `snapshot_events`: a partition reads at most this many messages between
        two snapshots (it waits for the next), so a crash replays at most that.
        `on_poll`: called before each fetch (the reference feed applies its updates).
        `idle_after`: a partition with no message for this long says it went quiet, so
        its stream's watermark stops waiting for it (engine.timing)."""
        self.config, self.topics = config, topics
        self.batch_size, self.idle_wait, self.idle_after = batch_size, idle_wait, idle_after
        self.max_bytes = max_bytes
        self.stopping = stopping or threading.Event()
        self.wait_for_topics = wait_for_topics
        self.stop_wait = stop_wait
        self.snapshot_events = snapshot_events
        self.on_poll = on_poll
        self._partitions: dict[str, list[int]] = {}  # topic -> its partitions, asked once

    def consumer_config(self) -> dict:
        return metrics.client_config({
            "group.id": "fundwatch", **self.config,
            "enable.auto.commit": False, "enable.partition.eof": False,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10,
        }, "consumer")

    def partitions(self, topic: str) -> list[int]:
        if topic not in self._partitions:
            self._partitions[topic] = partitions_of(self.consumer_config(), topic, self.stopping, self.wait_for_topics)
        return self._partitions[topic]

    def list_parts(self) -> list[str]:
        return [f"{stream}:{p}:{topic}" for stream, topic in self.topics.items() for p in self.partitions(topic)]

    def build_part(self, step_id: str, for_part: str, resume_state: PartState | None) -> _Partition:
        stream, partition, topic = for_part.split(":", 2)
        return _Partition(self, stream, topic, int(partition), resume_state)


def partitions_of(config: dict, topic: str, stopping: threading.Event, timeout: float | None = None) -> list[int]:
    """The topic's partitions; waits (logging) while the broker or the topic is missing."""
    consumer = Consumer(metrics.client_config(config, "topics", marks_down=False))  # waiting is no outage
    started = time.monotonic()
    try:
        while True:
            try:
                meta = consumer.list_topics(topic, timeout=5)
                t = meta.topics.get(topic)
                if t is not None and t.error is None and t.partitions:
                    return sorted(t.partitions)
                problem = t.error.name() if t is not None and t.error is not None else "no partitions"
            except Exception as e:  # KafkaException while no broker answers
                problem = type(e).__name__
            if stopping.is_set():
                raise SystemExit(f"stopped while waiting for topic {topic!r}")
            if timeout is not None and time.monotonic() - started > timeout:
                raise RuntimeError(f"topic {topic!r} not available after {timeout}s: {problem}")
            log.warning("waiting_for_topic", topic=topic, problem=problem)
            time.sleep(1)
    finally:
        consumer.close()
