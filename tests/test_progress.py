"""Long runs say how far they are: a bar with the rate and the time left on a
terminal, structured log lines at intervals otherwise, and a last line with
every event counted."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from dataflows import progress as progress_module
from dataflows.progress import EVERY, Progress
from tests import tinybank

ROOT = Path(__file__).resolve().parents[1]


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Log:
    def __init__(self):
        self.lines: list[tuple[str, dict]] = []

    def info(self, event: str, **fields) -> None:
        self.lines.append((event, fields))


def test_off_a_terminal_a_line_every_interval_with_rate_and_eta(monkeypatch):
    log, clock = _Log(), _Clock()
    monkeypatch.setattr(progress_module, "log", log)
    monkeypatch.setattr(progress_module.sys.stderr, "isatty", lambda: False, raising=False)
    p = Progress("replay", total=1000, clock=clock)
    for step in range(1, 6):  # 100 events every half interval
        clock.now = step * EVERY / 2
        p.advance(100)
    p.close()
    assert [e for e, _ in log.lines] == ["progress", "progress", "progress_done"]
    event, fields = log.lines[0]
    assert fields["done"] == 200 and fields["total"] == 1000
    assert fields["rate"] == 200 / EVERY and fields["eta_s"] == 4 * EVERY
    assert log.lines[-1][1]["done"] == 500


def test_on_a_terminal_a_bar_with_count_rate_and_eta():
    out = io.StringIO()
    clock = _Clock()
    p = Progress("backtest", total=100, console=Console(file=out, force_terminal=True, width=120), clock=clock)
    clock.now = 2.0
    p.update(30)
    p.close()
    text = out.getvalue()
    assert "backtest" in text and "30/100" in text and "15 events/s" in text and "ETA" in text


def test_replay_logs_its_progress_with_every_event_counted(tmp_path):
    data = tinybank.write(tmp_path / "data")
    run = subprocess.run([sys.executable, "-m", "dataflows", "replay", "--data", str(data), "--db",
                          str(tmp_path / "a.duckdb")], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    (done,) = [line for line in lines if line["event"] == "progress_done"]
    assert done["what"] == "replay" and done["done"] == done["total"] > 0


def _done(*args: str, cwd: Path = ROOT) -> list[dict]:
    run = subprocess.run([sys.executable, "-m", "dataflows", *args], cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == "progress_done"]


def test_backtest_import_and_simulate_log_their_progress_too(tmp_path):
    example = ROOT / "examples" / "bank_export"
    (done,) = _done("import", "--mapping", str(example / "mapping.yaml"), "--out", str(tmp_path / "imported"))
    assert done["what"] == "import" and done["unit"] == "rows" and done["done"] == done["total"] > 10_000
    (done,) = _done("simulate", "--seed", "3", "--borrowers", "10", "--days", "60", "--out", str(tmp_path / "sim"))
    assert done["what"] == "simulate" and done["done"] == done["total"] > 0
    data = tinybank.write(tmp_path / "data")
    base, compare = _done("backtest", "--data", str(data), "--out", str(tmp_path / "bt"), "--compare",
                          str(ROOT / "rules" / "post_loan"))
    assert (base["what"], compare["what"]) == ("backtest base", "backtest compare")
    assert base["done"] == base["total"] == compare["done"] > 0
