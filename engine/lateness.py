"""Late and future events: how far an event may lag the newest event of its input
partition, and how far it may run ahead of the present.

The newest time of a partition moves only after an event passed every check
(decoded, validated, its reference data known), so a rejected message, say one
dated 2100-01-01 for an unknown account, can never make the good events after
it look late. The times are kept per input partition (a file, a topic's
partition) in the flow's recovery snapshot, so the verdict is the same after a
restart.

An event dated more than `future` ahead of the present is refused too, so it
never moves a clock: the present is the wall clock the caller passes (the
daemon), or else the newest accepted time of the partition (a replay: the time
its stream has reached; the first event of a partition has nothing to be
compared with).
"""

from __future__ import annotations

from datetime import datetime, timedelta


class Lateness:
    """The newest accepted event time of each input partition."""

    def __init__(self, allowed: timedelta, future: timedelta, newest: dict[str, datetime] | None = None):
        self.allowed, self.future = allowed, future
        self.newest: dict[str, datetime] = newest or {}

    def admit(self, where: str, ts: datetime, now: datetime | None = None) -> str | None:
        """Why a valid event from `where` is too late or too early, or None, and then it counts."""
        newest = self.newest.get(where)
        present = now if now is not None else newest
        if present is not None and ts > present + self.future:
            ahead = timedelta(seconds=round((ts - present).total_seconds()))
            of = "the present" if now is not None else "the newest event of its partition"
            return f"future: {ahead} ahead of {of} (allowed {self.future})"
        if newest is not None and ts < newest - self.allowed:
            behind = timedelta(seconds=round((newest - ts).total_seconds()))
            return f"late: {behind} behind the newest event of its partition (allowed {self.allowed})"
        if newest is None or ts > newest:
            self.newest[where] = ts
        return None
