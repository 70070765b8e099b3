"""The CLI's two ways to the workbench, with the same methods and answers (JSON
builtins): through a running process's API, or straight on the store file."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import httpx
import msgspec

from connectors.alert_store import AlertQuery, AlertStore
from connectors.workbench import Conflict, NotFound
from dataflows.api.service import Service


class WorkbenchError(Exception):
    """One line for the user: refused, not found, or unreachable."""


class Remote:
    def __init__(self, url: str, token: str | None, verify: str | bool = True):
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=verify)

    def answers(self) -> bool:
        try:
            self.http.get("/openapi.json", timeout=3)
            return True
        except httpx.TransportError:
            return False

    def _call(self, method: str, path: str, **kw) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise WorkbenchError(f"the API at {self.url} does not answer: {e}") from None
        if r.status_code == 401:
            raise WorkbenchError(f"the API at {self.url} refused the token: set FUNDWATCH_TOKEN (or --token) "
                                 "to a live token (`fundwatch tokens create`)")
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise WorkbenchError(f"{r.status_code}: {detail}")
        return r.json()

    def queue(self, **filters: Any) -> dict:
        return self._call("GET", "/api/alerts", params={k: v for k, v in filters.items() if v is not None})

    def detail(self, alert_id: str) -> dict:
        return self._call("GET", f"/api/alerts/{alert_id}")

    def transition(self, alert_id: str, **body: Any) -> dict:
        return self._call("POST", f"/api/alerts/{alert_id}/transition", json=body)

    def assign(self, alert_id: str, **body: Any) -> dict:
        return self._call("POST", f"/api/alerts/{alert_id}/assign", json=body)

    def comment(self, alert_id: str, text: str) -> dict:
        return self._call("POST", f"/api/alerts/{alert_id}/comments", json={"text": text})

    def tokens(self) -> list:
        return self._call("GET", "/api/tokens")

    def create_token(self, name: str, role: str, expires_days: float | None) -> dict:
        return self._call("POST", "/api/tokens", json={"name": name, "role": role, "expires_days": expires_days})

    def revoke_token(self, token_id: str) -> dict:
        return self._call("POST", f"/api/tokens/{token_id}/revoke")

    def close(self) -> None:
        self.http.close()


class Local:
    """On the file: the same service the API runs, acting as `cli:<user>`."""

    def __init__(self, db: Path):
        self.service = Service(AlertStore(db))
        self.actor = f"cli:{getpass.getuser()}"

    def _call(self, fn, *args: Any) -> Any:
        try:
            return msgspec.to_builtins(fn(*args))
        except (Conflict, NotFound, ValueError) as e:
            raise WorkbenchError(str(e)) from None

    def queue(self, **filters: Any) -> dict:
        try:
            q = msgspec.convert({k: v for k, v in filters.items() if v is not None}, AlertQuery, strict=False)
        except msgspec.ValidationError as e:
            raise WorkbenchError(str(e)) from None
        return self._call(self.service.queue, q)

    def detail(self, alert_id: str) -> dict:
        found = self.service.detail(alert_id)
        if found is None:
            raise WorkbenchError(f"no single alert with id {alert_id!r}")
        return msgspec.to_builtins(found)

    def transition(self, alert_id: str, to: str, version: int, reason: str = "",
                   disposition: str | None = None) -> dict:
        return self._call(self.service.transition, alert_id, to, self.actor, version, reason, disposition)

    def assign(self, alert_id: str, assignee: str | None, version: int, reason: str = "") -> dict:
        return self._call(self.service.assign, alert_id, assignee, self.actor, version, reason)

    def comment(self, alert_id: str, text: str) -> dict:
        return self._call(self.service.comment, alert_id, self.actor, text)

    def tokens(self) -> list:
        return self._call(self.service.tokens)

    def create_token(self, name: str, role: str, expires_days: float | None) -> dict:
        return self._call(self.service.create_token, name, role, self.actor, expires_days)

    def revoke_token(self, token_id: str) -> dict:
        return self._call(self.service.revoke_token, token_id, self.actor)

    def close(self) -> None:
        self.service.store.close()
