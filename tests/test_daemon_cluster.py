"""Scale-out: `fundwatch run --config F --processes 2` runs one Bytewax cluster of
two processes that split the Kafka partitions, and gives the same alerts as a
single worker; only process 0 writes the DuckDB store."""

from __future__ import annotations

from tests import daemon_kit as kit


def test_two_processes_give_the_alerts_of_a_single_worker(broker, topics, tmp_path):
    t = topics(partitions=4)
    b = kit.bank(30)
    txs = kit.traffic(b, 60, seed=9)
    rules = kit.match_pack(tmp_path)
    expected = kit.replay_alerts(b, txs, tmp_path, rules)  # one worker reading one file
    published = {a for a, v in expected.items() if not v["shadow"]}
    for kind, records in b.reference.items():
        kit.produce_records(broker.bootstrap, t[kind], records)
    kit.produce_records(broker.bootstrap, t["transactions"], txs, key=kit.borrower_key(b))

    daemon = kit.Daemon(tmp_path, broker.bootstrap, t, rules, processes=2)
    try:
        daemon.start()
        messages = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=len(published))
        per_process = [daemon.metric("fundwatch_events_in_total", process=i) for i in (0, 1)]
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()

    assert all(n > 0 for n in per_process) and sum(per_process) == len(txs), per_process
    assert {m["id"] for m in messages} == published and len(messages) == len(published)
    assert kit.stored_alerts(daemon.db) == expected
    started = [e for e in daemon.log_lines() if e["event"] == "daemon_started"]
    assert sorted(e["process"] for e in started) == [0, 1]
