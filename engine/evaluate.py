"""Precision and recall of alerts against the simulator's (or an analyst's) labels.

An alert counts for a pattern when its rule is tagged `pattern.<name>`. It is a
true positive when it matches a label of that pattern through the label's own
events: one of its evidence events (the payments, readings, relations or
parties it names) is one of the label's. Being about the same borrower at
about the same time is not enough: a borrower with a real case and a false
alarm of the same pattern gets one true and one false alert.

Absence patterns (`TIME_MATCHED`) are the one exception, because what they
report did not happen: their evidence is the last event before the gap, which
the label names when there is one. For them an alert also matches a label of
the same loan (or borrower, when the label names no loan) whose
first_event_time is at most a day after the alert and at most `LATE` before it.

A label is found when any alert of its pattern matches it. Precision and recall
carry Wilson score intervals at 95%: with 20 labels, 20 found still leaves the
true recall anywhere from 0.84 up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.records import Label

LATE = timedelta(days=30)
TIME_MATCHED = frozenset({"idle_funds", "missed_repayment", "sensor_silent"})
Z95 = 1.959964


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there were no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * ((p * (1 - p) / trials + z * z / (4 * trials * trials)) ** 0.5)
    return max(0.0, centre - half), min(1.0, centre + half)


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

    @property
    def recall_interval(self) -> tuple[float, float]:
        return wilson(self.found, self.labels)

    @property
    def precision_interval(self) -> tuple[float, float]:
        return wilson(self.true_alerts, self.alerts)


@dataclass(frozen=True)
class Scored:
    """The part of an alert that scoring needs."""

    rule_id: str
    event_ids: list[str]
    borrower_id: str
    loan_id: str | None
    event_time: datetime


class Matcher:
    """Which labels an alert matches, for a pattern (the rules above). One matcher
    serves precision, recall and detection delay, so they never disagree."""

    def __init__(self, labels: list[Label]):
        self.labels = labels
        self.by_event: dict[tuple[str, str], set[int]] = defaultdict(set)  # (pattern, event) -> label indexes
        self.by_entity: dict[tuple[str, str], list[int]] = defaultdict(list)  # (absence pattern, loan/borrower) -> labels
        for i, label in enumerate(labels):
            if label.pattern in TIME_MATCHED:
                self.by_entity[(label.pattern, label.loan_id or label.borrower_id)].append(i)
            for event in label.event_ids:
                self.by_event[(label.pattern, event)].add(i)

    def matches(self, alert: Scored, pattern: str) -> set[int]:
        hit = set().union(*(self.by_event.get((pattern, e), set()) for e in alert.event_ids))
        if pattern in TIME_MATCHED:
            for entity in {alert.loan_id, alert.borrower_id} - {None}:
                for i in self.by_entity.get((pattern, entity), ()):
                    start = self.labels[i].first_event_time
                    if start - timedelta(days=1) <= alert.event_time <= start + LATE:
                        hit.add(i)
        return hit


def score(alerts: Iterable[Scored], rule_patterns: Mapping[str, Iterable[str]], labels: list[Label]) -> list[Score]:
    """A Score per pattern the rules cover, plus one per hop count where labels differ in hops."""
    covered = sorted({p for patterns in rule_patterns.values() for p in patterns})
    matcher = Matcher(labels)
    alert_count: dict[str, int] = defaultdict(int)
    true_count: dict[str, int] = defaultdict(int)
    found: set[int] = set()
    for alert in alerts:
        for pattern in rule_patterns.get(alert.rule_id, ()):
            alert_count[pattern] += 1
            hit = matcher.matches(alert, pattern)
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


def roc_auc(scored: Iterable[tuple[float, bool]]) -> float | None:
    """Exact ROC AUC (ties count half) of (score, is positive) pairs: the chance that a
    positive scores above a negative; None without both."""
    pairs = sorted(scored, key=lambda p: p[0])
    ranks, i = 0.0, 0
    positives = sum(1 for _, y in pairs if y)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        return None
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        ranks += sum(1 for _, y in pairs[i:j] if y) * (i + j + 1) / 2
        i = j
    return (ranks - positives * (positives + 1) / 2) / (positives * negatives)


def first_detections(alerts: Iterable[Scored], rule_patterns: Mapping[str, Iterable[str]],
                     labels: list[Label]) -> dict[int, Scored]:
    """Per label found (its index), the earliest alert in event time that matches it: detection delay."""
    matcher = Matcher(labels)
    first: dict[int, Scored] = {}
    for alert in alerts:
        for pattern in rule_patterns.get(alert.rule_id, ()):
            for i in matcher.matches(alert, pattern):
                if i not in first or alert.event_time < first[i].event_time:
                    first[i] = alert
    return first
