"""The DuckDB alert store: alerts, dead letters, the packs that produced them,
and the analysts' work on the alerts (see connectors/workbench.py).

Writes are batched (one Arrow insert per batch; a row-at-a-time INSERT costs
about 1 ms here) and idempotent: ids are deterministic and rows already
stored are ignored, so a replay or a restart never stores a second copy.

The file holds account-level findings: a new store is made readable by its
owner only (0600), whatever the umask (the commands also set a private umask,
which covers DuckDB's write-ahead log).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import polars as pl
import structlog

from connectors.errors import InputError
from engine import lifecycle
from engine.records import Alert, DeadLetter
from engine.scoring import borrower_score

log = structlog.get_logger()

# Forward migrations: migration i brings a store from schema version i to i + 1.
# Never edit one that has shipped; add the next. Detection writes `alerts`,
# `dead_letters`, `packs` and `rules`; analysts' actions live in their own
# tables (`alert_state`, `audit`, `tokens`), so neither side rewrites the other's rows.
MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS alerts (
    id VARCHAR PRIMARY KEY,
    rule_id VARCHAR NOT NULL,
    rule_version INTEGER NOT NULL,
    pack_version VARCHAR NOT NULL,
    model_versions JSON,
    score INTEGER NOT NULL,
    level VARCHAR NOT NULL,
    borrower_id VARCHAR NOT NULL,
    loan_id VARCHAR,
    event_time TIMESTAMPTZ NOT NULL,
    detected_at TIMESTAMPTZ NOT NULL,
    summary VARCHAR NOT NULL,
    evidence JSON NOT NULL,
    shadow BOOLEAN NOT NULL,
    status VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id VARCHAR PRIMARY KEY,
    stream VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    position VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    stored_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS packs (
    pack_id VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    digest VARCHAR NOT NULL,
    rules JSON NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pack_id, digest)
);
""",
    """
CREATE TABLE rules (
    rule_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    title VARCHAR NOT NULL,
    description VARCHAR,
    investigation VARCHAR,
    false_positives JSON NOT NULL,
    PRIMARY KEY (rule_id, version)
);
CREATE TABLE alert_state (
    alert_id VARCHAR PRIMARY KEY,
    status VARCHAR NOT NULL,
    assignee VARCHAR,
    disposition VARCHAR,
    version INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by VARCHAR NOT NULL
);
CREATE SEQUENCE audit_seq;
CREATE TABLE audit (
    seq BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
    changed_at TIMESTAMPTZ NOT NULL,
    actor VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    alert_id VARCHAR,
    from_status VARCHAR,
    to_status VARCHAR,
    detail VARCHAR NOT NULL
);
CREATE INDEX audit_alert ON audit (alert_id);
CREATE TABLE tokens (
    id VARCHAR PRIMARY KEY,
    hash VARCHAR NOT NULL UNIQUE,
    name VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
""",
    # the borrower's combined score (engine.scoring.borrower_score) when the alert was stored
    """
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS borrower_score INTEGER;
""",
)
SCHEMA_VERSION = len(MIGRATIONS)

_ALERT_COLUMNS = {
    "id": pl.Utf8, "rule_id": pl.Utf8, "rule_version": pl.Int32, "pack_version": pl.Utf8,
    "model_versions": pl.Utf8, "score": pl.Int32, "level": pl.Utf8, "borrower_id": pl.Utf8,
    "loan_id": pl.Utf8, "event_time": pl.Datetime("us", "UTC"), "detected_at": pl.Datetime("us", "UTC"),
    "summary": pl.Utf8, "evidence": pl.Utf8, "shadow": pl.Boolean, "status": pl.Utf8, "borrower_score": pl.Int32,
}
_DEAD_COLUMNS = {
    "id": pl.Utf8, "stream": pl.Utf8, "source": pl.Utf8, "position": pl.Utf8,
    "reason": pl.Utf8, "payload": pl.Utf8, "stored_at": pl.Datetime("us", "UTC"),
}
_JSON_COLUMNS = {"model_versions", "evidence"}
_json = msgspec.json.Encoder()


class StoreError(InputError):
    """A store that cannot be opened as asked: one line for the user."""


KEY_ENV = "FUNDWATCH_DB_KEY"
# DuckDB writes encrypted files only with the OpenSSL that its httpfs extension
# brings; its built-in crypto module can only read them.
CRYPTO_SETUP = "LOAD httpfs"


class _Database:
    """One DuckDB database per file and process, shared by every store opened on
    it (the flow's sink and the API in the daemon): DuckDB allows one writing
    process, and inside it each user gets its own cursor."""

    open: dict[str, _Database] = {}
    lock = threading.Lock()

    def __init__(self, path: str, read_only: bool):
        self.path, self.read_only, self.users = path, read_only, 0
        key = os.environ.get(KEY_ENV)
        if read_only and not Path(path).is_file():
            raise StoreError(f"{path}: no alert store there (run or replay writes it; --db or FUNDWATCH_DB names it)")
        new = not Path(path).exists()
        try:
            if key:
                self.root = duckdb.connect(":memory:")
                self._attach(key)
            else:
                self.root = duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                raise StoreError(f"{path} is in use by another process (a running fundwatch?): "
                                 "go through its API, see `fundwatch alerts --help`") from None
            raise StoreError(f"{path}: {str(e).splitlines()[0]}") from None
        except duckdb.Error as e:
            raise StoreError(f"{path}: {str(e).splitlines()[0]}") from None
        if new:
            os.chmod(path, 0o600)
        self.catalog = "store" if key else None
        self._migrate()

    def _attach(self, key: str) -> None:
        try:
            self.root.execute(CRYPTO_SETUP)
        except duckdb.Error:
            raise StoreError(f"{KEY_ENV} is set, but DuckDB's httpfs extension, whose OpenSSL encrypts "
                             "the file, is not installed: run `INSTALL httpfs` in DuckDB once") from None
        quoted = key.replace("'", "''")
        mode = ", READ_ONLY" if self.read_only else ""
        try:
            self.root.execute(f"ATTACH '{self.path}' AS store (ENCRYPTION_KEY '{quoted}'{mode})")
        except duckdb.Error as e:
            raise StoreError(f"{self.path}: cannot open with the key in {KEY_ENV}: "
                             f"{str(e).splitlines()[0]}") from None
        self.root.execute("USE store")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        con = self.root.cursor()
        if self.catalog:
            con.execute(f"USE {self.catalog}")
        return con

    def _migrate(self) -> None:
        found = schema_version(self.root)
        if found > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {found}, newer than this fundwatch "
                             f"({SCHEMA_VERSION}): upgrade fundwatch")
        if found == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(f"{self.path} has schema version {found}, this fundwatch needs "
                             f"{SCHEMA_VERSION}: open it once for writing (`fundwatch serve`) to migrate")
        for version in range(found, SCHEMA_VERSION):
            self.root.execute("BEGIN")
            try:
                self.root.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
                                  "applied_at TIMESTAMPTZ NOT NULL)")
                self.root.execute(MIGRATIONS[version])
                self.root.execute("INSERT INTO schema_version VALUES (?, ?)",
                                  [version + 1, datetime.now(timezone.utc)])
                self.root.execute("COMMIT")
            except BaseException:
                self.root.execute("ROLLBACK")
                raise
            log.info("store_migrated", version=version + 1)

    @classmethod
    def acquire(cls, path: str, read_only: bool) -> _Database:
        with cls.lock:
            db = cls.open.get(path)
            if db is None:
                db = cls.open[path] = _Database(path, read_only)
            elif db.read_only and not read_only:
                raise StoreError(f"{path} is open read-only in this process")
            db.users += 1
            return db

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0:
                del self.open[self.path]
                self.root.close()


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """0 for an empty file, 1 for a store from before versions were recorded."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                        "WHERE database_name = current_database()").fetchall()}
    recorded = con.execute("SELECT max(version) FROM schema_version").fetchone()[0] if "schema_version" in tables else None
    return recorded or (1 if "alerts" in tables else 0)


class AlertStore:
    """A connection to the store. Not for concurrent use from several threads:
    give each its own store (they share the database)."""

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = str(Path(path).resolve())
        self._db = _Database.acquire(self.path, read_only)
        self.con = self._db.cursor()

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
            self._db.release()

    def __del__(self) -> None:  # a store dropped unclosed lets go of the file, as a DuckDB connection does
        if getattr(self, "con", None) is not None:
            self.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, alerts: Sequence[Alert], dead: Sequence[DeadLetter]) -> tuple[int, int]:
        """Store a batch; returns how many alerts and dead letters were new."""
        new_alerts = self._insert("alerts", _alert_frame(alerts, self._borrower_scores(alerts))) if alerts else 0
        new_dead = self._insert("dead_letters", _dead_frame(dead)) if dead else 0
        return new_alerts, new_dead

    def _borrower_scores(self, alerts: Sequence[Alert]) -> dict[str, int]:
        """Each new alert's borrower score: its borrower's open alerts joined with it and with
        those of the batch before it (in event time), so a new finding on a borrower with open
        alerts raises the score. Shadow alerts (experimental rules) count for nothing."""
        borrowers = sorted({a.borrower_id for a in alerts})
        known, scores = set(), {}
        for alert_id, borrower, score, shadow, status in self._sql(
                f"SELECT a.id, a.borrower_id, a.score, a.shadow, {_STATUS} {_QUEUE_FROM} "
                "WHERE a.borrower_id IN (SELECT unnest(?))", [borrowers]):
            known.add(alert_id)
            if status in lifecycle.OPEN and not shadow:
                scores.setdefault(borrower, []).append(score)
        out = {}
        for a in sorted(alerts, key=lambda a: (a.event_time, a.id)):
            if a.id in known or a.id in out:
                continue
            if not a.shadow:
                scores.setdefault(a.borrower_id, []).append(a.score)
            out[a.id] = borrower_score(scores.get(a.borrower_id, ()))
        return out

    def borrower_score(self, borrower_id: str) -> int:
        """The borrower's combined score now: over its open alerts."""
        return borrower_score(s for (s,) in self._sql(
            f"SELECT a.score {_QUEUE_FROM} WHERE a.borrower_id = ? AND NOT a.shadow AND {_STATUS} IN "
            f"({', '.join(repr(s) for s in lifecycle.OPEN)})", [borrower_id]))

    def _sql(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run and fetch everything: DuckDB refuses new work while a result is unread."""
        return self.con.execute(sql, params).fetchall()

    def _insert(self, table: str, frame: pl.DataFrame) -> int:
        before = self._sql(f"SELECT count(*) FROM {table}")[0][0]
        frame = frame.unique(subset="id", keep="first", maintain_order=True)
        self.con.register("batch_frame", frame)
        try:
            self._sql(f"INSERT OR IGNORE INTO {table} SELECT * FROM batch_frame")
        finally:
            self.con.unregister("batch_frame")
        return self._sql(f"SELECT count(*) FROM {table}")[0][0] - before

    def record_pack(self, pack_id: str, version: str, digest: str, rules: Sequence[RuleText]) -> None:
        """The pack and the texts analysts read beside its alerts (title, description, investigation)."""
        now = datetime.now(timezone.utc)
        self._sql("INSERT OR IGNORE INTO packs VALUES (?, ?, ?, ?, ?)",
                  [pack_id, version, digest, _json.encode({r.rule_id: r.version for r in rules}).decode(), now])
        self.con.executemany(
            "INSERT OR IGNORE INTO rules VALUES (?, ?, ?, ?, ?, ?)",
            [[r.rule_id, r.version, r.title, r.description, r.investigation, _json.encode(r.false_positives).decode()]
             for r in rules])

    # --- reading ----------------------------------------------------------

    def alerts(
        self, *, rule: str | None = None, level: str | None = None, borrower: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts as detection wrote them, oldest event first (backtests, tests)."""
        where, params = [], []
        for column, value in (("rule_id", rule), ("level", level), ("borrower_id", borrower)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM alerts" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY event_time, id" + (f" LIMIT {int(limit)}" if limit else "")
        return self._dicts(sql, params)

    def page(self, q: AlertQuery) -> tuple[int, list[dict[str, Any]]]:
        """The analysts' queue: alerts matching `q` with their lifecycle state, newest
        event first, and how many match in all.

        One statement: the matching ids once (lifecycle filters as semi-joins on the
        small state table, since detection stores every alert as new), their count,
        and the page joined to its rows: 2-3 times faster on 1M alerts than a count and
        a page over alerts LEFT JOIN alert_state (benchmarks/api.py)."""
        where, params = ["true"], []
        for column, value in (("a.rule_id", q.rule), ("a.level", q.level), ("a.borrower_id", q.borrower),
                              ("a.loan_id", q.loan)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if q.status == "new":
            where.append("a.id NOT IN (SELECT alert_id FROM alert_state WHERE status <> 'new')")
        elif q.status is not None:
            where.append("a.id IN (SELECT alert_id FROM alert_state WHERE status = ?)")
            params.append(q.status)
        if q.assignee is not None:
            where.append("a.id IN (SELECT alert_id FROM alert_state WHERE assignee = ?)")
            params.append(q.assignee)
        for op, value in ((">=", q.since), ("<", q.until)):
            if value is not None:
                where.append(f"a.event_time {op} ?")
                params.append(value)
        if q.text:
            where.append("contains(lower(a.summary), lower(?))")
            params.append(q.text)
        rows = self._dicts(
            f"WITH m AS (SELECT a.id, a.event_time FROM alerts a WHERE {' AND '.join(where)}), "
            f"top AS (SELECT id FROM m ORDER BY event_time DESC, id DESC LIMIT {int(q.limit)} OFFSET {int(q.offset)}) "
            f"SELECT {_QUEUE_COLUMNS}, (SELECT count(*) FROM m) AS total FROM top JOIN alerts a ON a.id = top.id "
            "LEFT JOIN alert_state s ON s.alert_id = a.id ORDER BY a.event_time DESC, a.id DESC", params)
        total = rows[0].pop("total") if rows else self._sql(
            f"SELECT count(*) FROM alerts a WHERE {' AND '.join(where)}", params)[0][0]
        for r in rows:
            r.pop("total", None)
        return total, rows

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        """One alert with its lifecycle state, by id or a unique prefix of it."""
        sql = f"SELECT {_QUEUE_COLUMNS}, a.evidence, a.model_versions {_QUEUE_FROM} WHERE a.id = ?"
        rows = self._dicts(sql, [alert_id])
        if not rows and len(alert_id) < 24:
            rows = self._dicts(sql.replace("a.id = ?", "starts_with(a.id, ?)") + " LIMIT 2", [alert_id])
        if len(rows) != 1:
            return None
        alert = rows[0]
        for key in _JSON_COLUMNS:
            alert[key] = msgspec.json.decode(alert[key]) if alert[key] else None
        return alert

    def rule_text(self, rule_id: str, version: int) -> dict[str, Any] | None:
        rows = self._dicts("SELECT title, description, investigation, false_positives FROM rules "
                           "WHERE rule_id = ? AND version = ?", [rule_id, version])
        if rows:
            rows[0]["false_positives"] = msgspec.json.decode(rows[0]["false_positives"])
        return rows[0] if rows else None

    def dead_letters(self, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        sql = "SELECT * FROM dead_letters ORDER BY source, position"
        sql += (f" LIMIT {int(limit)}" if limit else "") + (f" OFFSET {int(offset)}" if offset else "")
        return self._dicts(sql, [])

    def disposed(self) -> list[dict[str, Any]]:
        """Alerts analysts resolved (confirmed or dismissed, closed since or not) with
        their disposition, oldest event first: the labels a backtest can score against."""
        return self._dicts("SELECT a.*, s.disposition FROM alerts a JOIN alert_state s ON s.alert_id = a.id "
                           "WHERE s.disposition IS NOT NULL ORDER BY a.event_time, a.id", [])

    def packs(self) -> list[dict[str, Any]]:
        rows = self._dicts("SELECT * FROM packs ORDER BY loaded_at DESC", [])
        for r in rows:
            r["rules"] = msgspec.json.decode(r["rules"])
        return rows

    def overview(self, days: int = 90, top: int = 10) -> dict[str, Any]:
        """Counts for the dashboard: per day by level over the store's last `days`
        days of events, by rule, by status, and the borrowers with most open alerts."""
        open_ = ", ".join(f"'{s}'" for s in lifecycle.OPEN)
        return {
            "by_level": self.counts("SELECT level, count(*) FROM alerts GROUP BY ALL"),
            "by_rule": self.counts("SELECT rule_id, count(*) FROM alerts GROUP BY ALL ORDER BY 2 DESC"),
            "by_status": self.counts(f"SELECT {_STATUS}, count(*) {_QUEUE_FROM} GROUP BY ALL"),
            "per_day": self._dicts(
                "SELECT strftime(event_time::DATE, '%Y-%m-%d') AS day, level, count(*) AS alerts FROM alerts "
                f"WHERE event_time >= (SELECT max(event_time) FROM alerts) - INTERVAL {int(days)} DAY "
                "GROUP BY ALL ORDER BY day, level", []),
            "top_borrowers": self._dicts(
                f"SELECT a.borrower_id, count(*) AS open_alerts {_QUEUE_FROM} WHERE {_STATUS} IN ({open_}) "
                f"GROUP BY ALL ORDER BY open_alerts DESC, a.borrower_id LIMIT {int(top)}", []),
        }

    def counts(self, sql: str) -> dict[str, int]:
        return dict(self._sql(sql))

    def _dicts(self, sql: str, params: list) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


class AlertQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters and paging of the queue; None matches everything."""

    level: str | None = None
    rule: str | None = None
    borrower: str | None = None
    loan: str | None = None
    status: str | None = None
    assignee: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None  # in the summary, any case
    limit: int = 50
    offset: int = 0


class RuleText(msgspec.Struct, frozen=True, kw_only=True):
    rule_id: str
    version: int
    title: str
    description: str | None = None
    investigation: str | None = None
    false_positives: list[str] = []


_STATUS = "coalesce(s.status, a.status)"
_QUEUE_FROM = "FROM alerts a LEFT JOIN alert_state s ON s.alert_id = a.id"
_QUEUE_COLUMNS = (
    "a.id, a.rule_id, a.rule_version, a.pack_version, a.score, a.borrower_score, a.level, a.borrower_id, a.loan_id, "
    "a.event_time, "
    f"a.detected_at, a.summary, a.shadow, {_STATUS} AS status, s.assignee, s.disposition, "
    "coalesce(s.version, 0) AS version, s.updated_at, s.updated_by"
)


def _alert_frame(alerts: Sequence[Alert], borrower_scores: dict[str, int]) -> pl.DataFrame:
    def column(name: str) -> list:
        if name == "borrower_score":
            return [borrower_scores.get(a.id) for a in alerts]
        if name in _JSON_COLUMNS:
            return [_json.encode(getattr(a, name)).decode() for a in alerts]
        return [getattr(a, name) for a in alerts]

    return pl.DataFrame({name: column(name) for name in _ALERT_COLUMNS}, schema=_ALERT_COLUMNS)


def _dead_frame(dead: Sequence[DeadLetter]) -> pl.DataFrame:
    now = datetime.now(timezone.utc)
    rows = {name: [getattr(d, name) for d in dead] for name in _DEAD_COLUMNS if name != "stored_at"}
    return pl.DataFrame({**rows, "stored_at": [now] * len(dead)}, schema=_DEAD_COLUMNS)
