"""Late events: how far an event may lag the newest event of its input partition.

The newest time of a partition moves only after an event passed every check
(decoded, validated, its reference data known), so a rejected message, say one
dated 2100-01-01 for an unknown account, can never make the good events after
it look late. The times are kept per input partition (a file, a topic's
partition) in the flow's recovery snapshot, so the verdict is the same after a
restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class Lateness:
    """The newest accepted event time of each input partition."""

    def __init__(self, allowed: timedelta | None, newest: dict[str, datetime] | None = None):
        self.allowed = allowed  # None: no lateness check (file replays)
        self.newest: dict[str, datetime] = newest or {}

    def admit(self, where: str, ts: datetime) -> str | None:
        """Why a valid event from `where` is too late, or None, and then it counts."""
        if self.allowed is None:
            return None
        newest = self.newest.get(where)
        if newest is not None and ts < newest - self.allowed:
            behind = timedelta(seconds=round((newest - ts).total_seconds()))
            return f"late: {behind} behind the newest event of its partition (allowed {self.allowed})"
        if newest is None or ts > newest:
            self.newest[where] = ts
        return None
