"""Every user mistake is one clear line, never a traceback: a missing or locked
store, bad options, corrupted or missing data files, a second run on the same
store, librdkafka's own messages before any connection, and HTTP clients that
misbehave."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import duckdb
import pytest

from connectors.processes import free_port
from dataflows import http
from tests import tinybank
from tests.daemon_kit import ROOT


def fundwatch(*args: str, cwd=ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
    return subprocess.run([sys.executable, "-m", "dataflows", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_line(run: subprocess.CompletedProcess, status: int = 1) -> str:
    assert run.returncode == status and "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, run.stderr
    return errors[0]


def test_a_missing_store(tmp_path):
    assert "no alert store there" in one_line(fundwatch("alerts", "list", "--db", str(tmp_path / "none.duckdb")))


def test_a_store_locked_by_another_process(tmp_path):
    db = tmp_path / "a.duckdb"
    holder = duckdb.connect(str(db))  # this process holds the write lock
    try:
        line = one_line(fundwatch("alerts", "show", "x", "--db", str(db)))
    finally:
        holder.close()
    assert "is in use by another process" in line


@pytest.mark.parametrize("args", [("alerts", "list", "--limit", "-1"), ("--log-level", "loud", "alerts", "list")])
def test_bad_options(args):
    run = fundwatch(*args)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "Invalid value" in run.stderr


@pytest.mark.parametrize("name, content, cause", [
    ("transactions.parquet", b"PAR1 not really parquet", "not a readable Parquet file"),
    ("transactions.csv", b"id,ts,amount\n1,2\n\"unclosed,3,4,5\n", "not a readable CSV file"),
])
def test_a_corrupted_event_file_names_the_file_and_the_cause(tmp_path, name, content, cause):
    data = tinybank.write(tmp_path / "data")
    (data / "transactions.parquet").unlink()
    (data / name).write_bytes(content)
    line = one_line(fundwatch("replay", "--data", str(data), "--db", str(tmp_path / "a.duckdb")))
    assert f"{data / name}: {cause}" in line, line


def test_a_corrupted_reference_file(tmp_path):
    data = tinybank.write(tmp_path / "data")
    (data / "loans.parquet").write_bytes(b"garbage")
    assert "loans.parquet: not a readable Parquet file" in one_line(
        fundwatch("replay", "--data", str(data), "--db", str(tmp_path / "a.duckdb")))


def test_a_data_folder_without_event_files_says_what_names_it_expects(tmp_path):
    line = one_line(fundwatch("replay", "--data", str(tmp_path), "--db", str(tmp_path / "a.duckdb")))
    assert "no event files; expected a name starting with 'transactions'" in line and "txn_2026-01.csv" in line


@pytest.mark.parametrize("args, says", [
    (["-i", "1"], "--process-id and --addresses go together"),
    (["-i", "2", "-a", "127.0.0.1:1;127.0.0.1:2"], "--process-id 2 is not one of the 2 process(es)"),
])
def test_a_process_id_outside_the_cluster_is_refused_not_waited_for(tmp_path, args, says):
    data = tinybank.write(tmp_path / "data")
    run = fundwatch("replay", "--data", str(data), "--db", str(tmp_path / "a.duckdb"), *args, timeout=60)
    assert run.returncode == 2 and "Traceback" not in run.stderr and says in run.stderr, run.stderr


def test_a_second_run_on_the_same_store_is_refused_and_the_first_keeps_running(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
    args = [sys.executable, "-m", "dataflows", "run", "--borrowers", "10", "--days", "60", "--speed", "43200",
            "--db", str(tmp_path / "a.duckdb")]
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=env)
    try:
        assert first.stdout is not None
        for line in first.stdout:  # the first alert: the flow runs and holds the store
            if " CO-001 " in line or "HIGH" in line or "CRITICAL" in line or "MEDIUM" in line:
                break
        second = fundwatch(*args[3:], cwd=tmp_path)
        assert "is in use by another process" in one_line(second)
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)


def test_librdkafka_speaks_json_even_before_the_first_connection(tmp_path):
    config = tmp_path / "f.toml"
    config.write_text(f'[kafka]\nbootstrap_servers = "127.0.0.1:{free_port()}"\n[http]\nport = 0\n'
                      f'[recovery]\ndirectory = ""\n[reference]\nwait_for_topics = 2\n[api]\nport = 0\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")}
    proc = subprocess.Popen([sys.executable, "-m", "dataflows", "run", "--config", str(config),
                             "--db", str(tmp_path / "a.duckdb")], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**env, "FUNDWATCH_DUCKDB": str(tmp_path / "a.duckdb")})
    time.sleep(8)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    lines = err.splitlines()
    assert "Traceback" not in err and not any(line.startswith("%") for line in lines), err
    raw = [line for line in lines if not line.startswith("{")]
    assert len(raw) <= 1, raw  # at most the one line saying why it stopped
    assert '"librdkafka"' in err or '"kafka_error"' in err or '"waiting_for_topic"' in err


def test_the_endpoint_bounds_its_threads_and_logs_no_tracebacks_for_reset_clients(capfd):
    status = http.Status()
    status.running = True
    port = free_port()
    server = http.serve("127.0.0.1", port, status)
    try:
        before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3 * http.MAX_CLIENTS)]
        time.sleep(0.5)
        assert threading.active_count() - before <= http.MAX_CLIENTS
        for s in idle:
            s.close()
        for _ in range(5):  # a request, then a reset instead of reading the answer
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            s.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("endpoint did not come back")
    finally:
        server.shutdown()
    assert "Traceback" not in capfd.readouterr().err
