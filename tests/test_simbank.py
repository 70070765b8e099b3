"""The simulated bank: reproducible, schema-true, labelled, and able to fool a rule.

The checks below read only the written files, never the generator's internals.
Each is a naive version of a rule (trace every payment after loan money, flag
any shortfall against a same-weekday baseline, any shared phone...) and
returns what it flags that no label covers: the legitimate look-alikes a real
bank has. `test_normal_traffic_holds_look_alikes_of_every_pattern` demands
that every one of them finds some, so a rule scored on this bank is tried
against them; `test_checks_find_the_injected_cases` drops the labels and
expects every check to find more, so the injected cases are among what it
flags.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import networkx as nx
import polars as pl
import pytest

from connectors.simbank import simulate
from connectors.simbank.schema import schema
from connectors.simbank.writer import FILES, STRUCTS
from engine.patterns import PATTERNS

SEED, BORROWERS, DAYS = 11, 150, 60
PROHIBITED = {"real_estate", "securities", "futures", "crypto", "lending", "gambling"}
TX_PATTERNS = {"purpose_violation", "entrusted_payment_mismatch", "round_trip", "splitting", "fan_out", "pass_through",
               "large_outflow", "cash_out", "idle_funds", "missed_repayment", "loan_refinancing", "payment_anomaly"}
SENSOR_PATTERNS = {"headcount_drop", "inventory_shortfall", "electricity_collapse", "executive_absent", "sensor_silent"}
RELATION_PATTERNS = {"guarantee_circle", "guarantee_chain", "guarantor_overexposed", "contagion"}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sim")
    simulate(SEED, BORROWERS, DAYS, d)
    return d


@pytest.fixture(scope="module")
def bank(out) -> dict[str, pl.DataFrame]:
    dfs = {name: pl.read_parquet(out / f"{name}.parquet") for name in FILES}
    acc = dfs["accounts"].join(dfs["parties"].select(pl.col("id").alias("party_id"), "sector"), on="party_id")
    dfs["acc"] = acc.select(pl.col("id").alias("account"), "party_id", "sector", pl.col("kind").alias("account_kind"))
    tx = dfs["transactions"]
    for side in ("from", "to"):
        names = {"account": f"{side}_account", "party_id": f"{side}_party", "sector": f"{side}_sector"}
        tx = tx.join(dfs["acc"].select(*names).rename(names), on=f"{side}_account", how="left")
    dfs["tx"] = tx.sort("ts", "id")
    return dfs


def labelled(labels: pl.DataFrame, *patterns: str) -> set[str]:
    lab = labels.filter(pl.col("pattern").is_in(patterns)) if patterns else labels
    return set(lab["event_ids"].explode().drop_nulls().to_list())


# --- the checks: each returns what it finds that no label covers ----------------


def _loan_payments(b) -> pl.DataFrame:
    """Payments out of disbursement accounts, with their loan."""
    loans = b["loans"].select(pl.col("disbursement_account").alias("from_account"), pl.col("id").alias("loan"),
                              "borrower_id", "principal", "contracted_payees", "purpose", "disbursed_at")
    return b["tx"].join(loans, on="from_account").filter(pl.col("channel") != "disbursement")


def unlabelled_noncontracted_payments(b, labels) -> list[str]:
    p = _loan_payments(b)
    fee = ((pl.col("to_account") == "BANK-LEDGER") & (pl.col("channel") == "transfer")
           & (pl.col("amount") <= 0.005 * pl.col("principal")))
    bad = p.filter(~pl.col("contracted_payees").list.contains(pl.col("to_party")) & ~fee)
    return sorted(set(bad["id"]) - labelled(labels))


def traced(b, max_hops: int = 3) -> pl.DataFrame:
    """Payments funded by a loan (time-respecting, up to `max_hops` transfers): id, loan, hop, to_party."""
    loans = b["loans"].select(pl.col("disbursement_account").alias("account"), pl.col("id").alias("loan"),
                              pl.col("disbursed_at").alias("since"))
    reached = loans.with_columns(hop=pl.lit(0))
    frontier, rows = reached, []
    tx = b["tx"].filter(~pl.col("channel").is_in(["disbursement"]))
    for hop in range(1, max_hops + 1):
        step = (tx.join(frontier.rename({"account": "from_account"}), on="from_account")
                .filter(pl.col("ts") >= pl.col("since")).with_columns(hop=pl.lit(hop)))
        rows.append(step.select("id", "loan", "hop", "to_account", "to_party", "to_sector", "amount", "ts"))
        nxt = (step.filter(~pl.col("to_account").str.starts_with("BANK"))
               .group_by("to_account", "loan").agg(pl.col("ts").min().alias("since"))
               .rename({"to_account": "account"}).with_columns(hop=pl.lit(hop)))
        frontier = nxt.join(reached.select("account", "loan"), on=["account", "loan"], how="anti")
        reached = pl.concat([reached, frontier])
    return pl.concat(rows)


def unlabelled_prohibited(b, labels) -> list[str]:
    t = traced(b).join(b["loans"].select(pl.col("id").alias("loan"), "purpose"), on="loan")
    hit = t.filter(pl.col("to_sector").is_in(PROHIBITED)
                   & ~((pl.col("purpose") == "mortgage") & (pl.col("to_sector") == "real_estate")))
    return sorted(set(hit["id"]) - labelled(labels))


def unlabelled_returns(b, labels) -> list[str]:
    """Loan money arriving (after 1+ intermediary) at the borrower or a declared owner / family member."""
    rel = b["relations"].filter(pl.col("kind").is_in(["ownership", "family"]))
    related = pl.concat([rel.select(pl.col("dst").alias("borrower_id"), pl.col("src").alias("party")),
                         rel.select(pl.col("src").alias("borrower_id"), pl.col("dst").alias("party"))])
    loans = b["loans"].select(pl.col("id").alias("loan"), "borrower_id")
    back = pl.concat([loans.with_columns(party=pl.col("borrower_id")), loans.join(related, on="borrower_id")])
    t = traced(b).filter(pl.col("hop") >= 2).join(back, left_on=["loan", "to_party"], right_on=["loan", "party"])
    return sorted(set(t["id"]) - labelled(labels))


def unlabelled_own_account_receipts(b, labels) -> list[str]:
    """Loan money moved straight to the borrower's own settlement account (pass-through conduit)."""
    p = _loan_payments(b).filter(pl.col("to_party") == pl.col("borrower_id"))
    return sorted(set(p["id"]) - labelled(labels))


def unlabelled_cash_and_splits(b, labels) -> list[str]:
    """Large cash withdrawals by borrowers and loan payments just under the reporting threshold."""
    near_threshold = pl.col("amount").is_between(40_000, 50_000, closed="left")
    p = _loan_payments(b).filter((pl.col("channel") == "cash") | near_threshold)
    borrowers = b["loans"].select(pl.col("borrower_id").alias("from_party")).unique()
    cash = b["tx"].join(borrowers, on="from_party").filter((pl.col("channel") == "cash") & (pl.col("amount") >= 50_000))
    return sorted((set(p["id"]) | set(cash["id"])) - labelled(labels))


def unlabelled_idle(b, labels) -> list[str]:
    end = b["tx"]["ts"].max()
    first_out = _loan_payments(b).group_by("loan").agg(pl.col("ts").min().alias("first_out"))
    loans = b["loans"].join(first_out, left_on="id", right_on="loan", how="left")
    idle = loans.filter(pl.coalesce("first_out", pl.lit(end)) - pl.col("disbursed_at") >= timedelta(days=30))
    return sorted(set(idle["id"]) - set(labels.filter(pl.col("pattern") == "idle_funds")["loan_id"]))


def unlabelled_missed(b, labels) -> list[str]:
    """Loans whose monthly repayment is missing: 32+ days after the last one (or after disbursement + 14)."""
    end = b["tx"]["ts"].max()
    settle = b["acc"].filter(pl.col("account_kind") == "settlement").select(pl.col("account").alias("from_account"))
    rep = b["tx"].filter(pl.col("channel") == "repayment").join(settle, on="from_account")
    last = rep.group_by("loan_id").agg(pl.col("ts").sort().alias("paid"))
    loans = b["loans"].join(last, left_on="id", right_on="loan_id", how="left")
    bad = []
    for row in loans.iter_rows(named=True):
        paid = row["paid"] or []
        marks = [row["disbursed_at"] + timedelta(days=14)] + paid + [end]
        if any(later - earlier > timedelta(days=32) for earlier, later in zip(marks, marks[1:])):
            bad.append(row["id"])
    return sorted(set(bad) - set(labels.filter(pl.col("pattern") == "missed_repayment")["loan_id"]))


def unlabelled_sensor_signals(b, labels) -> list[str]:
    """Readings below half the same-weekday headcount, 30% of the kWh baseline, the pledge; 10-day absences."""
    s = b["sensors"].with_columns(wd=pl.col("ts").dt.weekday(), day=pl.col("ts").dt.date())
    first3w = s["day"].min() + timedelta(days=21)
    base = s.filter(pl.col("day") < first3w).group_by("site_id", "kind", "wd").agg(base=pl.col("value").median())
    s = s.join(base, on=["site_id", "kind", "wd"], how="left")
    pledged = (b["loans"].select(pl.col("collateral")).explode("collateral").unnest("collateral")
               .filter(pl.col("site_id").is_not_null()).group_by("site_id").agg(pl.col("pledged_quantity").sum()))
    s = s.join(pledged, on="site_id", how="left")
    low = s.filter(((pl.col("kind") == "headcount") & (pl.col("value") < 0.5 * pl.col("base")))
                   | ((pl.col("kind") == "electricity_kwh") & (pl.col("value") < 0.3 * pl.col("base")))
                   | ((pl.col("kind") == "inventory") & (pl.col("value") < pl.col("pledged_quantity"))))
    bad = set(low["id"]) - labelled(labels)
    ex = s.filter(pl.col("kind") == "executive_presence").sort("site_id", "ts")
    for _, g in ex.group_by("site_id", maintain_order=True):
        run: list[str] = []
        for rid, v in zip(g["id"], g["value"]):
            run = run + [rid] if v == 0 else []
            if len(run) >= 10 and not set(run) & labelled(labels, "executive_absent"):
                bad.add(run[0])
    return sorted(bad)


def unlabelled_silences(b, labels) -> list[str]:
    """Sensors without a reading for 3+ days (a site outage, a shutdown, a dead or tampered sensor) that
    no sensor_silent label covers."""
    s = b["sensors"].filter(pl.col("kind") != "heartbeat").with_columns(day=pl.col("ts").dt.date())
    days = pl.date_range(s["day"].min(), s["day"].max(), eager=True)
    silent = (s.select("site_id", "kind", "borrower_id").unique().join(pl.DataFrame({"day": days}), how="cross")
              .join(s.select("site_id", "kind", "day").unique(), on=["site_id", "kind", "day"], how="anti"))
    lab = (labels.filter(pl.col("pattern") == "sensor_silent")
           .select("borrower_id", day=pl.col("first_event_time").dt.date()))
    bad = []
    for (site, kind, borrower), g in silent.sort("day").group_by("site_id", "kind", "borrower_id", maintain_order=True):
        gdays = g["day"].to_list()
        runs, cur = [], [gdays[0]]
        for d in gdays[1:]:
            cur = cur + [d] if d - cur[-1] == timedelta(days=1) else (runs.append(cur) or [d])
        runs.append(cur)
        for run in (r for r in runs if len(r) >= 3):
            if not lab.filter((pl.col("borrower_id") == borrower) & pl.col("day").is_in(run)).height:
                bad.append(f"{site}/{kind}:{run[0]}")
    return bad


def unlabelled_graph(b, labels) -> list[str]:
    """Guarantee cycles, chains of 6+, guarantors above 2x net assets, undeclared shared identifiers."""
    g = b["relations"].filter(pl.col("kind") == "guarantee")
    G = nx.MultiDiGraph()
    for r in g.iter_rows(named=True):
        G.add_edge(r["src"], r["dst"], key=r["id"])
    bad = []
    circles = [set(x) for x in labels.filter(pl.col("pattern") == "guarantee_circle")["event_ids"]]
    for cyc in nx.simple_cycles(nx.DiGraph(G), length_bound=8):
        ids = {k for a, c in zip(cyc, cyc[1:] + cyc[:1]) for k in G[a][c]}
        if not any(ids & c for c in circles):
            bad.append("cycle:" + ",".join(cyc))
    in_labels = labelled(labels, "guarantee_circle", "guarantee_chain")
    D = nx.DiGraph([(u, v) for u, v, k in G.edges(keys=True) if k not in in_labels])
    if nx.is_directed_acyclic_graph(D) and nx.dag_longest_path_length(D) >= 6:
        bad.append("chain:" + ",".join(nx.dag_longest_path(D)))
    net = dict(zip(b["parties"]["id"], b["parties"]["net_assets"]))
    over = g.group_by("src").agg(pl.col("amount").sum())
    over = over.filter(pl.col("amount") > 2 * pl.col("src").replace_strict(net))
    bad += sorted(set(over["src"]) - set(labels.filter(pl.col("pattern") == "guarantor_overexposed")["borrower_id"]))
    borrowers = b["parties"].filter(pl.col("id").is_in(b["loans"]["borrower_id"].implode()))
    declared = {frozenset((s, d)) for s, d in zip(b["relations"]["src"], b["relations"]["dst"])}
    hidden = {frozenset(x) for x in labels.filter(pl.col("pattern") == "hidden_related_party")["event_ids"]}
    for field in ("legal_rep", "phone", "address"):
        for ids in borrowers.filter(pl.col(field).is_not_null()).group_by(field).agg("id")["id"]:
            for i, a in enumerate(ids):
                for c in ids[i + 1:]:
                    if frozenset((a, c)) not in declared and frozenset((a, c)) not in hidden:
                        bad.append(f"{field}:{a},{c}")
    return bad


def unlabelled_evening_payments_to_new_payees(b, labels) -> list[str]:
    """A borrower's own payments of 20,000 or more in the evening (19:00 local or later) to a
    party it had not paid before: what a naive behaviour model flags."""
    borrowers = b["loans"].select(pl.col("borrower_id").alias("from_party")).unique()
    out = (b["tx"].join(borrowers, on="from_party").filter(pl.col("loan_id").is_null()).sort("ts")
           .with_columns(first=pl.col("ts").min().over("from_party", "to_party"),
                         hour=pl.col("ts").dt.convert_time_zone("Asia/Shanghai").dt.hour()))
    hit = out.filter((pl.col("ts") == pl.col("first")) & (pl.col("hour") >= 19) & (pl.col("amount") >= 20_000))
    return sorted(set(hit["id"]) - labelled(labels))


CHECKS = [unlabelled_noncontracted_payments, unlabelled_prohibited, unlabelled_returns, unlabelled_own_account_receipts,
          unlabelled_cash_and_splits, unlabelled_idle, unlabelled_missed, unlabelled_sensor_signals,
          unlabelled_silences, unlabelled_graph, unlabelled_evening_payments_to_new_payees]


# --- tests ------------------------------------------------------------------------


def test_same_arguments_give_identical_bytes(out, tmp_path):
    simulate(SEED, BORROWERS, DAYS, tmp_path)
    names = [f"{n}.parquet" for n in FILES] + ["manifest.json"]
    assert [(tmp_path / n).read_bytes() == (out / n).read_bytes() for n in names] == [True] * len(names)


def test_another_seed_gives_another_bank(out, tmp_path):
    simulate(SEED + 1, BORROWERS, DAYS, tmp_path)
    assert (tmp_path / "transactions.parquet").read_bytes() != (out / "transactions.parquet").read_bytes()


def test_manifest_counts_rows(out, bank):
    m = json.loads((out / "manifest.json").read_text())
    assert (m["seed"], m["borrowers"], m["days"], m["start"]) == (SEED, BORROWERS, DAYS, "2026-01-01")
    assert m["rows"] == {name: bank[name].height for name in FILES}


@pytest.mark.parametrize("name", FILES)
def test_every_row_validates_against_its_struct(bank, name):
    df = bank[name]
    assert df.schema == schema(STRUCTS[name])
    assert df.height > 0
    for row in df.iter_rows(named=True):
        msgspec.convert(row, STRUCTS[name])


def test_every_pattern_has_at_least_three_labels(bank):
    counts = dict(bank["labels"].group_by("pattern").len().iter_rows())
    assert set(counts) == set(PATTERNS)
    assert min(counts.values()) >= 3, counts


def test_label_event_ids_exist_in_their_file(bank):
    pools = {"tx": set(bank["transactions"]["id"]), "sensor": set(bank["sensors"]["id"]),
             "relation": set(bank["relations"]["id"]), "party": set(bank["parties"]["id"])}
    for lab in bank["labels"].iter_rows(named=True):
        p = lab["pattern"]
        pool = pools["tx" if p in TX_PATTERNS else "sensor" if p in SENSOR_PATTERNS else
                     "relation" if p in RELATION_PATTERNS else "party"]
        assert set(lab["event_ids"]) <= pool, lab
        assert lab["event_ids"], lab
        assert lab["borrower_id"] in pools["party"]
        assert lab["loan_id"] is None or lab["loan_id"] in set(bank["loans"]["id"])


def test_streams_are_sorted_by_ts_then_id(bank):
    for name in ("transactions", "sensors"):
        df = bank[name]
        assert df.select("ts", "id").equals(df.select("ts", "id").sort("ts", "id")), name
        assert df["id"].is_unique().all()


def test_times_are_local_business_hours_inside_the_horizon(bank):
    start = bank["loans"]["disbursed_at"].min().date().replace(day=1)  # the horizon starts on 2026-01-01
    for name in ("transactions", "sensors"):
        local = bank[name]["ts"].dt.convert_time_zone("Asia/Shanghai")
        assert local.dt.hour().min() >= 8, name  # so the UTC date is the local date
        assert local.dt.date().min() >= start and local.dt.date().max() < start + timedelta(days=DAYS)


def test_loans_are_booked_as_the_bank_books_them(bank):
    sector = dict(zip(bank["parties"]["id"], bank["parties"]["sector"]))
    start = date(2026, 1, 1)
    for loan in bank["loans"].iter_rows(named=True):
        day = (loan["disbursed_at"].astimezone(ZoneInfo("Asia/Shanghai")).date() - start).days
        assert 3 <= day <= DAYS // 3, loan["id"]  # in the first third, a few days after the start
        assert 2e5 <= loan["principal"] <= 2e7
        if loan["repayment"] == "bullet":  # trade finance, 90 days
            assert (loan["maturity"] - loan["disbursed_at"].date()).days in (89, 90, 91)
        else:
            assert loan["maturity"] > start + timedelta(days=DAYS)
        # entrusted payment names 1-3 payees (a front company may be a 4th); self-payment names none
        assert 1 <= len(loan["contracted_payees"]) <= 4 if loan["entrusted_payment"] else not loan["contracted_payees"]
        if loan["purpose"] in ("mortgage", "fixed_asset"):
            assert loan["entrusted_payment"]
        if loan["purpose"] == "mortgage":
            assert [sector[p] for p in loan["contracted_payees"]] == ["real_estate"]
        for c in loan["collateral"]:
            assert (c["site_id"] is None) == (c["pledged_quantity"] is None), loan["id"]


def test_one_reading_per_site_day_and_kind_and_four_heartbeats(bank):
    s = bank["sensors"].with_columns(day=pl.col("ts").dt.date())
    per_day = s.group_by("site_id", "day", "kind").len()
    assert per_day.filter(pl.col("kind") != "heartbeat")["len"].max() == 1
    assert per_day.filter(pl.col("kind") == "heartbeat")["len"].max() == 4
    assert s.group_by("site_id").agg(pl.col("gateway_id").n_unique())["gateway_id"].max() == 1


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_normal_traffic_holds_look_alikes_of_every_pattern(bank, check):
    assert check(bank, bank["labels"]), f"{check.__name__}: nothing legitimate looks like this risk"


def test_checks_find_the_injected_cases(bank):
    labels, no_labels = bank["labels"], bank["labels"].clear()
    more = {c.__name__: len(c(bank, no_labels)) - len(c(bank, labels)) for c in CHECKS}
    assert all(n > 0 for n in more.values()), str(more)


def test_loan_funded_payments_match_their_pattern_shapes(bank):
    tx = bank["tx"].join(bank["loans"].select(pl.col("id").alias("loan_id"), "principal"), on="loan_id", how="left")
    by_id = {r["id"]: r for r in tx.iter_rows(named=True)}
    for lab in bank["labels"].iter_rows(named=True):
        ev = [by_id[i] for i in lab["event_ids"]] if lab["pattern"] in TX_PATTERNS else []
        p = lab["pattern"]
        if p == "splitting":
            assert 5 <= len(ev) <= 12 and all(45_000 <= e["amount"] < 50_000 for e in ev)
            assert ev[-1]["ts"] - ev[0]["ts"] < timedelta(days=1)
        elif p == "fan_out":
            assert len({e["to_party"] for e in ev}) >= 8 and ev[-1]["ts"] - ev[0]["ts"] < timedelta(days=1)
            assert sum(e["amount"] for e in ev) >= 0.6 * ev[0]["principal"]
            assert all(e["amount"] < 0.3 * e["principal"] for e in ev)
        elif p == "large_outflow":
            assert 0.35 <= ev[0]["amount"] / ev[0]["principal"] <= 0.8
        elif p == "cash_out":
            assert all(e["channel"] == "cash" and 50_000 <= e["amount"] <= 200_000 for e in ev)
        elif p == "purpose_violation":  # under self-payment the money is drawn to the borrower's account first
            assert ev[-1]["to_sector"] in PROHIBITED and len(ev) - lab["hops"] in (1, 2)
            assert ev[0]["amount"] < 0.3 * ev[0]["principal"]
        elif p == "pass_through":
            assert ev[1]["amount"] >= 0.9 * ev[0]["amount"] and ev[1]["ts"] - ev[0]["ts"] <= timedelta(hours=2)
        elif p == "payment_anomaly":  # the borrower's own money, in the evening, to parties it never paid
            local = [e["ts"].astimezone(ZoneInfo("Asia/Shanghai")) for e in ev]
            assert 3 <= len(ev) <= 5 and all(e["loan_id"] is None for e in ev)
            assert all(19 <= t.hour < 24 for t in local) and ev[-1]["ts"] - ev[0]["ts"] < timedelta(days=2)
            assert len({e["to_party"] for e in ev}) == len(ev)
        elif p == "loan_refinancing":
            assert [e["channel"] for e in ev] == ["disbursement", "repayment"] and ev[1]["loan_id"] != lab["loan_id"]
        if ev and p != "missed_repayment":  # a missed instalment's time is its due time, its event the one before
            assert lab["first_event_time"] in {e["ts"] for e in ev}, lab
