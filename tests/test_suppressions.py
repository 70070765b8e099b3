"""Analysts' suppressions silence named alerts until they expire; experimental
rules run in shadow (stored, marked, never published)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from connectors.alert_store import AlertStore
from connectors.files import FileSource, stream_files
from dataflows import app
from engine.rules.errors import RuleError
from engine.rules.pack import load_pack
from tests import tinybank

ROOT = Path(__file__).resolve().parents[1]

SUPPRESSION = """id: SUP-2026-001
rules: [LO-001]
borrowers: [B1]
reason: New trading partner N1 declared to the relationship manager.
owner: analyst.li
created: 2025-12-20
expires: {expires}
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    return tmp_path / "rules"


def replay(tmp_path: Path, rules: Path) -> list[dict]:
    data = tinybank.write(tmp_path / "data")
    db = tmp_path / "a.duckdb"
    app.run_flow(FileSource(stream_files(data)), data, db, rules / "post_loan")
    return AlertStore(db, read_only=True).alerts()


def test_active_suppression_silences_only_its_rule_and_borrower(tmp_path, rules):
    (rules / "filters" / "SUP-2026-001.yaml").write_text(SUPPRESSION.format(expires="2026-03-01"))
    alerts = replay(tmp_path, rules)
    assert not [a for a in alerts if a["rule_id"] == "LO-001"]
    assert [a for a in alerts if a["rule_id"] == "EP-001"]  # the same events still raise other rules


def test_suppression_lapses_on_its_expiry_date(tmp_path, rules):
    # t-broker-big is on 2026-01-09, t-new-big on 2026-01-10: only the first is before expiry
    (rules / "filters" / "SUP-2026-001.yaml").write_text(SUPPRESSION.format(expires="2026-01-10"))
    lo = [json.loads(a["evidence"])["event_ids"] for a in replay(tmp_path, rules) if a["rule_id"] == "LO-001"]
    assert lo == [["t-new-big"]]


@pytest.mark.parametrize("edit, message", [
    (("expires: 2026-03-01", "expires: 2026-12-31"), "expires more than 180 days after it was created"),
    (("rules: [LO-001]", "rules: [LO-009]"), "suppresses unknown rule LO-009"),
    (("borrowers: [B1]\n", ""), "name the borrowers or loans it covers"),
    (("expires: 2026-03-01\n", ""), "object missing required field `expires`"),
])
def test_bad_suppressions_are_refused_with_their_file(rules, edit, message):
    path = rules / "filters" / "SUP-2026-001.yaml"
    path.write_text(SUPPRESSION.format(expires="2026-03-01").replace(*edit))
    with pytest.raises(RuleError) as err:
        load_pack(rules / "post_loan")
    assert any(str(path) in str(p) and message in str(p) for p in err.value.problems), err.value.problems


def test_experimental_rule_alerts_are_stored_as_shadow(tmp_path, rules):
    rule = rules / "post_loan" / "CO-001.yaml"
    rule.write_text(rule.read_text().replace("status: stable", "status: experimental"))
    alerts = replay(tmp_path, rules)
    assert {a["rule_id"]: a["shadow"] for a in alerts}["CO-001"] is True
    assert not any(a["shadow"] for a in alerts if a["rule_id"] != "CO-001")
