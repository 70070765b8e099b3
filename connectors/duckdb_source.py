"""Event tables of a DuckDB file (`transactions`, `sensors`, and `relations`,
`parties` as events too) as raw batches, for backtests on a bank's warehouse
extract. One partition per table, read in event-time order in Arrow batches;
rows go on as JSON lines, so they meet the same decoder as files and topics.
Reference data comes from the same file's `parties`, `accounts`, `loans`,
`relations` tables (connectors.reference_files.load_snapshot)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl

from connectors.errors import InputError
from connectors.files import BATCH, FileSource, Window, json_lines
from engine.batch import Raw
from engine.records import EVENT_TIME, STREAMS


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        raise InputError(f"{path}: not a readable DuckDB file: {str(e).splitlines()[0]}") from None


def event_tables(path: Path) -> list[str]:
    con = _connect(path)
    try:
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()
    found = [s for s in STREAMS if s in names]
    if not found:
        raise InputError(f"{path}: no event tables; expected tables named {', '.join(STREAMS)}")
    return found


def read_table(stream: str, where: Path, start: int = 0, batch: int = BATCH) -> Iterator[list[Raw]]:
    """Rows of one table from row `start` in event-time order (ties by id)."""
    path = Path(str(where).rsplit(":", 1)[0])
    con = _connect(path)
    try:
        reader = con.sql(f'SELECT * FROM "{stream}" ORDER BY "{EVENT_TIME[stream]}", id OFFSET {int(start)}') \
            .to_arrow_reader(batch)
        row = start
        for records in reader:
            df = pl.from_arrow(records)
            yield [Raw(stream, str(where), f"row {row + i + 1}", line) for i, line in enumerate(json_lines(df))]
            row += df.height
    finally:
        con.close()


def count_table_rows(path: Path) -> int:
    con = _connect(path)
    try:
        return sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in event_tables(path))
    finally:
        con.close()


class DuckDBSource(FileSource):
    """One partition per event table of a DuckDB file (`FILE:table` in dead letters)."""

    reader = staticmethod(read_table)

    def __init__(self, path: Path, window: Window | None = None):
        self.files = {f"{path}:{t}": (t, Path(f"{path}:{t}")) for t in event_tables(path)}
        self.window = window
