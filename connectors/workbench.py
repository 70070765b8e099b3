"""The analysts' side of the store: lifecycle changes, assignments, comments,
their append-only audit, and the API's bearer tokens.

Every change checks and writes under one lock and one transaction, against the
version the analyst saw: of two analysts changing the same alert at once, one
wins and the other gets a `Conflict` naming who changed it. Audit rows are
only ever inserted. Tokens are stored as SHA-256 hashes: they are 256 random
bits, so a slow password hash would add nothing but latency to every request.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from connectors.alert_store import AlertStore
from engine import lifecycle

ROLES = ("viewer", "analyst", "admin")  # each can do what the ones before it can
_write_lock = threading.Lock()  # one writer of analysts' tables per process (DuckDB: one writing process)


class NotFound(LookupError):
    pass


class Conflict(Exception):
    """The change does not fit the alert's current state (HTTP 409)."""


class Token(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class Workbench:
    def __init__(self, store: AlertStore):
        self.store = store

    # --- reading ----------------------------------------------------------

    def audit(self, alert_id: str) -> list[dict[str, Any]]:
        return self.store._dicts("SELECT seq, changed_at, actor, action, from_status, to_status, detail FROM audit "
                                 "WHERE alert_id = ? ORDER BY seq", [alert_id])

    def audit_count(self) -> int:
        return self.store._sql("SELECT count(*) FROM audit")[0][0]

    # --- lifecycle --------------------------------------------------------

    def transition(self, alert_id: str, to: str, actor: str, version: int, reason: str = "",
                   disposition: str | None = None) -> dict[str, Any]:
        def change(state: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
            why = lifecycle.refusal(state["status"], to, disposition)
            if why:
                raise Conflict(why)
            kept = lifecycle.disposition_of(to, disposition)
            detail = reason if kept is None else f"{kept}: {reason}" if reason else kept
            return {"status": to, "disposition": kept or state["disposition"]}, ("transition", state["status"], to, detail)

        return self._change(alert_id, actor, version, change)

    def assign(self, alert_id: str, assignee: str | None, actor: str, version: int, reason: str = "") -> dict[str, Any]:
        def change(state: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
            if state["status"] == "closed":
                raise Conflict("a closed alert is not assigned")
            detail = f"{state['assignee'] or '-'} -> {assignee or '-'}" + (f": {reason}" if reason else "")
            return {"assignee": assignee}, ("assign", state["status"], state["status"], detail)

        return self._change(alert_id, actor, version, change)

    def comment(self, alert_id: str, actor: str, text: str) -> dict[str, Any]:
        """A note on the alert: appended, never conflicting, the state unchanged."""
        with _write_lock:
            state = self._state(alert_id)
            self._audit(actor, "comment", alert_id, state["status"], state["status"], text)
            return state

    def _state(self, alert_id: str) -> dict[str, Any]:
        rows = self.store._dicts(
            "SELECT coalesce(s.status, a.status) AS status, s.assignee, s.disposition, coalesce(s.version, 0) AS "
            "version, s.updated_by FROM alerts a LEFT JOIN alert_state s ON s.alert_id = a.id WHERE a.id = ?",
            [alert_id])
        if not rows:
            raise NotFound(f"no alert {alert_id}")
        return rows[0]

    def _change(self, alert_id: str, actor: str, version: int, change) -> dict[str, Any]:
        with _write_lock:
            state = self._state(alert_id)
            if state["version"] != version:
                raise Conflict(f"alert {alert_id} was changed by {state['updated_by']} (now version "
                               f"{state['version']}, status {state['status']}) since you loaded version {version}")
            updates, (action, frm, to, detail) = change(state)
            new = {**state, **updates, "version": version + 1, "updated_by": actor}
            now = datetime.now(timezone.utc)
            con = self.store.con
            con.execute("BEGIN")
            try:
                con.execute("INSERT INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET "
                            "status = excluded.status, assignee = excluded.assignee, disposition = excluded.disposition, "
                            "version = excluded.version, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                            [alert_id, new["status"], new["assignee"], new["disposition"], new["version"], now, actor])
                self._audit(actor, action, alert_id, frm, to, detail, now)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return new

    def _audit(self, actor: str, action: str, alert_id: str | None, frm: str | None, to: str | None, detail: str,
               at: datetime | None = None) -> None:
        self.store.con.execute(
            "INSERT INTO audit (changed_at, actor, action, alert_id, from_status, to_status, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [at or datetime.now(timezone.utc), actor, action, alert_id, frm, to, detail])

    # --- tokens -----------------------------------------------------------

    def create_token(self, name: str, role: str, actor: str, expires_days: float | None = None) -> tuple[str, Token]:
        """A new token; the secret is returned once and only its hash is kept."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
        secret = "fw_" + secrets.token_urlsafe(32)
        digest = _hash(secret)
        now = datetime.now(timezone.utc)
        token = Token(id=digest[:12], name=name, role=role, created_at=now,
                      expires_at=now + timedelta(days=expires_days) if expires_days else None, revoked_at=None)
        with _write_lock:
            self.store.con.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                                   [token.id, digest, name, role, now, token.expires_at])
            self._audit(actor, "token.create", None, None, None, f"{token.id} {name} ({role})", now)
        return secret, token

    def tokens(self) -> list[Token]:
        rows = self.store._dicts("SELECT id, name, role, created_at, expires_at, revoked_at FROM tokens "
                                 "ORDER BY created_at", [])
        return [Token(**r) for r in rows]

    def revoke_token(self, token_id: str, actor: str) -> Token:
        with _write_lock:
            rows = [t for t in self.tokens() if t.id == token_id]
            if not rows:
                raise NotFound(f"no token {token_id}")
            if rows[0].revoked_at is None:
                now = datetime.now(timezone.utc)
                self.store.con.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", [now, token_id])
                self._audit(actor, "token.revoke", None, None, None, f"{token_id} {rows[0].name}", now)
        return next(t for t in self.tokens() if t.id == token_id)

    def authenticate(self, secret: str) -> Token | None:
        """The live token with this secret, or None (unknown, expired or revoked)."""
        rows = self.store._dicts("SELECT id, name, role, created_at, expires_at, revoked_at FROM tokens "
                                 "WHERE hash = ?", [_hash(secret)])
        if not rows:
            return None
        token = Token(**rows[0])
        if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= datetime.now(timezone.utc)):
            return None
        return token


def allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
