"""From index-based world and buffers to typed DataFrames, Parquet files and a manifest.

Ids: reference ids come from a seeded permutation (they reveal neither role
nor case); event ids are sequential in (ts, key) order, so streams sorted by
ts are also sorted by id and ties are broken by id.  Parquet is written with
fixed options (zstd level 3, statistics, one row group size), which makes it
byte-for-byte reproducible for a given polars version (tests check it).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from engine.records import Account, Label, Loan, Party, Relation, SensorReading, Transaction

from .events import CHANNELS, MCCS, MEMOS, TxBuffer
from .horizon import Horizon
from .labels import LabelRow
from .reference import World
from .schema import DATETIME, schema
from .sensors import KINDS, SLOT_KIND, SLOTS, SensorGrid

FILES = ("parties", "accounts", "loans", "relations", "transactions", "sensors", "labels")
STRUCTS = {"parties": Party, "accounts": Account, "loans": Loan, "relations": Relation,
           "transactions": Transaction, "sensors": SensorReading, "labels": Label}


def _perm_ids(rng, prefix: str, n: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{x:0{width}d}" for x in rng.permutation(n) + 1], dtype=object)


def _lookup(values, idx: np.ndarray) -> pl.Series:
    """values[idx] as a polars Series, with idx == -1 meaning null."""
    table = pl.Series(list(values) + [None], dtype=pl.String)
    idx = np.where(idx < 0, len(values), idx)
    return table.gather(pl.Series(idx.astype(np.int64)))


def _sequential(prefix: str, n: int, width: int) -> pl.Series:
    numbers = pl.int_range(n, eager=False).cast(pl.String).str.zfill(width)
    return pl.select(pl.format(prefix + "{}", numbers)).to_series()


def _ts(us: np.ndarray) -> pl.Series:
    return pl.Series(us.astype(np.int64)).cast(DATETIME)


def frames(w: World, buf: TxBuffer, grid: SensorGrid, labels: list[LabelRow],
           rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    h: Horizon = w.h
    P, A, L, R, S = w.parties, w.accounts, w.loans, w.relations, w.sites
    party_id = np.concatenate([["BANK"], _perm_ids(rng, "P", len(P) - 1, 7)]).astype(object)
    acc_id = _perm_ids(rng, "6222", len(A), 12)
    acc_id[w.ledger], acc_id[w.cash] = "BANK-LEDGER", "BANK-CASH"
    loan_id, rel_id = _perm_ids(rng, "LN", len(L), 8), _perm_ids(rng, "RL", len(R), 8)
    site_id = _perm_ids(rng, "S", len(S), 6)
    out: dict[str, pl.DataFrame] = {}

    out["parties"] = pl.DataFrame({"id": party_id, **{c: P[c] for c in P.cols}}, schema=schema(Party)).sort("id")
    out["accounts"] = pl.DataFrame({"id": acc_id, "party_id": party_id[A["party"]], "kind": A["kind"],
                                    "opened_on": A["opened_on"]}, schema=schema(Account)).sort("id")

    guarantors: list[list[str]] = [[] for _ in range(len(L))]
    for r in range(len(R)):
        loan = R["loan"][r]
        if loan >= 0 and R["valid_from"][r] <= h.date_of(L["day"][loan]):
            if party_id[R["src"][r]] not in guarantors[loan]:
                guarantors[loan].append(party_id[R["src"][r]])
    loans = []
    for i in range(len(L)):
        disb = h.date_of(L["day"][i])
        bullet = L["repay"][i] == "bullet"  # its maturity is its one due date (World.due_days)
        loans.append({
            "id": loan_id[i], "borrower_id": party_id[L["borrower"][i]],
            "disbursement_account": acc_id[L["account"][i]],
            "principal": L["principal"][i], "currency": "CNY",
            "disbursed_at": h.datetime_of(h.ts(L["day"][i], L["sec"][i])),
            "maturity": disb + timedelta(days=L["term"][i]) if bullet else
            max(disb + timedelta(days=L["term"][i]), h.end + timedelta(days=30)),
            "purpose": L["purpose"][i],
            "contracted_payees": [party_id[p] for p in L["payees"][i]] if L["entrusted"][i] else [],
            "entrusted_payment": L["entrusted"][i], "repayment": L["repay"][i],
            "collateral": [{"kind": c["kind"], "site_id": site_id[c["site"]] if "site" in c else None,
                            "pledged_quantity": c.get("pledged_quantity"), "unit": c.get("unit")}
                           for c in L["collateral"][i]],
            "guarantors": guarantors[i], "risk_class": L["risk_class"][i]})
    out["loans"] = pl.DataFrame(loans, schema=schema(Loan)).sort("id")
    out["relations"] = pl.DataFrame({
        "id": rel_id, "kind": R["kind"], "src": party_id[R["src"]], "dst": party_id[R["dst"]], "amount": R["amount"],
        "share": R["share"], "valid_from": R["valid_from"], "valid_to": R["valid_to"]},
        schema=schema(Relation)).sort("valid_from", "id")

    # transactions: sort by (ts, key), then number them
    tx = buf.columns()
    order = np.lexsort((np.arange(len(tx["ts"])), tx["ts"]))
    tx_pos = np.empty(len(order), dtype=np.int64)
    tx_pos[order] = np.arange(len(order))
    t = {k: v[order] for k, v in tx.items()}
    out["transactions"] = pl.DataFrame({
        "id": _sequential("TX", len(order), 9), "ts": _ts(t["ts"]),
        "from_account": _lookup(acc_id, t["src"]), "to_account": _lookup(acc_id, t["dst"]),
        "amount": t["amount"], "currency": pl.repeat("CNY", len(order), eager=True),
        "channel": _lookup(CHANNELS, t["channel"]), "mcc": _lookup(MCCS, t["mcc"]),
        "memo": _lookup(MEMOS, t["memo"]), "loan_id": _lookup(loan_id, t["loan"])}, schema=schema(Transaction))

    # sensors: present grid cells, sorted by (ts, key); every site has one gateway
    keys = np.nonzero(grid.present.ravel())[0]
    sts = grid.ts.ravel()[keys]
    order = np.lexsort((keys, sts))
    keys = keys[order]
    sensor_pos = np.full(grid.present.size, -1, dtype=np.int64)
    sensor_pos[keys] = np.arange(len(keys))
    site, kind = keys // (SLOTS * grid.D), np.asarray(SLOT_KIND)[keys % SLOTS]
    units = [["persons", u, "kWh", "present", "up"] for u in S["unit"]]  # per site, in KINDS order
    flat_units = [u for row in units for u in row]
    gateway_id = np.array([f"GW{x[1:]}" for x in site_id], dtype=object)
    out["sensors"] = pl.DataFrame({
        "id": _sequential("SR", len(keys), 9), "ts": _ts(sts[order]), "site_id": _lookup(site_id, site),
        "borrower_id": _lookup(party_id, np.asarray(S["borrower"], dtype=np.int64)[site] if len(S) else site),
        "kind": _lookup(KINDS, kind), "value": grid.value.ravel()[keys],
        "unit": _lookup(flat_units, site * len(KINDS) + kind),
        "gateway_id": _lookup(gateway_id, site)}, schema=schema(SensorReading))

    def ref_ids(lab: LabelRow) -> list[str]:
        if lab.ref == "tx":
            return [f"TX{tx_pos[k]:09d}" for k in lab.refs]
        if lab.ref == "sensor":
            assert all(sensor_pos[k] >= 0 for k in lab.refs), "label names a reading that was not sent"
            return [f"SR{sensor_pos[k]:09d}" for k in lab.refs]
        if lab.ref == "relation":
            return [rel_id[r] for r in lab.refs]
        return sorted(party_id[p] for p in lab.refs)

    out["labels"] = pl.DataFrame([{
        "pattern": lab.pattern, "borrower_id": party_id[lab.party],
        "loan_id": loan_id[lab.loan] if lab.loan >= 0 else None, "first_event_time": h.datetime_of(lab.first_us),
        "event_ids": ref_ids(lab), "hops": lab.hops} for lab in labels],
        schema=schema(Label)).sort("pattern", "first_event_time", "borrower_id", maintain_order=True)
    return out


def write(out: Path, dfs: dict[str, pl.DataFrame], manifest: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        dfs[name].write_parquet(out / f"{name}.parquet", compression="zstd", compression_level=3,
                                statistics=True, row_group_size=256 * 1024)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
