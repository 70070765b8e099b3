"""Precision and recall of alerts against the simulator's (or an analyst's) labels.

An alert counts for a pattern when its rule is tagged `pattern.<name>`. It is a
true positive when it matches a label of that pattern:
- one of its evidence events is one of the label's events, or
- for findings about an absence or a trend, whose evidence is not the label's
  events (the last repayment before the missed one, the last time an executive
  was seen), when it is about the same borrower and its event time falls
  between a day before the label's first event and `LATE` after it. (Not the
  same loan: a sensor finding names the loan pledged at the site, a label may
  name another loan of the borrower.)
A label is found when any alert of its pattern matches it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.records import Label

LATE = timedelta(days=30)


@dataclass(frozen=True)
class Score:
    pattern: str
    hops: int | None  # None: every label of the pattern; else only labels with these hops
    labels: int
    found: int
    alerts: int
    true_alerts: int

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else 0.0

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 0.0


@dataclass(frozen=True)
class Scored:
    """The part of an alert that scoring needs."""

    rule_id: str
    event_ids: list[str]
    borrower_id: str
    loan_id: str | None
    event_time: datetime


def score(alerts: Iterable[Scored], rule_patterns: Mapping[str, Iterable[str]], labels: list[Label]) -> list[Score]:
    """A Score per pattern the rules cover, plus one per hop count where labels differ in hops."""
    covered = sorted({p for patterns in rule_patterns.values() for p in patterns})
    by_event: dict[tuple[str, str], set[int]] = defaultdict(set)  # (pattern, event) -> label indexes
    by_borrower: dict[tuple[str, str], list[int]] = defaultdict(list)  # (pattern, borrower) -> label indexes
    for i, label in enumerate(labels):
        by_borrower[(label.pattern, label.borrower_id)].append(i)
        for event in label.event_ids:
            by_event[(label.pattern, event)].add(i)

    def matches(alert: Scored, pattern: str) -> set[int]:
        hit = set().union(*(by_event.get((pattern, e), set()) for e in alert.event_ids))
        for i in by_borrower.get((pattern, alert.borrower_id), ()):
            start = labels[i].first_event_time
            if start - timedelta(days=1) <= alert.event_time <= start + LATE:
                hit.add(i)
        return hit

    alert_count: dict[str, int] = defaultdict(int)
    true_count: dict[str, int] = defaultdict(int)
    found: set[int] = set()
    for alert in alerts:
        for pattern in rule_patterns.get(alert.rule_id, ()):
            alert_count[pattern] += 1
            hit = matches(alert, pattern)
            true_count[pattern] += bool(hit)
            found |= hit

    out = []
    for pattern in covered:
        mine = [i for i, label in enumerate(labels) if label.pattern == pattern]
        out.append(Score(pattern, None, len(mine), len(found.intersection(mine)), alert_count[pattern], true_count[pattern]))
        hops = sorted({labels[i].hops for i in mine})
        if len(hops) > 1:
            for h in hops:
                members = [i for i in mine if labels[i].hops == h]
                out.append(Score(pattern, h, len(members), len(found.intersection(members)), 0, 0))
    return out
