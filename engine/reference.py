"""Reference data (parties, accounts, loans, relations) and the indexes enrichment needs.

Updated record by record, so the same object serves a file snapshot at start
and, later, updates that arrive on a stream while the daemon runs. Relations
are looked up as of a day: a declared relation or a guarantee counts from its
`valid_from` and until its `valid_to`, and a party is known to the identity
checks from its registration, so a replay of last year sees last year's
relations. A relation withdrawn (a tombstone on the relations topic) is removed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

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
        # party -> other party -> ids of the relations between them (both ways)
        self.related: dict[str, dict[str, list[str]]] = defaultdict(dict)  # RELATED_KINDS
        self.known: dict[str, dict[str, list[str]]] = defaultdict(dict)  # supply-chain partners
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
        if rel.id in self.relations:
            self.remove_relation(rel.id)  # an amended relation replaces the old version
        self.relations[rel.id] = rel
        self.guarantees.add(rel)
        links = self.related if rel.kind in RELATED_KINDS else self.known if rel.kind == "supply_chain" else None
        if links is not None:
            links[rel.src].setdefault(rel.dst, []).append(rel.id)
            links[rel.dst].setdefault(rel.src, []).append(rel.id)

    def remove_relation(self, relation_id: str) -> bool:
        """Forget a relation (withdrawn); False if it is not here."""
        rel = self.relations.pop(relation_id, None)
        if rel is None:
            return False
        self.guarantees.remove(relation_id)
        for links in (self.related, self.known):
            for a, b in ((rel.src, rel.dst), (rel.dst, rel.src)):
                ids = links.get(a, {}).get(b)
                if ids and relation_id in ids:
                    ids.remove(relation_id)
                    if not ids:
                        del links[a][b]
        return True

    def _in_force(self, ids: list[str] | None, day: date | None) -> bool:
        if not ids:
            return False
        if day is None:
            return True
        return any((r := self.relations[i]).valid_from <= day and (r.valid_to is None or day < r.valid_to) for i in ids)

    def is_related(self, a: str, b: str, day: date | None = None) -> bool:
        """A declared relation (ownership, control, family, shared director...) between a and b on `day`."""
        return self._in_force(self.related.get(a, {}).get(b), day)

    def is_known(self, a: str, b: str, day: date | None = None) -> bool:
        """A declared supply-chain relation between a and b on `day`."""
        return self._in_force(self.known.get(a, {}).get(b), day)

    def related_of(self, party: str, day: date | None = None) -> set[str]:
        return {other for other, ids in self.related.get(party, {}).items() if self._in_force(ids, day)}

    def party_of(self, account_id: str) -> Party | None:
        account = self.accounts.get(account_id)
        return None if account is None else self.parties.get(account.party_id)

    def is_borrower(self, party_id: str) -> bool:
        return party_id in self.loans_by_borrower

    def hidden_relations(self, party_id: str, max_holders: int | None = None,
                         day: date | None = None) -> list[tuple[str, str, str]]:
        """Borrowers sharing a legal representative, address or phone with this
        borrower that were not declared as related: (other, what, value), as of
        `day` (parties registered by then, relations in force then).

        Declared means related directly or through one declared party (two firms
        controlled by one family head, two firms of one holding). An identifier
        held by more than `max_holders` parties (a business centre's address, a
        registration agent's phone) is not taken as a link."""
        if not self.is_borrower(party_id):
            return []
        near = self.related_of(party_id, day)
        declared = near.union(*(self.related_of(p, day) for p in near))
        return [
            (other, what, value) for other, what, value in self.identities.shared_with(party_id, max_holders)
            if other != party_id and self.is_borrower(other) and other not in declared
            and (day is None or self.parties[other].registered_on <= day)
        ]
