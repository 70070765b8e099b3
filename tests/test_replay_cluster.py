"""A two-process replay gives the same alerts as one worker, fund-traced ones
(purpose violations behind intermediaries, round trips) included: tracing is
one keyed state, so it sees every payment wherever it was read; and so does a
rule keyed on the payee's account, whose state lives where that key is routed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.alert_store import AlertStore
from connectors.processes import free_port
from connectors.simbank import simulate

ROOT = Path(__file__).resolve().parents[1]


FAN_IN = """id: FI-001
title: Many payers into one account within a day
version: 1
status: stable
severity: medium
risk_score: 50
kind: aggregate
tags: [pattern.fan_in]
applies_to: {stream: transactions, where: {channel: transfer}}
aggregate:
  key: to_account
  window: {size: 1d}
  measures: {payers: {distinct: from_account}, total: {sum: amount}}
  having: {payers|gte: 6}
output:
  summary: "{payers} payers paid {total} into {to_account} within a day"
tests:
  - name: six payers fire
    events: []
    expect: {alerts: 1}
  - name: nothing does not
    events: []
    expect: {alerts: 0}
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules")
    shutil.copytree(ROOT / "rules", root / "rules")
    (root / "rules" / "post_loan" / "FI-001.yaml").write_text(FAN_IN)
    return root / "rules" / "post_loan"


def replay(data, db, rules, process_id=None, addresses=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dataflows", "--log-level", "warning", "replay", "--data", str(data),
           "--db", str(db), "--rules", str(rules), "--no-labels"]
    if addresses:
        cmd += ["-i", str(process_id), "-a", addresses]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    data = tmp_path_factory.mktemp("bank")
    simulate(5, 300, 60, data)
    return data


def alert_ids(db) -> dict[str, str]:
    store = AlertStore(db, read_only=True)
    try:
        return {a["id"]: a["rule_id"] for a in store.alerts()}
    finally:
        store.close()


def test_two_processes_give_the_traced_and_payee_keyed_alerts_of_one_worker(bank, rules, tmp_path):
    finish(replay(bank, tmp_path / "one.duckdb", rules))
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    procs = [replay(bank, tmp_path / "two.duckdb", rules, i, addresses) for i in (0, 1)]
    for proc in procs:
        finish(proc)
    one, two = alert_ids(tmp_path / "one.duckdb"), alert_ids(tmp_path / "two.duckdb")
    traced = {i for i, rule in one.items() if rule in ("PV-002", "RT-001")}
    assert traced, "the simulated bank has traced cases"
    assert traced <= set(two)
    fan_in = {i for i, rule in one.items() if rule == "FI-001"}
    assert len(fan_in) >= 10, "accounts paid by many in a day"
    assert fan_in <= set(two)
    only_one = {one[i] for i in set(one) - set(two)}
    only_two = {two[i] for i in set(two) - set(one)}
    assert one == two, (sorted(only_one), sorted(only_two), len(one), len(two))
