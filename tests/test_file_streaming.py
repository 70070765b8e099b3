"""File replay streams its input: a Parquet or CSV file is read in record
batches, so what is held at once does not grow with the size of the file; a
file broken in the middle becomes a dead letter there, not a crash."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.files import _FilePartition, read_raw

ROWS = 200_000


def _frame() -> pl.DataFrame:
    return pl.DataFrame({"id": [f"t{i}" for i in range(ROWS)], "ts": ["2026-01-05T09:00:00Z"] * ROWS,
                         "from_account": ["D1"] * ROWS, "to_account": ["A-S1"] * ROWS,
                         "amount": [float(i) for i in range(ROWS)], "channel": ["transfer"] * ROWS,
                         "memo": ["x" * 200] * ROWS})


def test_parquet_is_read_in_record_batches(tmp_path):
    path = tmp_path / "transactions.parquet"
    table = _frame().to_arrow()
    pq.write_table(table, path, row_group_size=10_000)
    held, rows, first = 0, 0, None
    for batch in read_raw("transactions", path):
        held = max(held, pa.total_allocated_bytes())
        rows += len(batch)
        first = first or batch[0].position
    assert rows == ROWS and first == "row 1"
    assert held < table.nbytes / 5, (held, table.nbytes)  # never the whole file at once
    resumed = next(read_raw("transactions", path, start=150_001))
    assert resumed[0].position == "row 150002"


def test_csv_is_read_in_record_batches_and_resumes_by_row(tmp_path):
    path = tmp_path / "transactions.csv"
    _frame().head(30_000).write_csv(path)
    batches = list(read_raw("transactions", path))
    assert sum(map(len, batches)) == 30_000 and len(batches) > 1
    assert next(read_raw("transactions", path, start=25_000))[0].position == "row 25001"


def test_a_file_that_breaks_mid_way_is_a_dead_letter_at_that_row(tmp_path):
    path = tmp_path / "transactions.parquet"
    pq.write_table(_frame().head(40_000).to_arrow(), path, row_group_size=10_000)
    meta = pq.ParquetFile(path).metadata
    broken = meta.row_group(2).column(0).file_offset  # clobber the third row group's data
    data = bytearray(path.read_bytes())
    data[broken - 2000:broken + 30000] = b"\0" * 32000
    path.write_bytes(bytes(data))
    part = _FilePartition("transactions", path, None)
    out = []
    while True:
        try:
            out += part.next_batch()[0]
        except StopIteration:
            break
    rejected = [r for r in out if r.reject]
    assert len(rejected) == 1 and rejected[0].reject.startswith("unreadable: ")
    good = [r for r in out if not r.reject and r.control is None]  # not the source's words on its files
    assert rejected[0].position == f"row {len(good) + 1}" and len(good) < 40_000  # the rest is skipped
