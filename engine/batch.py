"""What moves between the flow's stages: batches, never single events.

A Batch carries the stage's output items and the dead letters gathered so far,
so one stream flows from decode to the sinks and nothing bad is dropped on the way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from engine.records import DeadLetter

T = TypeVar("T")
MAX_PAYLOAD = 4096  # characters of a bad record kept in its dead letter


@dataclass(frozen=True, slots=True)
class Raw:
    """One inbound record before decoding, with where it came from."""

    stream: str  # transactions | sensors | ...
    source: str  # file path or topic
    position: str  # row, line or partition:offset
    payload: bytes | dict[str, Any]  # JSON bytes (Kafka, NDJSON) or a row (Parquet, CSV)
    text_values: bool = False  # CSV: every value is text, so numbers and dates are parsed
    reject: str | None = None  # the source already found it unusable (oversized, late, ...): why
    # not a record but a word from the source about its partitions (engine.timing):
    # "quiet": this partition went quiet (silent for the idle time, or at the end of its
    # file), so it stops holding its stream's watermark back until it speaks again;
    # "roster": the payload lists every partition the stream has now (sent at start), so
    # a partition retired while the flow was down stops holding it back too
    control: str | None = None


def quiet(stream: str, source: str, partition: str = "") -> Raw:
    """The word a source sends for a partition that went quiet."""
    return Raw(stream, source, f"{partition}:quiet" if partition else "quiet", b"", control="quiet")


def quiet_after(raws: list[Raw]) -> list[Raw]:
    """The words that every partition these records came from has nothing more for now
    (reference data handed over in bulk: a snapshot, what the reference topics held)."""
    marks = {}
    for raw in raws:
        partition, sep, _ = raw.position.partition(":")
        marks[(raw.stream, raw.source, partition if sep else "")] = None
    return [quiet(stream, source, partition) for stream, source, partition in marks]


def roster(stream: str, partitions: list[str]) -> Raw:
    """The word a source sends at start: these are all the input partitions of `stream` now."""
    return Raw(stream, "roster", "roster", msgspec.json.encode(sorted(partitions)), control="roster")


@dataclass(slots=True)
class Batch(Generic[T]):
    items: list[T] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    seen: int = 0  # raw records that entered the flow in this batch
    # (stream, input partition) -> latest event time in this batch, for the activity streams:
    # a stream's watermark is its slowest partition's progress
    progress: dict[tuple[str, str], datetime] = field(default_factory=dict)
    idle: set[tuple[str, str]] = field(default_factory=set)  # partitions that went quiet
    rosters: dict[str, set[str]] = field(default_factory=dict)  # stream -> all its partitions now

    def passing_on(self, items: list | None = None, dead: list[DeadLetter] | None = None, seen: int = 0) -> Batch:
        """A batch for the next stage that carries this one's word on the inputs (progress, quiet, rosters)."""
        return Batch(items if items is not None else [], dead if dead is not None else [], seen,
                     self.progress, self.idle, self.rosters)


def input_partition(raw: Raw) -> str:
    """Where a record came from, as a unit of progress: a file, or a topic's partition."""
    partition, sep, _ = raw.position.partition(":")
    return f"{raw.source}#{partition}" if sep else raw.source


def dead_letter(raw: Raw, reason: str) -> DeadLetter:
    key = f"{raw.stream}\x1f{raw.source}\x1f{raw.position}"
    return DeadLetter(
        id=hashlib.sha256(key.encode()).hexdigest()[:24],
        stream=raw.stream,
        source=raw.source,
        position=raw.position,
        reason=reason,
        payload=_text(raw.payload)[:MAX_PAYLOAD],
    )


def _text(payload: bytes | dict) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    return msgspec.json.encode(payload, enc_hook=str).decode()
