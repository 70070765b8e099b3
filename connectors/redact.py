"""What of a dead letter's payload leaves the process (DuckDB and the topic).

A dead letter keeps the bad record so it can be fixed and replayed, but the
record holds account numbers, names and amounts. `keep` stores it truncated to
`max_payload` characters; `mask` keeps a JSON object's keys and only the values
that say which event it was (id, time, channel, kind, currency), every other
value becomes "***" (text that is not a JSON object is masked whole); `drop`
stores no payload at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from engine.records import DeadLetter

KEPT_WHEN_MASKED = frozenset({"id", "ts", "channel", "kind", "currency", "schema_version"})


@dataclass(frozen=True)
class Redaction:
    payload: str = "keep"  # keep | mask | drop
    max_payload: int = 4096

    def apply(self, dead: DeadLetter) -> DeadLetter:
        if self.payload == "keep" and len(dead.payload) <= self.max_payload:
            return dead
        text = "" if self.payload == "drop" else _mask(dead.payload) if self.payload == "mask" else dead.payload
        return msgspec.structs.replace(dead, payload=text[: self.max_payload])


def _mask(payload: str) -> str:
    try:
        record = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        record = None
    if not isinstance(record, dict):
        return f"*** ({len(payload)} characters, not a JSON object)"
    masked = {k: v if k in KEPT_WHEN_MASKED and not isinstance(v, (dict, list)) else "***" for k, v in record.items()}
    return msgspec.json.encode(masked).decode()
