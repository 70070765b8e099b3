"""The commands a user types, end to end through click: simulate, replay, alerts,
and the rule authors' lint, test, diff and lock."""

from __future__ import annotations

import re

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dataflows.cli import main
from tests import tinybank

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--log-level", "error", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_simulate_twice_gives_identical_files(tmp_path):
    for out in ("a", "b"):
        code, _ = invoke("simulate", "--seed", "7", "--borrowers", "60", "--days", "60", "--out", str(tmp_path / out))
        assert code == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "transactions.parquet" in names and "labels.parquet" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_replay_then_alerts_list_and_show(tmp_path):
    data = tinybank.write(tmp_path / "data")
    db = str(tmp_path / "a.duckdb")
    code, out = invoke("replay", "--data", str(data), "--db", db)
    expected = sum(len(rules) for _, rules in tinybank.CASES)
    assert code == 0 and f"alerts {expected} raised, {expected} new" in out
    code, out = invoke("alerts", "list", "--rule", "CO-001", "--db", db)
    assert code == 0
    line, showing = out.strip().splitlines()
    alert_id = line.split()[0]
    assert "CO-001 B1 L1  new" in line and "withdrawn in cash" in line and showing == "showing 1 of 1, newest first"
    code, out = invoke("alerts", "show", alert_id[:10], "--db", db)
    assert code == 0 and out.startswith(alert_id) and "evidence: events t-cash" in out
    assert "rule: Loan funds withdrawn as cash above the limit" in out and "audit: 0 entries" in out
    # B1 has other open alerts: its combined score is above this alert's own
    now, then = map(int, re.search(r"borrower score (\d+) over its open alerts \((\d+) when found\)", out).groups())
    assert now >= then >= int(line.split()[4])
    result = CliRunner().invoke(main, ["alerts", "show", "nope", "--db", db])
    assert result.exit_code == 1 and result.output == "Error: no single alert with id 'nope'\n"


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    return tmp_path / "rules"


def test_lint_and_test_pass_on_the_default_pack():
    code, out = invoke("rules", "lint", str(ROOT / "rules"))
    assert code == 0 and out.startswith("ok: 1 pack(s)")
    code, out = invoke("rules", "test", str(ROOT / "rules"))
    assert code == 0 and out.strip().endswith("0 failed")
    code, out = invoke("rules", "test", str(ROOT / "rules"), "-k", "CO-001", "-v")
    assert code == 0 and all("CO-001" in line for line in out.splitlines()[:-1])


def test_a_failing_embedded_test_fails_the_command(rules_copy):
    rule = rules_copy / "post_loan" / "CO-001.yaml"
    rule.write_text(rule.read_text().replace("amount: 50000, channel: cash}\n    expect: {alerts: 1}",
                                              "amount: 50000, channel: cash}\n    expect: {alerts: 2}"))
    code, out = invoke("rules", "test", str(rules_copy))
    assert code == 1 and "FAIL CO-001 50,000 in cash" in out and "expected 2 alert(s), got 1" in out


def test_logic_change_without_version_bump_fails_lint_and_diff(rules_copy):
    rule = rules_copy / "post_loan" / "CO-001.yaml"
    rule.write_text(rule.read_text().replace("amount|gte: 50000", "amount|gte: 40000"))
    code, out = invoke("rules", "lint", str(rules_copy))
    assert code == 1 and "CO-001.yaml:3:10: logic changed without a version bump" in out
    code, out = invoke("rules", "diff", str(ROOT / "rules" / "post_loan"), str(rules_copy / "post_loan"))
    assert code == 1 and "logic     CO-001 v1 -> v1  ERROR" in out


def test_version_bump_then_lock_makes_lint_pass_and_diff_report_the_change(rules_copy):
    rule = rules_copy / "post_loan" / "CO-001.yaml"
    rule.write_text(rule.read_text().replace("amount|gte: 50000", "amount|gte: 40000").replace("version: 1", "version: 2", 1))
    assert "version bumped to 2 but pack.lock has 1" in invoke("rules", "lint", str(rules_copy))[1]
    assert invoke("rules", "lock", str(rules_copy))[0] == 0
    assert invoke("rules", "lint", str(rules_copy))[0] == 0
    code, out = invoke("rules", "diff", str(ROOT / "rules" / "post_loan"), str(rules_copy / "post_loan"))
    assert code == 0 and "logic     CO-001 v1 -> v2" in out and "ERROR" not in out


def test_metadata_change_is_not_a_logic_change(rules_copy):
    rule = rules_copy / "post_loan" / "CO-001.yaml"
    rule.write_text(rule.read_text().replace("title: Loan funds withdrawn", "title: Loan money withdrawn"))
    assert invoke("rules", "lint", str(rules_copy))[0] == 0
    code, out = invoke("rules", "diff", str(ROOT / "rules" / "post_loan"), str(rules_copy / "post_loan"))
    assert code == 0 and "metadata  CO-001 v1 -> v1" in out


def test_rule_without_a_non_firing_test_is_refused(rules_copy):
    rule = rules_copy / "post_loan" / "RF-001.yaml"
    text = rule.read_text()
    rule.write_text(text[: text.index("  - name: repayment out of the settlement account does not fire")])
    code, out = invoke("rules", "lint", str(rules_copy))
    assert code == 1 and "RF-001.yaml:" in out and "rule needs embedded tests: one that does not" in out
