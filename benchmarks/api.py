"""Workbench API latency on a large store: listing a filtered page and opening one alert.

    python benchmarks/api.py [--alerts 1000000] [--requests 300] [--seed 7]

Builds a store of N alerts straight in DuckDB (rules, levels, borrowers, loans
and event times spread like a busy year; evidence with values, conditions and a
three-hop money route on a third of them), gives 5% of them a lifecycle state
and two audit rows each, and serves the workbench over it as `fundwatch serve`
does (uvicorn on loopback). Then it times, over real HTTP with a token:

- listing 50 alerts with a filter (a level, a rule and status new; then a
  borrower; then text in the summary, with fewer requests: it reads every
  summary), newest first with the total;
- opening one random alert with its evidence, rule notes, graph and audit.

Beside each it times the simplest honest alternative, the same query on a
DuckDB connection with no API around it, and reports the ratio. Prints the
figures and writes benchmarks/results/api.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.alert_store import AlertQuery, AlertStore  # noqa: E402
from connectors.processes import free_port  # noqa: E402
from connectors.workbench import Workbench  # noqa: E402
from dataflows.api.server import Listen, Server  # noqa: E402

RULES = ["CO-001", "EP-001", "PV-001", "PV-002", "RT-001", "LO-001", "SP-001", "FO-001", "GC-001", "CG-001",
         "HC-001", "EL-001", "SS-001", "MR-001", "ID-001", "HR-001"]


def build(db: Path, n: int, seed: int) -> None:
    with AlertStore(db) as store:
        con = store.con
        rules = "[" + ", ".join(f"'{r}'" for r in RULES) + "]"
        con.execute(f"""
INSERT INTO alerts
SELECT printf('%024x', hash(i, {seed})) AS id,
       {rules}[1 + i % {len(RULES)}] AS rule_id, 1, '2026.11.1', NULL,
       40 + (hash(i, 1) % 60)::INT AS score,
       ['low', 'medium', 'high', 'critical'][1 + (hash(i, 2) % 4)::INT] AS level,
       printf('P%07d', (hash(i, 3) % 20000)::INT) AS borrower_id,
       printf('LN%08d', (hash(i, 4) % 40000)::INT) AS loan_id,
       TIMESTAMPTZ '2025-01-01 00:00:00+00' + to_seconds((hash(i, 5) % (365 * 86400))::BIGINT) AS event_time,
       TIMESTAMPTZ '2026-01-01 00:00:00+00' AS detected_at,
       printf('Loan LN%08d: %d.00 CNY of loan money went to party P%07d', (hash(i, 4) % 40000)::INT,
              (hash(i, 6) % 900000)::INT + 50000, (hash(i, 7) % 90000)::INT) AS summary,
       CASE WHEN i % 3 = 0 THEN
         '{{"event_ids":["TX1","TX2","TX3"],"values":{{"trace.hops":2,"trace.share":0.8,"trace.amount":377499.42,' ||
         '"counterparty.sector":"gambling"}},"conditions":["funded","prohibited"],"path":[' ||
         '"TX1: P0000001 -> P0000002 516956.78 at 2026-01-26T04:50:57+00:00",' ||
         '"TX2: P0000002 -> P0000003 400000.00 at 2026-01-27T04:50:57+00:00",' ||
         '"TX3: P0000003 -> P0000004 377499.42 at 2026-01-29T07:57:58+00:00"]}}'
       ELSE '{{"event_ids":["TX9"],"values":{{"amount":67100.0,"channel":"cash"}},"conditions":["cash"],"path":[]}}'
       END AS evidence,
       false, 'new'
FROM range({n}) t(i)""")
        con.execute("""INSERT INTO rules SELECT r, 1, 'Rule ' || r, 'What it finds', 'What to check', '[]'
                       FROM (SELECT DISTINCT rule_id AS r FROM alerts)""")
        con.execute("""INSERT INTO alert_state SELECT id, 'acknowledged', 'ann', NULL, 1, now(), 'ann'
                       FROM alerts USING SAMPLE 5 PERCENT (bernoulli, 1)""")
        con.execute("""INSERT INTO audit (changed_at, actor, action, alert_id, from_status, to_status, detail)
                       SELECT now(), 'ann', a, alert_id, 'new', 'acknowledged', 'seen'
                       FROM alert_state, (VALUES ('transition'), ('comment')) v(a)""")
        con.execute("CHECKPOINT")


def timed(fn, requests: int) -> dict[str, float]:
    fn()  # warm
    ms = []
    for _ in range(requests):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(ms[int(0.95 * len(ms)) - 1], 2),
            "max_ms": round(ms[-1], 2), "requests": requests}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        t0 = time.perf_counter()
        build(db, args.alerts, args.seed)
        built = time.perf_counter() - t0
        with AlertStore(db) as store:
            token, _ = Workbench(store).create_token("bench", "viewer", "bench")
            ids = [r[0] for r in store._sql("SELECT id FROM alerts USING SAMPLE 2000 ROWS")]
            borrowers = [r[0] for r in store._sql("SELECT DISTINCT borrower_id FROM alerts LIMIT 500")]
        server = Server(db, Listen(port=free_port())).start()
        http = httpx.Client(base_url=server.listen.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        direct = AlertStore(db)

        def get(path: str, **params) -> dict:
            r = http.get(path, params=params)
            r.raise_for_status()
            return r.json()

        filters = {
            "level_rule_status": lambda: {"level": rng.choice(["high", "critical"]), "rule": rng.choice(RULES),
                                          "status": "new"},
            "borrower": lambda: {"borrower": rng.choice(borrowers)},
            "text": lambda: {"text": f"party P{rng.randrange(90000):07d}"},
        }
        results: dict = {}
        for name, make in filters.items():
            total = get("/api/alerts", **make(), limit=50)["total"]
            n = args.requests if name != "text" else max(20, args.requests // 5)  # a scan of every summary
            results[f"list_{name}"] = {
                "api": timed(lambda: get("/api/alerts", **make(), limit=50), n),
                "direct": timed(lambda: direct.page(AlertQuery(**make(), limit=50)), n),
                "example_total": total,
            }
        results["open_alert"] = {
            "api": timed(lambda: get(f"/api/alerts/{rng.choice(ids)}"), args.requests),
            "direct": timed(lambda: direct.alert(rng.choice(ids)), args.requests),
        }
        for r in results.values():
            r["ratio_p95"] = round(r["api"]["p95_ms"] / r["direct"]["p95_ms"], 2)
        http.close()
        direct.close()
        server.stop()
    out = {"alerts": args.alerts, "build_seconds": round(built, 1), "results": results,
           "machine": {"python": platform.python_version(), "platform": platform.platform()}}
    print(f"store of {args.alerts:,} alerts built in {built:.1f}s; {args.requests} requests each, over HTTP")
    for name, r in results.items():
        print(f"  {name:26} api p50 {r['api']['p50_ms']:7.2f} ms  p95 {r['api']['p95_ms']:7.2f} ms   "
              f"direct DuckDB p95 {r['direct']['p95_ms']:7.2f} ms  (ratio {r['ratio_p95']})")
    path = ROOT / "benchmarks" / "results" / "api.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
