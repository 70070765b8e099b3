"""The daemon's start-up reference snapshot: a Parquet directory or a DuckDB file."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import msgspec
import polars as pl
import pytest

from connectors.reference_files import load_snapshot
from tests import tinybank


def test_duckdb_snapshot_gives_the_same_reference_as_parquet(tmp_path):
    parquet = tinybank.write(tmp_path / "parquet")
    db = tmp_path / "reference.duckdb"
    con = duckdb.connect(str(db))
    for kind, records in (("parties", tinybank.PARTIES), ("accounts", tinybank.ACCOUNTS), ("loans", tinybank.LOANS)):
        frame = pl.DataFrame(msgspec.to_builtins(records, builtin_types=(datetime, date)))
        con.register("frame", frame)
        con.execute(f"CREATE TABLE {kind} AS SELECT * FROM frame")
        con.unregister("frame")
    con.close()

    from_db, from_parquet = load_snapshot(db), load_snapshot(parquet)
    assert from_db.loans == from_parquet.loans and from_db.parties == from_parquet.parties
    assert from_db.accounts == from_parquet.accounts
    assert from_db.relations == {} and len(from_parquet.relations) == 2  # a missing table is no error


def test_missing_snapshot_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no such reference snapshot"):
        load_snapshot(tmp_path / "nope.duckdb")
