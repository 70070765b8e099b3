"""The daemon against a real broker: sustained throughput and produce-to-alert latency.

    python benchmarks/daemon.py [--borrowers 500] [--days 60] [--rate 2000] [--seconds 10]

Starts a Tansu broker on loopback, simulates a bank (cached under
benchmarks/.data), and for each contestant:

1. throughput: the whole simulated stream (transactions and sensors) waits in
   4-partition topics; the contestant starts and reads it all: events per
   second from its first read until its last event and alert were done
   (alerts confirmed by the broker and stored in DuckDB);
2. latency: then, still running, it gets `--rate` events a second for
   `--seconds`; every 20th is a marker (a 60,000 cash withdrawal from a loan
   account: CO-001 fires on it), and p50/p99 are taken over the markers, from
   the moment before the benchmark produced one to the moment the benchmark's
   consumer received its alert.

Contestants: the daemon with one process, with two (`--processes 2`) and with
two worker threads in one process (`--workers 2`), recovery snapshots on as in
production; and a plain confluent-kafka loop in
one process running the same engine stages and rule pack (decode, enrich,
detect, Kafka publish with delivery reports, DuckDB) without Bytewax.
Prints a table and writes benchmarks/results/daemon.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import msgspec
import polars as pl
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.data import simulated, write_report  # noqa: E402
from connectors.processes import free_port  # noqa: E402
from tests.broker import Tansu  # noqa: E402

PARTITIONS = 4
MARKER_EVERY = 20


# --- data ---------------------------------------------------------------------


def stream(data: Path) -> list[tuple[str, bytes, bytes]]:
    """(stream, key, JSON) for every event, in event-time order."""
    tx = pl.read_parquet(data / "transactions.parquet")
    se = pl.read_parquet(data / "sensors.parquet")
    rows = [("transactions", r["from_account"], r) for r in tx.to_dicts()]
    rows += [("sensors", r["borrower_id"], r) for r in se.to_dicts()]
    rows.sort(key=lambda x: x[2]["ts"])
    enc = msgspec.json.Encoder()
    return [(s, k.encode(), enc.encode(r)) for s, k, r in rows]


def live_events(data: Path, count: int) -> list[tuple[str, bytes, bytes, str | None]]:
    """Fresh events after the backlog: copied transactions shifted past its end, and
    every MARKER_EVERY-th a CO-001 cash-out marker. (stream, key, JSON, marker id)."""
    everything = pl.read_parquet(data / "transactions.parquet")
    tx = everything.sort("ts").head(count)
    shift = everything["ts"].max() - tx["ts"].min() + timedelta(days=1)
    loans = pl.read_parquet(data / "loans.parquet").to_dicts()
    enc = msgspec.json.Encoder()
    out = []
    for i, row in enumerate(tx.to_dicts()):
        row = {**row, "id": f"live-{i}", "ts": row["ts"] + shift}
        if i % MARKER_EVERY == 0:
            loan = loans[i // MARKER_EVERY % len(loans)]
            mid = f"marker-{i}"
            marker = {"id": mid, "ts": row["ts"], "from_account": loan["disbursement_account"],
                      "to_account": "BANK-CASH", "amount": 60_000.0, "channel": "cash"}
            out.append(("transactions", loan["disbursement_account"].encode(), enc.encode(marker), mid))
        out.append(("transactions", row["from_account"].encode(), enc.encode(row), None))
    return out


# --- Kafka helpers ---------------------------------------------------------------


def produce_all(bootstrap: str, topics: dict[str, str], events: list[tuple[str, bytes, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000,
                  "queue.buffering.max.messages": 1_000_000})
    for stream_name, key, value in events:
        while True:
            try:
                p.produce(topics[stream_name], value, key)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0


class AlertClock(threading.Thread):
    """Consumes the alerts topic; remembers when each marker's alert arrived."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "fetch.wait.max.ms": 5,
                           "enable.auto.commit": False})
        self.c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for m in self.c.consume(10_000, 0.05):
                if m.error() is not None:
                    continue
                now = time.time()
                self.count += 1
                event_ids = msgspec.json.decode(m.value())["evidence"]["event_ids"]
                for e in event_ids:
                    if e.startswith("marker-") and e not in self.arrived:
                        self.arrived[e] = now
        self.c.close()


def paced(bootstrap: str, topics: dict[str, str], events: list, rate: int) -> dict[str, float]:
    """Produce at `rate` events a second; returns marker id -> time just before its produce."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    sent: dict[str, float] = {}
    started = time.monotonic()
    for i, (stream_name, key, value, marker) in enumerate(events):
        wait = started + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if marker is not None:
            sent[marker] = time.time()
        p.produce(topics[stream_name], value, key)
        p.poll(0)
    p.flush(30)
    return sent


def one_hop_ms(broker: Tansu) -> dict:
    """The broker's own floor: produce to consume of one message, no processing (two hops make a round)."""
    broker.create_topics(["bench.hop"])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "hop", "fetch.wait.max.ms": 5})
    c.assign([TopicPartition("bench.hop", 0, OFFSET_BEGINNING)])
    got: dict[bytes, float] = {}
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            for m in c.consume(1000, 0.05):
                if m.error() is None:
                    got[m.value()] = time.time()

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.5)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 1})
    sent = {}
    for i in range(300):
        sent[str(i).encode()] = time.time()
        p.produce("bench.hop", str(i).encode())
        p.poll(0)
        time.sleep(0.005)
    p.flush(10)
    time.sleep(0.5)
    stop.set()
    t.join()
    c.close()
    broker.delete_topics(["bench.hop"])
    lat = sorted((got[k] - v) * 1000 for k, v in sent.items() if k in got)
    return {"p50": round(statistics.median(lat), 1), "p99": round(lat[int(0.99 * (len(lat) - 1))], 1)}


# --- contestants ----------------------------------------------------------------


def config_file(tmp: Path, bootstrap: str, topics: dict[str, str], data: Path, http_port: int,
                recovery: str = "snapshot_interval = 5") -> Path:
    """The daemon's settings for a contestant; `recovery`: lines of its [recovery] section after the directory."""
    path = tmp / "fundwatch.toml"
    path.write_text(f"""
duckdb = "{tmp / 'alerts.duckdb'}"
rules = "{ROOT / 'rules' / 'post_loan'}"

[kafka]
bootstrap_servers = "{bootstrap}"

[topics]
transactions = "{topics['transactions']}"
sensors = "{topics['sensors']}"
alerts = "{topics['alerts']}"
dead_letters = "{topics['dead_letters']}"
parties = ""
accounts = ""
loans = ""
relations = ""

[reference]
snapshot = "{data}"

[recovery]
directory = "{tmp / 'recovery'}"
{recovery}

[http]
port = {http_port}
""")
    return path


class Contestant:
    """A process reading the topics; `read()` says how many events it has taken in."""

    def __init__(self, cmd: list[str], http_ports: list[int] | None, log: Path):
        self.http_ports = http_ports
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE if not http_ports else self.log,
                                     stderr=self.log, start_new_session=True)
        self.progress = 0
        if not http_ports:  # the baseline prints its count
            threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        for line in self.proc.stdout:
            if line.startswith(b'{"events"'):  # not the engine's own log lines
                self.progress = json.loads(line)["events"]

    def read(self) -> int:
        if not self.http_ports:
            return self.progress
        total = 0
        for port in self.http_ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    for line in r.read().decode().splitlines():
                        if line.startswith("fundwatch_events_in_total{"):
                            total += int(float(line.rsplit(" ", 1)[1]))
            except OSError:
                pass
        return total

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"contestant exited with {self.proc.returncode}; see {self.log.name}")
        if not self.http_ports:
            return True
        for port in self.http_ports:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status != 200:
                        return False
            except OSError:
                return False
        return True

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def measure(name: str, start, bootstrap: str, topics: dict[str, str], backlog: int, live: list,
            rate: int) -> dict:
    clock = AlertClock(bootstrap, topics["alerts"])
    clock.start()
    contestant = start()
    while not contestant.ready():
        time.sleep(0.05)
    first = last = None
    seen = -1
    alerts_seen = -1
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:  # throughput: until the backlog is read and its alerts stopped coming
        contestant.ready()  # raises if it died
        n, a, now = contestant.read(), clock.count, time.monotonic()
        if n > 0 and first is None:
            first = now
        if n != seen or a != alerts_seen:
            seen, alerts_seen, last = n, a, now
        if n >= backlog and now - last > 2.0:
            break
        time.sleep(0.02)
    seconds = last - first
    backlog_alerts = clock.count
    sent = paced(bootstrap, topics, live, rate)
    markers = len(sent)
    deadline = time.monotonic() + 60
    while len(clock.arrived) < markers and time.monotonic() < deadline:
        time.sleep(0.05)
    contestant.stop()
    clock.stop.set()
    clock.join()
    lat = sorted((clock.arrived[m] - t) * 1000 for m, t in sent.items() if m in clock.arrived)
    result = {
        "contestant": name,
        "backlog_events": backlog, "backlog_seconds": round(seconds, 2),
        "events_per_second": round(backlog / seconds), "backlog_alerts_published": backlog_alerts,
        "live_rate": rate, "live_events": len(live), "markers": markers, "markers_alerted": len(lat),
        "latency_ms": {"p50": round(statistics.median(lat), 1), "p99": round(lat[int(0.99 * (len(lat) - 1))], 1),
                       "max": round(lat[-1], 1)} if lat else None,
    }
    print(f"{name:22} {result['events_per_second']:>9,}/s  backlog {backlog:,} in {seconds:.1f}s  "
          f"latency p50 {result['latency_ms']['p50'] if lat else '-'} ms  "
          f"p99 {result['latency_ms']['p99'] if lat else '-'} ms  ({len(lat)}/{markers} markers)", flush=True)
    return result


# --- the baseline: a plain consumer loop over the same engine stages ------------------


def baseline_loop(bootstrap: str, topics: dict[str, str], data: Path, db: Path, rules: Path) -> None:
    """The engine stages in one loop (engine.pipeline: decode, enrich, trace, route, detect) with
    the same pack; publish with delivery reports; store in DuckDB."""
    from connectors.alert_store import AlertStore
    from connectors.reference_files import load_reference
    from dataflows.flow import utc_now
    from engine.batch import Raw
    from engine.pipeline import Pipeline
    from engine.rules.pack import load_pack

    pipeline = Pipeline(load_pack(rules), load_reference(data), clock=utc_now)
    store = AlertStore(db)
    stream_of = {topics["transactions"]: "transactions", topics["sensors"]: "sensors"}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "baseline", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in stream_of for p in range(PARTITIONS)])
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "enable.idempotence": True})
    enc = msgspec.json.Encoder()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    events = 0
    while not stop.is_set():
        msgs = [m for m in consumer.consume(5000, 0.005) if m.error() is None]
        if not msgs:
            continue
        raws = [Raw(stream_of[m.topic()], m.topic(), f"{m.partition()}:{m.offset()}", m.value()) for m in msgs]
        alerts = pipeline.feed(raws, utc_now())
        dead, pipeline.dead = pipeline.dead, []
        failed: list = []
        for a in alerts:
            if not a.shadow:
                producer.produce(topics["alerts"], enc.encode(a), a.borrower_id.encode(),
                                 on_delivery=lambda err, _m: err and failed.append(err))
        for d in dead:
            producer.produce(topics["dead_letters"], enc.encode(d), d.id.encode())
        producer.flush(30)
        assert not failed, failed
        store.write(alerts, dead)
        events += len(msgs)
        print(json.dumps({"events": events}), flush=True)
    store.close()


# --- main -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--borrowers", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--rate", type=int, default=2000, help="live events per second for the latency phase")
    parser.add_argument("--seconds", type=int, default=10, help="length of the latency phase")
    parser.add_argument("--only", type=int, nargs="*", help="run only these contestants (0 to 3)")
    parser.add_argument("--baseline-worker", help=argparse.SUPPRESS)  # internal: JSON args of baseline_loop
    args = parser.parse_args()
    if args.baseline_worker:
        a = json.loads(args.baseline_worker)
        baseline_loop(a["bootstrap"], a["topics"], Path(a["data"]), Path(a["db"]), Path(a["rules"]))
        return

    data = simulated(args.seed, args.borrowers, args.days)
    events = stream(data)
    live = live_events(data, args.rate * args.seconds * (MARKER_EVERY - 1) // MARKER_EVERY)
    results = []
    with tempfile.TemporaryDirectory() as tmpdir, Tansu(log=Path(tmpdir) / "tansu.log") as broker:
        hop = one_hop_ms(broker)
        print(f"broker alone, produce to consume of one message: p50 {hop['p50']} ms, p99 {hop['p99']} ms")
        names = ("daemon, 1 process", "daemon, 2 processes", "daemon, 2 threads", "plain consumer loop")
        for n, name in enumerate(names):
            if args.only is not None and n not in args.only:
                continue
            tmp = Path(tmpdir) / f"run{n}"
            tmp.mkdir()
            topics = {k: f"bench{n}.{k}" for k in ("transactions", "sensors", "alerts", "dead_letters")}
            broker.create_topics([topics["transactions"], topics["sensors"]], PARTITIONS)
            broker.create_topics([topics["alerts"], topics["dead_letters"]], 1)
            produce_all(broker.bootstrap, topics, events)
            if name.startswith("daemon"):
                processes = 2 if "2 processes" in name else 1
                port = free_port() if processes == 1 else _port_run(processes)
                config = config_file(tmp, broker.bootstrap, topics, data, port)
                cmd = [sys.executable, "-m", "dataflows", "--log-level", "warning", "run", "--config", str(config)]
                if processes > 1:
                    cmd += ["--processes", str(processes)]
                if "threads" in name:
                    cmd += ["--workers", "2"]
                start = (lambda c=cmd, p=port, k=processes, t=tmp:
                         Contestant(c, [p + i for i in range(k)], t / "log.txt"))
            else:
                worker = json.dumps({"bootstrap": broker.bootstrap, "topics": topics, "data": str(data),
                                     "db": str(tmp / "alerts.duckdb"), "rules": str(ROOT / "rules" / "post_loan")})
                cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline-worker", worker]
                start = lambda c=cmd, t=tmp: Contestant(c, None, t / "log.txt")  # noqa: E731
            results.append(measure(name, start, broker.bootstrap, topics, len(events), live, args.rate))
            broker.delete_topics(list(topics.values()))

    report = {
        "benchmark": "daemon",
        "data": {"seed": args.seed, "borrowers": args.borrowers, "days": args.days, "events": len(events),
                 "partitions": PARTITIONS},
        "latency_phase": {"rate_per_second": args.rate, "seconds": args.seconds, "marker_every": MARKER_EVERY},
        "broker_one_hop_latency_ms": hop,
        "results": results,
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "notes": "broker, producers and the alert consumer run on the same 2 cores as the contestants",
    }
    write_report("daemon", report)


def _port_run(n: int) -> int:
    import socket

    for _ in range(50):
        base = free_port()
        ok = True
        for i in range(n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + i))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free port run")


if __name__ == "__main__":
    main()
