"""The workbench over one store: what the API, the page and the CLI on a file
all call, so the three give the same answers."""

from __future__ import annotations

import re
import threading
from datetime import timezone
from typing import Any

import msgspec

from connectors.alert_store import AlertQuery, AlertStore
from connectors.workbench import Token, Workbench
from dataflows.api.schema import (
    AlertDetail, AlertPage, AlertRow, AuditEntry, Count, DayCount, DeadLetterRow, Graph, GraphEdge, NewToken, Overview,
    PackRow, State, TokenInfo,
)
from engine import lifecycle

# The lines of Evidence.path, as the engine writes them (engine/tracing.py, engine/rules/kinds.py).
_PAYMENT = re.compile(r"^(?P<ref>\S+): (?P<src>\S+) -> (?P<dst>\S+) (?P<amount>[\d.]+) at (?P<at>\S+)$")
_GUARANTEE = re.compile(r"^(?P<src>\S+) guarantees (?P<dst>\S+) for (?P<amount>[\d.]+) \((?P<ref>[^)]*)\)$")
_SHARED = re.compile(r"^(?P<src>\S+) and (?P<dst>\S+) share (?P<what>\w+) ")


def graph_of(path: list[str]) -> Graph:
    """Parties and edges of a money route, a guarantee circle or chain, or a shared identifier."""
    nodes: list[str] = []
    edges: list[GraphEdge] = []
    notes: list[str] = []
    for line in path:
        if m := _PAYMENT.match(line):
            edge = GraphEdge(src=m["src"], dst=m["dst"], kind="payment", label=f"{m['amount']} · {m['at'][:10]}",
                             ref=m["ref"])
        elif m := _GUARANTEE.match(line):
            edge = GraphEdge(src=m["src"], dst=m["dst"], kind="guarantee", label=m["amount"], ref=m["ref"])
        elif m := _SHARED.match(line):
            edge = GraphEdge(src=m["src"], dst=m["dst"], kind="shared", label=m["what"])
        else:
            notes.append(line)
            continue
        edges.append(edge)
        nodes += [n for n in (edge.src, edge.dst) if n not in nodes]
    circle = len(edges) > 2 and all(e.kind == "guarantee" for e in edges) and edges[0].src == edges[-1].dst
    return Graph(nodes=nodes, edges=edges, circle=circle, notes=notes)


class Service:
    """One store connection for the process's analysts, used under a lock (DuckDB
    connections are not for concurrent use); detection writes through its own."""

    def __init__(self, store: AlertStore):
        self.store = store
        self.bench = Workbench(store)
        self.lock = threading.Lock()

    def queue(self, q: AlertQuery) -> AlertPage:
        q = msgspec.structs.replace(q, since=_utc(q.since), until=_utc(q.until))
        with self.lock:
            total, rows = self.store.page(q)
        return AlertPage(total=total, limit=q.limit, offset=q.offset, items=[msgspec.convert(r, AlertRow) for r in rows])

    def detail(self, alert_id: str) -> AlertDetail | None:
        with self.lock:
            alert = self.store.alert(alert_id)
            if alert is None:
                return None
            rule = self.store.rule_text(alert["rule_id"], alert["rule_version"])
            audit = self.bench.audit(alert["id"])
            now = self.store.borrower_score(alert["borrower_id"])
        return msgspec.convert({
            **alert, "borrower_score_now": now, "rule": rule, "graph": graph_of(alert["evidence"].get("path") or []),
            "audit": [msgspec.convert(a, AuditEntry) for a in audit], "next": list(lifecycle.NEXT[alert["status"]]),
        }, AlertDetail, from_attributes=True)

    def transition(self, alert_id: str, to: str, actor: str, version: int, reason: str = "",
                   disposition: str | None = None) -> State:
        with self.lock:
            return _state(self.bench.transition(alert_id, to, actor, version, reason, disposition))

    def assign(self, alert_id: str, assignee: str | None, actor: str, version: int, reason: str = "") -> State:
        with self.lock:
            return _state(self.bench.assign(alert_id, assignee, actor, version, reason))

    def comment(self, alert_id: str, actor: str, text: str) -> State:
        with self.lock:
            return _state(self.bench.comment(alert_id, actor, text))

    def overview(self) -> Overview:
        with self.lock:
            o = self.store.overview()

        def counts(d: dict[str, int]) -> list[Count]:
            return [Count(key=k, alerts=v) for k, v in d.items()]

        return Overview(by_level=counts(o["by_level"]), by_rule=counts(o["by_rule"]), by_status=counts(o["by_status"]),
                        per_day=[DayCount(**r) for r in o["per_day"]],
                        top_borrowers=[Count(key=r["borrower_id"], alerts=r["open_alerts"]) for r in o["top_borrowers"]])

    def dead_letters(self, limit: int, offset: int) -> list[DeadLetterRow]:
        with self.lock:
            return [DeadLetterRow(**r) for r in self.store.dead_letters(limit, offset)]

    def packs(self) -> list[PackRow]:
        with self.lock:
            return [PackRow(**r) for r in self.store.packs()]

    def tokens(self) -> list[TokenInfo]:
        with self.lock:
            return [_token(t) for t in self.bench.tokens()]

    def create_token(self, name: str, role: str, actor: str, expires_days: float | None) -> NewToken:
        with self.lock:
            secret, token = self.bench.create_token(name, role, actor, expires_days)
        return NewToken(token=secret, info=_token(token))

    def revoke_token(self, token_id: str, actor: str) -> TokenInfo:
        with self.lock:
            return _token(self.bench.revoke_token(token_id, actor))

    def authenticate(self, secret: str) -> Token | None:
        with self.lock:
            return self.bench.authenticate(secret)


def _state(s: dict[str, Any]) -> State:
    return State(status=s["status"], assignee=s["assignee"], disposition=s["disposition"], version=s["version"],
                 updated_by=s["updated_by"])


def _token(t: Token) -> TokenInfo:
    return msgspec.convert(t, TokenInfo, from_attributes=True)


def _utc(ts):
    return ts.replace(tzinfo=timezone.utc) if ts is not None and ts.tzinfo is None else ts
