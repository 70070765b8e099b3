"""What the daemon tests share: a bank of tinybank-like borrowers with seeded
traffic, a match-only rule pack, Kafka produce/consume helpers, a daemon
subprocess and the file replay that says which alerts to expect."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import msgspec
import polars as pl
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)

from connectors.alert_store import AlertStore
from connectors.processes import die_with_parent, free_port
from connectors.files import FileSource, stream_files
from dataflows import app
from engine.records import Account, Loan, Record, Relation, Transaction
from tests import tinybank

ROOT = Path(__file__).resolve().parents[1]
MATCH_RULES = ("CO-001", "LO-001", "PV-001")  # order-free rules: any interleaving gives the same alerts


# --- data -----------------------------------------------------------------


@dataclass
class Bank:
    """tinybank plus borrowers B2..Bn, each with loan Ln of 1,000,000 into account Dn."""

    reference: dict[str, list[Record]] = field(default_factory=dict)
    borrowers: list[str] = field(default_factory=list)


def bank(borrowers: int) -> Bank:
    ref = {"parties": list(tinybank.PARTIES), "accounts": list(tinybank.ACCOUNTS),
           "loans": list(tinybank.LOANS), "relations": list(tinybank.RELATIONS)}
    ids = ["B1"]
    for n in range(2, borrowers + 1):
        b = f"B{n}"
        ids.append(b)
        ref["parties"].append(tinybank._party(b, "manufacturing"))
        ref["accounts"] += [Account(id=f"A-{b}", party_id=b, kind="settlement", opened_on=date(2020, 1, 1)),
                            Account(id=f"D{n}", party_id=b, kind="disbursement", opened_on=date(2026, 1, 5))]
        ref["loans"].append(Loan(id=f"L{n}", borrower_id=b, disbursement_account=f"D{n}", principal=1_000_000,
                                 disbursed_at=tinybank.T0, maturity=date(2027, 1, 5), purpose="working_capital",
                                 contracted_payees=["S1"]))
        ref["relations"].append(Relation(id=f"R-{b}", kind="supply_chain", src=b, dst="S2",
                                         valid_from=date(2020, 1, 1)))
    return Bank(ref, ids)


_PAYEES = [("A-S1", 0.6, "transfer"), ("A-S2", 0.35, "transfer"), ("A-N1", 0.32, "transfer"),
           ("A-BAD", 0.04, "transfer"), ("A-SEC", 0.31, "transfer"), ("CASH", 0.05, "cash"),
           ("CASH", 0.02, "cash"), ("A-N1", 0.01, "transfer")]


def traffic(b: Bank, per_borrower: int, seed: int = 1) -> list[Transaction]:
    """Disbursement then payments per borrower, interleaved across borrowers in event time."""
    rng = random.Random(seed)
    out: list[Transaction] = []
    for i, borrower in enumerate(b.borrowers):
        n = i + 1
        acct = "D1" if n == 1 else f"D{n}"
        loan = "L1" if n == 1 else f"L{n}"
        out.append(tinybank.tx(f"{borrower}-disb", 0, "LEDGER", acct, 1_000_000, "disbursement", loan_id=loan))
        for k in range(per_borrower):
            to, share, channel = rng.choice(_PAYEES)
            days = 1 + 100 * (k + 1) / (per_borrower + 1)
            out.append(tinybank.tx(f"{borrower}-{k}", days, acct, to, round(share * 1_000_000 * rng.uniform(0.9, 1.3)),
                                   channel))
    out.sort(key=lambda t: (t.ts, t.id))
    return out


def match_pack(tmp: Path) -> Path:
    """The default pack's order-free match rules plus a shadow (experimental) copy of CO-001."""
    pack = tmp / "pack" / "post_loan"
    pack.mkdir(parents=True)
    shutil.copytree(ROOT / "rules" / "lists", tmp / "pack" / "lists")
    for rule in MATCH_RULES:
        shutil.copy(ROOT / "rules" / "post_loan" / f"{rule}.yaml", pack)
    shadow = (pack / "CO-001.yaml").read_text().replace("id: CO-001", "id: CO-901", 1)
    (pack / "CO-901.yaml").write_text(shadow.replace("status: stable", "status: experimental", 1))
    (pack / "pack.yaml").write_text('id: daemon_test\nversion: "1"\nlists:\n  - ../lists/sectors.yaml\n')
    return pack


def write_files(b: Bank, txs: list[Transaction], out: Path) -> Path:
    """The same bank and events as files, for the file replay."""
    out.mkdir(parents=True, exist_ok=True)
    for kind, records in b.reference.items():
        pl.DataFrame(msgspec.to_builtins(records, builtin_types=(datetime, date))).write_parquet(out / f"{kind}.parquet")
    (out / "transactions.ndjson").write_bytes(b"\n".join(msgspec.json.encode(t) for t in txs) + b"\n")
    return out


def replay_alerts(b: Bank, txs: list[Transaction], tmp: Path, rules: Path) -> dict[str, dict]:
    """What a file replay of the same events stores: alert id -> comparable fields."""
    data = write_files(b, txs, tmp / "replay-data")
    db = tmp / "replay.duckdb"
    app.run_flow(FileSource(stream_files(data)), data, db, rules)
    return stored_alerts(db)


def published(expected: dict[str, dict]) -> set[str]:
    """The alert ids that go to the alerts topic: all but the shadow ones."""
    return {a for a, v in expected.items() if not v["shadow"]}


def produce_reference(bootstrap: str, topics: dict[str, str], b: Bank) -> None:
    for kind, records in b.reference.items():
        produce_records(bootstrap, topics[kind], records)


def comparable(a: dict) -> dict:
    keep = ("id", "rule_id", "borrower_id", "loan_id", "summary", "shadow", "score", "level")
    out = {k: a[k] for k in keep}
    out["event_time"] = str(a["event_time"])[:19].replace(" ", "T")
    ev = a["evidence"]
    out["event_ids"] = (json.loads(ev) if isinstance(ev, str) else ev)["event_ids"]
    return out


def stored_alerts(db: Path) -> dict[str, dict]:
    store = AlertStore(db, read_only=True)
    try:
        rows = store.alerts()
        assert len(rows) == len({r["id"] for r in rows})
        return {r["id"]: comparable(r) for r in rows}
    finally:
        store.close()


# --- Kafka ----------------------------------------------------------------


def produce(bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes | None]],
            headers: list | None = None) -> None:
    """Produce (key, value) pairs and wait until the broker confirmed every one."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    failed: list = []

    def cb(err, _msg):
        if err is not None:
            failed.append(err)

    for key, value in values:
        while True:
            try:
                p.produce(topic, value, key, headers=headers, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(30) == 0 and not failed, failed


def produce_records(bootstrap: str, topic: str, records: list[Record], key=lambda r: r.id) -> None:
    produce(bootstrap, topic, [(key(r).encode(), msgspec.json.encode(r)) for r in records])


def borrower_key(b: Bank):
    """Events keyed by borrower: the disbursement account's owner."""
    owner = {a.id: a.party_id for a in b.reference["accounts"]}
    return lambda t: owner.get(t.from_account, "x") if t.from_account != "LEDGER" else owner[t.to_account]


def read_topic(bootstrap: str, topic: str, at_least: int = 0, timeout: float = 60.0, settle: float = 1.0) -> list:
    """Every message of a 1-partition topic: waits for `at_least`, then until nothing new for `settle` s."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = c.consume(10_000, 0.2)
            got = [m for m in batch if m.error() is None]
            for m in batch:
                if m.error() is not None and m.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consuming {topic}: {m.error()}")
            if got:
                out.extend(got)
                quiet_since = time.monotonic()
            elif len(out) >= at_least and time.monotonic() - quiet_since >= settle:
                break
    finally:
        c.close()
    return out


def alert_messages(bootstrap: str, topic: str, at_least: int, timeout: float = 90.0) -> list[dict]:
    return [msgspec.json.decode(m.value()) | {"_key": m.key().decode()}
            for m in read_topic(bootstrap, topic, at_least, timeout)]


# --- the daemon as a process -------------------------------------------------


class Daemon:
    """`fundwatch run --config` in a subprocess, with its JSON log in a file."""

    def __init__(self, tmp: Path, bootstrap: str, topics: dict[str, str], rules: Path, *,
                 processes: int = 1, snapshot: Path | None = None, extra: str = "", name: str = "daemon",
                 shutdown_timeout: float = 20):
        """`extra`: more lines for the config's [input] section, e.g. "batch_size = 100"."""
        self.tmp, self.processes = tmp, processes
        self.http_port = free_port() if processes == 1 else _free_ports(processes)
        self.api_port = free_port()
        self.db = tmp / "alerts.duckdb"
        self.log = tmp / f"{name}.log"
        self.config = tmp / f"{name}.toml"
        topic_lines = "\n".join(f'{k} = "{v}"' for k, v in topics.items())
        self.config.write_text(f"""
duckdb = "{self.db}"
rules = "{rules}"
shutdown_timeout = {shutdown_timeout}

[kafka]
bootstrap_servers = "{bootstrap}"

[kafka.client]
"log_level" = 3

[topics]
{topic_lines}

[reference]
snapshot = "{snapshot or ''}"
wait_for_topics = 10

[recovery]
directory = "{tmp / 'recovery'}"
snapshot_interval = 1

[http]
port = {self.http_port}

[api]
port = {self.api_port}

[input]
idle_wait = 0.01
{extra}
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Daemon":
        cmd = [sys.executable, "-m", "dataflows", "run", "--config", str(self.config)]
        if self.processes > 1:
            cmd += ["--processes", str(self.processes)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=env,
                                         start_new_session=True, preexec_fn=die_with_parent)
        self.wait_until(lambda: self.ready(), 60, "ready")
        return self

    def url(self, path: str, process: int = 0) -> str:
        return f"http://127.0.0.1:{self.http_port + process}{path}"

    def get(self, path: str, process: int = 0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path, process), timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return 0, ""

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")
        return all(self.get("/readyz", i)[0] == 200 for i in range(self.processes))

    def metric(self, name: str, process: int | None = None, **labels: str) -> float:
        """Sum of a metric's samples matching `labels`, over every process (or one)."""
        total = 0.0
        for i in range(self.processes) if process is None else [process]:
            for line in self.get("/metrics", i)[1].splitlines():
                if not line.startswith(name) or line.startswith("#"):
                    continue
                head, _, value = line.rpartition(" ")
                metric, _, rest = head.partition("{")
                if metric != name:
                    continue
                if all(f'{k}="{v}"' in rest for k, v in labels.items()):
                    total += float(value)
        return total

    def wait_until(self, check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log_tail()}")

    def terminate(self, timeout: float = 40.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)  # the daemon and any cluster children
        self.proc.wait()

    def log_lines(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _free_ports(n: int) -> int:
    """A base port with n free ports after it (process i serves base + i)."""
    for _ in range(50):
        base = free_port()
        if base + n < 65535 and all(_is_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no run of free ports")


def _is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
