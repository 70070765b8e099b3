"""A bank's own exports as fundwatch records, by a YAML mapping file.

A bank's core system exports transactions, accounts, customers, loans and
relations under its own column names and conventions: local timestamps in a
format of its own, amounts in fen, codes for transaction types and channels.
The mapping says, per export (`transactions`, `sensors`, `parties`,
`accounts`, `loans`, `relations`), which files hold it and how each field of
the record (engine/records.py) is made:

    version: 1
    timezone: Asia/Shanghai            # timestamps without an offset are local time here
    exports:
      transactions:
        files: ["jnl_*.csv"]           # globs, any case; default: the stream's names (connectors/files.py)
        csv: {delimiter: ",", encoding: utf-8}
        fields:
          id: JNL_NO                   # a column
          ts: {columns: [TXN_DATE, TXN_TIME], format: "%Y%m%d %H%M%S"}
          amount: {column: TXN_AMT_FEN, unit: fen}
          channel: {column: TXN_TYPE, values: {"01": transfer, "02": cash}}
          currency: {value: CNY}       # a constant
          memo: {column: REMARK, default: ""}

A field takes `column` (or `columns`, joined by a space) or `value`, and may
add `format` (strptime, for dates and times; default ISO), `unit` (`yuan` or
`fen`, for amounts), `values` (a map from the export's codes to fundwatch's),
`split` (the separator of a list, default `;`), `thousands` (a separator to
drop from numbers) and `default` (for an empty cell). Fields are checked when
the mapping loads, at `file:line:col`, against the record they build: a field
the record lacks, a missing required one, a mapped value the record does not
allow, a format that cannot parse, an unknown time zone.

Rows are converted in bulk with polars. A row that does not map (an empty
required cell, a code missing from `values`, a date that does not fit its
format, a fraction of a fen) is not dropped: it becomes a dead letter with the
reason, its file and row, and the row itself.
"""

from __future__ import annotations

import difflib
import fnmatch
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import polars as pl

from connectors.errors import InputError
from connectors.files import NAMES, file_format, frames, named
from engine.records import REFERENCE, STREAMS, Collateral, Record
from engine.rules.errors import Problem, RuleError
from engine.rules.source import Located, load

RECORDS: dict[str, type[Record]] = {**STREAMS, **REFERENCE}
EXPORT_NAMES: dict[str, tuple[str, ...]] = {
    **NAMES,
    "parties": ("parties", "party", "customers", "customer", "clients"),
    "relations": ("relations", "relation"),
    "accounts": ("accounts", "account", "accts", "acct"),
    "loans": ("loans", "loan", "contracts"),
}
MONEY = frozenset({"amount", "principal", "net_assets"})  # fields a `unit` may scale
UNITS = {"yuan": 1, "fen": 100}
TRUE = ("1", "y", "yes", "true", "t", "是")
FALSE = ("0", "n", "no", "false", "f", "否")
FIELD_KEYS = ("column", "columns", "value", "format", "unit", "values", "split", "thousands", "default")
DEFAULT_FORMATS = {"datetime": "%Y-%m-%dT%H:%M:%S%z", "date": "%Y-%m-%d"}


class MappingError(InputError):
    """A mapping file with problems, each at file:line:col."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))


@dataclass(frozen=True)
class Target:
    """What a record field takes: its kind, allowed values, whether it may be missing."""

    name: str
    kind: str  # text | choice | number | datetime | date | bool | list
    choices: tuple[str, ...] = ()
    required: bool = False
    nullable: bool = False
    fill: Any = None  # the record's default, for a field that cannot be null


@dataclass
class Field:
    target: Target
    columns: list[str]
    value: Any = None
    format: str | None = None
    unit: str = "yuan"
    values: dict[str, Any] | None = None
    split: str = ";"
    thousands: str | None = None
    default: Any = None
    where: tuple[int, int] = (1, 1)  # line, col of the field in the mapping, for problems found reading a file


@dataclass
class Export:
    kind: str
    files: list[str]
    fields: list[Field]
    delimiter: str = ","
    encoding: str = "utf8"
    mapping_file: str = ""
    tz: str = "UTC"

    def find(self, folder: Path) -> list[Path]:
        """The export's files in `folder`, by its globs (any case) or its default names."""
        paths = sorted(p for p in Path(folder).iterdir() if p.is_file() and file_format(p))
        if self.files:
            globs = [g.lower() for g in self.files]
            return [p for p in paths if any(fnmatch.fnmatchcase(p.name.lower(), g) for g in globs)]
        return [p for p in paths if named(p, EXPORT_NAMES[self.kind])]

    def expected(self) -> str:
        return (" or ".join(f"'{g}'" for g in self.files) + " (any case)" if self.files else
                "a name starting with " + ", ".join(f"'{n}'" for n in EXPORT_NAMES[self.kind]) +
                " (any case) and .csv, .parquet, .ndjson or .jsonl")

    def read(self, path: Path, batch: int) -> Any:
        """The file as DataFrames of source columns (CSV values as text)."""
        if file_format(path) == "ndjson":
            df = pl.read_ndjson(path, infer_schema_length=None)
            for start in range(0, df.height, batch):
                yield df.slice(start, batch)
            return
        yield from frames(path, batch, self.delimiter, self.encoding)

    def check_columns(self, path: Path, columns: list[str]) -> None:
        have = set(columns)
        for f in self.fields:
            for c in f.columns:
                if c not in have:
                    line, col = f.where
                    close = difflib.get_close_matches(c, columns, 1)
                    hint = f" (did you mean '{close[0]}'?)" if close else f"; it has {', '.join(columns[:12])}"
                    raise InputError(f"{path}: no column '{c}', which {self.mapping_file}:{line}:{col} maps to "
                                     f"'{f.target.name}'{hint}")

    def convert(self, df: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
        """Records' columns, and per row the reason it does not map (null: it does)."""
        out, reasons = [], []
        for f in self.fields:
            value, reason = _field_expr(f, df.schema, self.tz)
            out.append(value.alias(f.target.name))
            reasons.extend(reason)
        done = df.select(*out, pl.coalesce(reasons).alias("__reason") if reasons else pl.lit(None, pl.String)
                         .alias("__reason"))
        return done.drop("__reason"), done["__reason"]


@dataclass
class Mapping:
    file: str
    timezone: str
    exports: dict[str, Export]


def targets(kind: str) -> dict[str, Target]:
    """The fields a mapping can fill for a record kind; a loan's one collateral as `collateral.<field>`."""
    out = {}
    for f in mi.type_info(RECORDS[kind]).fields:
        if f.name == "collateral":
            for c in mi.type_info(Collateral).fields:
                t = _target(f"collateral.{c.name}", c.type, False, None)
                out[t.name] = t
            continue
        default = f.default if f.default is not mi.NODEFAULT else [] if isinstance(f.type, mi.ListType) else None
        out[f.name] = _target(f.name, f.type, f.required, default)
    return out


def _target(name: str, t: mi.Type, required: bool, fill: Any) -> Target:
    nullable = False
    if isinstance(t, mi.UnionType):
        nullable = any(isinstance(x, mi.NoneType) for x in t.types)
        t = next(x for x in t.types if not isinstance(x, mi.NoneType))
    if isinstance(t, mi.LiteralType):
        return Target(name, "choice", tuple(t.values), required, nullable, fill)
    kind = {mi.StrType: "text", mi.FloatType: "number", mi.IntType: "number", mi.DateTimeType: "datetime",
            mi.DateType: "date", mi.BoolType: "bool", mi.ListType: "list"}[type(t)]
    return Target(name, kind, (), required, nullable, fill)


# --- loading and checking ---------------------------------------------------------


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; every problem at file:line:col (MappingError)."""
    try:
        doc = load(Path(path))
    except RuleError as e:
        raise MappingError(e.problems) from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the mapping: {e.strerror}") from None
    problems: list[Problem] = []
    data = doc.data
    if not isinstance(data, dict):
        raise MappingError([doc.problem((), "a mapping file is a YAML mapping with `version`, `timezone`, `exports`")])
    _unknown(doc, (), data, ("version", "timezone", "exports"), problems)
    if data.get("version", 1) != 1:
        problems.append(doc.problem(("version",), f"unsupported mapping version {data.get('version')!r} (this "
                                                  "fundwatch reads version 1)"))
    tz = data.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(doc.problem(("timezone",), f"unknown time zone {tz!r} (an IANA name such as Asia/Shanghai)"))
    exports = data.get("exports")
    if not isinstance(exports, dict) or not exports:
        problems.append(doc.problem(("exports",) if "exports" in data else (),
                                    f"`exports` must map export kinds ({', '.join(RECORDS)}) to their fields"))
        raise MappingError(problems)
    out = {}
    for kind, spec in exports.items():
        if kind not in RECORDS:
            problems.append(doc.key_problem(("exports", kind), f"unknown export {kind!r}{_did_you_mean(kind, RECORDS)}"
                                                               f"; exports are {', '.join(RECORDS)}"))
            continue
        export = _export(doc, kind, spec, str(tz), problems)
        if export is not None:
            out[kind] = export
    if problems:
        raise MappingError(problems)
    return Mapping(doc.file, str(tz), out)


def _export(doc: Located, kind: str, spec: Any, tz: str, problems: list[Problem]) -> Export | None:
    at = ("exports", kind)
    if not isinstance(spec, dict):
        problems.append(doc.problem(at, "an export is a mapping with `fields` (and `files`, `csv`)"))
        return None
    _unknown(doc, at, spec, ("files", "csv", "fields"), problems)
    files = spec.get("files", [])
    files = [files] if isinstance(files, str) else files
    if not isinstance(files, list) or not all(isinstance(g, str) for g in files):
        problems.append(doc.problem((*at, "files"), "`files` is a glob or a list of globs, such as 'txn*.csv'"))
        files = []
    csv_spec = spec.get("csv", {}) or {}
    delimiter, encoding = ",", "utf8"
    if not isinstance(csv_spec, dict):
        problems.append(doc.problem((*at, "csv"), "`csv` is a mapping with `delimiter` and `encoding`"))
    else:
        _unknown(doc, (*at, "csv"), csv_spec, ("delimiter", "encoding"), problems)
        delimiter = csv_spec.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            problems.append(doc.problem((*at, "csv", "delimiter"), "a delimiter is one character"))
        encoding = str(csv_spec.get("encoding", "utf8"))
        try:
            "".encode(encoding)
        except LookupError:
            problems.append(doc.problem((*at, "csv", "encoding"), f"unknown encoding {encoding!r}"))
    fields_spec = spec.get("fields")
    if not isinstance(fields_spec, dict):
        problems.append(doc.problem((*at, "fields") if "fields" in spec else at,
                                    "`fields` maps the record's fields to the export's columns"))
        return None
    known = targets(kind)
    record = RECORDS[kind].__name__
    fields: list[Field] = []
    for name, fspec in fields_spec.items():
        fat = (*at, "fields", name)
        target = known.get(name)
        if target is None:
            problems.append(doc.key_problem(fat, f"unknown field '{name}' in {record}{_did_you_mean(name, known)}"))
            continue
        f = _field(doc, fat, target, fspec, problems)
        if f is not None:
            fields.append(f)
    for t in known.values():
        if t.required and t.name not in fields_spec:
            problems.append(doc.key_problem((*at, "fields"), f"missing field '{t.name}' (every {record} needs it)"))
    if any(f.target.name.startswith("collateral.") for f in fields) and "collateral.kind" not in fields_spec:
        problems.append(doc.key_problem((*at, "fields"), "a loan's collateral needs 'collateral.kind'"))
    return Export(kind, files, fields, delimiter, encoding, doc.file, tz)


def _field(doc: Located, at: tuple, target: Target, spec: Any, problems: list[Problem]) -> Field | None:
    where = doc.where(at)  # of the column's name, for a file that lacks it
    if isinstance(spec, str):
        spec = {"column": spec}
    elif isinstance(spec, dict) and ("column" in spec or "columns" in spec):
        where = doc.where((*at, "column") if "column" in spec else (*at, "columns"))
    if not isinstance(spec, dict):
        problems.append(doc.problem(at, f"'{target.name}' takes a column name or a mapping with `column` or `value`"))
        return None
    _unknown(doc, at, spec, FIELD_KEYS, problems)
    sources = [k for k in ("column", "columns", "value") if k in spec]
    if len(sources) != 1:
        problems.append(doc.problem(at, f"'{target.name}' needs exactly one of `column`, `columns`, `value`"))
        return None
    columns = [spec["column"]] if "column" in spec else spec.get("columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, (str, int)) for c in columns) or \
            ("columns" in spec and not columns):
        problems.append(doc.problem((*at, sources[0]), "a column is a name; `columns` a list of names"))
        return None
    f = Field(target, [str(c) for c in columns], spec.get("value"), where=where)
    problems_before = len(problems)
    if "format" in spec:
        if target.kind not in ("datetime", "date"):
            problems.append(doc.problem((*at, "format"), f"`format` is for dates and times; '{target.name}' is "
                                                         f"{target.kind}"))
        else:
            f.format = str(spec["format"])
            why = _bad_format(f.format, target.kind)
            if why:
                problems.append(doc.problem((*at, "format"), why))
    if "unit" in spec:
        if target.name not in MONEY:
            problems.append(doc.problem((*at, "unit"), f"`unit` is for amounts ({', '.join(sorted(MONEY))})"))
        elif spec["unit"] not in UNITS:
            problems.append(doc.problem((*at, "unit"), f"unknown unit {spec['unit']!r}; one of yuan, fen"))
        else:
            f.unit = spec["unit"]
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, dict) or not values:
            problems.append(doc.problem((*at, "values"), "`values` maps the export's codes to fundwatch's"))
        else:
            for code, v in values.items():
                if target.kind == "choice" and v not in target.choices:
                    problems.append(doc.problem((*at, "values", code), f"{v!r} is not a {target.name}"
                                                                       f"{_did_you_mean(str(v), target.choices)}"
                                                                       f"; one of {', '.join(target.choices)}"))
            f.values = {str(k): v for k, v in values.items()}
    if "split" in spec:
        if target.kind != "list":
            problems.append(doc.problem((*at, "split"), f"`split` is for lists; '{target.name}' is {target.kind}"))
        f.split = str(spec["split"])
    if "thousands" in spec:
        f.thousands = str(spec["thousands"])
    if target.kind == "text" and spec.get("default") is not None:
        f.default = str(spec["default"])  # an empty text is a fine default
    for key in ("value", "default") if target.kind != "text" else ("value",):
        if spec.get(key) is not None and len(problems) == problems_before:
            try:
                one = pl.DataFrame({"v": [str(spec[key]) if not isinstance(spec[key], bool) else
                                          ("true" if spec[key] else "false")]})
                probe = Field(target, ["v"], None, f.format, f.unit, f.values if key == "value" else None, f.split,
                              f.thousands)
                value, reasons = _field_expr(probe, one.schema, "UTC")
                got = one.select(value.alias("x"), *[r.alias(f"r{i}") for i, r in enumerate(reasons)]).row(0)
            except Exception as e:  # noqa: BLE001 - polars' own refusal, reported at the place
                got = (None, str(e).splitlines()[0])
            if got[0] is None or any(got[1:]):
                problems.append(doc.problem((*at, key), f"{spec[key]!r} is not a valid {target.name}"
                                            + (f" (one of {', '.join(target.choices)})" if target.choices else "")))
            elif key == "value":
                f.value = str(spec[key]) if not isinstance(spec[key], bool) else spec[key]
            else:
                f.default = got[0]
    return f if len(problems) == problems_before else None


def _bad_format(fmt: str, kind: str) -> str | None:
    sample = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc) if kind == "datetime" else date(2026, 3, 4)
    try:
        text = pl.Series([sample]).dt.strftime(fmt)
        parsed = text.str.strptime(pl.Datetime("us") if kind == "datetime" else pl.Date, fmt, strict=True)
        ok = parsed[0] is not None
    except Exception:  # noqa: BLE001 - polars refuses a format in many ways
        ok = False
    return None if ok else f"the format {fmt!r} cannot read back what it writes (strptime directives such as " \
                           f"%Y-%m-%d %H:%M:%S)"


def _unknown(doc: Located, at: tuple, data: dict, allowed: tuple[str, ...], problems: list[Problem]) -> None:
    for key in data:
        if key not in allowed:
            problems.append(doc.key_problem((*at, key), f"unknown key '{key}'{_did_you_mean(key, allowed)}"
                                                        f"; expected {', '.join(allowed)}"))


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), 1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- converting ------------------------------------------------------------------


def _text(f: Field, schema: pl.Schema) -> tuple[pl.Expr, str]:
    """The field's source as stripped text (null when empty), and how a reason names it."""
    if f.value is not None:
        return pl.lit(str(f.value) if not isinstance(f.value, bool) else ("true" if f.value else "false")), "value"
    cols = [pl.col(c).cast(pl.String).str.strip_chars() for c in f.columns]
    s = cols[0] if len(cols) == 1 else pl.concat_str(cols, separator=" ")
    return pl.when(s != "").then(s), "+".join(f.columns)


def _field_expr(f: Field, schema: pl.Schema, tz: str) -> tuple[pl.Expr, list[pl.Expr]]:
    t = f.target
    text, name = _text(f, schema)
    reasons: list[pl.Expr] = []

    def why(bad: pl.Expr, what: str, show: pl.Expr = text) -> None:
        reasons.append(pl.when(bad).then(pl.concat_str([pl.lit(f"unmapped: $.{t.name}: {name} '"),
                                                        show.fill_null(""), pl.lit(f"' {what}")])))

    typed = f.value is None and len(f.columns) == 1 and schema.get(f.columns[0]) is not None and \
        schema[f.columns[0]].is_temporal() and t.kind in ("datetime", "date")
    if f.values is not None:
        mapped = text.replace_strict(list(f.values), [str(v) for v in f.values.values()], default=None,
                                     return_dtype=pl.String)
        why(text.is_not_null() & mapped.is_null(), "is not in the mapping's values")
        source = mapped
    else:
        source = text
    if typed:  # a Parquet or NDJSON export with real timestamps
        col = pl.col(f.columns[0])
        dtype = schema[f.columns[0]]
        if t.kind == "date":
            value = col.cast(pl.Date)
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone:
            value = col.dt.convert_time_zone("UTC")
        else:
            value = col.cast(pl.Datetime("us")).dt.replace_time_zone(tz, ambiguous="earliest",
                                                                    non_existent="null").dt.convert_time_zone("UTC")
        source = col.cast(pl.String)
    elif t.kind in ("text",):
        value = source
    elif t.kind == "choice":
        value = pl.when(source.is_in(list(t.choices))).then(source)
        why(source.is_not_null() & value.is_null(), f"is not one of {', '.join(t.choices)}", source)
    elif t.kind == "number":
        plain = source.str.replace_all(f.thousands, "", literal=True) if f.thousands else source
        number = plain.cast(pl.Float64, strict=False)
        why(source.is_not_null() & number.is_null(), "is not a number")
        if UNITS[f.unit] != 1:
            why(number.is_not_null() & (number != number.round(0)), f"is not a whole number of {f.unit}")
            number = pl.when(number == number.round(0)).then((number / UNITS[f.unit]).round(2))
        value = number
    elif t.kind in ("datetime", "date"):
        fmt = f.format or DEFAULT_FORMATS[t.kind]
        if t.kind == "date":
            value = source.str.strptime(pl.Date, fmt, strict=False)
        elif "%z" in fmt or "%:z" in fmt or "%#z" in fmt:
            value = source.str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False)
        else:
            value = source.str.strptime(pl.Datetime("us"), fmt, strict=False).dt.replace_time_zone(
                tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
        why(source.is_not_null() & value.is_null(), f"does not fit the format '{fmt}'"
            + ("" if "%z" in fmt else f" in {tz}"))
    elif t.kind == "bool":
        lower = source.str.to_lowercase()
        value = pl.when(lower.is_in(TRUE)).then(True).when(lower.is_in(FALSE)).then(False)
        why(source.is_not_null() & value.is_null(), "is not yes or no")
    else:  # list
        value = source.str.split(f.split).list.eval(pl.element().str.strip_chars()).list.eval(
            pl.element().filter(pl.element() != ""))
    if f.default is not None:
        value = value.fill_null(pl.lit(f.default))
    if t.required:
        why(value.is_null() & source.is_null(), "is empty")
    elif not t.nullable and t.fill is not None:
        value = value.fill_null(pl.lit(t.fill, dtype=pl.List(pl.String)) if isinstance(t.fill, list) else
                                pl.lit(t.fill))
    return value, reasons


def rows_as_records(kind: str, df: pl.DataFrame) -> list[dict[str, Any]]:
    """Converted reference rows as dicts for msgspec: a loan's `collateral.*` become its one collateral."""
    rows = df.to_dicts()
    if kind != "loans":
        return rows
    for row in rows:
        parts = {k.split(".", 1)[1]: row.pop(k) for k in list(row) if k.startswith("collateral.")}
        if parts:
            row["collateral"] = [{k: v for k, v in parts.items() if v is not None}] if parts.get("kind") else []
    return rows


def json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """A source row for a dead letter's payload."""
    return {k: v if isinstance(v, (str, int, float, bool)) or v is None else str(v) for k, v in row.items()}


def decoder(kind: str) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(RECORDS[kind])
