"""What an injected case is, and its label before ids exist."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Case:
    pattern: str  # a key of engine.patterns.PATTERNS, or "shutdown" (an unlabelled genuine shutdown)
    b: int  # borrower index (anchor for reference cases)
    loan: int = -1
    hops: int = 0
    p: dict = field(default_factory=dict)  # parameters fixed at plan time


@dataclass
class LabelRow:
    """A label before ids exist: refs are tx keys, sensor keys, relation or party indices."""

    pattern: str
    party: int
    loan: int
    first_us: int
    ref: str  # "tx" | "sensor" | "relation" | "party"
    refs: list[int]
    hops: int = 0
