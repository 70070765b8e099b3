"""Replaying a simulated bank finds the labelled cases of every risk pattern of
DESIGN.md (1-12), with recall and precision per pattern against the labels:
direct and traced (1-2 intermediaries) purpose violations, round trips, guarantee
circles and chains, contagion and hidden related parties included."""

from __future__ import annotations

import pytest

from connectors.alert_store import AlertStore
from connectors.files import FileSource, stream_files
from connectors.simbank import simulate
from dataflows import app
from engine.patterns import PATTERNS


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    data = tmp_path_factory.mktemp("bank")
    simulate(11, 500, 90, data)
    db = data / "alerts.duckdb"
    result = app.run_flow(FileSource(stream_files(data)), data, db)
    scores = {s.pattern: s for s in app.evaluate(db, result.pack, data / "labels.parquet") if s.hops is None}
    return data, db, result, scores


def test_every_pattern_of_the_pack_is_scored(replayed):
    _, _, _, scores = replayed
    assert set(scores) == set(PATTERNS)


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_recall_and_precision_per_pattern(replayed, pattern):
    _, _, _, scores = replayed
    s = scores[pattern]
    assert s.labels >= 5
    assert s.recall == 1.0, f"{pattern}: found {s.found} of {s.labels}"
    assert s.precision >= 0.95, f"{pattern}: {s.true_alerts} of {s.alerts} alerts match a label"


def test_traced_cases_are_found_at_every_hop_count(replayed):
    data, db, result, _ = replayed
    by_hops = {(s.pattern, s.hops): s for s in app.evaluate(db, result.pack, data / "labels.parquet") if s.hops is not None}
    assert {h for p, h in by_hops if p == "purpose_violation"} == {0, 1, 2}
    assert {h for p, h in by_hops if p == "round_trip"} == {1, 2}
    assert all(s.recall == 1.0 for s in by_hops.values()), by_hops


def test_clean_data_has_no_dead_letters_and_every_event_is_counted(replayed):
    data, db, result, _ = replayed
    store = AlertStore(db, read_only=True)
    assert store.dead_letters() == []
    import polars as pl

    expected = sum(pl.scan_parquet(data / f"{s}.parquet").select(pl.len()).collect().item()
                   for s in ("transactions", "sensors", "parties", "relations"))
    assert result.stats.events == expected
    # the summary counts each alert once, even one found in two shards (a guarantee circle)
    assert sum(result.stats.by_rule.values()) == len(store.alerts()) == result.stats.alerts_new
