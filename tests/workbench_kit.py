"""What the workbench tests share: a store of real alerts from a small simulated
bank (built once per session), tokens of every role, the API in-process or
served on a free port, and headless Debian chromium through Playwright."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors.alert_store import AlertStore
from connectors.processes import free_port
from connectors.files import FileSource, stream_files
from connectors.simbank import simulate
from connectors.workbench import Workbench
from dataflows import app

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "tests" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def sim_bank(tmp_path_factory) -> tuple[Path, Path]:
    """A small simulated bank's files and the store of its replay: alerts of every
    pattern, money routes and guarantee circles among them."""
    tmp = tmp_path_factory.mktemp("simbank")
    data = tmp / "data"
    simulate(3, 200, 60, data)
    db = tmp / "template.duckdb"
    app.run_flow(FileSource(stream_files(data)), data, db)
    return data, db


@pytest.fixture(scope="session")
def sim_store(sim_bank) -> Path:
    return sim_bank[1]


def copy_store(template: Path, to: Path) -> Path:
    shutil.copy(template, to)
    return to


def tokens(db: Path) -> dict[str, str]:
    """One live token per role, named after it."""
    with AlertStore(db) as store:
        bench = Workbench(store)
        return {role: bench.create_token(role, role, "test")[0] for role in ("viewer", "analyst", "admin")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def served(db: Path) -> Iterator[str]:
    """The workbench on a free loopback port, as `fundwatch serve` runs it; yields its URL."""
    from dataflows.api.server import Listen, Server

    server = Server(db, Listen(port=free_port())).start()
    try:
        yield server.listen.url
    finally:
        server.stop()


@contextmanager
def browser() -> Iterator:
    """A fresh chromium profile; Playwright drives Debian's binary (its own download is not used)."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_FLAGS,
                                                       headless=True, viewport={"width": 1280, "height": 900})
        try:
            yield context
        finally:
            context.close()


def sign_in(page, url: str, token: str) -> None:
    from playwright.sync_api import expect

    page.goto(url + "/")
    page.fill("#token", token)
    page.click("#signin")
    expect(page.locator("#queue tbody tr").first).to_be_visible()
