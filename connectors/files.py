"""Event files (Parquet, CSV, NDJSON) as raw batches for the flow: replay and backtests.

Rows are not decoded here: the flow's decode stage does that for every source
alike, so a broken row becomes a dead letter with its file and row number.
NDJSON lines stay bytes, so even a line that is not JSON is kept. Parquet rows
become JSON lines too (polars writes them in bulk), so they take the same
typed decoder as Kafka messages: about 2 µs a row against 3 µs through dicts.

Event files are found by name, in any case: the name starts with the stream's
name or an alias (NAMES: `transactions`, `transaction`, `txns`, `txn`, `tx`;
`sensors`, `sensor`, `readings`; `relations`; `parties`), then ends or goes on
after a digit, `-`, `_`, `.` or a space, and the suffix is `.parquet`, `.csv`,
`.ndjson` or `.jsonl`: `transactions.parquet`, `txn_2026-01.csv`,
`Transactions.CSV`, `sensors-2.ndjson`. A folder with none is an error that
says so.

Files are streamed in record batches (Parquet by Arrow's batch reader, CSV by
its streaming reader), so memory does not grow with their size. A file that
cannot be opened at all is refused before the flow starts, in one line; one
that breaks in the middle becomes a dead letter (`unreadable: ...`) at the row
where it broke, and the rest of that file is skipped.
"""

from __future__ import annotations

import csv
import re
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import msgspec.inspect
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.errors import InputError
from engine.batch import Raw, quiet, roster
from engine.records import ACTIVITY_STREAMS, EVENT_TIME, STREAMS

FORMATS = {".parquet": "parquet", ".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
NAMES: dict[str, tuple[str, ...]] = {
    "transactions": ("transactions", "transaction", "txns", "txn", "tx"),
    "sensors": ("sensors", "sensor", "readings"),
    "relations": ("relations",),
    "parties": ("parties",),
}
PATTERN = "a name starting with " + ", ".join(f"'{n}'" for names in NAMES.values() for n in names) + \
    " (any case; then a digit, -, _, . or the end) and .parquet, .csv, .ndjson or .jsonl"
BATCH = 2000


def file_format(path: Path) -> str | None:
    """parquet, csv or ndjson by the suffix in any case; None for anything else."""
    return FORMATS.get(path.suffix.lower())


def named(path: Path, names: tuple[str, ...]) -> bool:
    """Whether the file's name is one of `names` (any case) followed by a digit, -, _, ., a space or the end."""
    stem = path.name[: -len(path.suffix)].lower() if path.suffix else path.name.lower()
    return file_format(path) is not None and any(re.fullmatch(rf"{re.escape(n)}([-_. \d].*)?", stem) for n in names)


def stream_files(data: Path) -> list[tuple[str, Path]]:
    """Event files in a data directory by the documented pattern (the module's docstring)."""
    found = [(stream, path) for path in sorted(Path(data).iterdir()) if path.is_file()
             for stream, names in NAMES.items() if named(path, names)]
    if not found:
        raise InputError(f"{data}: no event files; expected {PATTERN}, such as transactions.parquet, "
                         f"txn_2026-01.csv or Sensors.ndjson")
    return found


def count_rows(path: Path) -> int:
    """Rows of an event file, for progress: Parquet's metadata, else its lines (CSV less its header)."""
    if file_format(path) == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            lines, last = lines + chunk.count(b"\n"), chunk[-1:]
    lines += last != b"\n"
    return max(lines - 1, 0) if file_format(path) == "csv" else lines


def check_file(path: Path, stream: str | None = None) -> None:
    """Refuse a file that cannot be opened as what its name says, naming it and the
    cause; and a Parquet or CSV file of `stream` without the record's required
    columns (a bank's own export, which needs a mapping) rather than make every
    row a dead letter."""
    kind = file_format(path)
    try:
        if kind == "parquet":
            with pq.ParquetFile(path) as f:
                columns = f.schema_arrow.names
        elif kind == "csv":
            reader = _csv_reader(path)
            columns = reader.schema.names
            reader.close()
        else:
            path.open("rb").close()
            columns = None
    except Exception as e:  # noqa: BLE001 - Arrow and the OS raise many kinds
        what = {"parquet": "Parquet", "csv": "CSV"}.get(kind or "", "NDJSON")
        raise InputError(f"{path}: not a readable {what} file: {str(e).splitlines()[0] if str(e) else type(e).__name__}") \
            from None
    if stream in STREAMS and columns is not None:
        missing = [f.name for f in msgspec.inspect.type_info(STREAMS[stream]).fields
                   if f.required and f.name not in columns]
        if missing:
            raise InputError(f"{path}: no columns {', '.join(missing)} of a {stream} record; a bank's own export "
                             "needs --mapping (see README, Import)")


def _csv_reader(path: Path, delimiter: str = ",", encoding: str = "utf8"):
    with path.open(newline="", encoding=encoding) as f:
        names = next(csv.reader(f, delimiter=delimiter), [])
    # every CSV value is text (the decoder parses numbers and dates); an empty cell is missing
    convert = pa_csv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[""],
                                    strings_can_be_null=True)
    return pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(encoding=encoding),
                           parse_options=pa_csv.ParseOptions(delimiter=delimiter), convert_options=convert)


def frames(path: Path, batch: int = BATCH, delimiter: str = ",", encoding: str = "utf8") -> Iterator[pl.DataFrame]:
    """A Parquet or CSV file (every CSV value text) as DataFrames of at most about `batch` rows."""
    if file_format(path) == "parquet":
        with pq.ParquetFile(path) as f:
            for records in f.iter_batches(batch_size=batch):
                yield pl.from_arrow(records)
        return
    for records in _csv_reader(path, delimiter, encoding):
        yield pl.from_arrow(records)


def read_raw(stream: str, path: Path, start: int = 0, batch: int = BATCH) -> Iterator[list[Raw]]:
    """Raw records of one file from row `start` (0-based), in batches."""
    source = str(path)
    if file_format(path) == "ndjson":
        with path.open("rb") as f:
            out: list[Raw] = []
            for i, line in enumerate(f):
                if i < start or not line.strip():
                    continue
                out.append(Raw(stream, source, f"line {i + 1}", line.rstrip(b"\r\n")))
                if len(out) >= batch:
                    yield out
                    out = []
            if out:
                yield out
        return
    row = 0  # rows of the file before this batch
    for df in frames(path, batch):
        skip, row = max(start - row, 0), row + df.height
        if skip >= df.height:
            continue
        df, first = df.slice(skip), row - df.height + skip
        if file_format(path) == "parquet":
            yield [Raw(stream, source, f"row {first + i + 1}", line) for i, line in enumerate(json_lines(df))]
        else:
            rows = [{k: v for k, v in r.items() if v is not None} for r in df.to_dicts()]
            yield [Raw(stream, source, f"row {first + i + 1}", r, text_values=True) for i, r in enumerate(rows)]


def json_lines(df: pl.DataFrame) -> list[bytes]:
    # JSON escapes newlines inside strings, so splitting on b"\n" is safe
    return df.write_ndjson().encode().split(b"\n")[: df.height]


class Window:
    """Event time from `start` (inclusive) to `end` (exclusive), either open: what a
    backtest's --from and --to let through. A record whose time cannot be read
    goes on, so the decoder makes it a dead letter."""

    def __init__(self, start: datetime | None = None, end: datetime | None = None):
        self.start, self.end = start, end
        self._peek = {s: msgspec.json.Decoder(msgspec.defstruct(
            f"_Peek{s}", [(f, datetime | None if s in ACTIVITY_STREAMS else date | None, None)]))
            for s, f in EVENT_TIME.items()}

    @property
    def open(self) -> bool:
        return self.start is None and self.end is None

    def holds(self, stream: str, when: datetime | date | None) -> bool:
        if when is None:
            return True
        if not isinstance(when, datetime):
            when = datetime(when.year, when.month, when.day, tzinfo=timezone.utc)
        elif when.tzinfo is None:
            return True  # no zone: the decoder refuses it
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)

    def keep(self, raws: list[Raw]) -> list[Raw]:
        if self.open:
            return raws
        return [r for r in raws if r.stream not in self._peek or self.holds(r.stream, self._time(r))]

    def _time(self, raw: Raw) -> datetime | date | None:
        try:
            if isinstance(raw.payload, bytes):
                return getattr(self._peek[raw.stream].decode(raw.payload), EVENT_TIME[raw.stream])
            value = raw.payload.get(EVENT_TIME[raw.stream])
            if not isinstance(value, str):
                return value
            return (datetime if raw.stream in ACTIVITY_STREAMS else date).fromisoformat(value)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError):
            return None


Reader = Callable[[str, Path, int], Iterator[list[Raw]]]


class _FilePartition(StatefulSourcePartition[list[Raw], int]):
    def __init__(self, stream: str, path: Path, resume: int | None, siblings: list[str] | None = None,
                 window: Window | None = None, reader: Reader | None = None):
        self.stream, self.path, self.window = stream, path, window or Window()
        self.done = resume or 0
        self._batches = (reader or read_raw)(stream, path, self.done)
        self._ended = False
        self._roster: list[Raw] | None = [roster(stream, siblings or [str(path)])]  # said first: this stream's files

    def next_batch(self) -> list[list[Raw]]:
        if self._roster is not None:
            first, self._roster = self._roster, None
            return [first]
        try:
            batch = next(self._batches)
        except StopIteration:  # the end, not a failure: say so once, then end the partition
            if self._ended:
                raise
            self._ended = True
            return [[quiet(self.stream, str(self.path))]]
        except Exception as e:  # noqa: BLE001 - a file broken mid-way must not stop the flow
            self._batches = iter(())
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            return [[Raw(self.stream, str(self.path), f"row {self.done + 1}", b"",
                         reject=f"unreadable: {why}; the rest of the file is skipped")]]
        self.done += len(batch)  # rows read, kept or not: where to resume
        return [self.window.keep(batch)]

    def snapshot(self) -> int:
        return self.done  # resume after the last row handed to the flow


class FileSource(FixedPartitionedSource[list[Raw], int]):
    """One partition per file, so several workers split a replay by file; with a
    `window` only events inside it (a backtest's --from and --to)."""

    reader: Reader | None = None  # read_raw; a table source reads otherwise

    def __init__(self, files: list[tuple[str, Path]], window: Window | None = None):
        for stream, path in files:
            check_file(path, stream)
        self.files = {str(path): (stream, path) for stream, path in files}
        self.window = window

    def list_parts(self) -> list[str]:
        return list(self.files)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _FilePartition:
        stream, path = self.files[for_part]
        siblings = [str(p) for s, p in self.files.values() if s == stream]
        return _FilePartition(stream, path, resume_state, siblings, self.window, self.reader)


class _PacedPartition(StatefulSourcePartition[list[Raw], int]):
    def __init__(self, events: list[Raw], times: list[datetime], speed: float, resume: int | None, keep_open: bool,
                 stopping: threading.Event):
        self.events, self.times, self.speed, self.keep_open, self.stopping = events, times, speed, keep_open, stopping
        self.done = resume or 0
        self.said_quiet = False
        self.wall0 = datetime.now().astimezone()
        self.sim0 = times[self.done] if self.done < len(times) else None

    def _sim_now(self) -> datetime:
        return self.sim0 + (datetime.now().astimezone() - self.wall0) * self.speed

    def next_batch(self) -> list[list[Raw]]:
        if self.stopping.is_set():
            raise StopIteration  # stop reading; what is in flight still reaches the sinks
        if self.done >= len(self.events):
            if not self.said_quiet:  # every file has been read to its end
                self.said_quiet = True
                return [[quiet(stream, source) for stream, source in sorted({(r.stream, r.source) for r in self.events})]]
            if self.keep_open:
                return []  # a live feed with nothing more to say: wait to be stopped
            raise StopIteration
        now, end = self._sim_now(), self.done
        while end < len(self.events) and end - self.done < BATCH and self.times[end] <= now:
            end += 1
        batch, self.done = self.events[self.done : end], end
        return [batch] if batch else []

    def next_awake(self) -> datetime | None:
        if self.done >= len(self.times):
            return datetime.now().astimezone() + timedelta(seconds=1) if self.keep_open else None
        wait = (self.times[self.done] - self._sim_now()) / self.speed
        return datetime.now().astimezone() + min(max(wait, timedelta(0)), timedelta(seconds=0.2))

    def snapshot(self) -> int:
        return self.done


class PacedSource(FixedPartitionedSource[list[Raw], int]):
    """Parquet event files (the simulated bank's) merged in event-time order and
    released as a live feed: `speed` simulated seconds pass per wall-clock second.
    Reference records dated before the first payment or reading come first, at
    once. With `keep_open` the feed stays open when it runs out, like a topic
    that has gone quiet, until `stopping` is set."""

    def __init__(self, files: list[tuple[str, Path]], speed: float, until: datetime | None = None,
                 keep_open: bool = False, stopping: threading.Event | None = None):
        self.files, self.speed, self.until, self.keep_open = files, speed, until, keep_open
        self.stopping = stopping or threading.Event()

    def list_parts(self) -> list[str]:
        return ["feed"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _PacedPartition:
        keyed: list[tuple[datetime, int, Raw]] = []
        for n, (stream, path) in enumerate(self.files):
            df = pl.read_parquet(path)
            column = pl.col(EVENT_TIME[stream]).cast(pl.Datetime("us", "UTC"))
            times = df.select(column).to_series().to_list()
            lines = json_lines(df)
            keyed.extend((t, n, Raw(stream, str(path), f"row {i + 1}", line)) for i, (t, line) in enumerate(zip(times, lines)))
        keyed.sort(key=lambda k: (k[0], k[1]))
        if self.until is not None:
            keyed = [k for k in keyed if k[0] < self.until]
        first = min((k[0] for k in keyed if k[2].stream in ACTIVITY_STREAMS), default=None)
        times = [max(k[0], first) if first else k[0] for k in keyed]
        return _PacedPartition([k[2] for k in keyed], times, self.speed, resume_state, self.keep_open, self.stopping)
