"""Field tests and their combinations, as closures over the event view.

`check` says why a value cannot be tested against a field (at load time);
`predicate` builds the test; `combine` folds a parsed condition. Closures are
folded pairwise because a rule's tests run on every event and
`all(p(v) for p in ...)` costs a generator per call.

`|re` patterns run on RE2, whose matching time is linear in the text: a
pattern that could backtrack catastrophically on a hostile memo (`(a+)+b`)
cannot stall the flow, and RE2 refuses what it cannot match that way
(back-references, look-around) when the pack loads.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Callable
from datetime import date, datetime, timezone, tzinfo
from typing import Any

import re2

from engine.rules import condition as cond
from engine.rules.fields import Field

Predicate = Callable[[Any], bool]
MODIFIERS = ("eq", "in", "gt", "gte", "lt", "lte", "between", "startswith", "contains", "re", "exists", "during",
             "weekday", "hours")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALENDAR = {"during", "weekday", "hours"}  # tests of a time read in the bank's time zone
NUMBER_OPS = {"gt", "gte", "lt", "lte", "between"}
STR_OPS = {"startswith", "re"}


def check(f: Field, mod: str, value: Any) -> str | None:
    """Why `value` cannot be tested against field `f` with `mod`, if it cannot."""
    values = value if isinstance(value, list) else [value]
    if mod == "exists":
        return None if isinstance(value, bool) else "exists takes true or false"
    if mod in ("weekday", "hours") and f.kind != "datetime":
        return f"{mod} needs a time field, '{f.path}' is {f.kind}"
    if mod == "weekday":
        bad = [v for v in values if v not in WEEKDAYS]
        return f"weekday takes days among {', '.join(WEEKDAYS)}, not {bad[0]!r}" if bad or not values else None
    if mod == "hours":
        ok = isinstance(value, list) and len(value) == 2 and all(
            isinstance(h, (int, float)) and not isinstance(h, bool) and 0 <= h <= 24 for h in value)
        return None if ok else "hours takes [from, to], local hours 0-24 (to before from wraps past midnight)"
    if mod == "during":
        if f.kind not in ("datetime", "date"):
            return f"during needs a time or date field, '{f.path}' is {f.kind}"
        if not isinstance(value, list) or not value:
            return "during takes a list of dates or date ranges (2026-02-08/2026-03-08)"
        for v in values:
            try:
                periods([v])
            except (TypeError, ValueError):
                return f"{v!r} is not a date (2026-02-08) or a date range (2026-02-08/2026-03-08)"
        return None
    if mod == "in" and not isinstance(value, list):
        return "in takes a list"
    if mod == "between" and (not isinstance(value, list) or len(value) != 2):
        return "between takes [low, high]"
    if mod in ("eq", "gt", "gte", "lt", "lte") and isinstance(value, list):
        return f"{mod} takes one value"
    if f.kind in ("struct", "datetime", "date", "any"):
        return f"field '{f.path}' ({f.kind}) cannot be compared; test one of its fields"
    if mod == "contains":
        return None if f.kind in ("str", "list") and not isinstance(value, list) else "contains takes one value on a text or list field"
    if mod in NUMBER_OPS and f.kind != "number":
        return f"{mod} needs a number field, '{f.path}' is {f.kind}"
    if mod in STR_OPS and f.kind != "str":
        return f"{mod} needs a text field, '{f.path}' is {f.kind}"
    want = {"number": (int, float), "str": str, "bool": bool, "list": str}[f.kind]
    for v in values:
        if isinstance(v, bool) and f.kind != "bool" or not isinstance(v, want):
            return f"expected {f.kind} value(s) for '{f.path}', got {v!r}"
    if f.choices and mod in ("eq", "in"):
        for v in values:
            if v not in f.choices:
                hint = difflib.get_close_matches(v, f.choices, n=1)
                return f"{v!r} is not a valid {f.path}" + (f" (did you mean '{hint[0]}'?)" if hint else f"; one of {', '.join(f.choices)}")
    if mod == "re":
        for v in values:
            try:
                _regex(v)
            except re2.error as e:
                why = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
                return f"bad regular expression {v!r}: {why} (RE2 runs it in linear time: no back-references or look-around)"
    return None


def _regex(pattern: str):
    options = re2.Options()
    options.log_errors = False  # the problem is reported at file:line:col, not on stderr
    return re2.compile(pattern, options)


def periods(values: list) -> tuple[list[date], list[date]]:
    """Sorted starts and ends of inclusive date ranges written `2026-02-08/2026-03-08` or `2026-04-05`."""
    spans = []
    for v in values:
        first, _, last = str(v).partition("/")
        start, end = date.fromisoformat(first), date.fromisoformat(last or first)
        if end < start:
            raise ValueError(f"{v!r} ends before it starts")
        spans.append((start, end))
    spans.sort()
    return [s for s, _ in spans], [e for _, e in spans]


def predicate(f: Field, mod: str, value: Any, tz: tzinfo = timezone.utc) -> Predicate:
    """The test of one field; `during` reads a time's calendar day in the bank's time zone `tz`."""
    get = f.get
    if mod == "weekday":
        days = frozenset(WEEKDAYS.index(v) for v in (value if isinstance(value, list) else [value]))
        return lambda v: (x := get(v)) is not None and x.astimezone(tz).weekday() in days
    if mod == "hours":
        low, high = value

        def within(v: Any) -> bool:
            x = get(v)
            if x is None:
                return False
            local = x.astimezone(tz)
            hour = local.hour + local.minute / 60 + local.second / 3600
            return low <= hour < high if low <= high else hour >= low or hour < high

        return within
    if mod == "during":
        starts, ends = periods(value)
        ends = [max(ends[: i + 1]) for i in range(len(ends))]  # overlapping ranges: the furthest end so far

        def during(v: Any) -> bool:
            x = get(v)
            if x is None:
                return False
            day = x.astimezone(tz).date() if isinstance(x, datetime) else x
            i = bisect.bisect_right(starts, day)
            return i > 0 and day <= ends[i - 1]

        return during
    if mod == "exists":
        return (lambda v: get(v) is not None) if value else (lambda v: get(v) is None)
    if mod == "eq":
        return lambda v: get(v) == value
    if mod == "in":
        members = frozenset(value)
        return lambda v: get(v) in members
    if mod == "between":
        low, high = value
        return lambda v: (x := get(v)) is not None and low <= x <= high
    if mod == "startswith":
        prefixes = tuple(value) if isinstance(value, list) else value
        return lambda v: (x := get(v)) is not None and x.startswith(prefixes)
    if mod == "contains":
        return lambda v: (x := get(v)) is not None and value in x
    if mod == "re":
        pattern = _regex("|".join(value) if isinstance(value, list) else value)
        return lambda v: (x := get(v)) is not None and pattern.search(x) is not None
    compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}[mod]
    bound = float(value)
    return lambda v: (x := get(v)) is not None and compare(float(x), bound)


def combine(node: cond.Node, selections: dict[str, Predicate]) -> Predicate:
    op = node[0]
    if op == "sel":
        return selections[node[1]]
    if op == "not":
        inner = combine(node[1], selections)
        return lambda v: not inner(v)
    parts = [combine(n, selections) for n in node[1]]
    return conjunction(parts) if op == "and" else disjunction(parts)


def conjunction(preds: list[Predicate]) -> Predicate:
    if not preds:
        return lambda v: True
    if len(preds) == 1:
        return preds[0]
    first, rest = preds[0], conjunction(preds[1:])
    return lambda v: first(v) and rest(v)


def disjunction(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    first, rest = preds[0], disjunction(preds[1:])
    return lambda v: first(v) or rest(v)
