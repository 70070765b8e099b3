"""Polars schemas derived from the msgspec Structs of engine.records.

Derived, not restated: a field added to a record shows up in the Parquet
files (and a type we cannot map fails loudly here, not in a reader).
"""

from __future__ import annotations

import msgspec.inspect as mi
import polars as pl

DATETIME = pl.Datetime("us", "UTC")


def dtype(t: mi.Type) -> pl.DataType:
    if isinstance(t, mi.UnionType):
        inner = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(inner) != 1:
            raise TypeError(f"cannot map union {t!r} to one polars type")
        return dtype(inner[0])
    if isinstance(t, mi.LiteralType) and all(isinstance(v, str) for v in t.values):
        return pl.String()
    if isinstance(t, mi.ListType):
        return pl.List(dtype(t.item_type))
    if isinstance(t, mi.StructType):
        return pl.Struct({f.name: dtype(f.type) for f in t.fields})
    simple = {mi.StrType: pl.String(), mi.FloatType: pl.Float64(), mi.IntType: pl.Int64(), mi.BoolType: pl.Boolean(),
              mi.DateType: pl.Date(), mi.DateTimeType: DATETIME}
    for cls, dt in simple.items():
        if isinstance(t, cls):
            return dt
    raise TypeError(f"cannot map {t!r} to a polars type")


def schema(struct: type) -> pl.Schema:
    """Column names and types of a Struct, in field order."""
    return pl.Schema({f.name: dtype(f.type) for f in mi.type_info(struct).fields})
