"""A broken rule file is reported at file:line:col, and the pack is refused whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.rules.errors import RuleError
from engine.rules.lock import check_lock
from engine.rules.pack import load_pack

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "rules" / "post_loan", tmp_path / "post_loan")
    shutil.copytree(ROOT / "rules" / "lists", tmp_path / "lists")
    shutil.copytree(ROOT / "rules" / "filters", tmp_path / "filters")
    return tmp_path / "post_loan"


def problems(pack: Path) -> list[str]:
    with pytest.raises(RuleError) as err:
        load_pack(pack)
    return [str(p).replace(str(pack) + "/", "") for p in err.value.problems]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_default_pack_loads():
    pack = load_pack(ROOT / "rules" / "post_loan")
    assert {r.id for r in pack.rules} >= {"PV-001", "LO-001", "CO-001"}


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        ("PV-001.yaml", "counterparty.sector|in", "counterparty.sectr|in",
         "PV-001.yaml:20:16: unknown field 'sectr' in 'counterparty' (did you mean 'sector'?) [PV-001]"),
        ("CO-001.yaml", "amount|gte", "amout|gte",
         "CO-001.yaml:17:17: unknown field 'amout' (did you mean 'amount'?) [CO-001]"),
        ("CO-001.yaml", "amount|gte", "amount|gtee",
         "CO-001.yaml:17:17: unknown modifier 'gtee' (did you mean 'gte'?) [CO-001]"),
        ("CO-001.yaml", "channel: cash}", "channel: cashh}",
         "CO-001.yaml:16:19: 'channel': 'cashh' is not a valid channel (did you mean 'cash'?) [CO-001]"),
        ("CO-001.yaml", "amount|gte: 50000", "amount|gte: fifty",
         "CO-001.yaml:17:29: 'amount|gte': expected number value(s) for 'amount', got 'fifty' [CO-001]"),
        ("PV-001.yaml", "funded and prohibited and early", "funded and (prohibited or early",
         "PV-001.yaml:22:45: condition ends too early [PV-001]"),
        ("PV-001.yaml", "funded and prohibited and early", "funded and prohibted and early",
         "PV-001.yaml:22:25: unknown selection 'prohibted' (did you mean 'prohibited'?) [PV-001]"),
        ("PV-001.yaml", "$list:prohibited_sectors", "$list:prohibited_sector",
         "PV-001.yaml:20:40: unknown list 'prohibited_sector' (did you mean 'prohibited_sectors'?) [PV-001]"),
        ("LO-001.yaml", "version: 3\n", "version: one\n",
         "LO-001.yaml:3:10: expected `int`, got `str` (at 'version') [LO-001]"),
        ("LO-001.yaml", "severity: high", "severity: hihg",
         "LO-001.yaml:5:11: invalid enum value 'hihg' (at 'severity') [LO-001]"),
        ("LO-001.yaml", "owner: risk-policy", "ownr: risk-policy",
         "LO-001.yaml:8:1: unknown key 'ownr' [LO-001]"),
        ("pack.yaml", "timezone: Asia/Shanghai", "timezone: Asia/Shanghia",
         "pack.yaml:5:11: unknown time zone 'Asia/Shanghia' (an IANA name such as Asia/Shanghai)"),
        ("SS-001.yaml", "key: gateway_id,", "key: gateway,",
         "SS-001.yaml:32:44: unknown field 'gateway' (did you mean 'gateway_id'?) [SS-001]"),
        ("HC-001.yaml", "{ts|during: $list:holiday_season}", "{ts|during: $list:holidays}",
         "HC-001.yaml:30:24: unknown list 'holidays' (did you mean 'holiday_season'?) [HC-001]"),
        ("FO-001.yaml", "key: loan.id", "key: loan",
         "FO-001.yaml:24:8: key 'loan' cannot be routed: it is a struct, not one value (key on one of its fields)"),
        ("LO-001.yaml", "id: LO-001", "id: CO-001",
         "LO-001.yaml:1:5: duplicate rule id CO-001 (also in"),
    ],
)
def test_problem_is_reported_at_its_place(pack, file, old, new, expected):
    edit(pack / file, old, new)
    found = problems(pack)
    assert any(p.startswith(expected) for p in found), found


def test_rule_without_tests_is_refused_at_its_id(pack):
    rule = pack / "CO-001.yaml"
    text = rule.read_text()
    rule.write_text(text[: text.index("tests:")])
    assert problems(pack) == ["CO-001.yaml:1:5: rule needs embedded tests: one that fires and one that does not [CO-001]"]


def test_every_problem_of_every_file_is_collected(pack):
    edit(pack / "PV-001.yaml", "counterparty.sector|in", "counterparty.sectr|in")
    edit(pack / "CO-001.yaml", "amount|gte", "amount|gtee")
    assert len(problems(pack)) == 2


def test_yaml_syntax_error_points_at_the_line(pack):
    edit(pack / "CO-001.yaml", "  cash: {channel: cash}", "  cash: {channel: cash")
    (problem,) = problems(pack)
    assert problem.startswith("CO-001.yaml:17:") and "invalid YAML" in problem


def test_a_rule_file_that_is_not_utf8_is_reported_at_the_byte(pack):
    rule = pack / "CO-001.yaml"
    rule.write_bytes(rule.read_bytes().replace(b"title: Loan", "title: 贷款 Loan".encode("gb18030"), 1))
    (problem,) = problems(pack)
    assert problem.startswith("CO-001.yaml:2:8: not UTF-8 text (byte 0xb4); save the file as UTF-8"), problem


def test_a_null_test_is_refused_at_its_place(pack):
    edit(pack / "CO-001.yaml", "above_limit: {amount|gte: 50000}", "above_limit: {amount|gte: }")
    assert problems(pack) == ["CO-001.yaml:17:28: 'amount|gte': a test needs a value (to test that a field has none: "
                              "amount|exists: false) [CO-001]"]


@pytest.mark.parametrize("file, old, new, rule", [
    ("CO-001.yaml", "severity: critical", "severity: high", "CO-001"),
    ("CO-001.yaml", "risk_score: 85", "risk_score: 60", "CO-001"),
    ("CO-001.yaml", "status: stable", "status: experimental", "CO-001"),
    ("IV-001.yaml", "suppress_for: 30d", "suppress_for: 7d", "IV-001"),
    ("../lists/sectors.yaml", "gambling]", "gambling, pawnshops]", "PV-001"),
])
def test_the_lock_pins_what_an_alert_says_and_the_lists_a_rule_reads(pack, file, old, new, rule):
    edit(pack / file, old, new)
    found = [str(p) for p in check_lock(load_pack(pack))]
    assert any("logic changed without a version bump" in p and p.endswith(f"[{rule}]") for p in found), found


def test_a_title_or_summary_is_not_logic(pack):
    edit(pack / "CO-001.yaml", "title: Loan funds withdrawn", "title: Loan money withdrawn")
    edit(pack / "CO-001.yaml", "withdrawn in cash {days_since", "taken out in cash {days_since")
    assert check_lock(load_pack(pack)) == []
