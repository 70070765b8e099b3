"""The alert lifecycle analysts work: signal raised, identified, investigated, disposed, released.

    new -> acknowledged -> investigating -> confirmed | dismissed -> closed

A confirmed alert carries what the lender does about it (a disposition); a
dismissed one is a false positive. Both feed the precision of backtests. Pure
rules only: the store applies them under its lock and audits every change.
"""

from __future__ import annotations

from typing import get_args

from engine.records import AlertStatus

STATUSES: tuple[str, ...] = get_args(AlertStatus)
NEXT: dict[str, tuple[str, ...]] = {
    "new": ("acknowledged",),
    "acknowledged": ("investigating",),
    "investigating": ("confirmed", "dismissed"),
    "confirmed": ("closed",),
    "dismissed": ("closed",),
    "closed": (),
}
FALSE_POSITIVE = "false_positive"
DISPOSITIONS = ("call_in_loan", "add_collateral", "raise_risk_class", "restructure", "refer_to_legal", FALSE_POSITIVE)
OPEN = tuple(s for s in STATUSES if s != "closed")


def refusal(current: str, to: str, disposition: str | None) -> str | None:
    """Why moving an alert from `current` to `to` is refused, or None when it is legal."""
    legal = NEXT.get(current, ())
    if to not in legal:
        allowed = ", ".join(legal) or "none: it is closed"
        return f"cannot move an alert from {current} to {to}; from {current} it can go to: {allowed}"
    if to == "confirmed" and disposition in (None, FALSE_POSITIVE):
        return f"confirming needs a disposition: one of {', '.join(DISPOSITIONS[:-1])}"
    if to == "dismissed" and disposition not in (None, FALSE_POSITIVE):
        return f"a dismissed alert is a {FALSE_POSITIVE}; confirm it to record {disposition}"
    if to not in ("confirmed", "dismissed") and disposition is not None:
        return f"a disposition belongs to confirming or dismissing, not to {to}"
    return None


def disposition_of(to: str, disposition: str | None) -> str | None:
    return FALSE_POSITIVE if to == "dismissed" else disposition
