"""The rule language piece by piece: every modifier, the condition grammar, list
references and exceptions, compiled from YAML and run on real enriched events."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from engine.context import enrich
from engine.reference import Reference
from engine.rules import source
from engine.rules.compiler import compile_rule
from engine.rules.errors import RuleError
from tests import tinybank
from tests.tinybank import tx

RULE = """id: XX-001
title: test rule
version: 1
status: stable
severity: low
risk_score: 10
applies_to: {{stream: transactions}}
detection:
{detection}
output:
  summary: "{{amount}} to {{counterparty.id}}"
tests:
  - {{name: fires, events: [], expect: {{alerts: 1}}}}
  - {{name: quiet, events: [], expect: {{alerts: 0}}}}
"""
LISTS = {"prohibited_sectors": ["real_estate", "securities"], "big": [100, 200]}


def reference() -> Reference:
    ref = Reference()
    ref.add_all([*tinybank.PARTIES, *tinybank.ACCOUNTS, *tinybank.LOANS, *tinybank.RELATIONS])
    return ref


REF = reference()
CASH = enrich(tx("c", 3, "D1", "CASH", 60_000, "cash", memo="ATM withdrawal 7781"), REF)
BROKER = enrich(tx("b", 4, "D1", "A-SEC", 80_000, memo="Margin top-up", mcc="6211"), REF)
RENT = enrich(tx("r", 5, "A-B1", "A-BAD", 30_000, memo="rent Jan"), REF)


def rule(tmp_path: Path, detection: str):
    path = tmp_path / "XX-001.yaml"
    path.write_text(RULE.format(detection=detection))
    return compile_rule(source.load(path), LISTS)


@pytest.mark.parametrize("detection, fires_on", [
    ("  s: {channel: cash}\n  condition: s", {"c"}),
    ("  s: {channel: [cash, card]}\n  condition: s", {"c"}),
    ("  s: {counterparty.sector|in: $list:prohibited_sectors}\n  condition: s", {"b", "r"}),
    ("  s: {amount|gt: 60000}\n  condition: s", {"b"}),
    ("  s: {amount|gte: 60000}\n  condition: s", {"c", "b"}),
    ("  s: {amount|lt: 60000}\n  condition: s", {"r"}),
    ("  s: {amount|lte: 60000}\n  condition: s", {"c", "r"}),
    ("  s: {amount|between: [30000, 60000]}\n  condition: s", {"c", "r"}),
    ("  s: {memo|startswith: [ATM, rent]}\n  condition: s", {"c", "r"}),
    ("  s: {memo|contains: top-up}\n  condition: s", {"b"}),
    ("  s: {memo|re: '[0-9]{4}$'}\n  condition: s", {"c"}),
    ("  s: {mcc|exists: true}\n  condition: s", {"b"}),
    ("  s: {mcc|exists: false}\n  condition: s", {"c", "r"}),
    ("  s: {loan.contracted_payees|contains: S1}\n  condition: s", {"c", "b", "r"}),
    ("  s: {funded_by_loan: true, channel: cash}\n  condition: s", {"c"}),
])
def test_modifiers(tmp_path, detection, fires_on):
    r = rule(tmp_path, detection)
    assert {v.id for v in (CASH, BROKER, RENT) if r.in_scope(v)} == fires_on


@pytest.mark.parametrize("condition, fires_on", [
    ("sel_cash or sel_big or not funded", {"c", "b", "r"}),
    ("(sel_cash and funded) or (sel_big and not funded)", {"c"}),
    ("not sel_cash and funded and not sel_big", set()),
    ("1 of sel_* and funded", {"c", "b"}),
    ("all of sel_* or not funded", {"r"}),
    ("funded and 1 of them", {"c", "b"}),
    ("not (funded or sel_cash) and not sel_big", {"r"}),
])
def test_conditions(tmp_path, condition, fires_on):
    detection = ("  sel_cash: {channel: cash}\n  sel_big: {amount|gte: 70000}\n  funded: {funded_by_loan: true}\n"
                 f"  condition: {condition}")
    r = rule(tmp_path, detection)
    assert {v.id for v in (CASH, BROKER, RENT) if r.in_scope(v)} == fires_on


def test_during_reads_the_calendar_day_in_the_banks_time_zone(tmp_path):
    path = tmp_path / "XX-001.yaml"
    path.write_text(RULE.format(detection="  s: {ts|during: ['2026-01-08/2026-01-09', '2026-02-01']}\n  condition: s"))
    r = compile_rule(source.load(path), LISTS, ZoneInfo("Asia/Shanghai"))
    days = {"2026-01-07T15:59:00+00:00": False,  # 23:59 on the 7th in Shanghai
            "2026-01-07T16:00:00+00:00": True,  # midnight: the 8th in Shanghai, still the 7th in UTC
            "2026-01-09T15:59:00+00:00": True, "2026-01-09T16:00:00+00:00": False,
            "2026-02-01T12:00:00+00:00": True}
    for when, expected in days.items():
        view = msgspec.structs.replace(RENT, ts=datetime.fromisoformat(when))
        assert r.in_scope(view) is expected, when
    utc = compile_rule(source.load(path), LISTS)  # without a time zone the days are UTC days
    assert not utc.in_scope(msgspec.structs.replace(RENT, ts=datetime.fromisoformat("2026-01-07T16:00:00+00:00")))


def test_exception_stops_a_match_and_explanation_names_what_held(tmp_path):
    path = tmp_path / "XX-001.yaml"
    text = RULE.format(detection="  funded: {funded_by_loan: true}\n  big: {amount|gte: 50000}\n  condition: funded and big")
    text = text.replace("output:", "exceptions:\n  - {name: brokers, reason: tested elsewhere, where: {counterparty.sector: securities}}\noutput:")
    path.write_text(text)
    r = compile_rule(source.load(path), LISTS)
    assert r.in_scope(CASH) and not r.in_scope(BROKER)
    m = r.explain(CASH)
    assert m.conditions == ["funded", "big"] and m.values["amount"] == 60000.0 and m.summary == "60000 to BANK"


@pytest.mark.parametrize("detection, message", [
    ("  s: {amount|between: [1]}\n  condition: s", "between takes [low, high]"),
    ("  s: {amount|startswith: x}\n  condition: s", "startswith needs a text field, 'amount' is number"),
    ("  s: {memo|re: '('}\n  condition: s", "bad regular expression"),
    ("  s: {channel|in: cash}\n  condition: s", "in takes a list"),
    ("  s: {borrower: B1}\n  condition: s", "cannot be compared; test one of its fields"),
    ("  s: {amount|gte: 1}\n  t: {amount|lte: 9}\n  condition: s", "selection 't' is not used in the condition"),
    ("  s: {amount|gte: 1}\n  condition: 2 of s*", "unknown selection '2'"),
    ("  s: {amount|gte: 1}\n  condition: 1 of x*", "'x*' matches no selection"),
    ("  s: {amount|gte: 1}\n  condition: s and", "condition ends too early"),
    ("  s: {amount|gte: 1}", "detection needs a 'condition'"),
    ("  s: {amount|during: ['2026-01-01']}\n  condition: s", "during needs a time or date field, 'amount' is number"),
    ("  s: {ts|during: '2026-01-01'}\n  condition: s", "during takes a list of dates or date ranges"),
    ("  s: {ts|during: ['2026-03-01/2026-02-01']}\n  condition: s", "is not a date (2026-02-08) or a date range"),
    ("  s: {ts|during: [tomorrow]}\n  condition: s", "'tomorrow' is not a date"),
    ("  s: {memo: null}\n  condition: s", "'memo': a test needs a value (to test that a field has none: memo|exists"),
])
def test_language_errors(tmp_path, detection, message):
    with pytest.raises(RuleError) as err:
        rule(tmp_path, detection)
    assert any(message in str(p) and str(p).startswith(str(tmp_path / "XX-001.yaml") + ":") for p in err.value.problems), \
        err.value.problems


def test_no_python_is_executed_from_yaml(tmp_path):
    path = tmp_path / "XX-001.yaml"
    path.write_text(RULE.format(detection="  s: !!python/object/apply:os.system ['touch pwned']\n  condition: s"))
    with pytest.raises(RuleError) as err:
        compile_rule(source.load(path), LISTS)
    assert ":9:6: YAML tags are not allowed here (tag:yaml.org,2002:python/object/apply:os.system)" in str(err.value)
    assert not (tmp_path / "pwned").exists()
