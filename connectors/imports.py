"""`fundwatch import`: a bank's exports, by a mapping (connectors/mapping.py),
into the Parquet files a replay or backtest reads: `transactions.parquet`,
`sensors.parquet`, `parties.parquet`, `accounts.parquet`, `loans.parquet`,
`relations.parquet`, with `dead_letters.parquet` for every row that does not
map or is not a valid record (reason, file, row, the row itself) and
`import.json` counting rows per export and file.

Events are streamed in batches and sorted by event time at the end (a core
system often exports by account, and the flow takes events in time order
within its allowed lateness); reference exports are small and read whole.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import msgspec
import polars as pl
import pyarrow.parquet as pq

from connectors.errors import InputError
from connectors.files import BATCH, count_rows, json_lines
from connectors.mapping import RECORDS, Mapping, json_safe, rows_as_records
from engine.batch import Raw, dead_letter
from engine.decode import decode, path_first
from engine.records import ACTIVITY_STREAMS, EVENT_TIME, DeadLetter

DEAD_LETTERS = "dead_letters.parquet"
_DEAD_SCHEMA = {"id": pl.String, "stream": pl.String, "source": pl.String, "position": pl.String,
                "reason": pl.String, "payload": pl.String}


def export_files(mapping: Mapping, folder: Path) -> dict[str, list[Path]]:
    """Each export's files in `folder`; an export with none is an error that says what was expected."""
    found = {}
    for kind, export in mapping.exports.items():
        paths = export.find(folder)
        if not paths:
            raise InputError(f"{folder}: no {kind} export; {mapping.file} expects {export.expected()}")
        found[kind] = paths
    return found


def import_exports(mapping: Mapping, folder: Path, out: Path, advance=lambda n: None) -> dict:
    """Convert every export the mapping names; returns the summary written to import.json."""
    files = export_files(mapping, folder)
    out.mkdir(parents=True, exist_ok=True)
    dead: list[DeadLetter] = []
    summary: dict = {"mapping": mapping.file, "exports": {}}
    for kind, paths in files.items():
        export = mapping.exports[kind]
        per_file = {}
        kept_total = 0
        writer: pq.ParquetWriter | None = None
        target = out / f"{kind}.parquet"
        unsorted = out / f".{kind}.unsorted.parquet"
        records: list = []
        for path in paths:
            rows = kept = 0
            for n, df in enumerate(export.read(path, BATCH)):
                if n == 0:
                    export.check_columns(path, df.columns)
                converted, reasons = export.convert(df)
                good = reasons.is_null()
                bad_rows = df.with_row_index("__row", rows + 1).filter(~good)
                for row, reason in zip(bad_rows.iter_rows(named=True), reasons.filter(~good)):
                    position = f"row {row.pop('__row')}"
                    dead.append(dead_letter(Raw(kind, str(path), position, json_safe(row)), reason))
                positions = [f"row {rows + 1 + i}" for i, ok in enumerate(good) if ok]
                mapped = converted.filter(good)
                if kind in ACTIVITY_STREAMS:
                    keep, invalid = _valid_events(kind, mapped, str(path), positions)
                    dead += invalid
                    mapped = mapped.filter(pl.Series(keep))
                    if mapped.height:
                        table = mapped.to_arrow()
                        if writer is None:
                            writer = pq.ParquetWriter(unsorted, table.schema)
                        writer.write_table(table.cast(writer.schema))
                else:
                    valid, invalid = _valid_reference(kind, mapped, str(path), positions)
                    dead += invalid
                    records += valid
                    keep = [True] * len(valid)
                rows += df.height
                kept += sum(keep)
                advance(df.height)
            per_file[str(path)] = {"rows": rows, "imported": kept, "dead_letters": rows - kept}
            kept_total += kept
        if kind in ACTIVITY_STREAMS:
            if writer is not None:
                writer.close()
                pl.scan_parquet(unsorted).sort(EVENT_TIME[kind], maintain_order=True).sink_parquet(target)
                unsorted.unlink()
            else:
                target.unlink(missing_ok=True)
        else:
            builtins = [msgspec.to_builtins(r, builtin_types=(datetime, date)) for r in records]
            pl.DataFrame(builtins, infer_schema_length=None).write_parquet(target) if builtins else \
                target.unlink(missing_ok=True)
        summary["exports"][kind] = {"files": per_file, "imported": kept_total}
    pl.DataFrame([msgspec.structs.asdict(d) for d in dead], schema=_DEAD_SCHEMA).write_parquet(out / DEAD_LETTERS)
    summary["dead_letters"] = len(dead)
    (out / "import.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _valid_events(kind: str, mapped: pl.DataFrame, source: str, positions: list[str]) -> tuple[list[bool], list]:
    """The flow's own decoder on each mapped row: what it would refuse is refused here, with the same reason."""
    raws = [Raw(kind, source, pos, line) for pos, line in zip(positions, json_lines(mapped))]
    batch = decode(raws)
    refused = {d.position for d in batch.dead}
    return [pos not in refused for pos in positions], batch.dead


def _valid_reference(kind: str, mapped: pl.DataFrame, source: str, positions: list[str]) -> tuple[list, list]:
    valid, dead = [], []
    for pos, row in zip(positions, rows_as_records(kind, mapped)):
        try:
            valid.append(msgspec.convert(row, RECORDS[kind]))
        except msgspec.ValidationError as e:
            dead.append(dead_letter(Raw(kind, source, pos, json_safe(row)), f"invalid: {path_first(str(e))}"))
    return valid, dead


def export_rows(mapping: Mapping, folder: Path) -> int:
    """Rows in every export, for progress."""
    return sum(count_rows(p) for paths in export_files(mapping, folder).values() for p in paths)


def imported_dead_letters(folder: Path) -> list[DeadLetter]:
    """The dead letters an import left, to store beside the run's own."""
    path = Path(folder) / DEAD_LETTERS
    if not path.exists():
        return []
    return [DeadLetter(**row) for row in pl.read_parquet(path).iter_rows(named=True)]
