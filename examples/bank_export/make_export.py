"""Writes this folder's example export: a small simulated bank (6 borrowers, 60
days) as a core banking system might export it, with its own column names,
codes, local time (Asia/Shanghai) and amounts in fen; `mapping.yaml` maps it
back. One row is broken on purpose (a channel code the mapping does not know),
to show a dead letter. Run from the repository root:

    python examples/bank_export/make_export.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from connectors.simbank import simulate_frames  # noqa: E402

LOCAL = "Asia/Shanghai"
CHANNELS = {"transfer": "01", "cash": "02", "card": "03", "bill": "04", "disbursement": "10", "repayment": "11"}
ACCOUNT_KINDS = {"disbursement": "D", "settlement": "S", "securities": "Z", "escrow": "E", "loan_ledger": "L",
                 "external": "X"}
PURPOSES = {"working_capital": "WC", "fixed_asset": "FA", "trade_finance": "TF", "consumer": "CS", "mortgage": "MG"}
RISK = {"normal": "1", "special_mention": "2", "substandard": "3", "doubtful": "4", "loss": "5"}


def code(col: str, codes: dict[str, str]) -> pl.Expr:
    return pl.col(col).replace_strict(codes, return_dtype=pl.String)


def fen(col: str) -> pl.Expr:
    return (pl.col(col) * 100).round(0).cast(pl.Int64)


def local(col: str, fmt: str) -> pl.Expr:
    return pl.col(col).dt.convert_time_zone(LOCAL).dt.strftime(fmt)


def main() -> None:
    d = simulate_frames(5, 6, 60)
    tx = d["transactions"].sort("ts").select(
        pl.col("id").alias("JNL_NO"), local("ts", "%Y%m%d").alias("TXN_DT"), local("ts", "%H%M%S").alias("TXN_TM"),
        pl.col("from_account").alias("PAY_ACCT_NO"), pl.col("to_account").alias("RCV_ACCT_NO"),
        fen("amount").alias("TXN_AMT_FEN"), pl.lit("156").alias("CCY"), code("channel", CHANNELS).alias("TXN_CHNL"),
        pl.col("mcc").alias("MCC"), pl.col("memo").alias("REMARK"), pl.col("loan_id").alias("LOAN_CONTRACT_NO"))
    tx = tx.with_columns(pl.when(pl.int_range(pl.len()) == 100).then(pl.lit("99")).otherwise("TXN_CHNL")
                         .alias("TXN_CHNL"))  # the broken row: channel 99 is in no code list
    month = pl.col("TXN_DT").str.slice(0, 6)
    for (m,), part in tx.group_by(month, maintain_order=True):
        part.write_csv(HERE / f"txn_{m[:4]}-{m[4:]}.csv")
    d["accounts"].select(
        pl.col("id").alias("ACCT_NO"), pl.col("party_id").alias("CUST_NO"),
        code("kind", ACCOUNT_KINDS).alias("ACCT_TYPE"), pl.col("opened_on").dt.strftime("%Y%m%d").alias("OPEN_DT"),
    ).write_csv(HERE / "accounts.csv")
    d["parties"].select(
        pl.col("id").alias("CUST_NO"), code("kind", {"firm": "C", "person": "P", "bank": "B"}).alias("CUST_TYPE"),
        pl.col("name").alias("CUST_NAME"), pl.col("sector").alias("INDUSTRY"), pl.col("region").alias("REGION"),
        pl.col("registered_on").dt.strftime("%Y%m%d").alias("REG_DT"), pl.col("legal_rep").alias("LEGAL_REP"),
        pl.col("address").alias("ADDR"), pl.col("phone").alias("TEL"),
        pl.col("net_assets").map_elements(lambda v: f"{v:,.2f}", return_dtype=pl.String).alias("NET_ASSETS"),
    ).write_csv(HERE / "customers.csv")
    first = pl.col("collateral").list.first().struct
    d["loans"].select(
        pl.col("id").alias("CONTRACT_NO"), pl.col("borrower_id").alias("CUST_NO"),
        pl.col("disbursement_account").alias("DISB_ACCT_NO"), fen("principal").alias("PRINCIPAL_FEN"),
        local("disbursed_at", "%Y/%m/%d %H:%M:%S").alias("DISB_TIME"),
        pl.col("maturity").dt.strftime("%Y%m%d").alias("MATURITY_DT"), code("purpose", PURPOSES).alias("PURPOSE"),
        pl.col("contracted_payees").list.join(";").alias("PAYEES"),
        pl.when("entrusted_payment").then(pl.lit("Y")).otherwise(pl.lit("N")).alias("ENTRUSTED"),
        pl.col("repayment").alias("REPAY_MODE"), pl.col("guarantors").list.join(";").alias("GUARANTORS"),
        code("risk_class", RISK).alias("RISK_CLASS"), first.field("kind").alias("COLL_TYPE"),
        first.field("site_id").alias("COLL_SITE"), first.field("pledged_quantity").alias("COLL_QTY"),
        first.field("unit").alias("COLL_UNIT"),
    ).write_csv(HERE / "loans.csv")
    d["relations"].select(
        pl.col("id").alias("REL_ID"), pl.col("kind").alias("REL_TYPE"), pl.col("src").alias("FROM_CUST"),
        pl.col("dst").alias("TO_CUST"), fen("amount").alias("AMOUNT_FEN"), pl.col("share").alias("SHARE"),
        pl.col("valid_from").dt.strftime("%Y%m%d").alias("START_DT"),
        pl.col("valid_to").dt.strftime("%Y%m%d").alias("END_DT"),
    ).write_csv(HERE / "relations.csv")
    # only the cases this export can show: it has no sensor readings, so no sensor cases
    exported = pl.concat([d[k]["id"] for k in ("transactions", "relations", "parties")])
    d["labels"].filter(pl.col("event_ids").list.eval(pl.element().is_in(exported.implode())).list.any()) \
        .write_ndjson(HERE / "labels.ndjson")


if __name__ == "__main__":
    main()
