"""The workbench's HTTP API (Litestar, msgspec schemas) and its web page.

Every /api route needs `Authorization: Bearer <token>`: 401 without a live
token (unknown, expired or revoked), 403 when its role is too low. Changes
name the token in the audit. The page is static files from this package with
a Content-Security-Policy of 'self': it loads nothing from the network.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import structlog
from litestar import Litestar, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.static_files import create_static_files_router

from connectors.alert_store import AlertQuery
from connectors.workbench import Conflict, NotFound, Token, allows
from dataflows.api.schema import (
    AlertDetail, AlertPage, Assignment, Comment, DeadLetterRow, Me, NewToken, Overview, PackRow, State, TokenInfo,
    TokenRequest, Transition,
)
from dataflows.api.service import Service
from engine.records import AlertStatus, Level

STATIC = Path(__file__).parent / "static"
log = structlog.get_logger()

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="page size")]
Offset = Annotated[int, QueryParameter(ge=0, le=100_000_000)]
Filter = Annotated[str | None, QueryParameter(min_length=1, max_length=200)]
_ERRORS = {401: "no live token", 403: "the token's role does not allow this", 404: "no such alert or token",
           409: "the change does not fit the current state (stale version or illegal transition)"}


def _guard(role: str):
    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        header = connection.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        token = connection.app.state.service.authenticate(secret.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            raise NotAuthorizedException("a live bearer token is needed (Authorization: Bearer fw_...)",
                                         headers={"WWW-Authenticate": "Bearer"})
        if not allows(token.role, role):
            raise PermissionDeniedException(f"this needs the {role} role; the token {token.name} is {token.role}")
        connection.state.token = token

    return [guard]


def _service(request: Request) -> Service:
    return request.app.state.service


def _who(request: Request) -> str:
    token: Token = request.state.token
    return token.name


def _responses(*codes: int) -> dict[int, Any]:
    return {c: ResponseSpec(data_container=dict[str, Any], description=_ERRORS[c]) for c in codes}


READ = {"guards": _guard("viewer"), "sync_to_thread": True, "responses": _responses(401)}
CHANGE = {"guards": _guard("analyst"), "sync_to_thread": True, "responses": _responses(401, 403, 404, 409)}
ADMIN = {"guards": _guard("admin"), "sync_to_thread": True, "responses": _responses(401, 403, 404)}


@get("/api/alerts", **READ)
def list_alerts(
    request: Request, level: FromQuery[Level | None] = None, rule: Filter = None, borrower: Filter = None,
    loan: Filter = None, status: FromQuery[AlertStatus | None] = None, assignee: Filter = None,
    since: FromQuery[datetime | None] = None, until: FromQuery[datetime | None] = None, text: Filter = None,
    limit: Limit = 50, offset: Offset = 0,
) -> AlertPage:
    """Alerts matching every given filter, newest event first, with the total that match."""
    return _service(request).queue(AlertQuery(level=level, rule=rule, borrower=borrower, loan=loan, status=status,
                                              assignee=assignee, since=since, until=until, text=text, limit=limit,
                                              offset=offset))


@get("/api/alerts/{alert_id:str}", **{**READ, "responses": _responses(401, 404)})
def show_alert(request: Request, alert_id: FromPath[str]) -> AlertDetail:
    """One alert with its evidence, the rule's notes, its route or guarantee path as a graph, and its audit."""
    detail = _service(request).detail(alert_id)
    if detail is None:
        raise NotFoundException(f"no alert {alert_id}")
    return detail


@post("/api/alerts/{alert_id:str}/transition", status_code=200, **CHANGE)
def transition(request: Request, alert_id: FromPath[str], data: JSONBody[Transition]) -> State:
    """Move the alert on in its lifecycle; `version` is the one you saw."""
    return _service(request).transition(alert_id, data.to, _who(request), data.version, data.reason, data.disposition)


@post("/api/alerts/{alert_id:str}/assign", status_code=200, **CHANGE)
def assign(request: Request, alert_id: FromPath[str], data: JSONBody[Assignment]) -> State:
    return _service(request).assign(alert_id, data.assignee, _who(request), data.version, data.reason)


@post("/api/alerts/{alert_id:str}/comments", status_code=200, **CHANGE)
def comment(request: Request, alert_id: FromPath[str], data: JSONBody[Comment]) -> State:
    return _service(request).comment(alert_id, _who(request), data.text)


@get("/api/overview", **READ)
def overview(request: Request) -> Overview:
    """Counts for the dashboard: per day by level, by rule, by status, borrowers with most open alerts."""
    return _service(request).overview()


@get("/api/dead-letters", **READ)
def dead_letters(request: Request, limit: Limit = 50, offset: Offset = 0) -> list[DeadLetterRow]:
    return _service(request).dead_letters(limit, offset)


@get("/api/packs", **READ)
def packs(request: Request) -> list[PackRow]:
    return _service(request).packs()


@get("/api/me", **READ)
def me(request: Request) -> Me:
    token: Token = request.state.token
    return Me(name=token.name, role=token.role)


@get("/api/tokens", **ADMIN)
def list_tokens(request: Request) -> list[TokenInfo]:
    return _service(request).tokens()


@post("/api/tokens", status_code=201, **ADMIN)
def create_token(request: Request, data: JSONBody[TokenRequest]) -> NewToken:
    return _service(request).create_token(data.name, data.role, _who(request), data.expires_days)


@post("/api/tokens/{token_id:str}/revoke", status_code=200, **ADMIN)
def revoke_token(request: Request, token_id: FromPath[str]) -> TokenInfo:
    return _service(request).revoke_token(token_id, _who(request))


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi(request: Request) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()


@get("/", include_in_schema=False, sync_to_thread=False)
def index() -> Response[bytes]:
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html; charset=utf-8")


def _conflict(_: Request, exc: Conflict) -> Response:
    return Response({"status_code": 409, "detail": str(exc)}, status_code=409)


def _not_found(_: Request, exc: NotFound) -> Response:
    return Response({"status_code": 404, "detail": str(exc)}, status_code=404)


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(service: Service) -> Litestar:
    app = Litestar(
        route_handlers=[list_alerts, show_alert, transition, assign, comment, overview, dead_letters, packs, me,
                        list_tokens, create_token, revoke_token, openapi, index,
                        create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False)],
        openapi_config=OpenAPIConfig(
            title="fundwatch workbench", version="1", path="/api/docs",
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
            security=[{"bearer": []}],
        ),
        exception_handlers={Conflict: _conflict, NotFound: _not_found},
        after_request=_security_headers,
        debug=False,
        logging_config=None,  # logs are structlog JSON, configured once by the command
    )
    app.state.service = service
    return app
