"""From a rule's finding (Hit) to an Alert: deterministic id, score, level, evidence."""

from __future__ import annotations

import hashlib
from datetime import datetime
from engine.evidence import event_record
from engine.records import Alert, Evidence
from engine.rules.compiler import CompiledRule
from engine.rules.kinds import EVIDENCE_EVENTS, Hit


def alert_id(rule_id: str, entity: str, trigger: str) -> str:
    """Same rule, entity and triggering event (or window start) -> same id, so a
    replay or a restart after a crash never stores a second copy."""
    return hashlib.sha256(f"{rule_id}\x1f{entity}\x1f{trigger}".encode()).hexdigest()[:24]


def level_of(score: int) -> str:
    """Level for a score computed at run time (contagion); rules set theirs as severity."""
    return "critical" if score >= 80 else "high" if score >= 60 else "medium" if score >= 40 else "low"


def make_alert(rule: CompiledRule, pack_version: str, hit: Hit, detected_at: datetime, id_: str | None = None) -> Alert:
    spec = rule.spec
    return Alert(
        id=id_ or alert_id(spec.id, hit.key, hit.trigger),
        rule_id=spec.id,
        rule_version=spec.version,
        pack_version=pack_version,
        score=spec.risk_score if hit.score is None else hit.score,
        level=spec.severity if hit.score is None else level_of(hit.score),
        borrower_id=hit.borrower_id,
        loan_id=hit.loan_id,
        event_time=hit.event_time,
        detected_at=detected_at,
        summary=hit.summary,
        evidence=Evidence(event_ids=hit.event_ids, values=hit.values, conditions=hit.conditions, path=hit.path,
                          events=[event_record(e) for e in hit.events[-EVIDENCE_EVENTS:]]),
        shadow=spec.status == "experimental",
    )
