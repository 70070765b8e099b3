"""While the daemon detects it owns the store and serves the workbench:
`fundwatch alerts list` goes through its API and the page works; the file is
left to the daemon."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from playwright.sync_api import expect

from connectors.alert_store import AlertStore
from connectors.workbench import Workbench
from tests import daemon_kit as kit
from tests.workbench_kit import ROOT, SCREENSHOTS, browser, sign_in


def _cli(*args: str, token: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDWATCH_")} | {"FUNDWATCH_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "dataflows", "--log-level", "error", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_alerts_list_and_the_page_work_while_the_daemon_detects(broker, topics, tmp_path):
    t = topics(partitions=2)
    b = kit.bank(6)
    txs = kit.traffic(b, 30)
    rules = kit.match_pack(tmp_path)
    daemon = kit.Daemon(tmp_path, broker.bootstrap, t, rules)
    with AlertStore(daemon.db) as store:  # the first token, before the daemon owns the file
        token, _ = Workbench(store).create_token("ops", "analyst", "test")
    kit.produce_reference(broker.bootstrap, t, b)
    daemon.start()
    try:
        half = len(txs) // 2
        kit.produce_records(broker.bootstrap, t["transactions"], txs[:half], key=kit.borrower_key(b))
        daemon.wait_until(lambda: daemon.metric("fundwatch_alerts_total") > 0, 60, "first alerts")

        listed = _cli("alerts", "list", "--config", str(daemon.config), "--limit", "5", token=token)
        assert listed.returncode == 0, listed.stderr
        last = listed.stdout.strip().splitlines()[-1]
        assert last.startswith("showing 5 of ") and int(last.split()[3].rstrip(",")) > 5
        found = _cli("alerts", "list", "--db", str(daemon.db), "--rule", "CO-001", token=token)  # via the .api file
        assert found.returncode == 0 and "CO-001" in found.stdout, found.stderr
        alert_id = found.stdout.split()[0]
        acked = _cli("alerts", "ack", alert_id, "--db", str(daemon.db), "--why", "seen live", token=token)
        assert acked.stdout.strip() == f"{alert_id}: acknowledged (version 1)", acked.stderr

        url = f"http://127.0.0.1:{daemon.api_port}"
        with browser() as context:
            page = context.new_page()
            sign_in(page, url, token)
            page.select_option("#f-status", "acknowledged")
            page.click("#apply")
            expect(page.locator("#showing")).to_contain_text("showing 1 of 1")
            api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
            before = api.get("/api/alerts").json()["total"]
            kit.produce_records(broker.bootstrap, t["transactions"], txs[half:], key=kit.borrower_key(b))
            daemon.wait_until(lambda: api.get("/api/alerts").json()["total"] > before, 60, "alerts of the second half")
            page.select_option("#f-status", "")
            page.click("#apply")
            expect(page.locator("#showing")).to_contain_text(re.compile(rf"showing \d+ of (?!{before}\b)\d+"))
            page.screenshot(path=str(SCREENSHOTS / "6-queue-while-the-daemon-runs.png"))
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
    assert not (tmp_path / "alerts.duckdb.api").exists()
    with AlertStore(daemon.db) as store:
        assert [e["detail"] for e in Workbench(store).audit(alert_id)] == ["seen live"]
