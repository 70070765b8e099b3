"""Event time: the one set of time settings, and how far each stream has got.

Every input partition (a file, a topic's partition) reports the newest event
time it has accepted. A stream's watermark is its slowest partition's time
less the allowed lateness: every event of the stream up to it has arrived, or
is late (a dead letter, see engine.lateness). Stateful rules see their events
in event-time order up to the watermark (engine.detect), so the same events in
any arrival order within the lateness give the same alerts.

A partition that went quiet stops holding its stream back: its source says so
(a topic partition silent for `idle` of wall-clock time, a file at its end).
At start every source also names all the partitions its stream has now, so a
partition retired while the daemon was down (a topic turned off) is
forgotten, not waited for. When every partition of a stream is quiet,
everything read of it counts as arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

Partition = tuple[str, str]  # (stream, input partition)


@dataclass(frozen=True)
class Timing:
    """Event-time settings, the same in a replay and in the daemon."""

    lateness: timedelta = timedelta(minutes=10)  # an event may lag its partition's newest by this much
    # an event may be dated this far ahead of the present: the wall clock in the daemon (which sets an
    # hour), else the newest event of its partition so far (a replay: a file can be quiet for months)
    future: timedelta = timedelta(days=365)
    idle: timedelta = timedelta(minutes=5)  # a topic partition silent this long (wall clock) says it went quiet


@dataclass
class Progress:
    """How far every input partition has got, as one detection shard has heard."""

    newest: dict[Partition, datetime] = field(default_factory=dict)
    quiet: set[Partition] = field(default_factory=set)

    def hear(self, progress: dict[Partition, datetime], quiet: set[Partition],
             rosters: dict[str, set[str]] | None = None) -> None:
        """Take in a batch's progress, quiet partitions and rosters."""
        for stream, partitions in (rosters or {}).items():
            for where in [w for w in self.newest if w[0] == stream and w[1] not in partitions]:
                del self.newest[where]  # retired
                self.quiet.discard(where)
        for where, ts in progress.items():
            if where not in self.newest or ts > self.newest[where]:
                self.newest[where] = ts
            self.quiet.discard(where)  # it spoke again
        self.quiet |= quiet  # a word in the same batch came after its events

    def watermark(self, stream: str, timing: Timing) -> datetime | None:
        """The event time up to which every event of `stream` has arrived, or None (nothing yet)."""
        parts = [(w, ts) for w, ts in self.newest.items() if w[0] == stream]
        if not parts:
            return None
        speaking = [ts for w, ts in parts if w not in self.quiet]
        if not speaking:
            return max(ts for _, ts in parts)  # every partition quiet: all of it has arrived
        return min(speaking) - timing.lateness
