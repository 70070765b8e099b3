"""Malformed input never stops a replay and is never lost: each bad row is a
dead letter with its reason and its file and row or line."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
import polars as pl

from connectors.alert_store import AlertStore
from connectors.files import FileSource, stream_files
from dataflows import app
from tests import tinybank

GOOD = msgspec.json.encode(tinybank.CASES[6][0]).decode()  # the 50,000 cash-out

BAD_LINES = {
    "{not json": "undecodable",
    GOOD.replace('"amount":50000', '"amount":-5.0'): "invalid: $.amount: expected `float` >= 0.0",
    GOOD.replace('"amount":50000', '"amount":"lots"'): "invalid: $.amount: expected `float`, got `str`",
    GOOD.replace('"channel":"cash",', ''): "invalid: object missing required field `channel`",
    GOOD.replace('"from_account":"D1"', '"from_account":"NOPE"'): "invalid: $.from_account: unknown account 'NOPE'",
    GOOD.replace('"ts":"2026-01-11T09:00:00Z"', '"ts":"yesterday"'): "invalid: $.ts: invalid RFC3339",
    GOOD.replace('"loan_id":null', '"loan_id":"L404"'): "invalid: $.loan_id: unknown loan 'L404'",
    "[1, 2, 3]": "invalid: expected `object`, got `array`",
}


def test_every_bad_row_is_a_dead_letter_with_reason_and_source(tmp_path):
    data = tinybank.write(tmp_path / "data")
    lines = [GOOD] + list(BAD_LINES) + ["\xff\xfe not utf8"]
    (data / "transactions-feed.ndjson").write_bytes(
        b"\n".join(line.encode("latin-1") if line.startswith("\xff") else line.encode() for line in lines) + b"\n"
    )
    # Parquet with broken values: nulls in required fields, a negative amount, an unknown channel
    bad_rows = pl.DataFrame({
        "id": ["p1", "p2", "p3", None],
        "ts": [datetime(2026, 1, 6, tzinfo=timezone.utc), None, datetime(2026, 1, 6, tzinfo=timezone.utc),
               datetime(2026, 1, 6, tzinfo=timezone.utc)],
        "from_account": ["D1", "D1", "D1", "D1"],
        "to_account": ["CASH", "CASH", "CASH", "CASH"],
        "amount": [-1.0, 70_000.0, 70_000.0, 70_000.0],
        "channel": ["cash", "cash", "teleport", "cash"],
    })
    bad_rows.write_parquet(data / "transactions-bad.parquet")
    (data / "transactions-text.csv").write_text(
        "id,ts,from_account,to_account,amount,channel\n"
        "c1,2026-01-07T10:00:00Z,D1,CASH,60000,cash\n"
        "c2,2026-01-07T10:00:00Z,D1,CASH,sixty,cash\n"
        "c3,2026-01-07T10:00:00Z,D1,CASH,,cash\n"
    )
    db = tmp_path / "a.duckdb"
    result = app.run_flow(FileSource(stream_files(data)), data, db)

    store = AlertStore(db, read_only=True)
    dead = {(d["source"].rsplit("/", 1)[-1], d["position"]): d for d in store.dead_letters()}
    ndjson = "transactions-feed.ndjson"
    for n, expected in enumerate(BAD_LINES.values(), start=2):
        assert dead[(ndjson, f"line {n}")]["reason"].startswith(expected), (n, dead[(ndjson, f"line {n}")])
    assert dead[(ndjson, f"line {len(lines)}")]["reason"].startswith("undecodable")
    assert dead[("transactions-bad.parquet", "row 1")]["reason"].startswith("invalid: $.amount")
    assert dead[("transactions-bad.parquet", "row 2")]["reason"].startswith("invalid: $.ts")
    assert dead[("transactions-bad.parquet", "row 3")]["reason"].startswith("invalid: $.channel")
    assert dead[("transactions-bad.parquet", "row 4")]["reason"].startswith("invalid: $.id")
    assert dead[("transactions-text.csv", "row 2")]["reason"].startswith("invalid: $.amount")
    assert dead[("transactions-text.csv", "row 3")]["reason"] == "invalid: object missing required field `amount`"
    assert len(dead) == len(BAD_LINES) + 1 + 4 + 2, "\n".join(f"{k} {v['reason']}" for k, v in sorted(dead.items()))
    assert dead[(ndjson, "line 2")]["payload"] == "{not json"

    # the good rows around them were processed: the NDJSON copy of t-cash is the same
    # event (same alert id), the CSV row c1 is a new cash-out
    alerts = store.alerts(rule="CO-001")
    assert {tuple(msgspec.json.decode(a["evidence"])["event_ids"]) for a in alerts} == {("t-cash",), ("c1",)}
    assert result.stats.events == tinybank.REFERENCE_EVENTS + len(tinybank.CASES) + len(lines) + 4 + 3
