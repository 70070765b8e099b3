"""The guarantee graph (pattern 11) and the identity index (pattern 12).

Both are reference data, updated one record at a time; no query ever walks the
whole graph.  Every search is bounded three ways:

- depth: `max_len` (circle size, chain length) or `depth` (contagion);
- fan-out: a party with more than `max_fanout` guarantees in the direction
  searched is followed through its first `max_fanout` of them only (the oldest:
  guarantees are kept in the order they were added);
- work: at most `max_nodes` parties visited per query.

Every look-up can be asked `as of` a day: only the guarantees in force on it
(from their `valid_from`, until their `valid_to`) count, so a replay of last
year sees last year's graph and a circle is found on the day it closed.

A search that hit the fan-out or work bound is counted in `truncated` (beside
`searches`), so a metric can show how often it happens.  Its answer is then a
best effort: a circle, chain or path it returns is real, but a longer chain or
a circle through the parties it skipped may be missed.

Path format, everywhere: a list of party ids in guarantee direction, each
consecutive pair (a, b) a guarantee a -> b (a guarantees b's debt).  A circle
repeats its first party at the end.  `relations_on(path)` gives the relation
ids along a path, for an alert's evidence.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date
from itertools import islice

import networkx as nx

from engine.records import Party, Relation

MAX_NODES = 10_000


class GuaranteeGraph:
    """Directed guarantee graph: an edge guarantor -> borrower (Relation kind
    'guarantee', src guarantor, dst borrower) with the guaranteed amount and the
    relation ids.

    Kept in a networkx DiGraph (`self.g`, edge data `amount` and `relations`) so
    analysts and tests can use networkx on it; the searches read its adjacency
    dicts directly, which is several times faster than the public views.
    """

    def __init__(self) -> None:
        self.g = nx.DiGraph()
        self._succ = self.g._succ  # guarantor -> {guaranteed party: edge data}
        self._pred = self.g._pred  # guaranteed party -> {guarantor: edge data}
        self._rels: dict[str, tuple[str, str, float]] = {}  # relation id -> (src, dst, amount)
        self._valid: dict[str, tuple[date, date | None]] = {}  # relation id -> (valid_from, valid_to)
        self._dated = date.min  # no guarantee starts after this day nor ever ends: as_of changes nothing then
        self._exposure: dict[str, float] = defaultdict(float)
        self.searches = 0
        self.truncated = 0

    @classmethod
    def from_relations(cls, relations: Iterable[Relation]) -> GuaranteeGraph:
        graph = cls()
        for rel in relations:
            graph.add(rel)
        return graph

    # --- updates --------------------------------------------------------

    def add(self, rel: Relation) -> None:
        """Add a guarantee; other relation kinds are ignored.  Several guarantees on
        one pair add up on one edge.  A relation id seen before replaces the old
        version (an amended amount is not counted twice)."""
        if rel.kind != "guarantee":
            return
        if rel.id in self._rels:
            self.remove(rel.id)
        amount = rel.amount or 0.0
        data = self._succ.get(rel.src, {}).get(rel.dst)
        if data is None:
            self.g.add_edge(rel.src, rel.dst, amount=amount, relations=[rel.id])
        else:
            data["amount"] += amount
            data["relations"].append(rel.id)
        self._rels[rel.id] = (rel.src, rel.dst, amount)
        self._valid[rel.id] = (rel.valid_from, rel.valid_to)
        self._dated = max(self._dated, rel.valid_from if rel.valid_to is None else date.max)
        self._exposure[rel.src] += amount

    def remove(self, relation_id: str) -> bool:
        """Drop a guarantee (withdrawn: a tombstone, or superseded); False if it is not here."""
        found = self._rels.pop(relation_id, None)
        self._valid.pop(relation_id, None)
        if found is None:
            return False
        src, dst, _ = found
        data = self._succ[src][dst]
        data["relations"].remove(relation_id)
        if data["relations"]:
            data["amount"] = sum(self._rels[r][2] for r in data["relations"])
        else:
            self.g.remove_edge(src, dst)
        self._exposure[src] = sum(d["amount"] for d in self._succ[src].values())
        return True

    # --- look-ups -------------------------------------------------------

    def __contains__(self, party: str) -> bool:
        return party in self._succ

    def __len__(self) -> int:
        return len(self._rels)

    def in_force(self, relation_id: str, as_of: date | None) -> bool:
        start, end = self._valid[relation_id]
        return as_of is None or (start <= as_of and (end is None or as_of < end))

    def _adjacency(self, as_of: date | None) -> tuple[Mapping[str, dict], Mapping[str, dict]]:
        """(successors, predecessors) of the graph as of a day."""
        if as_of is None or as_of >= self._dated:
            return self._succ, self._pred
        return _AsOf(self, self._succ, as_of), _AsOf(self, self._pred, as_of)

    def exposure(self, guarantor: str, as_of: date | None = None) -> float:
        """Total amount this party guarantees, over all its guarantees (in force on `as_of`)."""
        if as_of is None or as_of >= self._dated:
            return self._exposure.get(guarantor, 0.0)
        return sum(d["amount"] for d in self.gives(guarantor, as_of).values())

    def gives(self, guarantor: str, as_of: date | None = None) -> dict[str, dict]:
        """Guaranteed party -> {'amount', 'relations'} for one guarantor (a copy)."""
        return self._edges(self._succ.get(guarantor, {}), as_of)

    def receives(self, party: str, as_of: date | None = None) -> dict[str, dict]:
        """Guarantor -> {'amount', 'relations'} for one guaranteed party (a copy)."""
        return self._edges(self._pred.get(party, {}), as_of)

    def _edges(self, adj: dict[str, dict], as_of: date | None) -> dict[str, dict]:
        out = {}
        for other, d in adj.items():
            rels = [r for r in d["relations"] if self.in_force(r, as_of)]
            if rels:
                out[other] = {"amount": sum(self._rels[r][2] for r in rels), "relations": rels}
        return out

    def relations_on(self, path: list[str], as_of: date | None = None) -> list[str]:
        """Relation ids of the guarantees a -> b for each consecutive pair of `path`,
        in path order.  A pair without a guarantee contributes nothing."""
        out: list[str] = []
        for a, b in zip(path, path[1:]):
            data = self._succ.get(a, {}).get(b)
            if data is not None:
                out.extend(r for r in data["relations"] if self.in_force(r, as_of))
        return out

    # --- bounded searches -----------------------------------------------

    def cycle_through(self, src: str, dst: str, max_len: int = 6, max_fanout: int = 200,
                      max_nodes: int = MAX_NODES, as_of: date | None = None) -> list[str] | None:
        """The shortest guarantee circle of at most `max_len` parties that contains
        the guarantee src -> dst, as [src, dst, ..., src]: [a, b, a] is a mutual
        guarantee.  None if there is none within the bounds.

        The guarantee itself need not be in the graph yet, so a new guarantee can be
        checked before or after `add`.  A bidirectional breadth-first search for a
        path dst ~> src of at most max_len - 1 guarantees; a guarantee dst -> src is
        always found, whatever the fan-out."""
        self.searches += 1
        if src == dst:
            return [src, src]
        path, truncated = self._shortest(dst, src, max_len - 1, max_fanout, max_nodes, as_of)
        self.truncated += truncated
        return None if path is None else [src, *path]

    def chain_through(self, src: str, dst: str, max_len: int = 12, max_fanout: int = 200,
                      max_nodes: int = MAX_NODES, as_of: date | None = None) -> list[str]:
        """The longest simple guarantee chain [a, ..., src, dst, ..., z] found through
        src -> dst, of at most `max_len` guarantees (max_len + 1 parties): extended
        upstream from src (its guarantors, theirs, ...) and downstream from dst.

        Depth-first, within the work bound, stopping once max_len is reached; when
        both sides together are longer than max_len the far ends are trimmed, the
        longer side first.  Exact where the graph around the edge is acyclic; where
        the chain could run through a circle the two sides compete for its parties
        and the answer is a best effort.  Like cycle_through, the edge need not be
        in the graph."""
        self.searches += 1
        if src == dst:
            return [src, dst]
        chain, truncated = self._chain(src, dst, max_len, max_fanout, max_nodes, as_of)
        self.truncated += truncated
        return chain

    def chain_at(self, party: str, max_len: int = 12, max_fanout: int = 200,
                 max_nodes: int = MAX_NODES) -> list[str]:
        """The longest simple guarantee chain found through a party (as chain_through);
        [party] if it neither gives nor receives a guarantee."""
        self.searches += 1
        chain, truncated = self._chain(party, None, max_len, max_fanout, max_nodes)
        self.truncated += truncated
        return chain

    def contagion(self, party: str, depth: int = 2, max_fanout: int = 200,
                  max_nodes: int = MAX_NODES, as_of: date | None = None) -> list[list[str]]:
        """A path to every party within `depth` guarantees of `party`, in both directions:
        first its guarantors (paths ending at party: [g2, g1, party]: g2 guarantees g1,
        g1 guarantees party), then the parties it guarantees (paths starting at party).
        Breadth first, nearest first, so each path is a shortest one.  A party in a
        circle with `party` may appear on both sides; `party` itself never does."""
        self.searches += 1
        succ, pred = self._adjacency(as_of)
        up, t1 = self._reach(party, pred, depth, max_fanout, max_nodes)
        down, t2 = self._reach(party, succ, depth, max_fanout, max_nodes)
        self.truncated += t1 or t2
        return [path[::-1] for path in up] + down

    def neighbourhood(self, party: str, depth: int = 1, max_len: int = 6, chain_len: int = 12,
                      max_fanout: int = 200) -> dict:
        """What an analyst wants to see around a party: guarantees given and received,
        exposure, the shortest circle through each guarantee it gives (distinct ones),
        the longest chain through it, and everyone within `depth` guarantees."""
        before = self.truncated
        gives = [{"party": b, "amount": d["amount"], "relations": list(d["relations"])}
                 for b, d in self._succ.get(party, {}).items()]
        receives = [{"party": a, "amount": d["amount"], "relations": list(d["relations"])}
                    for a, d in self._pred.get(party, {}).items()]
        circles: list[list[str]] = []
        for b in islice(self._succ.get(party, {}), max_fanout):  # every circle through party uses one of these
            circle = self.cycle_through(party, b, max_len, max_fanout)
            if circle is not None and circle not in circles:
                circles.append(circle)
        reach = self.contagion(party, depth, max_fanout)
        return {
            "party": party,
            "exposure": self.exposure(party),
            "gives": gives,
            "receives": receives,
            "circles": circles,
            "chain": self.chain_at(party, chain_len, max_fanout) if party in self else [party],
            "guarantors": [p for p in reach if p[-1] == party and p[0] != party],
            "guaranteed": [p for p in reach if p[0] == party],
            "truncated": self.truncated > before,
        }

    # --- the searches themselves ----------------------------------------

    def _shortest(self, s: str, t: str, limit: int, fanout: int, budget: int,
                  as_of: date | None = None) -> tuple[list[str] | None, bool]:
        """Shortest path s ~> t of at most `limit` guarantees, bidirectional BFS that
        always grows the smaller frontier."""
        succ, pred = self._adjacency(as_of)
        if limit < 1 or s not in succ or t not in succ:
            return None, False
        if t in succ[s]:
            return [s, t], False
        fwd: dict[str, str | None] = {s: None}  # reached from s, -> the party before it
        bwd: dict[str, str | None] = {t: None}  # reaches t, -> the party after it
        front_f, front_b = [s], [t]
        hops = 0
        truncated = False
        while front_f and front_b and hops < limit:
            forward = len(front_f) <= len(front_b)
            adj, seen, other = (succ, fwd, bwd) if forward else (pred, bwd, fwd)
            nxt: list[str] = []
            for u in front_f if forward else front_b:
                nbrs = adj[u]
                if len(nbrs) > fanout:
                    truncated = True
                    # the skipped neighbours may still meet the other side: test the
                    # other side's parties against u's neighbours while that is cheap
                    if len(other) <= fanout:
                        for w in other:
                            if w in nbrs and w not in seen:
                                seen[w] = u
                                return self._join(fwd, bwd, w), truncated
                    nbrs = islice(nbrs, fanout)
                for v in nbrs:
                    if v not in seen:
                        seen[v] = u
                        if v in other:
                            return self._join(fwd, bwd, v), truncated
                        nxt.append(v)
                if len(fwd) + len(bwd) > budget:
                    return None, True
            if forward:
                front_f = nxt
            else:
                front_b = nxt
            hops += 1
        return None, truncated

    @staticmethod
    def _join(fwd: dict[str, str | None], bwd: dict[str, str | None], meet: str) -> list[str]:
        path = []
        node: str | None = meet
        while node is not None:
            path.append(node)
            node = fwd[node]
        path.reverse()
        node = bwd[meet]
        while node is not None:
            path.append(node)
            node = bwd[node]
        return path

    def _chain(self, left: str, right: str | None, max_len: int, fanout: int,
               budget: int, as_of: date | None = None) -> tuple[list[str], bool]:
        """Longest chain through left -> right (or through `left` alone when right is
        None): upstream from left, downstream from right, trimmed to max_len.

        One side's path can block the other's (in a circle both sides reach the
        same parties), so when the upstream-first try falls short of max_len the
        downstream-first one is tried too and the longer kept."""
        succ, pred = self._adjacency(as_of)
        if left not in succ and (right is None or right not in succ):
            return [left] if right is None else [left, right], False
        cap = max(max_len - (right is not None), 0)
        start = left if right is None else right
        quarter = budget // 4
        up, t1 = self._longest(left, pred, cap, {start}, fanout, quarter)
        down, t2 = self._longest(start, succ, cap, set(up), fanout, quarter)
        best = self._trim(up, down, cap)
        truncated = t1 or t2
        if len(best[0]) + len(best[1]) - 2 < cap:
            down, t3 = self._longest(start, succ, cap, {left}, fanout, quarter)
            up, t4 = self._longest(left, pred, cap, set(down), fanout, quarter)
            other = self._trim(up, down, cap)
            truncated = truncated or t3 or t4
            if len(other[0]) + len(other[1]) > len(best[0]) + len(best[1]):
                best = other
        up, down = best
        return up[::-1] + (down if right is not None else down[1:]), truncated

    @staticmethod
    def _trim(up: list[str], down: list[str], cap: int) -> tuple[list[str], list[str]]:
        """Cut the far ends so both sides together have at most cap guarantees, the
        longer side first."""
        n_up, n_down = len(up) - 1, len(down) - 1
        if n_up + n_down <= cap:
            return up, down
        keep_down = min(n_down, max(cap - n_up, cap // 2))
        keep_up = min(n_up, cap - keep_down)
        return up[: keep_up + 1], down[: keep_down + 1]

    def _longest(self, start: str, adj: dict[str, dict], cap: int, avoid: set[str], fanout: int,
                 budget: int) -> tuple[list[str], bool]:
        """Longest simple path from `start` along `adj`, at most `cap` steps, not
        through `avoid`; depth-first within `budget` visits."""
        best = [start]
        if cap <= 0 or start not in adj:
            return best, False
        truncated = False
        path = [start]
        on_path = set(avoid)
        on_path.add(start)

        def children(node: str):
            nonlocal truncated
            nbrs = adj[node]
            if len(nbrs) > fanout:
                truncated = True
                return islice(nbrs, fanout)
            return iter(nbrs)

        stack = [children(start)]
        visits = 0
        while stack:
            v = next(stack[-1], None)
            if v is None:
                stack.pop()
                on_path.discard(path.pop())
                continue
            if v in on_path:
                continue
            visits += 1
            if visits > budget:
                truncated = True
                break
            path.append(v)
            if len(path) > len(best):
                best = path.copy()
                if len(best) - 1 >= cap:
                    break
            if len(path) - 1 < cap:
                on_path.add(v)
                stack.append(children(v))
            else:
                path.pop()
        return best, truncated

    def _reach(self, party: str, adj: dict[str, dict], depth: int, fanout: int,
               budget: int) -> tuple[list[list[str]], bool]:
        """Breadth first from party along adj: one path [party, ..., x] per party x."""
        if party not in adj or depth < 1:
            return [], False
        parent: dict[str, str | None] = {party: None}
        order: list[str] = []
        front = [party]
        truncated = False
        for _ in range(depth):
            nxt = []
            for u in front:
                nbrs = adj[u]
                if len(nbrs) > fanout:
                    truncated = True
                    nbrs = islice(nbrs, fanout)
                for v in nbrs:
                    if v not in parent:
                        parent[v] = u
                        order.append(v)
                        nxt.append(v)
                if len(parent) > budget:
                    truncated = True
                    nxt = []
                    break
            front = nxt
        paths = []
        for v in order:
            path = [v]
            while (u := parent[path[-1]]) is not None:
                path.append(u)
            paths.append(path[::-1])
        return paths, truncated


class _AsOf(Mapping):
    """One direction of a graph's adjacency with only the guarantees in force on a day."""

    def __init__(self, graph: GuaranteeGraph, adj: dict[str, dict], day: date):
        self.graph, self.adj, self.day = graph, adj, day
        self._cache: dict[str, dict] = {}

    def __getitem__(self, node: str) -> dict:
        if node not in self._cache:
            in_force = self.graph.in_force
            self._cache[node] = {other: d for other, d in self.adj[node].items()
                                 if any(in_force(r, self.day) for r in d["relations"])}
        return self._cache[node]

    def __contains__(self, node: object) -> bool:
        return node in self.adj

    def __iter__(self):
        return iter(self.adj)

    def __len__(self) -> int:
        return len(self.adj)


def circles(graph: GuaranteeGraph, max_len: int = 6, max_fanout: int = 200,
            max_nodes: int = MAX_NODES) -> list[list[str]]:
    """Every distinct circle found by checking each guarantee once (the start-up scan
    of a snapshot): the shortest circle through each edge, bounded per edge like
    cycle_through, each circle reported once, from the first edge that found it."""
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for src, dst in list(graph.g.edges):
        circle = graph.cycle_through(src, dst, max_len, max_fanout, max_nodes)
        if circle is None:
            continue
        ring = circle[:-1]
        i = ring.index(min(ring))
        key = tuple(ring[i:] + ring[:i])
        if key not in seen:
            seen.add(key)
            found.append(circle)
    return found


# --- hidden related parties -------------------------------------------------

IDENTIFIERS = ("legal_rep", "address", "phone")
_PUNCT = re.compile(r"[\s,.;:#/\\()\-–—，。、（）]+")


def normalise(kind: str, value: str | None) -> str | None:
    """The comparable form of an identifier: phones as digits without a leading 86
    country code; names and addresses case-folded with punctuation and spacing
    collapsed.  None for an empty value."""
    if value is None:
        return None
    if kind == "phone":
        digits = re.sub(r"\D", "", value)
        if len(digits) == 13 and digits.startswith("86"):
            digits = digits[2:]
        return digits or None
    text = _PUNCT.sub(" ", value.casefold()).strip()
    return text or None


class IdentityIndex:
    """Hidden related parties: parties that share a legal representative, address
    or phone.  An identifier held by more than `max_group` parties (a business
    centre's address, a registered agent) reports only the first `max_group`
    holders, and counts in `truncated`; `crowded()` lists such identifiers."""

    def __init__(self, max_group: int = 50) -> None:
        self.max_group = max_group
        self._holders: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)  # (kind, norm) -> party -> raw
        self._of: dict[str, list[tuple[str, str]]] = {}  # party -> its (kind, norm) keys
        self.truncated = 0

    def add(self, party: Party) -> list[tuple[str, str, str]]:
        """Index a party (again, if its identifiers changed) and return
        (other party id, 'legal_rep'|'address'|'phone', this party's value) for each
        party already indexed that shares one."""
        self.remove(party.id)
        keys = []
        for kind in IDENTIFIERS:
            raw = getattr(party, kind)
            norm = normalise(kind, raw)
            if norm is not None:
                keys.append((kind, norm))
                self._holders[(kind, norm)][party.id] = raw
        self._of[party.id] = keys
        return self.shared_with(party.id)

    def remove(self, party_id: str) -> None:
        for key in self._of.pop(party_id, ()):
            holders = self._holders[key]
            holders.pop(party_id, None)
            if not holders:
                del self._holders[key]

    def shared_with(self, party_id: str, max_holders: int | None = None) -> list[tuple[str, str, str]]:
        """(other party id, kind, this party's value) for every other party sharing an
        identifier with this one, in identifier order, then in indexing order;
        identifiers held by more than `max_holders` parties are left out."""
        out = []
        for key in self._of.get(party_id, ()):
            holders = self._holders[key]
            if max_holders is not None and len(holders) > max_holders:
                continue
            raw = holders[party_id]
            others = (p for p in holders if p != party_id)
            if len(holders) - 1 > self.max_group:
                self.truncated += 1
                others = islice(others, self.max_group)
            out.extend((other, key[0], raw) for other in others)
        return out

    def crowded(self) -> list[tuple[str, str, int]]:
        """(kind, normalised value, holders) for identifiers held by more than max_group parties."""
        return [(k, v, len(h)) for (k, v), h in self._holders.items() if len(h) > self.max_group]
