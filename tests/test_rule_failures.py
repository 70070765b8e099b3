"""A rule that fails on an event (a bug, a value nobody foresaw) neither stops the
flow nor loses the event: the event becomes a dead letter naming the rule, and
every other rule still sees it."""

from __future__ import annotations

import json

import pytest

from connectors.alert_store import AlertStore
from connectors.files import FileSource, stream_files
from dataflows import app
from engine.rules.kinds import AggregateKind
from tests import tinybank


@pytest.fixture
def broken_aggregates(monkeypatch):
    real = AggregateKind.on_event

    def on_event(self, rule, view, state, ref):
        if view.id == "t-cash":
            raise ZeroDivisionError("float division by zero")  # fault injected into one rule kind
        return real(self, rule, view, state, ref)

    monkeypatch.setattr(AggregateKind, "on_event", on_event)


def test_failing_rule_turns_the_event_into_a_dead_letter_and_the_flow_goes_on(tmp_path, broken_aggregates):
    data = tinybank.write(tmp_path / "data")
    result = app.run_flow(FileSource(stream_files(data)), data, tmp_path / "a.duckdb")
    store = AlertStore(tmp_path / "a.duckdb", read_only=True)
    dead = store.dead_letters()
    assert {d["reason"].split(":")[0] for d in dead} == {"error"}
    failed_rules = sorted(d["reason"].split(" in rule ")[1].split(":")[0] for d in dead)
    assert failed_rules == ["FO-001", "PT-001", "SP-001"]  # the aggregate rules on transactions
    assert all(d["source"] == "detect" and d["position"] == "t-cash" for d in dead)
    assert json.loads(dead[0]["payload"])["id"] == "t-cash"
    # the match rules still raised their alerts on that event and the others
    cash = [a for a in store.alerts(rule="CO-001")]
    assert [json.loads(a["evidence"])["event_ids"] for a in cash] == [["t-cash"]]
    assert result.stats.events == tinybank.REFERENCE_EVENTS + len(tinybank.CASES)
