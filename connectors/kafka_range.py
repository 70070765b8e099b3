"""A bounded range of event topics as raw batches, for backtests on what Kafka
still holds: each partition from an offset (`@N`), from the first message at or
after a time (the broker's time index), or from the beginning; up to an offset,
or to the end the partition has when the backtest starts. Messages are screened
as the daemon screens them (connectors.kafka_source.screen), and a `--from`
or `--to` time then keeps the events whose event time is inside.

The end is found by counting, never by trusting a high watermark alone (the
test broker reports the first offset of its last write batch plus one): a
partition ends when it reaches the end offset or says it has nothing more
(partition EOF) after the watermark was reached.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.errors import InputError
from connectors.files import Window
from connectors.kafka_source import screen
from engine.batch import MAX_PAYLOAD, Raw, quiet, roster

MAX_BYTES = 1_048_576
BATCH = 5000


def _config(bootstrap: str) -> dict:
    return {"bootstrap.servers": bootstrap, "group.id": f"fundwatch-backtest-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10}


UNBOUNDED = 1 << 62


class _RangePartition(StatefulSourcePartition[list[Raw], int]):
    def __init__(self, source: KafkaRange, stream: str, topic: str, partition: int, start: int, end: int,
                 resume: int | None):
        self.stream, self.topic, self.partition, self.end = stream, topic, partition, end
        self.window = source.window
        self.next = resume if resume is not None else start
        self.consumer = Consumer(_config(source.bootstrap))
        self.consumer.assign([TopicPartition(topic, partition, self.next)])
        self.roster: list[Raw] | None = [roster(stream, [f"{topic}#{p}" for p in source.partitions[topic]])]
        self.done = self.next >= end
        self.said_quiet = False

    def next_batch(self) -> list[list[Raw]]:
        if self.roster is not None:
            first, self.roster = self.roster, None
            return [first]
        if self.done:
            if not self.said_quiet:  # the range is read: stop holding the stream's watermark back
                self.said_quiet = True
                return [[quiet(self.stream, self.topic, str(self.partition))]]
            raise StopIteration
        out: list[Raw] = []
        for m in self.consumer.consume(BATCH, 0.2):
            err = m.error()
            if err is not None:
                self.done = self.done or err.code() == KafkaError._PARTITION_EOF  # nothing more in the partition
                continue
            if m.offset() >= self.end:
                self.done = True
                break
            value = m.value()
            reason = screen(m, value, MAX_BYTES)
            position = f"{m.partition()}:{m.offset()}"
            out.append(Raw(self.stream, self.topic, position, value) if reason is None else
                       Raw(self.stream, self.topic, position, (value or b"")[:MAX_PAYLOAD], reject=reason))
            self.next = m.offset() + 1
        self.done = self.done or self.next >= self.end
        return [self.window.keep(out)] if out else []

    def snapshot(self) -> int:
        return self.next

    def close(self) -> None:
        self.consumer.close()


class KafkaRange(FixedPartitionedSource[list[Raw], int]):
    """Event topics by stream ({"transactions": "bank.tx"}) between two bounds: offsets
    `start` and `end` in every partition, or the window's start time, or the whole partition."""

    def __init__(self, bootstrap: str, topics: dict[str, str], window: Window, start: int | None = None,
                 end: int | None = None):
        self.bootstrap, self.topics, self.window = bootstrap, topics, window
        self.partitions: dict[str, list[int]] = {}
        self.bounds: dict[tuple[str, int], tuple[int, int, int]] = {}  # first, end, high watermark at start
        consumer = Consumer(_config(bootstrap))
        try:
            for topic in topics.values():
                meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
                if meta is None or meta.error is not None or not meta.partitions:
                    raise InputError(f"kafka://{bootstrap}: no topic {topic!r}"
                                     + (f" ({meta.error.name()})" if meta is not None and meta.error else ""))
                self.partitions[topic] = sorted(meta.partitions)
                for p in self.partitions[topic]:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    first = start if start is not None else self._at(consumer, topic, p, window.start, low, high)
                    self.bounds[(topic, p)] = (max(first, low), end if end is not None else UNBOUNDED, high)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - librdkafka's errors while no broker answers
            raise InputError(f"kafka://{bootstrap}: {type(e).__name__}: {e}") from None
        finally:
            consumer.close()

    @staticmethod
    def _at(consumer: Consumer, topic: str, partition: int, when: datetime | None, low: int, high: int) -> int:
        if when is None:
            return low
        # the broker's time index is by message timestamp; start an hour early, the window keeps event time
        ms = int((when - timedelta(hours=1)).astimezone(timezone.utc).timestamp() * 1000)
        (found,) = consumer.offsets_for_times([TopicPartition(topic, partition, ms)], timeout=10)
        return found.offset if found.offset >= 0 else high

    def total(self) -> int:
        """Messages in the range, about (the watermark at start where the range is open), for progress."""
        return sum(max(min(end, high) - first, 0) for first, end, high in self.bounds.values())

    def list_parts(self) -> list[str]:
        return [f"{stream}:{p}:{topic}" for stream, topic in self.topics.items() for p in self.partitions[topic]]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _RangePartition:
        stream, partition, topic = for_part.split(":", 2)
        first, end, _ = self.bounds[(topic, int(partition))]
        return _RangePartition(self, stream, topic, int(partition), first, end, resume_state)
