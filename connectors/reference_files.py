"""Reference data snapshots (parties, accounts, loans, relations) from Parquet files."""

from __future__ import annotations

from pathlib import Path

import msgspec
import polars as pl

from engine.records import REFERENCE
from engine.reference import Reference


def load_reference(data: Path, ref: Reference | None = None) -> Reference:
    """Read `<kind>.parquet` for every reference kind present in `data`.

    Reference data is curated, so a bad row is an error that stops start-up
    with its file and row, rather than a dead letter.
    """
    ref = ref or Reference()
    for kind, cls in REFERENCE.items():
        path = Path(data) / f"{kind}.parquet"
        if not path.exists():
            continue
        for i, row in enumerate(pl.read_parquet(path).iter_rows(named=True)):
            try:
                ref.add(msgspec.convert(row, cls))
            except msgspec.ValidationError as e:
                raise ValueError(f"{path}: row {i + 1}: {e}") from None
    return ref
