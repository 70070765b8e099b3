"""Reference data snapshots (parties, accounts, loans, relations) from Parquet
files or from the tables of a DuckDB file."""

from __future__ import annotations

from pathlib import Path

import msgspec
import polars as pl

from connectors.errors import InputError
from engine.records import REFERENCE
from engine.reference import Reference


def load_reference(data: Path, ref: Reference | None = None) -> Reference:
    """Read `<kind>.parquet` for every reference kind present in `data`.

    Reference data is curated, so a bad row is an error that stops start-up
    with its file and row, rather than a dead letter.
    """
    ref = ref or Reference()
    for kind in REFERENCE:
        path = Path(data) / f"{kind}.parquet"
        if path.exists():
            try:
                frame = pl.read_parquet(path)
            except Exception as e:  # noqa: BLE001 - polars and Arrow raise many kinds
                raise InputError(f"{path}: not a readable Parquet file: {str(e).splitlines()[0]}") from None
            _add_rows(ref, kind, frame, str(path))
    return ref


def load_snapshot(path: Path, ref: Reference | None = None) -> Reference:
    """A Parquet directory (see load_reference) or a DuckDB file with tables named
    `parties`, `accounts`, `loans`, `relations` (any of them may be missing)."""
    path = Path(path)
    if path.is_dir():
        return load_reference(path, ref)
    if not path.is_file():
        raise InputError(f"{path}: no such reference snapshot")
    import duckdb  # only for DuckDB snapshots

    ref = ref or Reference()
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for kind in REFERENCE:
            if kind in tables:
                _add_rows(ref, kind, con.sql(f"SELECT * FROM {kind}").pl(), f"{path}:{kind}")
    finally:
        con.close()
    return ref


def _add_rows(ref: Reference, kind: str, frame: pl.DataFrame, where: str) -> None:
    cls = REFERENCE[kind]
    for i, row in enumerate(frame.iter_rows(named=True)):
        try:
            ref.add(msgspec.convert(row, cls))
        except msgspec.ValidationError as e:
            raise InputError(f"{where}: row {i + 1}: {e}") from None
