"""Backtest throughput: `fundwatch backtest` with the whole default pack, one process
and two, against `fundwatch replay` of the same data.

    python benchmarks/backtest.py [--borrowers 2000] [--days 90] [--seed 7]

Simulates the bank once (cached under benchmarks/.data; 1.5M transactions and 1.0M
sensor readings at the defaults) and runs, in the same run, each as the command a
user types (a fresh process, so start-up, pack compile and reference load count):
- `fundwatch backtest --data DIR --out OUT`: the flow, then scoring against the
  bank's labels, the figures and the HTML report;
- the same as a two-process cluster (`-i 0|1 -a ADDRS`), timed until both exit;
- `fundwatch replay --data DIR`: the same flow and the same scoring against the
  labels, without the report: the simplest honest alternative, so the ratio is
  what the backtest adds.
All three must store the same alerts. Prints events per second and writes
benchmarks/results/backtest.json.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.data import bank_arguments, simulated, write_report  # noqa: E402
from connectors.alert_store import AlertStore  # noqa: E402
from connectors.processes import free_port  # noqa: E402

COMMAND = [sys.executable, "-m", "dataflows", "--log-level", "warning"]


def timed(*cmds: list[str]) -> tuple[float, list[str]]:
    """Start every command at once, wait for all; the wall time and each one's output."""
    started = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in cmds]
    outs = [p.communicate()[0] for p in procs]
    seconds = time.perf_counter() - started
    for cmd, proc, out in zip(cmds, procs, outs):
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{out}")
    return seconds, outs


def stored(db: Path) -> set[str]:
    with AlertStore(db, read_only=True) as store:
        return {a["id"] for a in store.alerts()}


def backtest(data: Path, out: Path, processes: int) -> dict:
    cmd = COMMAND + ["backtest", "--data", str(data), "--out", str(out)]
    if processes == 1:
        seconds, outs = timed(cmd)
    else:
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        seconds, outs = timed(*[cmd + ["-i", str(i), "-a", addresses] for i in range(processes)])
    summary = json.loads((out / "figures.json").read_text())["summary"]
    return {"processes": processes, "events": summary["events"], "seconds": round(seconds, 2),
            "events_per_second": round(summary["events"] / seconds), "flow_seconds": summary["seconds"],
            "alerts": summary["alerts"], "dead_letters": summary["dead_letters"],
            "labels": summary.get("label_count"), "report_bytes": (out / "report.html").stat().st_size,
            "alert_ids": stored(out / "backtest.duckdb"), "output": outs[0].splitlines()[-1]}


def replay(data: Path, db: Path) -> dict:
    seconds, (out,) = timed(COMMAND + ["replay", "--data", str(data), "--db", str(db)])
    events = int(re.search(r"^events ([\d,]+) in ([\d.]+)s", out, re.M).group(1).replace(",", ""))
    flow_seconds = float(re.search(r"^events [\d,]+ in ([\d.]+)s", out, re.M).group(1))
    ids = stored(db)
    return {"processes": 1, "events": events, "seconds": round(seconds, 2), "events_per_second": round(events / seconds),
            "flow_seconds": flow_seconds, "alerts": len(ids), "alert_ids": ids}


def main() -> None:
    args = bank_arguments(__doc__)

    t = time.perf_counter()
    data = simulated(args.seed, args.borrowers, args.days)
    rows = json.loads((data / "manifest.json").read_text())["rows"]
    print(f"simulated bank ready in {time.perf_counter() - t:.1f}s: {data.name}, "
          f"{rows['transactions']:,} transactions, {rows['sensors']:,} sensor readings", flush=True)

    plan = {"backtest_1_process": lambda tmp: backtest(data, tmp / "bt1", 1),
            "replay_1_process": lambda tmp: replay(data, tmp / "replay.duckdb"),
            "backtest_2_processes": lambda tmp: backtest(data, tmp / "bt2", 2)}
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in plan.items():
            runs[name] = run(Path(tmp))
            r = runs[name]
            print(f"{name:21} {r['events']:,} events in {r['seconds']:.1f}s = {r['events_per_second']:,} events/s "
                  f"(flow alone {r['flow_seconds']:.1f}s), {r['alerts']:,} alerts", flush=True)
    ids = {name: r.pop("alert_ids") for name, r in runs.items()}
    one, two, alt = runs["backtest_1_process"], runs["backtest_2_processes"], runs["replay_1_process"]
    report = {
        "benchmark": "backtest",
        "data": {"seed": args.seed, "borrowers": args.borrowers, "days": args.days,
                 "transactions": rows["transactions"], "sensors": rows["sensors"]},
        "rules": "rules/post_loan (the whole default pack)",
        **runs,
        "backtest_to_replay_ratio": round(one["events_per_second"] / alt["events_per_second"], 3),
        "two_to_one_process_ratio": round(two["events_per_second"] / one["events_per_second"], 3),
        "same_alerts": ids["backtest_1_process"] == ids["backtest_2_processes"] == ids["replay_1_process"],
        "includes": "wall time of the command: start-up, pack compile, reference load, the flow, DuckDB, scoring "
                    "against the labels; the backtest also its figures, JSON, Parquet and the HTML report",
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "note": "2 cores shared with other jobs"},
    }
    print(f"backtest/replay {report['backtest_to_replay_ratio']:.3f}, two processes/one "
          f"{report['two_to_one_process_ratio']:.3f}, same alerts: {report['same_alerts']}")
    write_report("backtest", report)
    if not report["same_alerts"]:
        raise SystemExit("the three runs stored different alerts")


if __name__ == "__main__":
    main()
