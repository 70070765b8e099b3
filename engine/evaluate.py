"""Precision and recall of alerts against the simulator's (or an analyst's) labels.

An alert counts for a pattern when its rule is tagged `pattern.<name>`; it is a
true positive when one of its evidence events belongs to a label of that
pattern. A label is found when any such alert touches one of its events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from engine.records import Label


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


def score(
    alerts: Iterable[tuple[str, list[str]]],  # (rule id, evidence event ids)
    rule_patterns: Mapping[str, Iterable[str]],
    labels: list[Label],
) -> list[Score]:
    """A Score per pattern the rules cover, plus one per hop count where labels differ in hops."""
    covered = sorted({p for patterns in rule_patterns.values() for p in patterns})
    label_of_event: dict[tuple[str, str], set[int]] = defaultdict(set)  # (pattern, event) -> label indexes
    for i, label in enumerate(labels):
        for event in label.event_ids:
            label_of_event[(label.pattern, event)].add(i)

    alert_count: dict[str, int] = defaultdict(int)
    true_count: dict[str, int] = defaultdict(int)
    found: set[int] = set()
    for rule_id, event_ids in alerts:
        for pattern in rule_patterns.get(rule_id, ()):
            alert_count[pattern] += 1
            hit = set().union(*(label_of_event.get((pattern, e), set()) for e in event_ids))
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
