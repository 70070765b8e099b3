"""Files fundwatch writes are the owner's only, whatever the umask; snapshots
from a directory others can write are refused (they are unpickled); dead-letter
payloads are kept, masked or dropped by configuration."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import msgspec
import pytest

from connectors.alert_store import AlertStore
from connectors.redact import Redaction
from dataflows.config import ConfigError
from dataflows.daemon import private_directory
from engine.records import DeadLetter
from tests.daemon_kit import ROOT


@pytest.fixture
def open_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_store_and_the_recovery_directory_are_private_whatever_the_umask(tmp_path, open_umask):
    AlertStore(tmp_path / "a.duckdb").close()
    assert _mode(tmp_path / "a.duckdb") == 0o600
    assert _mode(private_directory(tmp_path / "recovery")) == 0o700


def test_a_recovery_directory_others_can_write_is_refused(tmp_path, open_umask):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    with pytest.raises(ConfigError, match="writable by others"):
        private_directory(shared)
    shared.chmod(0o700)
    (shared / "part-0.sqlite3").touch(mode=0o666)
    with pytest.raises(ConfigError, match="part-0.sqlite3 is writable by others"):
        private_directory(shared)


def test_a_journal_that_vanishes_while_the_directory_is_checked_is_no_error(tmp_path):
    """Another process of the cluster removes its SQLite journal at any moment; a link to
    nothing stands for one that went between the listing and its check."""
    directory = private_directory(tmp_path / "recovery")
    (directory / "part-0.sqlite3-journal").symlink_to(tmp_path / "gone")
    assert private_directory(directory) == directory


def test_the_daemon_refuses_to_start_on_such_a_directory_in_one_line(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    config = tmp_path / "f.toml"
    config.write_text(f'[kafka]\nbootstrap_servers = "127.0.0.1:1"\n[recovery]\ndirectory = "{shared}"\n'
                      f'[http]\nport = 0\n')
    run = subprocess.run([sys.executable, "-m", "dataflows", "run", "--config", str(config)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    (line,) = [x for x in run.stderr.splitlines() if x.startswith("Error:")]
    assert "shared is writable by others" in line and "unpickled" in line


DEAD = DeadLetter(id="d1", stream="transactions", source="t", position="0:1", reason="invalid: x",
                  payload=msgspec.json.encode({"id": "t9", "ts": "2026-01-01T00:00:00Z", "from_account": "6222-0001",
                                               "amount": 123456.0, "memo": "Zhang San"}).decode())


def test_dead_letter_payloads_are_kept_truncated_masked_or_dropped():
    assert Redaction().apply(DEAD) is DEAD
    assert Redaction(max_payload=10).apply(DEAD).payload == DEAD.payload[:10]
    masked = msgspec.json.decode(Redaction("mask").apply(DEAD).payload)
    assert masked == {"id": "t9", "ts": "2026-01-01T00:00:00Z", "from_account": "***", "amount": "***", "memo": "***"}
    assert Redaction("mask").apply(msgspec.structs.replace(DEAD, payload="6222-0001 not json")).payload.startswith("***")
    assert Redaction("drop").apply(DEAD).payload == ""
