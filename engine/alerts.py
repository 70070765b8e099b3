"""From a rule match to an Alert: deterministic id, score, level, evidence."""

from __future__ import annotations

import hashlib
from datetime import datetime

from engine.context import TxView
from engine.records import Alert, Evidence
from engine.rules.compiler import CompiledRule, Match


def alert_id(rule_id: str, entity: str, trigger: str) -> str:
    """Same rule, entity and triggering event (or window) -> same id, so a
    replay or a restart after a crash never stores a second copy."""
    return hashlib.sha256(f"{rule_id}\x1f{entity}\x1f{trigger}".encode()).hexdigest()[:24]


def make_alert(rule: CompiledRule, pack_version: str, view: TxView, match: Match, detected_at: datetime) -> Alert:
    loan_id = view.loan.id if view.loan is not None else None
    spec = rule.spec
    return Alert(
        id=alert_id(spec.id, loan_id or view.borrower.id, view.id),
        rule_id=spec.id,
        rule_version=spec.version,
        pack_version=pack_version,
        score=spec.risk_score,
        level=spec.severity,
        borrower_id=view.borrower.id,
        loan_id=loan_id,
        event_time=view.ts,
        detected_at=detected_at,
        summary=match.summary,
        evidence=Evidence(event_ids=[view.id], values=match.values, conditions=match.conditions),
        shadow=spec.status == "experimental",
    )
