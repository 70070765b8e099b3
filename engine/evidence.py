"""The triggering events as an alert carries them: each event's own fields, as
it came in (not the context the engine added), so an analyst reading an alert
needs nothing else to see what happened."""

from __future__ import annotations

from typing import Any

from engine.context import PartyView, RelationView, SensorView, TxView
from engine.records import Party, Relation
from engine.tracing import Hop


def event_record(event: Any) -> dict[str, Any]:
    """An event's own fields for the alert: what came in, not the context the engine added."""
    if isinstance(event, dict):
        return event
    if isinstance(event, TxView):
        return {"stream": "transactions", "id": event.id, "ts": event.ts.isoformat(), "from_account": event.from_account,
                "to_account": event.to_account, "payer": event.payer_id, "payee": event.payee_id,
                "amount": event.amount, "currency": event.currency, "channel": event.channel, "mcc": event.mcc,
                "memo": event.memo, "loan_id": event.loan_id}
    if isinstance(event, SensorView):
        return {"stream": "sensors", "id": event.id, "ts": event.ts.isoformat(), "site_id": event.site_id,
                "kind": event.kind, "value": event.value, "unit": event.unit, "gateway_id": event.gateway_id}
    if isinstance(event, Hop):  # an earlier payment of a traced route: the loan money it moved
        return {"stream": "transactions", "id": event.tx_id, "ts": event.ts.isoformat(), "payer": event.from_party,
                "payee": event.to_party, "loan_money": round(event.amount, 2)}
    if isinstance(event, (Relation, RelationView)):
        src, dst = (event.src, event.dst) if isinstance(event, Relation) else (event.src.id, event.dst.id)
        start = event.valid_from.isoformat() if isinstance(event, Relation) else event.ts.date().isoformat()
        return {"stream": "relations", "id": event.id, "kind": event.kind, "src": src, "dst": dst,
                "amount": event.amount, "valid_from": start}
    if isinstance(event, (Party, PartyView)):
        p = event.borrower if isinstance(event, PartyView) else event
        return {"stream": "parties", "id": p.id, "kind": p.kind, "sector": p.sector, "region": p.region,
                "registered_on": p.registered_on.isoformat()}
    raise TypeError(f"not an event: {type(event).__name__}")
