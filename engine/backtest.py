"""What a backtest reports, as tables (lists of rows) that the report draws and
notebooks read: alerts per rule, level and day; precision, recall and F1 per
pattern and per rule with Wilson intervals; detection delay; score
distributions; the borrowers with most alerts; and the alerts two packs
disagree on.

Scoring is engine.evaluate's, the one the test suite's recall checks use, so a
backtest and the tests report the same figures on the same alerts. Detection
delay of a found label is the event time of the first alert matching it less
the label's first event time.

Labels from analysts' dispositions (confirmed and dismissed alerts in an alert
store) only say something about what was reviewed, so precision is then
measured on the backtest's alerts about reviewed cases (an alert that names an
event of a reviewed alert, or is one), and recall on the confirmed cases.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from engine.evaluate import Score, Scored, first_detections, score
from engine.records import Label

TOP_BORROWERS = 15
COMPARED = ("level", "score", "summary", "event_time", "loan_id", "event_ids")  # what makes a kept alert "changed"


@dataclass(frozen=True)
class Found:
    """One stored alert, as a backtest looks at it."""

    id: str
    rule_id: str
    rule_version: int
    level: str
    score: int
    borrower_id: str
    loan_id: str | None
    event_time: datetime
    summary: str
    event_ids: tuple[str, ...]

    def scored(self) -> Scored:
        return Scored(self.rule_id, list(self.event_ids), self.borrower_id, self.loan_id, self.event_time)


def volume(alerts: Iterable[Found]) -> list[dict]:
    """Alerts per day (UTC), rule and level."""
    counts = Counter((a.event_time.date().isoformat(), a.rule_id, a.level) for a in alerts)
    return [{"day": d, "rule_id": r, "level": lv, "alerts": n} for (d, r, lv), n in sorted(counts.items())]


def score_distribution(alerts: Iterable[Found]) -> list[dict]:
    counts = Counter((a.rule_id, a.level, a.score) for a in alerts)
    return [{"rule_id": r, "level": lv, "score": s, "alerts": n} for (r, lv, s), n in sorted(counts.items())]


def top_borrowers(alerts: Iterable[Found], n: int = TOP_BORROWERS) -> list[dict]:
    by: dict[str, list[Found]] = defaultdict(list)
    for a in alerts:
        by[a.borrower_id].append(a)
    rows = [{"borrower_id": b, "alerts": len(xs), "rules": ",".join(sorted({x.rule_id for x in xs})),
             "max_score": max(x.score for x in xs)} for b, xs in by.items()]
    return sorted(rows, key=lambda r: (-r["alerts"], -r["max_score"], r["borrower_id"]))[:n]


def _row(s: Score, **key) -> dict:
    p, r = s.precision, s.recall
    return {**key, "hops": s.hops, "labels": s.labels, "found": s.found, "recall": r,
            "recall_low": s.recall_interval[0], "recall_high": s.recall_interval[1],
            "alerts": s.alerts, "true_alerts": s.true_alerts, "precision": p,
            "precision_low": s.precision_interval[0] if s.alerts else None,
            "precision_high": s.precision_interval[1] if s.alerts else None,
            "f1": 2 * p * r / (p + r) if p + r else 0.0}


def by_pattern(alerts: list[Found], rule_patterns: Mapping[str, list[str]], labels: list[Label]) -> list[dict]:
    return [_row(s, pattern=s.pattern) for s in score([a.scored() for a in alerts], rule_patterns, labels)]


def by_rule(alerts: list[Found], rule_patterns: Mapping[str, list[str]], labels: list[Label]) -> list[dict]:
    """Each rule on its own against the labels of its patterns (one row per rule and pattern)."""
    mine: dict[str, list[Scored]] = defaultdict(list)
    for a in alerts:
        mine[a.rule_id].append(a.scored())
    rows = []
    for rule, patterns in sorted(rule_patterns.items()):
        for s in score(mine.get(rule, []), {rule: patterns}, labels):
            if s.hops is None:
                rows.append(_row(s, rule_id=rule, pattern=s.pattern))
    return rows


def detection_delay(alerts: list[Found], rule_patterns: Mapping[str, list[str]], labels: list[Label]) -> list[dict]:
    first = first_detections([a.scored() for a in alerts], rule_patterns, labels)
    rows = []
    for i, alert in sorted(first.items()):
        label = labels[i]
        rows.append({"pattern": label.pattern, "borrower_id": label.borrower_id, "loan_id": label.loan_id,
                     "first_event_time": label.first_event_time, "first_alert_time": alert.event_time,
                     "rule_id": alert.rule_id,
                     "delay_hours": (alert.event_time - label.first_event_time).total_seconds() / 3600})
    return rows


def reviewed_only(alerts: list[Found], reviewed: list[Found]) -> list[Found]:
    """The alerts about cases analysts reviewed: the same alert, or one naming an event of one."""
    ids = {a.id for a in reviewed}
    events = {e for a in reviewed for e in a.event_ids}
    return [a for a in alerts if a.id in ids or events.intersection(a.event_ids)]


def diff(base: list[Found], other: list[Found]) -> list[dict]:
    """Alerts `other` raises and `base` does not (gained), the reverse (lost), and
    those both raise (same id: rule, entity, trigger) that differ in what they say (changed)."""
    a, b = {x.id: x for x in base}, {x.id: x for x in other}
    rows = []
    for change, ids in (("gained", b.keys() - a.keys()), ("lost", a.keys() - b.keys()),
                        ("changed", {i for i in a.keys() & b.keys()
                                     if any(getattr(a[i], k) != getattr(b[i], k) for k in COMPARED)})):
        for i in ids:
            x, y = a.get(i), b.get(i)
            one = y or x
            rows.append({"change": change, "alert_id": i, "rule_id": one.rule_id, "borrower_id": one.borrower_id,
                         "loan_id": one.loan_id, "event_time": one.event_time,
                         "level_base": x.level if x else None, "level_compared": y.level if y else None,
                         "score_base": x.score if x else None, "score_compared": y.score if y else None,
                         "summary": one.summary})
    return sorted(rows, key=lambda r: (r["rule_id"], r["change"], r["event_time"], r["alert_id"]))


def diff_by_rule(rows: list[dict]) -> list[dict]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        counts[r["rule_id"]][r["change"]] += 1
    return [{"rule_id": rule, "gained": c["gained"], "lost": c["lost"], "changed": c["changed"]}
            for rule, c in sorted(counts.items())]
