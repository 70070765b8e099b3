"""A hand-built bank small enough to reason about, for flow and rule tests.

Borrower B1 (manufacturing) has working-capital loan L1 (1,000,000 CNY)
disbursed into account D1 on 2026-01-05, with contracted payee S1 and supply-chain
partner S2; F1 is a family member. BAD is a property developer, SEC a broker.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import polars as pl

from engine.records import Account, Loan, Party, Relation, Transaction

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def _party(pid: str, sector: str, kind: str = "firm") -> Party:
    return Party(id=pid, kind=kind, name=f"name of {pid}", sector=sector, region="SH", registered_on=date(2015, 1, 1))


PARTIES = [
    _party("BANK", "banking", "bank"), _party("B1", "manufacturing"), _party("S1", "wholesale"),
    _party("S2", "logistics"), _party("N1", "wholesale"), _party("F1", "household", "person"),
    _party("BAD", "real_estate"), _party("SEC", "securities"),
]
ACCOUNTS = [
    Account(id=f"A-{p.id}", party_id=p.id, kind="settlement", opened_on=date(2020, 1, 1)) for p in PARTIES
] + [
    Account(id="D1", party_id="B1", kind="disbursement", opened_on=date(2026, 1, 5)),
    Account(id="LEDGER", party_id="BANK", kind="loan_ledger", opened_on=date(2000, 1, 1)),
    Account(id="CASH", party_id="BANK", kind="loan_ledger", opened_on=date(2000, 1, 1)),
]
LOANS = [
    Loan(id="L1", borrower_id="B1", disbursement_account="D1", principal=1_000_000, disbursed_at=T0,
         maturity=date(2027, 1, 5), purpose="working_capital", contracted_payees=["S1"]),
]
RELATIONS = [
    Relation(id="R1", kind="supply_chain", src="B1", dst="S2", valid_from=date(2020, 1, 1)),
    Relation(id="R2", kind="family", src="B1", dst="F1", valid_from=date(2020, 1, 1)),
]


def tx(tid: str, days: float, frm: str, to: str, amount: float, channel: str = "transfer", **kw) -> Transaction:
    return Transaction(id=tid, ts=T0 + timedelta(days=days), from_account=frm, to_account=to,
                       amount=amount, channel=channel, **kw)


# parties and relations files are replayed as events too (graph rules look at them)
REFERENCE_EVENTS = len(PARTIES) + len(RELATIONS)

# (transaction, rules expected to fire on it)
CASES: list[tuple[Transaction, set[str]]] = [
    # no repayment follows the disbursement: MR-002 fires once event time passes day 45
    (tx("t-disb", 0, "LEDGER", "D1", 1_000_000, "disbursement", loan_id="L1"), {"MR-002"}),
    (tx("t-contract", 1, "D1", "A-S1", 600_000), set()),  # large, but to the contracted payee
    # large, to a declared supply-chain partner: not unknown, but not in the contract either
    (tx("t-partner", 2, "D1", "A-S2", 320_000), {"EP-001"}),
    (tx("t-property", 3, "D1", "A-BAD", 40_000), {"PV-001", "EP-001"}),
    (tx("t-broker-big", 4, "D1", "A-SEC", 350_000), {"PV-001", "LO-001", "EP-001"}),
    (tx("t-new-big", 5, "D1", "A-N1", 300_000), {"LO-001", "EP-001"}),
    (tx("t-cash", 6, "D1", "CASH", 50_000, "cash"), {"CO-001"}),
    (tx("t-cash-small", 6.5, "D1", "CASH", 49_999, "cash"), set()),
    (tx("t-rent", 7, "A-B1", "A-BAD", 80_000), set()),  # own money, not loan funds
    (tx("t-cash-own", 8, "A-B1", "CASH", 90_000, "cash"), set()),
    (tx("t-late", 120, "D1", "A-BAD", 10_000), {"EP-001"}),  # after PV-001's 90-day window
]


def write(out: Path, transactions: list[Transaction] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name, records in (("parties", PARTIES), ("accounts", ACCOUNTS), ("loans", LOANS), ("relations", RELATIONS)):
        pl.DataFrame(msgspec.to_builtins(records, builtin_types=(datetime, date))).write_parquet(out / f"{name}.parquet")
    txs = transactions if transactions is not None else [t for t, _ in CASES]
    pl.DataFrame(msgspec.to_builtins(txs, builtin_types=(datetime, date))).write_parquet(out / "transactions.parquet")
    return out
