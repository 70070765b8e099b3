"""Reference data (parties, accounts, loans, relations) and the indexes enrichment needs.

Updated record by record, so the same object serves a file snapshot at start
and, later, updates that arrive on a stream while the daemon runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from engine.graph import GuaranteeGraph, IdentityIndex
from engine.records import Account, Collateral, Loan, Party, Record, Relation

# Relations that make a counterparty "related" to a borrower for round-trip
# and hidden-party purposes. Guarantee and supply chain are business ties.
RELATED_KINDS = frozenset(
    {"ownership", "control", "shared_director", "shared_legal_rep", "shared_address", "shared_phone", "family"}
)


class Reference:
    def __init__(self) -> None:
        self.parties: dict[str, Party] = {}
        self.accounts: dict[str, Account] = {}
        self.loans: dict[str, Loan] = {}
        self.relations: dict[str, Relation] = {}
        self.loan_by_account: dict[str, Loan] = {}  # disbursement account -> loan
        self.loans_by_borrower: dict[str, list[Loan]] = defaultdict(list)
        self.related: dict[str, set[str]] = defaultdict(set)  # symmetric
        self.known: dict[str, set[str]] = defaultdict(set)  # supply-chain partners
        self.collateral_at: dict[str, tuple[Loan, Collateral]] = {}  # sensor site -> pledge
        self.guarantees = GuaranteeGraph()
        self.identities = IdentityIndex()

    def add(self, record: Record) -> None:
        if isinstance(record, Party):
            self.parties[record.id] = record
            self.identities.add(record)
        elif isinstance(record, Account):
            self.accounts[record.id] = record
        elif isinstance(record, Loan):
            self._add_loan(record)
        elif isinstance(record, Relation):
            self._add_relation(record)
        else:
            raise TypeError(f"not reference data: {type(record).__name__}")

    def add_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.add(record)

    def _add_loan(self, loan: Loan) -> None:
        old = self.loans.get(loan.id)
        if old is not None:
            self.loans_by_borrower[old.borrower_id].remove(old)
        self.loans[loan.id] = loan
        self.loan_by_account[loan.disbursement_account] = loan
        by_borrower = self.loans_by_borrower[loan.borrower_id]
        by_borrower.append(loan)
        by_borrower.sort(key=lambda loan_: loan_.disbursed_at)
        for pledge in loan.collateral:
            if pledge.site_id is not None:
                self.collateral_at[pledge.site_id] = (loan, pledge)

    def _add_relation(self, rel: Relation) -> None:
        self.relations[rel.id] = rel
        self.guarantees.add(rel)
        if rel.kind in RELATED_KINDS:
            self.related[rel.src].add(rel.dst)
            self.related[rel.dst].add(rel.src)
        elif rel.kind == "supply_chain":
            self.known[rel.src].add(rel.dst)
            self.known[rel.dst].add(rel.src)

    def party_of(self, account_id: str) -> Party | None:
        account = self.accounts.get(account_id)
        return None if account is None else self.parties.get(account.party_id)

    def is_borrower(self, party_id: str) -> bool:
        return party_id in self.loans_by_borrower

    def hidden_relations(self, party_id: str, max_holders: int | None = None) -> list[tuple[str, str, str]]:
        """Borrowers sharing a legal representative, address or phone with this
        borrower that were not declared as related: (other, what, value).

        Declared means related directly or through one declared party (two firms
        controlled by one family head, two firms of one holding). An identifier
        held by more than `max_holders` parties (a business centre's address, a
        registration agent's phone) is not taken as a link."""
        if not self.is_borrower(party_id):
            return []
        near = self.related.get(party_id, set())
        declared = near.union(*(self.related.get(p, ()) for p in near))
        return [
            (other, what, value) for other, what, value in self.identities.shared_with(party_id, max_holders)
            if other != party_id and self.is_borrower(other) and other not in declared
        ]
