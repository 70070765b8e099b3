"""Bounds on hostile input: amounts above the limit, overlong texts, YAML that
expands without end, and regular expressions that could backtrack forever."""

from __future__ import annotations

import time

import msgspec

from engine.batch import Raw
from engine.decode import Limits, decode
from engine.context import enrich
from engine.records import Transaction
from engine.rules.pack import load_pack
from tests.test_rule_errors import edit, pack, problems  # noqa: F401 - the pack fixture
from tests.test_tracing import reference

GOOD = {"id": "t1", "ts": "2026-01-09T10:00:00Z", "from_account": "D1", "to_account": "CASH", "amount": 5.0,
        "channel": "cash"}


def _reasons(*events: dict, limits: Limits = Limits()) -> list[str]:
    raws = [Raw("transactions", "t", f"0:{i}", msgspec.json.encode(e)) for i, e in enumerate(events)]
    out = decode(raws, limits)
    return [d.reason for d in out.dead] + [r.id for _, r in out.items]


def test_amounts_above_the_limit_and_overlong_texts_are_invalid():
    assert _reasons(GOOD) == ["t1"]
    raw_inf = Raw("transactions", "t", "0:9", msgspec.json.encode(GOOD).replace(b"5.0", b"1e400"))
    assert decode([raw_inf]).dead[0].reason.startswith("invalid: $.amount: ")
    assert _reasons({**GOOD, "amount": 2e12}) == ["invalid: $.amount: 2e+12 above the limit 1e+12"]
    assert _reasons({**GOOD, "memo": "x" * 1001}) == ["invalid: $.memo: 1001 characters > limit 1000"]
    assert _reasons({**GOOD, "memo": "x" * 50}, limits=Limits(max_text=20))[0].startswith("invalid: $.memo")
    assert _reasons({**GOOD, "amount": 2e12}, limits=Limits(max_amount=1e13)) == ["t1"]


def test_yaml_aliases_that_expand_without_end_are_refused_at_their_place(pack):
    laughs = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9))
    edit(pack / "CO-001.yaml", "owner: risk-policy\n", "owner: risk-policy\nx0: &l0 ha\n" + laughs)
    started = time.monotonic()
    (problem,) = problems(pack)
    assert time.monotonic() - started < 10
    assert problem.startswith("CO-001.yaml:") and "expands to more than 100,000 nodes" in problem, problem


def test_a_regex_that_needs_backtracking_is_refused_at_load(pack):
    edit(pack / "CO-001.yaml", "  cash: {channel: cash}\n", "  cash: {channel: cash, memo|re: '(a)\\1'}\n")
    (problem,) = problems(pack)
    assert problem.startswith("CO-001.yaml:16:") and "bad regular expression" in problem and "invalid escape sequence" in problem, problem


def test_a_catastrophic_pattern_runs_in_linear_time(pack):
    edit(pack / "CO-001.yaml", "  cash: {channel: cash}\n", "  cash: {channel: cash, memo|re: '^(a+)+$'}\n")
    rule = next(r for r in load_pack(pack).rules if r.id == "CO-001")
    hostile = msgspec.convert({**GOOD, "amount": 60000, "memo": "a" * 30_000 + "!"}, Transaction)
    started = time.monotonic()
    assert rule.in_scope(enrich(hostile, reference())) is False  # a backtracking engine would never return
    assert time.monotonic() - started < 5
