"""`fundwatch backtest`: the daemon's flow over history, scored with the suite's
own scorer, two packs compared alert by alert, an offline HTML report whose
every plot renders in headless chromium, and the same run from a bank's export
(by a mapping), a DuckDB file, a time window and a Kafka topic range."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import msgspec
import polars as pl
import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from playwright.sync_api import expect

from connectors.alert_store import AlertStore
from connectors.workbench import Workbench
from dataflows import app
from dataflows.cli import main
from dataflows.report import PLOTS
from tests.workbench_kit import SCREENSHOTS, browser

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bank_export"
THRESHOLD = 100_000  # the compared pack's cash-out limit (the default pack's is 50,000)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--log-level", "error", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def alerts(db: Path) -> dict[str, dict]:
    with AlertStore(db, read_only=True) as store:
        return {a["id"]: a for a in store.alerts()}


@pytest.fixture(scope="module")
def stricter_pack(tmp_path_factory) -> Path:
    """The default pack with one threshold changed: cash-outs from 100,000 instead of 50,000."""
    rules = tmp_path_factory.mktemp("pack") / "rules"
    shutil.copytree(ROOT / "rules", rules)  # the pack reads its lists and filters beside it
    pack = rules / "post_loan"
    rule = pack / "CO-001.yaml"
    text = rule.read_text()
    assert "above_limit: {amount|gte: 50000}" in text and "version: 1\n" in text
    rule.write_text(text.replace("above_limit: {amount|gte: 50000}", f"above_limit: {{amount|gte: {THRESHOLD}}}")
                    .replace("version: 1\n", "version: 2\n", 1))
    return pack


@pytest.fixture(scope="module")
def compared(sim_bank, stricter_pack, tmp_path_factory) -> tuple[Path, str]:
    data, _ = sim_bank
    out = tmp_path_factory.mktemp("backtest")
    code, output = invoke("backtest", "--data", str(data), "--out", str(out), "--compare", str(stricter_pack))
    assert code == 0, output
    return out, output


def test_the_backtest_reports_what_the_suites_scorer_reports(sim_bank, compared):
    data, replayed = sim_bank
    out, output = compared
    assert alerts(out / "backtest.duckdb").keys() == alerts(replayed).keys()  # the same flow on the same events
    pack = app.live_pack(app.DEFAULT_RULES, replayed, owner=False).pack
    want = {(s.pattern, s.hops): (s.labels, s.found, s.alerts, s.true_alerts)
            for s in app.evaluate(replayed, pack, data / "labels.parquet")}
    figures = json.loads((out / "figures.json").read_text())
    got = {(r["pattern"], r["hops"]): (r["labels"], r["found"], r["alerts"], r["true_alerts"])
           for r in figures["by_pattern"]}
    assert got == want
    assert sum(r["found"] for r in figures["by_pattern"] if r["hops"] is None) > 50
    cash = next(r for r in figures["by_pattern"] if r["pattern"] == "cash_out")
    assert f"cash_out                     {cash['found']}/{cash['labels']}=" in output
    # per rule, the rows of a pattern's only rule are the pattern's figures
    co = next(r for r in figures["by_rule"] if r["rule_id"] == "CO-001")
    assert (co["labels"], co["found"], co["alerts"], co["true_alerts"]) == \
        (cash["labels"], cash["found"], cash["alerts"], cash["true_alerts"])
    delays = [r for r in figures["delay"] if r["pattern"] == "cash_out"]
    assert len(delays) == cash["found"] and all(0 <= r["delay_hours"] < 24 * 30 for r in delays)
    assert sum(r["alerts"] for r in figures["volume"]) == len(alerts(replayed)) == figures["summary"]["alerts"]
    assert pl.read_parquet(out / "figures" / "by_pattern.parquet").height == len(figures["by_pattern"])


def test_compare_lists_exactly_the_alerts_that_differ(compared):
    out, output = compared
    base, other = alerts(out / "backtest.duckdb"), alerts(out / "compare.duckdb")
    lost = base.keys() - other.keys()
    gained = other.keys() - base.keys()
    figures = json.loads((out / "figures.json").read_text())
    listed = {(r["change"], r["alert_id"]) for r in figures["diff"]}
    assert listed == {("lost", i) for i in lost} | {("gained", i) for i in gained}
    assert lost and not gained
    values = {i: msgspec.json.decode(a["evidence"])["values"] for i, a in base.items()}
    for i, a in base.items():  # the stricter limit drops exactly the cash-outs under it, and the contagion they spread
        if a["rule_id"] == "CO-001":
            assert (i in lost) == (values[i]["amount"] < THRESHOLD), (i, values[i])
        elif a["rule_id"] == "CG-001" and values[i]["source_rule"] == "CO-001":
            assert (i in lost) == (values[i]["source_alert"] in lost), (i, values[i])
        else:
            assert i not in lost, a
    by_rule = {r["rule_id"]: r for r in figures["diff_by_rule"]}
    assert by_rule["CO-001"] == {"rule_id": "CO-001", "gained": 0, "changed": 0,
                                 "lost": sum(base[i]["rule_id"] == "CO-001" for i in lost)}
    assert f"0 gained, {len(lost)} lost, 0 changed" in output


def test_the_report_renders_every_plot_offline_in_chromium(compared):
    out, _ = compared
    report = out / "report.html"
    assert report.stat().st_size < 1_000_000
    with browser() as context:
        requested: list[str] = []
        context.on("request", lambda r: requested.append(r.url))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        for name in PLOTS:
            svg = page.locator(f"#fig-{name} svg")
            expect(svg).to_be_visible()
            box = svg.bounding_box()
            assert box["width"] > 300 and box["height"] > 100, (name, box)
        expect(page.locator("#fig-volume svg g[id^=patch]")).not_to_have_count(0)
        expect(page.locator("#t-patterns tbody tr")).not_to_have_count(0)
        expect(page.locator("#t-diff tbody tr").first).to_contain_text("lost")
        page.screenshot(path=str(SCREENSHOTS / "backtest-report.png"), full_page=True)
    assert errors == [] and requested == [report.as_uri()]


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("example")
    code, output = invoke("backtest", "--mapping", str(EXAMPLE / "mapping.yaml"), "--data", str(EXAMPLE), "--out",
                          str(out))
    assert code == 0, output
    (out / "stdout.txt").write_text(output)
    return out


def test_the_example_export_backtests_with_its_dead_letter_and_labels(example):
    with AlertStore(example / "backtest.duckdb", read_only=True) as store:
        (dead,) = store.dead_letters()
    assert dead["position"] == "row 101" and '"TXN_CHNL":"99"' in dead["payload"]
    summary = json.loads((example / "figures.json").read_text())["summary"]
    assert summary["labels"].endswith("labels.ndjson") and summary["dead_letters"] == 1 and summary["alerts"] > 0
    printed = (example / "stdout.txt").read_text().splitlines()
    assert re.search(r"^  guarantor_overexposed +3/3=1\.00 \[0\.44,1\.00\] +3/3=1\.00 \[0\.44,1\.00\] +1\.00$",
                     "\n".join(printed), re.M)
    assert "  cash_out" + " " * 40 + "-" + " " * 20 + "-     -" in printed  # no labels, no alerts: nothing to score


def test_labels_from_analysts_dispositions(example, tmp_path):
    """Confirmed alerts are the cases, dismissed ones false; only reviewed cases are scored."""
    store_path = shutil.copy(example / "backtest.duckdb", tmp_path / "worked.duckdb")
    with AlertStore(store_path) as store:
        ep = [a for a in store.alerts() if a["rule_id"] == "GO-001"][:2]  # each names its own guarantee
        bench = Workbench(store)
        for a, (to, disposition) in zip(ep, (("confirmed", "call_in_loan"), ("dismissed", "false_positive"))):
            for version, step in enumerate(("acknowledged", "investigating", to)):
                bench.transition(a["id"], step, "ann", version, disposition=disposition if step == to else None)
    assert len(ep) == 2
    code, output = invoke("backtest", "--mapping", str(EXAMPLE / "mapping.yaml"), "--data", str(EXAMPLE), "--out",
                          str(tmp_path / "out"), "--labels", str(store_path))
    assert code == 0, output
    figures = json.loads((tmp_path / "out" / "figures.json").read_text())
    (row,) = [r for r in figures["by_pattern"] if r["pattern"] == "guarantor_overexposed"]
    assert (row["labels"], row["found"], row["alerts"], row["true_alerts"]) == (1, 1, 2, 1)
    assert figures["summary"]["labels_from"] == "dispositions" and figures["summary"]["scored_alerts"] == 2


def test_a_duckdb_file_and_a_time_window(example, tmp_path):
    imported = tmp_path / "imported"
    code, _ = invoke("import", "--mapping", str(EXAMPLE / "mapping.yaml"), "--out", str(imported))
    assert code == 0
    bank = tmp_path / "bank.duckdb"
    con = duckdb.connect(str(bank))
    for kind in ("transactions", "parties", "accounts", "loans", "relations"):
        con.execute(f"CREATE TABLE {kind} AS SELECT * FROM read_parquet('{imported / kind}.parquet')")
    con.close()
    code, output = invoke("backtest", "--data", str(bank), "--out", str(tmp_path / "db"))
    assert code == 0, output
    want = alerts(example / "backtest.duckdb")
    assert alerts(tmp_path / "db" / "backtest.duckdb").keys() == want.keys()
    code, output = invoke("backtest", "--data", str(imported), "--out", str(tmp_path / "window"),
                          "--from", "2026-01-20", "--to", "2026-02-10T00:00:00+08:00")
    assert code == 0, output
    windowed = alerts(tmp_path / "window" / "backtest.duckdb")
    payments = [a for a in windowed.values() if a["rule_id"] in ("EP-001", "PV-001", "PV-002", "CO-001")]
    assert payments and all("2026-01-20" <= a["event_time"].isoformat() < "2026-02-09T16" for a in payments)
    summary = json.loads((tmp_path / "window" / "figures.json").read_text())["summary"]
    assert summary["from"].startswith("2026-01-20") and 0 < summary["events"] < len(pl.read_parquet(
        imported / "transactions.parquet")) + 400


def test_a_kafka_topic_range_gives_the_alerts_of_the_files(example, broker, topics, tmp_path):
    imported = tmp_path / "imported"
    invoke("import", "--mapping", str(EXAMPLE / "mapping.yaml"), "--out", str(imported))
    names = topics()
    tx = pl.read_parquet(imported / "transactions.parquet")
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for line in tx.write_ndjson().splitlines():
        producer.produce(names["transactions"], line.encode())
    producer.flush()
    ref = tmp_path / "ref"
    ref.mkdir()
    for kind in ("parties", "accounts", "loans", "relations"):
        shutil.copy(imported / f"{kind}.parquet", ref)
    code, output = invoke("backtest", "--data", f"kafka://{broker.bootstrap}", "--topic",
                          f"transactions={names['transactions']}", "--reference", str(ref), "--out",
                          str(tmp_path / "k"))
    assert code == 0, output
    assert alerts(tmp_path / "k" / "backtest.duckdb").keys() == alerts(example / "backtest.duckdb").keys()
    code, output = invoke("backtest", "--data", f"kafka://{broker.bootstrap}", "--topic",
                          f"transactions={names['transactions']}", "--reference", str(ref), "--out",
                          str(tmp_path / "k2"), "--from", "@0", "--to", "@5000")
    assert code == 0, output
    assert json.loads((tmp_path / "k2" / "figures.json").read_text())["summary"]["events"] == 5000 + 106 + 272


@pytest.mark.parametrize("args, says", [
    (["--data", "/nonexistent"], "/nonexistent: no such folder or DuckDB file"),
    (["--data", str(EXAMPLE)], "relations.csv: no columns id, kind, src, dst, valid_from of a relations record; a "
                               "bank's own export needs --mapping"),
    (["--data", str(EXAMPLE / "make_export.py")], "not a readable DuckDB file"),
    (["--data", str(EXAMPLE), "--from", "2026-02-01", "--to", "2026-01-01"], "--from must be before --to"),
    (["--data", str(EXAMPLE), "--from", "@10"], "@OFFSET bounds are for a Kafka range"),
    (["--data", "kafka://127.0.0.1:1"], "needs --topic STREAM=TOPIC"),
    (["--data", str(EXAMPLE), "-i", "2", "-a", "127.0.0.1:1;127.0.0.1:2"],  # Bytewax would wait for process 0
     "--process-id 2 is not one of the 2 process(es) in --addresses (0 to 1)"),
    (["--data", str(EXAMPLE), "-i", "0", "-a", "127.0.0.1"], "--addresses: '127.0.0.1' is not host:port"),
])
def test_a_users_mistake_is_one_line(args, says, tmp_path):
    code, output = invoke("backtest", "--out", str(tmp_path / "o"), *args)
    assert code != 0 and says in output, output
