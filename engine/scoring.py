"""One score per alert, 0-100, from everything known about the finding.

Signals, each 0..1: the rule's own risk_score / 100 (for a contagion finding the
score it was given, decayed per step), the model's normalised score (model
rules), whether the borrower sits in a guarantee circle on the alert's day, how
many parties its trouble can reach within two guarantees (as a share of
`reach`), and the loan's five-level risk class. Each is multiplied by its
weight from the pack's `scoring:` section and they are joined as independent
evidence, 100 x (1 - prod(1 - w x s)): a lone rule hit keeps its risk_score,
every further signal raises the score, and it never passes 100. The level is
the higher of the rule's severity and the level of the score.

The borrower's combined score joins the scores of the borrower's open alerts
the same way (`borrower_score`); the alert store computes it as alerts arrive,
since only the store knows which alerts an analyst has closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from engine.rules.spec import ScoringSpec

LEVELS = ("low", "medium", "high", "critical")
CIRCLE_SEARCH = 6  # largest circle looked for (guarantees)


def level_of(score: int) -> str:
    return "critical" if score >= 80 else "high" if score >= 60 else "medium" if score >= 40 else "low"


def higher(a: str, b: str) -> str:
    return a if LEVELS.index(a) >= LEVELS.index(b) else b


def join(parts: Iterable[float]) -> int:
    """Independent evidence: 100 x (1 - prod(1 - p)), each p in 0..1."""
    keep = 1.0
    for p in parts:
        keep *= 1.0 - min(max(p, 0.0), 1.0)
    return round(100 * (1.0 - keep))


def graph_signals(ref, party: str, day: date, reach: int) -> tuple[bool, float]:
    """(in a guarantee circle, share of `reach` parties within two guarantees) as of `day`."""
    graph = ref.guarantees
    if party not in graph:
        return False, 0.0
    circle = any(graph.cycle_through(party, other, CIRCLE_SEARCH, as_of=day) is not None
                 for other in graph.gives(party, day))
    linked = {p for path in graph.contagion(party, 2, as_of=day) for p in path} - {party}
    return circle, min(len(linked) / reach, 1.0)


def combine(s: ScoringSpec, rule_score: float, model_score: float | None, circle: bool, spread: float,
            risk_class: str | None) -> tuple[int, dict[str, float]]:
    """The score and its parts (weight x signal), for the alert's evidence."""
    parts = {
        "rule": s.rule * rule_score / 100,
        "model": s.model * (model_score or 0.0),
        "circle": s.circle * circle,
        "contagion": s.contagion * spread,
        "risk_class": getattr(s.risk_class, risk_class or "normal"),
    }
    return join(parts.values()), {k: round(v, 4) for k, v in parts.items() if v}


def borrower_score(open_scores: Iterable[int]) -> int:
    """The borrower's combined score over its open alerts."""
    return join(s / 100 for s in open_scores)
