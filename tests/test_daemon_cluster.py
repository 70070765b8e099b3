"""Scale-out: `fundwatch run --config F --processes 2` runs one Bytewax cluster of
two processes that split the Kafka partitions, and gives the same alerts as a
single worker; only process 0 writes the DuckDB store; a reference update on a
topic reaches both processes."""

from __future__ import annotations

import msgspec
from confluent_kafka import Producer

from engine.records import Account, Loan
from tests import daemon_kit as kit
from tests import tinybank


def test_two_processes_give_the_alerts_of_a_single_worker(broker, topics, tmp_path):
    t = topics(partitions=4)
    b = kit.bank(30)
    txs = kit.traffic(b, 60, seed=9)
    rules = kit.match_pack(tmp_path)
    expected = kit.replay_alerts(b, txs, tmp_path, rules)  # one worker reading one file
    published = kit.published(expected)
    kit.produce_reference(broker.bootstrap, t, b)
    kit.produce_records(broker.bootstrap, t["transactions"], txs, key=kit.borrower_key(b))

    daemon = kit.Daemon(tmp_path, broker.bootstrap, t, rules, processes=2)
    try:
        daemon.start()
        messages = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=len(published))
        per_process = [daemon.metric("fundwatch_events_in_total", process=i) for i in (0, 1)]

        # a loan that arrives on the reference topics reaches every process
        loans = [daemon.metric("fundwatch_reference_in_total", process=i, kind="loans") for i in (0, 1)]
        kit.produce_records(broker.bootstrap, t["accounts"], [
            Account(id="D99", party_id="B1", kind="disbursement", opened_on=tinybank.T0.date())])
        kit.produce_records(broker.bootstrap, t["loans"], [
            Loan(id="L99", borrower_id="B1", disbursement_account="D99", principal=500_000,
                 disbursed_at=tinybank.T0, maturity=tinybank.T0.date().replace(year=2027),
                 purpose="working_capital")])
        daemon.wait_until(lambda: all(daemon.metric("fundwatch_reference_in_total", process=i, kind="loans")
                                      == loans[i] + 1 for i in (0, 1)), 30, "loan applied in both processes")
        p = Producer({"bootstrap.servers": broker.bootstrap})
        for part in range(4):
            cash = tinybank.tx(f"cash-L99-{part}", 200, "D99", "CASH", 70_000, "cash")
            p.produce(t["transactions"], msgspec.json.encode(cash), b"B1", partition=part)
        assert p.flush(10) == 0
        later = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=len(published) + 4)[len(messages):]
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()

    assert all(n > 0 for n in per_process) and sum(per_process) == len(txs), per_process
    assert {m["id"] for m in messages} == published and len(messages) == len(published)
    assert sorted(m["evidence"]["event_ids"][0] for m in later) == [f"cash-L99-{i}" for i in range(4)]
    assert {m["loan_id"] for m in later} == {"L99"}
    stored = kit.stored_alerts(daemon.db)
    assert {k: v for k, v in stored.items() if v["loan_id"] != "L99"} == expected
    assert {m["id"] for m in later} <= set(stored)  # with their shadow twins (CO-901)
    started = [e for e in daemon.log_lines() if e["event"] == "daemon_started"]
    assert sorted(e["process"] for e in started) == [0, 1]
