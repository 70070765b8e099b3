"""The broker goes away under the running daemon and comes back: the daemon
waits, reports the outage (log, metrics, readiness), re-sends what the broker
did not confirm, and resumes with no loss."""

from __future__ import annotations

import time

from connectors.broker_watch import OUTAGE_AFTER
from connectors.processes import free_port
from tests import daemon_kit as kit
from tests.broker import Proxy, Tansu
from tests.test_daemon_recovery import PacedProducer


def test_broker_restart_and_freeze_under_a_running_daemon_lose_nothing(tmp_path):
    proxy_port = free_port()
    tansu = Tansu(log=tmp_path / "tansu.log", advertised_port=proxy_port).start()
    proxy = Proxy(tansu.port, proxy_port).start()
    daemon = None
    try:
        t = {k: f"outage.{k}" for k in ("transactions", "sensors", "parties", "accounts", "loans", "relations",
                                        "alerts", "dead_letters")}
        tansu.create_topics([t["transactions"], t["sensors"]], partitions=2)
        tansu.create_topics([v for k, v in t.items() if k not in ("transactions", "sensors")])
        b = kit.bank(20)
        txs = kit.traffic(b, 150, seed=13)  # 3,020 events
        rules = kit.match_pack(tmp_path)
        expected = kit.replay_alerts(b, txs, tmp_path, rules)
        published = kit.published(expected)
        kit.produce_reference(tansu.bootstrap, t, b)

        # deliveries time out after 2 s, so a 6 s outage makes the sink re-send
        daemon = kit.Daemon(tmp_path, tansu.bootstrap, t, rules,
                            extra="batch_size = 50\n[output]\ndelivery_timeout = 2")
        daemon.start()
        first, rest = txs[:1500], txs[1500:]
        kit.produce_records(tansu.bootstrap, t["transactions"], first, key=kit.borrower_key(b))
        daemon.wait_until(lambda: daemon.metric("fundwatch_events_in_total") > 300, 30, "first events")

        proxy.stop()  # the broker is gone: connections cut, new ones refused
        daemon.wait_until(lambda: daemon.metric("fundwatch_broker_up") == 0, 30, "outage noticed")
        assert daemon.get("/readyz")[0] == 503 and daemon.get("/healthz")[0] == 200
        time.sleep(4)
        proxy.start()  # back, same address, data intact

        daemon.wait_until(lambda: daemon.metric("fundwatch_broker_up") == 1, 30, "broker back")
        assert daemon.metric("fundwatch_broker_outages_total") == 1
        producer = PacedProducer(tansu.bootstrap, t["transactions"], rest, kit.borrower_key(b), rate=1500)
        producer.start()
        time.sleep(0.5)
        tansu.pause()  # frozen: connections open, nothing answers
        frozen = time.monotonic()
        daemon.wait_until(lambda: daemon.metric("fundwatch_broker_up") == 0, OUTAGE_AFTER + 5, "freeze noticed")
        noticed = time.monotonic() - frozen
        assert daemon.get("/readyz")[0] == 503
        time.sleep(2)
        tansu.resume()
        producer.join(60)
        assert producer.error is None

        messages = kit.alert_messages(tansu.bootstrap, t["alerts"], at_least=len(published), timeout=120)
        daemon.wait_until(lambda: daemon.metric("fundwatch_broker_up") == 1, 30, "broker back")
        outages = daemon.metric("fundwatch_broker_outages_total")
        retries = daemon.metric("fundwatch_delivery_retries_total")
        assert daemon.get("/readyz")[0] == 200
        assert daemon.terminate() == 0
    finally:
        if daemon is not None:
            daemon.stop_quietly()
        proxy.stop()
        tansu.stop()

    assert {m["id"] for m in messages} == published
    assert kit.stored_alerts(daemon.db) == expected
    assert outages == 2 and retries >= 1, (outages, retries)  # the restart and the freeze, once each
    assert noticed <= OUTAGE_AFTER + 2, noticed
    events = [e["event"] for e in daemon.log_lines()]
    assert "broker_outage" in events and "broker_back" in events and "delivery_failed" in events
