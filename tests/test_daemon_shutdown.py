"""SIGTERM is bounded: when in-flight alerts cannot be published (here the
broker refuses the alerts topic) the daemon keeps re-sending them, counts it,
and on SIGTERM gives up at the deadline without claiming they were done; a
restart with a working topic publishes them."""

from __future__ import annotations

import time

from tests import daemon_kit as kit
from tests import tinybank


def test_sigterm_gives_up_at_the_deadline_and_unpublished_alerts_come_back(broker, topics, tmp_path):
    t = topics()
    good_alerts = t["alerts"]
    rules = kit.match_pack(tmp_path)
    data = tinybank.write(tmp_path / "snapshot")
    stuck = kit.Daemon(tmp_path, broker.bootstrap, {**t, "alerts": "refused topic/name"}, rules, snapshot=data,
                       shutdown_timeout=3, name="stuck")
    try:
        stuck.start()
        kit.produce_records(broker.bootstrap, t["transactions"], [tinybank.CASES[6][0]])  # a cash-out: CO-001
        stuck.wait_until(lambda: stuck.metric("fundwatch_delivery_retries_total") >= 2, 30, "re-sending")
        started = time.monotonic()
        assert stuck.terminate() == 3  # the deadline's exit status
        assert time.monotonic() - started < 3 + 2
    finally:
        stuck.stop_quietly()
    events = [e["event"] for e in stuck.log_lines()]
    assert "produce_refused" in events and "shutdown_deadline_passed" in events

    # same recovery directory and store, a topic the broker accepts: the alert was never done
    fixed = kit.Daemon(tmp_path, broker.bootstrap, t, rules, snapshot=data, name="fixed")
    try:
        fixed.start()
        (alert,) = kit.alert_messages(broker.bootstrap, good_alerts, at_least=1)
        assert alert["rule_id"] == "CO-001" and alert["evidence"]["event_ids"] == ["t-cash"]
        assert fixed.terminate() == 0
    finally:
        fixed.stop_quietly()
    assert sorted(a["rule_id"] for a in kit.stored_alerts(fixed.db).values()) == ["CO-001", "CO-901"]  # + shadow
