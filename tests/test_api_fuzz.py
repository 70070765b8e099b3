"""The served API fuzzed from its own OpenAPI document (schemathesis): no request makes
it fail (5xx), answers keep to the documented status codes, and a request it
rejects leaves the store exactly as it was."""

from __future__ import annotations

import hashlib

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from connectors.alert_store import AlertStore
from tests.workbench_kit import bearer, copy_store, served, tokens


@pytest.fixture(scope="module")
def fuzzed(sim_store, tmp_path_factory):
    db = copy_store(sim_store, tmp_path_factory.mktemp("fuzz") / "f.duckdb")
    keys = tokens(db)
    with served(db) as url, AlertStore(db) as store:
        real_ids = [r[0] for r in store._sql("SELECT id FROM alerts ORDER BY id LIMIT 5")]
        yield url, store, keys, real_ids


def _fingerprint(store: AlertStore) -> tuple:
    """Everything a request could change: lifecycle state, audit, tokens."""
    return tuple(store._sql(q)[0] for q in (
        "SELECT count(*), coalesce(sum(version), 0), string_agg(alert_id || status || coalesce(assignee, ''), ',' "
        "ORDER BY alert_id) FROM alert_state",
        "SELECT count(*), max(seq) FROM audit",
        "SELECT count(*), count(revoked_at) FROM tokens",
    ))


def test_no_request_fails_and_a_rejected_one_changes_nothing(fuzzed):
    url, store, keys, real_ids = fuzzed
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12
    calls = {"cases": 0, "rejected": 0}

    def check(case) -> None:
        if "alert_id" in (case.path_parameters or {}):
            # half the cases on real alerts, so the lifecycle's own refusals are fuzzed too
            pick = int(hashlib.sha256(repr(case.body).encode()).hexdigest(), 16)
            if pick % 2:
                case.path_parameters["alert_id"] = real_ids[pick % len(real_ids)]
        case.headers = {**(case.headers or {}), **bearer(keys["admin"])}
        before = _fingerprint(store)
        response = case.call()
        calls["cases"] += 1
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        assert response.status_code in (200, 201, 400, 401, 403, 404, 409), response.text
        if response.status_code >= 400:
            calls["rejected"] += 1
            assert _fingerprint(store) == before, (case.method, case.formatted_path, response.text)

    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            check(case)

        fuzz()
    print(f"fuzz: {calls['cases']} requests over {len(operations)} operations, {calls['rejected']} rejected")
    assert calls["cases"] >= 10 * len(operations) and 0 < calls["rejected"] < calls["cases"]
