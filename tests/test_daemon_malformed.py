"""A flood of malformed messages: the daemon stays up, the good events among
them give exactly the alerts of a file replay, and every bad message is a dead
letter (topic and table) with its reason and its topic, partition and offset."""

from __future__ import annotations

import random
from datetime import timedelta

import msgspec
from confluent_kafka import Producer

from tests import daemon_kit as kit
from tests import tinybank


def _tx(i: int, ts: str, **changes) -> dict:
    base = {"id": f"bad-{i}", "ts": ts, "from_account": "D1", "to_account": "CASH", "amount": 60000,
            "channel": "cash"}
    return {**base, **changes}


def _enc(obj) -> bytes:
    return msgspec.json.encode(obj)


# kind -> (make(i, ts, rng) -> (value, headers), the dead letter reason starts with)
KINDS = {
    "not_json": (lambda i, ts, r: (b"{not json " + str(i).encode(), None), "undecodable: JSON is malformed"),
    "empty_bytes": (lambda i, ts, r: (b"", None), "undecodable: Input data was truncated"),
    "tombstone": (lambda i, ts, r: (None, None), "empty: message has no value"),
    "garbage": (lambda i, ts, r: (b"\x80" + r.randbytes(40), None), "undecodable"),
    "bad_utf8": (lambda i, ts, r: (_enc(_tx(i, ts, memo="@")).replace(b"@", b"\xff\xfe"), None),
                 "encoding: not UTF-8"),
    "utf16": (lambda i, ts, r: (_enc(_tx(i, ts)).decode().encode("utf-16"), None), "encoding: byte-order mark"),
    "utf8_bom": (lambda i, ts, r: (b"\xef\xbb\xbf" + _enc(_tx(i, ts)), None), "encoding: byte-order mark"),
    "oversized": (lambda i, ts, r: (_enc(_tx(i, ts, memo="x" * 3000)), None), "oversized: "),
    "nested": (lambda i, ts, r: (b'{"x":' + b"[" * 1000 + b"]" * 1000 + b"}", None),
               "undecodable: nested too deeply"),
    "array": (lambda i, ts, r: (b"[1, 2, 3]", None), "invalid: expected `object`, got `array`"),
    "wrong_type": (lambda i, ts, r: (_enc(_tx(i, ts, amount="lots")), None),
                   "invalid: $.amount: expected `float`, got `str`"),
    "negative": (lambda i, ts, r: (_enc(_tx(i, ts, amount=-5.0)), None), "invalid: $.amount: expected `float` >= 0.0"),
    "missing": (lambda i, ts, r: (_enc({k: v for k, v in _tx(i, ts).items() if k != "channel"}), None),
                "invalid: object missing required field `channel`"),
    "bad_enum": (lambda i, ts, r: (_enc(_tx(i, ts, channel="teleport")), None), "invalid: $.channel"),
    "bad_ts": (lambda i, ts, r: (_enc(_tx(i, "yesterday")), None), "invalid: $.ts: invalid RFC3339"),
    "naive_ts": (lambda i, ts, r: (_enc(_tx(i, ts[:19])), None), "invalid: $.ts: timestamp without a time zone"),
    "bad_currency": (lambda i, ts, r: (_enc(_tx(i, ts, currency="yuan")), None), "invalid: $.currency"),
    "version_header": (lambda i, ts, r: (_enc(_tx(i, ts)), [("schema-version", b"2")]),
                       "unsupported version: '2'"),
    "version_field": (lambda i, ts, r: (_enc(_tx(i, ts, schema_version=3)), None), "unsupported version: '3'"),
    "unknown_account": (lambda i, ts, r: (_enc(_tx(i, ts, from_account="NOPE")), None),
                        "invalid: $.from_account: unknown account 'NOPE'"),
    "unknown_loan": (lambda i, ts, r: (_enc(_tx(i, ts, loan_id="L404")), None), "invalid: $.loan_id: unknown loan 'L404'"),
    "late": (lambda i, ts, r: (_enc(_tx(i, (tinybank.T0 - timedelta(days=60)).isoformat())), None), "late: "),
}


def test_ten_thousand_malformed_messages_become_dead_letters(broker, topics, tmp_path):
    t = topics(partitions=2)
    b = kit.bank(10)
    good = kit.traffic(b, 200, seed=5)  # 2,010 events in time order
    rules = kit.match_pack(tmp_path)
    expected = kit.replay_alerts(b, good, tmp_path, rules)

    rng = random.Random(11)
    names = list(KINDS)
    messages = []  # (partition, value, headers, reason prefix or None for a good event)
    for n, event in enumerate(good):
        messages.append((n % 2, msgspec.json.encode(event), None, None))
        ts = event.ts.isoformat()
        for _ in range(5):  # five bad ones after each good one, in the same partition
            i = len(messages)
            kind = names[i % len(names)]
            value, headers = KINDS[kind][0](i, ts, rng)
            messages.append((n % 2, value, headers, kind))
    bad = sum(1 for m in messages if m[3] is not None)
    assert bad >= 10_000

    kit.produce_reference(broker.bootstrap, t, b)
    daemon = kit.Daemon(tmp_path, broker.bootstrap, t, rules, extra="max_message_bytes = 2048")
    try:
        daemon.start()
        where = _produce(broker.bootstrap, t["transactions"], messages)
        published = kit.published(expected)
        alerts = kit.alert_messages(broker.bootstrap, t["alerts"], at_least=len(published))
        dead = kit.read_topic(broker.bootstrap, t["dead_letters"], at_least=bad, timeout=120)
        assert daemon.get("/healthz") == (200, "ok\n")
        assert daemon.metric("fundwatch_events_in_total", stream="transactions") == len(messages)
        assert daemon.metric("fundwatch_dead_letters_total") == bad
        assert daemon.metric("fundwatch_dead_letters_total", reason="late") == sum(m[3] == "late" for m in messages)
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()

    assert {a["id"] for a in alerts} == published
    assert kit.stored_alerts(daemon.db) == expected
    letters = [msgspec.json.decode(m.value()) for m in dead]
    assert len(letters) == bad and len({d["id"] for d in letters}) == bad
    wrong = []
    for d in letters:
        assert d["source"] == t["transactions"] and d["stream"] == "transactions"
        kind = where[d["position"]]
        if kind is None or not d["reason"].startswith(KINDS[kind][1]):
            wrong.append((kind, d["reason"]))
    assert not wrong, wrong[:10]
    log = daemon.log.read_text()
    for secret in ("NOPE", "L404", "60000", "6e4", "lots", "BANK-CASH", "CASH\"", "name of"):
        assert secret not in log, secret  # no account numbers, names or amounts in logs
    from connectors.alert_store import AlertStore

    store = AlertStore(daemon.db, read_only=True)
    try:
        assert store.counts("SELECT 'n', count(*) FROM dead_letters")["n"] == bad
    finally:
        store.close()


def _produce(bootstrap: str, topic: str, messages: list) -> dict[str, str | None]:
    """Produce to explicit partitions; returns "partition:offset" -> kind of message."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                  "message.max.bytes": 20_000_000})
    where: dict[str, str | None] = {}

    def on_delivery(kind):
        def cb(err, msg):
            assert err is None, err
            where[f"{msg.partition()}:{msg.offset()}"] = kind
        return cb

    for partition, value, headers, kind in messages:
        while True:
            try:
                p.produce(topic, value, partition=partition, headers=headers, on_delivery=on_delivery(kind))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    assert len(where) == len(messages)
    return where


def test_a_record_that_breaks_enrichment_is_a_dead_letter_not_a_crash(tmp_path):
    """Files bypass the Kafka screen: a naive timestamp reaches enrichment, whose
    arithmetic with the loan's aware time raises; the flow isolates the record."""
    from connectors.alert_store import AlertStore
    from connectors.files import FileSource, stream_files
    from dataflows import app

    data = tinybank.write(tmp_path / "data")
    good = msgspec.json.encode(tinybank.CASES[6][0])  # the 50,000 cash-out
    naive = good.replace(b'"ts":"2026-01-11T09:00:00Z"', b'"ts":"2026-01-11T09:00:00"').replace(b"t-cash", b"t-naive")
    assert naive != good
    (data / "transactions-feed.ndjson").write_bytes(naive + b"\n" + good.replace(b"t-cash", b"t-cash-2") + b"\n")
    db = tmp_path / "a.duckdb"
    app.run_flow(FileSource(stream_files(data)), data, db)
    store = AlertStore(db, read_only=True)
    try:
        (dead,) = store.dead_letters()
        assert dead["position"] == "line 1" and dead["reason"].startswith("error: TypeError in enrichment")
        cash = {msgspec.json.decode(a["evidence"])["event_ids"][0] for a in store.alerts(rule="CO-001")}
        assert cash == {"t-cash", "t-cash-2"}
    finally:
        store.close()
