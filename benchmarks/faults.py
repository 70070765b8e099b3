"""The daemon under faults, with the whole default pack: what a crash, a frozen
broker and a flood of hostile messages cost.

    python benchmarks/faults.py [--borrowers 500] [--days 60] [--freeze 30] [--hostile 10000]

Starts a Tansu broker on loopback, simulates a bank (cached under
benchmarks/.data) and produces its events (one partition per stream, so every
run reads them in the same order) for each scenario:

1. uninterrupted: the daemon reads the backlog to its end and stops (SIGTERM);
   its DuckDB alerts are the reference for the others, and are compared with
   a file replay of the same data (`fundwatch replay`);
2. kill -9 at 40% and at 80% of the backlog, restarting each time: events read
   again after each kill, alerts lost or extra in DuckDB, repeats on the topic
   (and repeats whose content differs);
3. broker frozen (SIGSTOP) for `--freeze` seconds while the last 60,000 events
   arrive at 2,000 a second: time until the outage is reported, /readyz during
   it, outages counted, time back after SIGCONT, alerts lost;
4. `--hostile` hostile messages mixed into the good events: good events lost,
   alerts lost, dead letters by reason; and one valid event dated 2100 in the
   middle of the stream: it must be a `future:` dead letter, and no good event
   after it may be judged late.

Prints the figures and writes benchmarks/results/faults.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import duckdb
import msgspec
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.daemon import config_file, simulated, stream  # noqa: E402
from benchmarks.data import write_report  # noqa: E402
from connectors.processes import free_port  # noqa: E402
from tests.broker import Tansu  # noqa: E402

STREAMS = ("transactions", "sensors")
LIVE_TAIL = int(os.environ.get("FAULTS_LIVE_TAIL", 60_000))  # events produced live at LIVE_RATE in the freeze scenario
LIVE_RATE = 2000


class Daemon:
    def __init__(self, tmp: Path, bootstrap: str, topics: dict[str, str], data: Path):
        self.tmp, self.port = tmp, free_port()
        self.db = tmp / "alerts.duckdb"
        self.log = tmp / "daemon.log"
        self.config = config_file(tmp, bootstrap, topics, data, self.port, recovery="")  # default snapshots
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Daemon":
        before = len(self._assigned())
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "dataflows", "run", "--config", str(self.config)],
                                         cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
        self.until(lambda: len(self._assigned()) >= before + len(STREAMS), 120)  # resumed, and where
        return self

    def _assigned(self) -> list[dict]:
        if not self.log.exists():
            return []
        lines = [json.loads(x) for x in self.log.read_text().splitlines() if x.startswith("{")]
        return [e for e in lines if e.get("event") == "partition_assigned"]

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""
        except OSError:
            return 0, ""

    def metric(self, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in self.get("/metrics")[1].splitlines()
                   if line.startswith(name) and line[len(name)] in " {")

    def position(self) -> int:
        """Messages read so far over both topics: where this run resumed plus what it read."""
        return self.resumed() + int(self.metric("fundwatch_events_in_total"))

    def resumed(self) -> int:
        return sum(e["offset"] for e in self._assigned()[-len(STREAMS):] if isinstance(e["offset"], int))

    def until(self, check, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {self.log}")
            if check():
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"timed out; see {self.log}")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(120)


def produce(bootstrap: str, topics: dict[str, str], events, rate: float | None = None) -> dict[str, str]:
    """(stream, key, value, tag) in order; returns 'topic partition:offset' -> tag."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 1_000_000,
                  "message.max.bytes": 20_000_000})
    where: dict[str, str] = {}
    started = time.monotonic()
    for i, (stream_name, key, value, tag) in enumerate(events):
        if rate is not None and (wait := started + i / rate - time.monotonic()) > 0:
            time.sleep(wait)
        while True:
            try:
                p.produce(topics[stream_name], value, key, partition=0,
                          on_delivery=lambda err, m, tag=tag: where.__setitem__(f"{m.topic()} {m.offset()}", tag))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    p.flush(300)
    return where


def topic_alerts(bootstrap: str, topic: str) -> list[dict]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out, quiet = [], time.monotonic()
    while time.monotonic() - quiet < 3:
        got = [m for m in c.consume(10_000, 0.2) if m.error() is None]
        if got:
            out += [msgspec.json.decode(m.value()) for m in got]
            quiet = time.monotonic()
    c.close()
    return out


def stored(db: Path) -> dict[str, tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT id, rule_id, borrower_id, loan_id, event_time, summary, evidence FROM alerts").fetchall()}
    finally:
        con.close()


def dead_letters(db: Path) -> list[tuple[str, str, str]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT source, position, reason FROM dead_letters").fetchall()
    finally:
        con.close()


def compare(expected: dict, got: dict) -> dict:
    lost, extra = expected.keys() - got.keys(), got.keys() - expected.keys()
    return {"alerts_expected": len(expected), "lost": len(lost), "extra": len(extra),
            "different": sum(expected[k] != got[k] for k in expected.keys() & got.keys()),
            "lost_by_rule": dict(Counter(expected[k][0] for k in lost)),
            "extra_by_rule": dict(Counter(got[k][0] for k in extra))}


def on_topic(messages: list[dict]) -> dict:
    seen: dict[str, dict] = {}
    differ = 0
    for m in messages:
        content = {k: v for k, v in m.items() if k != "detected_at"}
        if m["id"] in seen and seen[m["id"]] != content:
            differ += 1
        seen.setdefault(m["id"], content)
    return {"messages": len(messages), "distinct": len(seen), "repeats": len(messages) - len(seen),
            "repeats_with_other_content": differ}


class Scenario:
    def __init__(self, broker: Tansu, tmpdir: Path, data: Path, name: str):
        self.broker, self.name = broker, name
        self.tmp = tmpdir / name
        self.tmp.mkdir()
        self.topics = {k: f"{name}.{k}" for k in (*STREAMS, "alerts", "dead_letters")}
        broker.create_topics(list(self.topics.values()), 1)
        self.daemon = Daemon(self.tmp, broker.bootstrap, self.topics, data)

    def finish(self, total: int) -> None:
        self.daemon.until(lambda: self.daemon.position() >= total, 600)
        self.daemon.stop()

    def close(self) -> None:
        self.broker.delete_topics(list(self.topics.values()))


def tagged(events) -> list:
    return [(s, k, v, "good") for s, k, v in events]


def uninterrupted(broker, tmpdir, data, events) -> dict:
    sc = Scenario(broker, tmpdir, data, "whole")
    produce(broker.bootstrap, sc.topics, tagged(events))
    started = time.monotonic()
    sc.daemon.start()
    sc.finish(len(events))
    result = {"seconds": round(time.monotonic() - started, 1), "alerts": stored(sc.daemon.db)}
    sc.close()
    return result


def replayed(tmpdir: Path, data: Path) -> dict[str, tuple]:
    """The same data as a file replay: what the daemon should have stored."""
    db = tmpdir / "replay.duckdb"
    subprocess.run([sys.executable, "-m", "dataflows", "replay", "--data", str(data), "--db", str(db)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return stored(db)


def kill_9(broker, tmpdir, data, events, expected) -> dict:
    sc = Scenario(broker, tmpdir, data, "kill")
    produce(broker.bootstrap, sc.topics, tagged(events))
    sc.daemon.start()
    kills = []
    for share in (0.4, 0.8):
        sc.daemon.until(lambda: sc.daemon.position() >= share * len(events), 600)
        read = sc.daemon.position()
        sc.daemon.kill()
        sc.daemon.start()
        resumed = sc.daemon.resumed()
        kills.append({"at": share, "read_before_kill": read, "resumed_at": resumed, "read_again": read - resumed})
    sc.finish(len(events))
    result = {"kills": kills, "duckdb": compare(expected, stored(sc.daemon.db)),
              "topic": on_topic(topic_alerts(broker.bootstrap, sc.topics["alerts"]))}
    sc.close()
    return result


def freeze(broker, tmpdir, data, events, expected, seconds: float) -> dict:
    sc = Scenario(broker, tmpdir, data, "freeze")
    backlog, tail = events[:-LIVE_TAIL], events[-LIVE_TAIL:]
    produce(broker.bootstrap, sc.topics, tagged(backlog))
    sc.daemon.start()
    sc.daemon.until(lambda: sc.daemon.position() >= len(backlog), 600)
    producer = threading.Thread(target=produce, args=(broker.bootstrap, sc.topics, tagged(tail), LIVE_RATE))
    producer.start()
    time.sleep(5)
    outages = sc.daemon.metric("fundwatch_broker_outages_total")
    broker.pause()
    frozen = time.monotonic()
    noticed = sc.daemon.until(lambda: sc.daemon.metric("fundwatch_broker_up") == 0, seconds + 30)
    ready_during = sc.daemon.get("/readyz")[0]
    time.sleep(max(seconds - (time.monotonic() - frozen), 0))
    broker.resume()
    back = sc.daemon.until(lambda: sc.daemon.metric("fundwatch_broker_up") == 1, 120)
    counted = sc.daemon.metric("fundwatch_broker_outages_total") - outages
    producer.join()
    sc.finish(len(events))
    lines = [json.loads(x) for x in sc.daemon.log.read_text().splitlines() if x.startswith("{")]
    result = {"frozen_seconds": seconds, "outage_reported_after_s": round(noticed, 1), "readyz_during": ready_during,
              "outages_counted": counted,
              "outage_log_lines": sum(e.get("event") == "broker_outage" for e in lines),
              "back_after_resume_s": round(back, 1),
              "delivery_failed_logs": sum(e.get("event") == "delivery_failed" for e in lines),
              "duckdb": compare(expected, stored(sc.daemon.db)),
              "topic": on_topic(topic_alerts(broker.bootstrap, sc.topics["alerts"]))}
    sc.close()
    return result


def hostile_message(i: int, ts: str, rng: random.Random, account: str) -> tuple[str, bytes]:
    """The i-th hostile message (kinds round robin), next to a good event at `ts`: (kind, value)."""
    base = {"ts": ts, "from_account": account, "to_account": account, "amount": 1000.0, "channel": "transfer"}
    enc = msgspec.json.encode
    kinds = {
        "not_json": lambda i: b"{not json",
        "empty": lambda i: b"",
        "garbage": lambda i: b"\x80" + rng.randbytes(40),
        "bad_utf8": lambda i: enc({**base, "id": f"h{i}", "memo": "@"}).replace(b"@", b"\xff\xfe"),
        "utf16": lambda i: enc({**base, "id": f"h{i}"}).decode().encode("utf-16"),
        "nested": lambda i: b'{"x":' + b"[" * 1000 + b"]" * 1000 + b"}",
        "wrong_type": lambda i: enc({**base, "id": f"h{i}", "amount": "lots"}),
        "negative": lambda i: enc({**base, "id": f"h{i}", "amount": -5.0}),
        "missing_field": lambda i: enc({k: v for k, v in {**base, "id": f"h{i}"}.items() if k != "channel"}),
        "naive_ts": lambda i: enc({**base, "id": f"h{i}", "ts": ts[:19]}),
        "version_2": lambda i: enc({**base, "id": f"h{i}", "schema_version": 2}),
        "unknown_account": lambda i: enc({**base, "id": f"h{i}", "from_account": "NOPE"}),
        "oversized": lambda i: enc({**base, "id": f"h{i}", "memo": "x" * 2_000_000}),
        "huge_amount": lambda i: enc({**base, "id": f"h{i}", "amount": 1e15}),
        "long_text": lambda i: enc({**base, "id": f"h{i}", "memo": "x" * 5000}),
        "far_future_unknown_account": lambda i: enc({**base, "id": f"h{i}", "ts": "2100-01-01T00:00:00Z",
                                                     "from_account": "NOPE"}),
        "far_future_negative": lambda i: enc({**base, "id": f"h{i}", "ts": "2100-01-01T00:00:00Z", "amount": -1.0}),
        "far_past_valid": lambda i: enc({**base, "id": f"h{i}", "ts": "1990-01-01T00:00:00Z"}),
    }
    kind = list(kinds)[i % len(kinds)]
    return kind, kinds[kind](i)


def hostile(broker, tmpdir, data, events, expected, n: int, valid_future: bool) -> dict:
    sc = Scenario(broker, tmpdir, data, "hostile2100" if valid_future else "hostile")
    rng = random.Random(5)
    account = next(msgspec.json.decode(v)["from_account"] for s, _, v in events if s == "transactions")
    mixed = tagged(events)
    if valid_future:  # one event every check accepts, dated 2100, halfway through
        good = msgspec.json.decode(next(v for s, _, v in events if s == "transactions"))
        bad = msgspec.json.encode({**good, "id": "valid-2100", "ts": "2100-01-01T00:00:00Z"})
        mixed.insert(len(mixed) // 2, ("transactions", None, bad, "valid_far_future"))
    else:
        spots = sorted(rng.sample(range(len(mixed)), n))
        for j in reversed(range(n)):
            ts = msgspec.json.decode(mixed[spots[j]][2])["ts"]
            kind, value = hostile_message(j, ts, rng, account)
            mixed.insert(spots[j] + 1, ("transactions", None, value, kind))
    where = produce(broker.bootstrap, sc.topics, mixed)
    sc.daemon.start()
    sc.finish(len(mixed))
    letters = dead_letters(sc.daemon.db)
    tags = Counter(where[f"{src} {pos.split(':')[1]}"] for src, pos, _ in letters)
    result = {"messages": len(mixed), "hostile": len(mixed) - len(events),
              "good_events_lost": tags.get("good", 0),
              "hostile_not_dead_letters": (len(mixed) - len(events)) - sum(v for k, v in tags.items() if k != "good"),
              "dead_letters_by_reason": dict(Counter(r.split(":")[0] for _, _, r in letters).most_common()),
              "duckdb": compare(expected, stored(sc.daemon.db))}
    sc.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--borrowers", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--freeze", type=float, default=30)
    parser.add_argument("--hostile", type=int, default=10_000)
    args = parser.parse_args()
    data = simulated(args.seed, args.borrowers, args.days)
    events = stream(data)
    report: dict = {"benchmark": "faults", "data": {"seed": args.seed, "borrowers": args.borrowers,
                                                    "days": args.days, "events": len(events)}}
    with tempfile.TemporaryDirectory() as tmpdir, Tansu(log=Path(tmpdir) / "tansu.log") as broker:
        tmp = Path(tmpdir)
        whole = uninterrupted(broker, tmp, data, events)
        expected = whole.pop("alerts")
        report["uninterrupted"] = {**whole, "alerts": len(expected),
                                   "against_file_replay": compare(replayed(tmp, data), expected)}
        print("uninterrupted:", report["uninterrupted"], flush=True)
        for name, run in (("kill_9", lambda: kill_9(broker, tmp, data, events, expected)),
                          ("freeze", lambda: freeze(broker, tmp, data, events, expected, args.freeze)),
                          ("hostile", lambda: hostile(broker, tmp, data, events, expected, args.hostile, False)),
                          ("valid_far_future", lambda: hostile(broker, tmp, data, events, expected, 0, True))):
            report[name] = run()
            print(f"{name}:", json.dumps(report[name]), flush=True)
    write_report("faults", report)


if __name__ == "__main__":
    main()
