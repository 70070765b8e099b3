"""Transaction buffer and the small vocabularies (channels, memos, merchant codes).

Transactions are built as integer-coded numpy columns (accounts, loans, memos
are indices) and only become strings in the writer.  Every row gets a *key*, its
position in append order; injected cases keep the keys of the events they
create so labels can name them once ids are assigned after the final sort.
"""

from __future__ import annotations

import numpy as np

CHANNELS = ("transfer", "cash", "card", "bill", "disbursement", "repayment")
CHANNEL = {c: i for i, c in enumerate(CHANNELS)}

# One shared vocabulary for normal and injected payments, so a memo never
# reveals a case (a purpose violation is booked as "goods payment" too).
MEMOS = (
    "", "loan disbursement", "goods payment", "purchase of materials", "sales receipt",
    "payment for goods", "salary", "rent", "electricity bill", "water bill", "gas bill",
    "telecom fee", "loan interest", "loan instalment", "loan service fee", "cash withdrawal",
    "margin deposit", "securities transfer", "household transfer", "loan repayment",
    "project payment", "service fee", "equipment payment", "consulting fee", "wallet top-up",
    "transfer to own account", "tax payment", "dividend", "year-end bonus", "property purchase",
)
MEMO = {m: i for i, m in enumerate(MEMOS)}
BUSINESS_MEMOS = ("goods payment", "project payment", "service fee", "consulting fee")

MCCS = ("5411", "5812", "5541", "5311", "4121", "5912", "5943", "7011", "4511", "5732", "5511", "5712", "7995")
MCC = {m: i for i, m in enumerate(MCCS)}

COLUMNS = ("ts", "src", "dst", "amount", "channel", "memo", "loan", "mcc")
DTYPES = (np.int64, np.int32, np.int32, np.float64, np.int8, np.int16, np.int32, np.int16)


def _code(value, table):
    return table[value] if isinstance(value, str) else value


class TxBuffer:
    """Append-only transaction columns; `add` for single case events, `extend` for vectors."""

    def __init__(self):
        self.chunks: list[tuple[np.ndarray, ...]] = []
        self.pending: list[tuple] = []
        self.n = 0

    def add(self, ts, src, dst, amount, channel, memo, loan=-1, mcc=-1) -> int:
        self.pending.append((ts, src, dst, round(float(amount), 2), CHANNEL[channel], MEMO[memo], loan, mcc))
        self.n += 1
        return self.n - 1

    def extend(self, ts, src, dst, amount, channel, memo, loan=-1, mcc=-1) -> np.ndarray:
        self._flush()  # keep key == row position: pending scalars got their keys first
        n = len(ts)
        cols = (ts, src, dst, np.round(amount, 2), _code(channel, CHANNEL), _code(memo, MEMO), loan, mcc)
        self.chunks.append(tuple(np.broadcast_to(np.asarray(c, dtype=t), (n,)) for c, t in zip(cols, DTYPES)))
        keys = np.arange(self.n, self.n + n)
        self.n += n
        return keys

    def _flush(self):
        if self.pending:
            rows = list(zip(*self.pending))
            self.chunks.append(tuple(np.array(c, dtype=t) for c, t in zip(rows, DTYPES)))
            self.pending = []

    def columns(self) -> dict[str, np.ndarray]:
        self._flush()
        return {name: np.concatenate([c[i] for c in self.chunks]) for i, name in enumerate(COLUMNS)}
