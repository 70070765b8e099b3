"""The DuckDB alert store: alerts, dead letters and the packs that produced them.

Writes are batched (one Arrow insert per batch; a row-at-a-time INSERT costs
about 1 ms here) and idempotent: ids are deterministic and rows already
stored are ignored, so a replay or a restart never stores a second copy.

The file holds account-level findings: a new store is made readable by its
owner only (0600), whatever the umask (the commands also set a private umask,
which covers DuckDB's write-ahead log).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import polars as pl

from connectors.errors import InputError
from engine.records import Alert, DeadLetter

SCHEMA = """
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
"""

_ALERT_COLUMNS = {
    "id": pl.Utf8, "rule_id": pl.Utf8, "rule_version": pl.Int32, "pack_version": pl.Utf8,
    "model_versions": pl.Utf8, "score": pl.Int32, "level": pl.Utf8, "borrower_id": pl.Utf8,
    "loan_id": pl.Utf8, "event_time": pl.Datetime("us", "UTC"), "detected_at": pl.Datetime("us", "UTC"),
    "summary": pl.Utf8, "evidence": pl.Utf8, "shadow": pl.Boolean, "status": pl.Utf8,
}
_DEAD_COLUMNS = {
    "id": pl.Utf8, "stream": pl.Utf8, "source": pl.Utf8, "position": pl.Utf8,
    "reason": pl.Utf8, "payload": pl.Utf8, "stored_at": pl.Datetime("us", "UTC"),
}
_JSON_COLUMNS = {"model_versions", "evidence"}
_json = msgspec.json.Encoder()


class AlertStore:
    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = str(path)
        new = not read_only and not Path(path).exists()
        if read_only and not Path(path).is_file():
            raise InputError(f"{path}: no alert store there (run or replay writes it; --db or FUNDWATCH_DB names it)")
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as e:
            first = str(e).splitlines()[0]
            if "lock" in first.lower():
                raise InputError(f"{path}: the alert store is in use by another fundwatch process ({first})") from None
            raise InputError(f"{path}: cannot open the alert store: {first}") from None
        if new:
            os.chmod(self.path, 0o600)
        if not read_only:
            self._sql(SCHEMA)

    def close(self) -> None:
        self.con.close()

    def write(self, alerts: Sequence[Alert], dead: Sequence[DeadLetter]) -> tuple[int, int]:
        """Store a batch; returns how many alerts and dead letters were new."""
        new_alerts = self._insert("alerts", _alert_frame(alerts)) if alerts else 0
        new_dead = self._insert("dead_letters", _dead_frame(dead)) if dead else 0
        return new_alerts, new_dead

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

    def record_pack(self, pack_id: str, version: str, digest: str, rules: dict[str, int]) -> None:
        self._sql(
            "INSERT OR IGNORE INTO packs VALUES (?, ?, ?, ?, ?)",
            [pack_id, version, digest, _json.encode(rules).decode(), datetime.now(timezone.utc)],
        )

    # --- reading, for the CLI and tests ---------------------------------

    def alerts(
        self, *, rule: str | None = None, level: str | None = None, borrower: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        where, params = [], []
        for column, value in (("rule_id", rule), ("level", level), ("borrower_id", borrower)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM alerts" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY event_time, id" + (f" LIMIT {int(limit)}" if limit else "")
        return self._dicts(sql, params)

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        rows = self._dicts("SELECT * FROM alerts WHERE id = ? OR id LIKE ? || '%' LIMIT 2", [alert_id, alert_id])
        return rows[0] if len(rows) == 1 else None

    def dead_letters(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM dead_letters ORDER BY source, position" + (f" LIMIT {int(limit)}" if limit else "")
        return self._dicts(sql, [])

    def counts(self, sql: str) -> dict[str, int]:
        return dict(self._sql(sql))

    def _dicts(self, sql: str, params: list) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def _alert_frame(alerts: Sequence[Alert]) -> pl.DataFrame:
    def column(name: str) -> list:
        if name in _JSON_COLUMNS:
            return [_json.encode(getattr(a, name)).decode() for a in alerts]
        return [getattr(a, name) for a in alerts]

    return pl.DataFrame({name: column(name) for name in _ALERT_COLUMNS}, schema=_ALERT_COLUMNS)


def _dead_frame(dead: Sequence[DeadLetter]) -> pl.DataFrame:
    now = datetime.now(timezone.utc)
    rows = {name: [getattr(d, name) for d in dead] for name in _DEAD_COLUMNS if name != "stored_at"}
    return pl.DataFrame({**rows, "stored_at": [now] * len(dead)}, schema=_DEAD_COLUMNS)
