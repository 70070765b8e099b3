"""One score per alert from rule, model, graph signals and the loan's class, with the
weights in the pack; and the borrower's combined score, raised by each new finding while
its alerts are open, stored with the alert and shown by the API."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from litestar.testing import TestClient

from connectors.alert_store import AlertStore
from connectors.workbench import Workbench
from dataflows.api.app import create_app
from dataflows.api.service import Service
from engine.batch import Raw
from engine.pipeline import Pipeline
from engine.records import Alert, Evidence
from engine.rules.pack import load_pack
from engine.rules.selftest import TESTS_TIMING, _reference, load_context
from engine.rules.spec import ScoringSpec
from engine.scoring import borrower_score, combine
from tests.workbench_kit import bearer, tokens

PACK = Path(__file__).resolve().parents[1] / "rules" / "post_loan"
CASH = {"id": "c1", "ts": "2026-01-08T10:00:00Z", "from_account": "D1", "to_account": "CASH", "amount": 120000,
        "channel": "cash"}


def test_a_lone_rule_keeps_its_risk_score_and_every_other_signal_raises_it():
    s = ScoringSpec()
    assert combine(s, 70, None, False, 0.0, "normal")[0] == 70
    with_model, parts = combine(s, 70, 0.95, False, 0.0, "normal")
    assert with_model == 84 and parts == {"rule": 0.7, "model": 0.475}
    assert combine(s, 70, None, True, 0.0, "normal")[0] == 79  # in a guarantee circle
    assert combine(s, 70, None, False, 1.0, "normal")[0] == 76  # five parties within two guarantees
    assert combine(s, 70, None, False, 0.0, "doubtful")[0] == 85
    assert combine(s, 100, 1.0, True, 1.0, "loss")[0] == 100
    assert borrower_score([70, 60]) == 88 and borrower_score([]) == 0


def _cash_out_alert(root: Path, risk_class: str = "normal") -> Alert:
    ctx = load_context(PACK / "testdata" / "bank.yaml")
    ctx["loans"] = [{**loan, "risk_class": risk_class} for loan in ctx["loans"]]
    pipeline = Pipeline(load_pack(root), _reference(ctx, {}), TESTS_TIMING)
    alerts = pipeline.feed([Raw("transactions", "t", "1", CASH)]) + pipeline.end()
    (alert,) = [a for a in alerts if a.rule_id == "CO-001"]
    return alert


def test_the_weights_are_the_packs_and_the_loans_class_counts(tmp_path):
    assert _cash_out_alert(PACK).score == 85 and _cash_out_alert(PACK).level == "critical"
    doubtful = _cash_out_alert(PACK, "doubtful")
    assert doubtful.score == 92 and doubtful.evidence.values["score.risk_class"] == 0.5
    root = tmp_path / "rules"
    shutil.copytree(PACK.parent, root)
    pack_yaml = root / "post_loan" / "pack.yaml"
    pack_yaml.write_text(pack_yaml.read_text().replace("    doubtful: 0.5", "    doubtful: 0.9"))
    assert _cash_out_alert(root / "post_loan", "doubtful").score == 98


def _alert(n: int, score: int, borrower: str = "B1", shadow: bool = False) -> Alert:
    t = datetime(2026, 1, 1 + n, tzinfo=timezone.utc)
    return Alert(id=f"s{n:03d}", rule_id="HC-001", rule_version=1, pack_version="1", score=score, level="high",
                 borrower_id=borrower, loan_id="L1", event_time=t, detected_at=t, summary=f"finding {n}",
                 evidence=Evidence(event_ids=[f"t{n}"], values={}, conditions=[]), shadow=shadow)


def test_a_new_finding_on_a_borrower_with_open_alerts_raises_its_score_on_the_alert_and_in_the_api(tmp_path):
    db = tmp_path / "s.duckdb"
    with AlertStore(db) as store:
        store.write([_alert(1, 70)], [])
        store.write([_alert(2, 60), _alert(3, 50, shadow=True), _alert(4, 40, borrower="B2")], [])
        store.write([_alert(2, 60)], [])  # a replayed copy changes nothing
        stored = {a["id"]: a["borrower_score"] for a in store.alerts()}
        assert stored == {"s001": 70, "s002": 88, "s003": 88, "s004": 40}
        bench = Workbench(store)
        for version, to in enumerate(["acknowledged", "investigating", "dismissed", "closed"]):
            bench.transition("s002", to, "ann", version, disposition="false_positive" if to == "dismissed" else None)
        assert store.borrower_score("B1") == 70  # the closed one no longer counts
        store.write([_alert(5, 60)], [])
        assert store.alerts()[-1]["borrower_score"] == 88
    token = tokens(db)["viewer"]
    with AlertStore(db) as store, TestClient(create_app(Service(store))) as client:
        detail = client.get("/api/alerts/s001", headers=bearer(token)).json()
        assert (detail["borrower_score"], detail["borrower_score_now"]) == (70, 88)
        items = client.get("/api/alerts?borrower=B1", headers=bearer(token)).json()["items"]
        assert {i["id"]: i["borrower_score"] for i in items}["s005"] == 88
