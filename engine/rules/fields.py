"""Field paths in rules, resolved against the record schema at load time.

`counterparty.sector` becomes a getter plus the leaf's type, so a typo or a
value of the wrong type fails when the pack loads, never on a live event.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from operator import attrgetter
from typing import Any

import msgspec.inspect as mi


@dataclass(frozen=True)
class Field:
    path: str
    get: Callable[[Any], Any]
    kind: str  # number | str | bool | datetime | date | list | struct
    choices: tuple[str, ...] | None = None  # for Literal fields


class UnknownField(LookupError):
    def __init__(self, message: str, segment: int):
        super().__init__(message)
        self.segment = segment  # index of the path segment that failed


def _kind(t: mi.Type) -> tuple[str, tuple[str, ...] | None]:
    if isinstance(t, (mi.FloatType, mi.IntType)):
        return "number", None
    if isinstance(t, mi.LiteralType):
        return "str", tuple(str(v) for v in t.values)
    if isinstance(t, mi.StrType):
        return "str", None
    if isinstance(t, mi.BoolType):
        return "bool", None
    if isinstance(t, mi.DateTimeType):
        return "datetime", None
    if isinstance(t, mi.DateType):
        return "date", None
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType)):
        return "list", None
    if isinstance(t, mi.StructType):
        return "struct", None
    return "any", None


def _unwrap(t: mi.Type) -> mi.Type:
    """`X | None` is X for resolution: a missing value makes every test false."""
    if isinstance(t, mi.UnionType):
        rest = [u for u in t.types if not isinstance(u, mi.NoneType)]
        if len(rest) == 1:
            return rest[0]
    return t


@cache
def resolve(root: type, path: str) -> Field:
    t: mi.Type = mi.type_info(root)
    names = path.split(".")
    for i, name in enumerate(names):
        t = _unwrap(t)
        if not isinstance(t, mi.StructType):
            raise UnknownField(f"'{'.'.join(names[:i])}' has no fields (looking for '{name}')", i)
        fields = {f.name: f for f in t.fields}
        if name not in fields:
            hint = difflib.get_close_matches(name, fields, n=1)
            where = f" in '{'.'.join(names[:i])}'" if i else ""
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise UnknownField(f"unknown field '{name}'{where}{suggestion}", i)
        t = fields[name].type
    kind, choices = _kind(_unwrap(t))
    return Field(path, _getter(tuple(names)), kind, choices)


def _getter(names: tuple[str, ...]) -> Callable[[Any], Any]:
    if len(names) == 1:
        return attrgetter(names[0])
    head, inner = attrgetter(names[0]), _getter(names[1:])

    def get(obj: Any) -> Any:
        value = head(obj)
        return None if value is None else inner(value)

    return get
