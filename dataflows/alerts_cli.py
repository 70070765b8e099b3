"""`fundwatch alerts`, `fundwatch tokens` and `fundwatch serve`: the analysts'
workbench from the shell.

While a fundwatch process owns the store (the daemon, `fundwatch run`,
`fundwatch serve`) the file is locked, so these commands go through its API:
its URL from --api, from the [api] section of --config, or from the `.api`
file that process leaves beside the store; the token from --token or
FUNDWATCH_TOKEN. With nobody serving the store they work on the file.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import get_args

import click

from dataflows import app
from engine import lifecycle
from engine.records import AlertStatus, Level

DB = click.option("--db", type=click.Path(path_type=Path), default=app.DEFAULT_DB, show_default=True,
                  envvar="FUNDWATCH_DB", help="DuckDB alert store.")
REACH = [
    click.option("--api", envvar="FUNDWATCH_API", help="URL of a running fundwatch's API (else found from --config "
                                                       "or beside the store)."),
    click.option("--token", envvar="FUNDWATCH_TOKEN", help="Bearer token for the API."),
    click.option("--config", type=click.Path(path_type=Path, exists=True, dir_okay=False), envvar="FUNDWATCH_CONFIG",
                 help="The daemon's TOML file: its store and its [api] address."),
    DB,
]


def _reach(fn: Callable) -> Callable:
    """Adds the options above and passes `bench`: the API when one serves the store, else the file."""
    @wraps(fn)
    def wrapper(api: str | None, token: str | None, config: Path | None, db: Path, **kw):
        from dataflows.api.client import Local, Remote, WorkbenchError
        from dataflows.api.server import announced

        verify: str | bool = True
        if config is not None:
            from dataflows.config import ConfigError, load

            try:
                settings = load(config)
            except ConfigError as e:
                raise click.ClickException(str(e)) from None
            db = Path(settings.duckdb)
            if not api and settings.api.port:
                scheme = "https" if settings.api.tls_cert else "http"
                api, verify = f"{scheme}://{settings.api.host}:{settings.api.port}", settings.api.tls_cert or True
        url = api or announced(db)
        bench = None
        if url:
            remote = Remote(url, token, verify)
            if remote.answers():
                bench = remote
            elif api:
                raise click.ClickException(f"no fundwatch API answers at {url}")
        try:
            if bench is None:
                from connectors.alert_store import StoreError

                if not db.is_file():  # a mistyped --db is a mistake, not a new empty store
                    raise click.ClickException(f"{db}: no alert store there (run or replay writes it; "
                                               "--db or FUNDWATCH_DB names it)")
                try:
                    bench = Local(db)
                except StoreError as e:
                    raise click.ClickException(str(e)) from None
            return fn(bench=bench, **kw)
        except WorkbenchError as e:
            raise click.ClickException(str(e)) from None
        finally:
            if bench is not None:
                bench.close()

    for option in reversed(REACH):
        wrapper = option(wrapper)
    return wrapper


@click.group()
def alerts() -> None:
    """Work the alerts: list, show, and move them through their lifecycle."""


@alerts.command("list")
@click.option("--rule")
@click.option("--level", type=click.Choice(get_args(Level)))
@click.option("--borrower")
@click.option("--loan")
@click.option("--status", type=click.Choice(get_args(AlertStatus)))
@click.option("--assignee")
@click.option("--since", help="Event time from (ISO 8601, UTC if no zone).")
@click.option("--until", help="Event time before.")
@click.option("--text", help="Words in the summary, any case.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True)
@_reach
def alerts_list(bench, **filters) -> None:
    """Alerts newest event first, with how many match in all."""
    page = bench.queue(**filters)
    for a in page["items"]:
        who = f" @{a['assignee']}" if a["assignee"] else ""
        click.echo(f"{a['id']}  {a['event_time'][:16].replace('T', ' ')}  {a['level']:8} {a['score']:3d} "
                   f"{a['rule_id']} {a['borrower_id']} {a['loan_id'] or '-'}  {a['status']}{who}  {a['summary']}")
    first = page["offset"] + 1 if page["items"] else 0
    click.echo(f"showing {len(page['items'])} of {page['total']}"
               + (f" (from {first})" if page["offset"] else "") + ", newest first")


@alerts.command("show")
@click.argument("alert_id")
@_reach
def alerts_show(bench, alert_id: str) -> None:
    """One alert (id or unique prefix): evidence, the rule's notes, route, audit."""
    a = bench.detail(alert_id)
    click.echo(f"{a['id']}  {a['level']} {a['score']}  {a['rule_id']} v{a['rule_version']} (pack {a['pack_version']})"
               + ("  shadow" if a["shadow"] else ""))
    click.echo(f"  {a['summary']}")
    click.echo(f"  borrower {a['borrower_id']}  loan {a['loan_id'] or '-'}  event {a['event_time']}  "
               f"detected {a['detected_at']}")
    click.echo(f"  borrower score {a['borrower_score_now']} over its open alerts "
               f"({a['borrower_score'] if a['borrower_score'] is not None else '-'} when found)")
    click.echo(f"  status {a['status']}  version {a['version']}  assignee {a['assignee'] or '-'}  "
               f"disposition {a['disposition'] or '-'}  next: {', '.join(a['next']) or '-'}")
    if a["rule"]:
        click.echo(f"rule: {a['rule']['title']}")
        for key in ("description", "investigation"):
            if a["rule"][key]:
                click.echo(f"  {key}: {a['rule'][key]}")
    ev = a["evidence"]
    click.echo(f"evidence: events {', '.join(ev['event_ids'])}")
    click.echo(f"  conditions held: {', '.join(ev['conditions']) or '-'}")
    for k, v in ev["values"].items():
        click.echo(f"  {k} = {v}")
    if ev["path"]:
        click.echo("route / path:")
        for line in ev["path"]:
            click.echo(f"  {line}")
    click.echo(f"audit: {len(a['audit'])} entr{'y' if len(a['audit']) == 1 else 'ies'}")
    for e in a["audit"]:
        move = f" {e['from_status']} -> {e['to_status']}" if e["action"] == "transition" else ""
        click.echo(f"  {e['changed_at'][:19].replace('T', ' ')}  {e['actor']}  {e['action']}{move}  {e['detail']}")


def _change(bench, alert_id: str, do: Callable[[dict], dict]) -> None:
    alert = bench.detail(alert_id)  # its full id and the version this change is made against
    state = do(alert)
    click.echo(f"{alert['id']}: {state['status']}" + (f" @{state['assignee']}" if state["assignee"] else "")
               + f" (version {state['version']})")


WHY = click.option("--why", default="", help="Why: kept in the audit.")


def _move(name: str, to: str, doc: str) -> None:
    @alerts.command(name, help=doc)
    @click.argument("alert_id")
    @WHY
    @_reach
    def command(bench, alert_id: str, why: str) -> None:
        _change(bench, alert_id, lambda a: bench.transition(a["id"], to=to, version=a["version"], reason=why))


_move("ack", "acknowledged", "Acknowledge a new alert: someone is on it.")
_move("investigate", "investigating", "Start investigating an acknowledged alert.")
_move("close", "closed", "Close a confirmed or dismissed alert.")


@alerts.command("resolve")
@click.argument("alert_id")
@click.option("--disposition", type=click.Choice(lifecycle.DISPOSITIONS), required=True,
              help=f"What the lender does; {lifecycle.FALSE_POSITIVE} dismisses the alert, the others confirm it.")
@WHY
@_reach
def alerts_resolve(bench, alert_id: str, disposition: str, why: str) -> None:
    """Confirm an alert under investigation with a disposition, or dismiss it as a false positive."""
    to = "dismissed" if disposition == lifecycle.FALSE_POSITIVE else "confirmed"
    _change(bench, alert_id, lambda a: bench.transition(a["id"], to=to, version=a["version"], reason=why,
                                                         disposition=disposition))


@alerts.command("assign")
@click.argument("alert_id")
@click.argument("assignee")
@WHY
@_reach
def alerts_assign(bench, alert_id: str, assignee: str, why: str) -> None:
    """Give the alert to ASSIGNEE ('-' to unassign)."""
    who = None if assignee == "-" else assignee
    _change(bench, alert_id, lambda a: bench.assign(a["id"], assignee=who, version=a["version"], reason=why))


@alerts.command("comment")
@click.argument("alert_id")
@click.argument("text")
@_reach
def alerts_comment(bench, alert_id: str, text: str) -> None:
    """Add a note to the alert's audit."""
    _change(bench, alert_id, lambda a: bench.comment(a["id"], text))


@click.group()
def tokens() -> None:
    """Bearer tokens for the API (admin): create, list, revoke."""


@tokens.command("create")
@click.option("--role", type=click.Choice(["viewer", "analyst", "admin"]), required=True)
@click.option("--name", required=True, help="Who or what uses it; audit rows carry it.")
@click.option("--expires", type=click.FloatRange(min=0, min_open=True), help="Days until it expires (default never).")
@_reach
def tokens_create(bench, role: str, name: str, expires: float | None) -> None:
    """Prints the new token once; only its hash is stored."""
    new = bench.create_token(name, role, expires)
    info = new["info"]
    click.echo(new["token"])
    click.echo(f"id {info['id']}  {info['name']}  {info['role']}  expires {info['expires_at'] or 'never'}", err=True)


@tokens.command("list")
@_reach
def tokens_list(bench) -> None:
    for t in bench.tokens():
        state = f"revoked {t['revoked_at'][:19]}" if t["revoked_at"] else \
            f"expires {t['expires_at'][:19]}" if t["expires_at"] else "no expiry"
        click.echo(f"{t['id']}  {t['role']:8} {t['name']}  created {t['created_at'][:19]}  {state}")


@tokens.command("revoke")
@click.argument("token_id")
@_reach
def tokens_revoke(bench, token_id: str) -> None:
    t = bench.revoke_token(token_id)
    click.echo(f"{t['id']} {t['name']}: revoked {t['revoked_at'][:19]}")


@click.command()
@DB
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=9480, show_default=True)
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Needed off loopback.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False))
def serve(db: Path, host: str, port: int, tls_cert: str | None, tls_key: str | None) -> None:
    """Serve the workbench (API and page) over a store no daemon is running on."""
    from connectors.alert_store import StoreError
    from dataflows.api.server import Listen, Server, ServeError

    if not db.exists():
        raise click.ClickException(f"no alert store at {db}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = Server(db, Listen(host, port, tls_cert or "", tls_key or "")).start()
    except (StoreError, ServeError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"workbench at {server.listen.url}/ (API {server.listen.url}/api, {server.listen.url}/openapi.json); "
               "Ctrl-C stops")
    stop.wait()
    server.stop()
