"""From a rule's finding (Hit) to an Alert: deterministic id, score, level, evidence."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from engine.evidence import event_record
from engine.records import Alert, Evidence
from engine.rules.compiler import CompiledRule
from engine.rules.kinds import EVIDENCE_EVENTS, Hit
from engine.scoring import combine, graph_signals, higher, level_of


def alert_id(rule_id: str, entity: str, trigger: str) -> str:
    """Same rule, entity and triggering event (or window start) -> same id, so a
    replay or a restart after a crash never stores a second copy."""
    return hashlib.sha256(f"{rule_id}\x1f{entity}\x1f{trigger}".encode()).hexdigest()[:24]


def make_alert(rule: CompiledRule, pack: Any, hit: Hit, detected_at: datetime, ref: Any,
               id_: str | None = None) -> Alert:
    """`pack` gives the version and the scoring weights, `ref` the loan's class and the guarantee graph."""
    spec = rule.spec
    loan = ref.loans.get(hit.loan_id) if hit.loan_id is not None else None
    circle, spread = graph_signals(ref, hit.borrower_id, hit.event_time.date(), pack.scoring.reach)
    base = spec.risk_score if hit.score is None else hit.score  # contagion: decayed per step
    score, parts = combine(pack.scoring, base, hit.model_score, circle, spread,
                           loan.risk_class if loan is not None else None)
    level = level_of(score) if hit.score is not None else higher(spec.severity, level_of(score))
    values = {**hit.values, **{f"score.{k}": v for k, v in parts.items()}} if len(parts) > 1 else hit.values
    return Alert(
        id=id_ or alert_id(spec.id, hit.key, hit.trigger),
        rule_id=spec.id,
        rule_version=spec.version,
        pack_version=pack.version,
        model_versions=hit.models,
        score=score,
        level=level,
        borrower_id=hit.borrower_id,
        loan_id=hit.loan_id,
        event_time=hit.event_time,
        detected_at=detected_at,
        summary=hit.summary,
        evidence=Evidence(event_ids=hit.event_ids, values=values, conditions=hit.conditions, path=hit.path,
                          events=[event_record(e) for e in hit.events[-EVIDENCE_EVENTS:]]),
        shadow=spec.status == "experimental",
    )
