"""`fundwatch run`, the embedded default: the simulated bank as a live feed,
bounded by --days or open until stopped, with alerts printed and stored."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

from connectors.alert_store import AlertStore


def command(tmp_path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dataflows", "--log-level", "warning", "run", "--borrowers", "40",
            "--speed", "1e9", "--db", str(tmp_path / "run.duckdb"), *extra]


def test_bounded_run_ends_by_itself_with_alerts_printed_and_stored(tmp_path):
    out = subprocess.run(command(tmp_path, "--days", "60"), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    printed = [line for line in out.stdout.splitlines() if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d (LOW|MEDIUM|HIGH|CRITICAL) ", line)]
    assert printed and "alerts " in out.stdout and "dead letters 0" in out.stdout
    store = AlertStore(tmp_path / "run.duckdb", read_only=True)
    stored = store.alerts()
    assert len(stored) == len(printed)  # each alert printed once, as it fired
    assert {"PV-001", "LO-001", "CO-001"} <= {a["rule_id"] for a in stored}
    assert max(a["event_time"] for a in stored).isoformat() < "2026-03-02"  # 60 days from 2026-01-01
    assert (tmp_path / ".fundwatch").is_dir()


def test_unbounded_run_waits_for_more_until_stopped_then_reports(tmp_path):
    proc = subprocess.Popen(command(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "run.duckdb").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(8)  # the whole simulated year goes by at this speed; the feed then stays open
        assert proc.poll() is None, "an unbounded run must not end by itself"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "feeding 365 simulated days, then waiting for more" in out
    assert "events " in out and "alerts " in out
