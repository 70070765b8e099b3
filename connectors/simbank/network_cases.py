"""Injected guarantee-network and hidden-relation cases (reference data), and their labels.

Circles and chains run through firms outside the bank (other banks'
borrowers) and close on one of our borrowers, an anchor taken from the firms
that had no guarantee at all, so the normal graph cannot lengthen the injected
structure.  Event ids are relation ids (graph patterns) or the two party ids
(hidden related parties).
"""

from __future__ import annotations

import numpy as np

from engine.reference import RELATED_KINDS

from .labels import Case, LabelRow
from .reference import FIRM_SECTORS, World

CONTAGION_DEPTH = 2  # guarantees from the risky borrower: the default pack's CG-001 depth
CHAIN_GUARANTEES = 5  # a chain this long is a risk (GL-001's min_len)


def _network_firm(w: World) -> int:
    sector = str(w.rng.choice(FIRM_SECTORS[:5]))
    return w.party("firm", sector, net_assets=float(round(w.rng.uniform(5e6, 5e7), -3)))


def _old_guarantee(w: World, src: int, dst: int, loan: int = -1) -> int:
    """A guarantee signed before the horizon, with its own amount."""
    return w.relate("guarantee", src, dst, w.pre_horizon(30, 900), amount=float(round(w.rng.uniform(1e6, 1e7), -4)),
                    loan=loan)


def _new_guarantee(w: World, src: int, loan: int) -> int:
    """A guarantee for `loan` signed inside the horizon, 1-5 days before disbursement."""
    r = w.guarantee(src, loan)
    w.relations["lead"][r] = int(w.rng.integers(1, min(5, w.loans["day"][loan] - 1) + 1))
    return r


def plan(w: World, rng: np.random.Generator, k: int, used: set[int]) -> list[Case]:
    n = len(w.borrower)
    order = [int(b) for b in rng.permutation(n)]
    order = [b for b in order if b not in used] + [b for b in order if b in used]  # prefer case-free borrowers
    taken: set[int] = set()

    def take(ok) -> int | None:
        b = next((b for b in order if b not in taken and ok(b)), None)
        if b is not None:
            taken.add(b)
        return b

    cases = []
    for i in range(k):  # circles of 2..6 members, the closing guarantee inside the horizon for half of them
        b = take(lambda b: w.g_class[b] == "free")
        if b is None:
            break
        loan, size = w.loans_of[b][0], 2 + i % 5
        members = [int(w.borrower[b])] + [_network_firm(w) for _ in range(size - 1)]
        rels = [_old_guarantee(w, members[j], members[j + 1]) for j in range(size - 1)]
        if i % 2 == 0:  # the closing guarantee backs the anchor's new loan, signed inside the horizon
            rels.append(_new_guarantee(w, members[-1], loan))
        else:
            rels.append(_old_guarantee(w, members[-1], members[0], loan))
        cases.append(Case("guarantee_circle", b, loan, p={"rels": rels}))
    for i in range(k):  # chains of 6-8 guarantees ending at our borrower
        b = take(lambda b: w.g_class[b] == "free")
        if b is None:
            break
        loan, length = w.loans_of[b][0], 6 + i % 3
        chain = [_network_firm(w) for _ in range(length)]
        rels = [_old_guarantee(w, chain[j], chain[j + 1]) for j in range(length - 1)]
        if i % 3 == 0:
            rels.append(_new_guarantee(w, chain[-1], loan))
        else:
            rels.append(_old_guarantee(w, chain[-1], int(w.borrower[b]), loan))
        cases.append(Case("guarantee_chain", b, loan, p={"rels": rels}))
    for i in range(k):  # a guarantor whose guarantees reach 2.2-4x its net assets
        b = take(lambda b: w.firm[b] and w.g_class[b] != "free")
        if b is None:
            break
        g = _network_firm(w) if i % 3 else w.party("person", "household")
        w.overexposed.add(g)
        rels = [_old_guarantee(w, g, _network_firm(w)) for _ in range(int(rng.integers(2, 5)))]
        rels.append(_new_guarantee(w, g, w.loans_of[b][0]))
        ratio = rng.uniform(2.2, 4.0)  # guarantees / net assets, set once finalize() has the amounts
        cases.append(Case("guarantor_overexposed", -1, -1, p={"guarantor": g, "rels": rels, "ratio": ratio}))
    near = _declared_near(w)
    plain = {b for b in range(n) if b not in w.declared_shared and b not in w.family_firms
             and int(w.borrower[b]) not in w.centre_firms}  # its identifiers are its own
    for i in range(k):  # two borrowers sharing a legal rep, phone or address, with no declared relation
        field = ("legal_rep", "phone", "address")[i % 3]
        ok = (lambda b: w.firm[b]) if field == "legal_rep" else (lambda b: True)
        b1 = take(lambda b: ok(b) and b in plain)
        p1 = int(w.borrower[b1]) if b1 is not None else -1
        b2 = take(lambda b: ok(b) and b in plain and int(w.borrower[b]) not in near.get(p1, ()))
        if b1 is None or b2 is None:
            break
        p2 = int(w.borrower[b2])
        w.parties[field][p2] = w.parties[field][p1]
        cases.append(Case("hidden_related_party", b1, -1, p={"parties": [p1, p2]}))
    return cases


def _declared_near(w: World) -> dict[int, set[int]]:
    """Parties declared related to each party directly or through one other (as HR-001 counts them)."""
    related: dict[int, set[int]] = {}
    for r in range(len(w.relations)):
        if w.relations["kind"][r] in RELATED_KINDS:
            a, b = int(w.relations["src"][r]), int(w.relations["dst"][r])
            related.setdefault(a, set()).add(b)
            related.setdefault(b, set()).add(a)
    return {p: ps.union(*(related.get(q, set()) for q in ps)) for p, ps in related.items()}


def size_overexposure(w: World, rng: np.random.Generator, cases: list[Case]) -> None:
    """Set over-exposed guarantors' net assets once finalize() has dated and sized every guarantee.

    Every other case is over-exposed from the start (guarantees at 2.2-4x net
    assets); the others are within 2x until a new guarantee inside the horizon
    pushes them over, so a rule has an event to fire on.
    """
    rel, h = w.relations, w.h
    for i, c in enumerate(x for x in cases if x.pattern == "guarantor_overexposed"):
        g, rels = c.p["guarantor"], c.p["rels"]
        total = sum(rel["amount"][r] for r in rels)
        if i % 2:
            w.parties["net_assets"][g] = float(round(total / c.p["ratio"], -3))
            continue
        net = float(round(total / rng.uniform(1.3, 1.9), -3))
        push = float(round((2 * net - total) * rng.uniform(1.2, 2.0) + 1e5, -4))
        day = h.date_of(int(rng.integers(5, h.days - 5)))
        rels.append(w.relate("guarantee", g, _network_firm(w), day, amount=push))
        w.parties["net_assets"][g] = net


def labels(w: World, cases: list[Case], first_of: dict[int, int]) -> list[LabelRow]:
    """Graph and hidden-relation labels, once finalize() has dated every relation."""
    h, rel = w.h, w.relations
    start_us = h.utc_midnight(h.start)
    out = []
    for c in cases:
        if c.pattern in ("guarantee_circle", "guarantee_chain"):
            last = max(rel["valid_from"][r] for r in c.p["rels"])
            out.append(LabelRow(c.pattern, int(w.borrower[c.b]), c.loan, max(start_us, h.utc_midnight(last)),
                                "relation", c.p["rels"]))
            # a circle closed by its latest guarantee was, until then, a chain of the others
            first = sorted(c.p["rels"], key=lambda r: rel["valid_from"][r])
            open_ = first[:-1]
            if c.pattern == "guarantee_circle" and len(open_) >= CHAIN_GUARANTEES and \
                    rel["valid_from"][first[-1]] > rel["valid_from"][open_[-1]]:
                out.append(LabelRow("guarantee_chain", int(w.borrower[c.b]), c.loan,
                                    max(start_us, h.utc_midnight(rel["valid_from"][open_[-1]])), "relation", open_))
        elif c.pattern == "guarantor_overexposed":
            g, rels = c.p["guarantor"], c.p["rels"]
            net = w.parties["net_assets"][g]
            cum, when = 0.0, None
            for r in sorted(rels, key=lambda r: (rel["valid_from"][r], r)):
                cum += rel["amount"][r]
                if cum > 2 * net:
                    when = rel["valid_from"][r]
                    break
            out.append(LabelRow(c.pattern, g, -1, max(start_us, h.utc_midnight(when)), "relation", rels))
        elif c.pattern == "hidden_related_party":
            out.append(LabelRow(c.pattern, int(w.borrower[c.b]), -1, start_us, "party", c.p["parties"]))
    # contagion: every party within CONTAGION_DEPTH guarantees of a borrower that turned risky (cash-out,
    # idle funds), in either direction (its guarantors and theirs, the parties it guarantees and theirs),
    # named with the guarantee relations on the shortest path, as the contagion rule reports them
    up: dict[int, dict[int, list[int]]] = {}  # party -> its guarantors -> relations
    down: dict[int, dict[int, list[int]]] = {}  # party -> the parties it guarantees -> relations
    for r in range(len(rel)):
        if rel["kind"][r] == "guarantee":
            a, b = int(rel["src"][r]), int(rel["dst"][r])
            up.setdefault(b, {}).setdefault(a, []).append(r)
            down.setdefault(a, {}).setdefault(b, []).append(r)
    for c in cases:
        if c.pattern in ("cash_out", "idle_funds"):
            source = int(w.borrower[c.b])
            reached: dict[int, list[int]] = {}
            for step in (up, down):
                frontier = {source: []}
                for _ in range(CONTAGION_DEPTH):
                    frontier = {other: path + rels for party, path in frontier.items()
                                for other, rels in sorted(step.get(party, {}).items())
                                if other != source and other not in reached}
                    for other, path in frontier.items():
                        reached.setdefault(other, path)
            for other, rels in sorted(reached.items()):
                out.append(LabelRow("contagion", other, c.loan, first_of[c.b], "relation", rels))
    return out
