"""A two-process replay gives the same alerts as one worker, fund-traced ones
(purpose violations behind intermediaries, round trips) included: tracing is
one keyed state, so it sees every payment wherever it was read."""

from __future__ import annotations

import subprocess
import sys

import pytest

from connectors.alert_store import AlertStore
from connectors.broker import free_port
from connectors.simbank import simulate


def replay(data, db, process_id=None, addresses=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dataflows", "--log-level", "warning", "replay", "--data", str(data),
           "--db", str(db), "--no-labels"]
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


def test_two_processes_give_the_traced_alerts_of_one_worker(bank, tmp_path):
    finish(replay(bank, tmp_path / "one.duckdb"))
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    procs = [replay(bank, tmp_path / "two.duckdb", i, addresses) for i in (0, 1)]
    for proc in procs:
        finish(proc)
    one, two = alert_ids(tmp_path / "one.duckdb"), alert_ids(tmp_path / "two.duckdb")
    traced = {i for i, rule in one.items() if rule in ("PV-002", "RT-001")}
    assert traced, "the simulated bank has traced cases"
    assert traced <= set(two)
    only_one = {one[i] for i in set(one) - set(two)}
    only_two = {two[i] for i in set(two) - set(one)}
    assert one == two, (sorted(only_one), sorted(only_two), len(one), len(two))
