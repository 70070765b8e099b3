"""The guarantee graph and the identity index (engine/graph.py), on hand-built networks."""

from __future__ import annotations

import random
from datetime import date

import networkx as nx
import pytest

from engine.graph import GuaranteeGraph, IdentityIndex, circles, normalise
from engine.records import Party, Relation

D = date(2020, 1, 1)


def rel(rid: str, src: str, dst: str, amount: float | None = 1.0, kind: str = "guarantee") -> Relation:
    return Relation(id=rid, kind=kind, src=src, dst=dst, amount=amount, valid_from=D)


def graph_of(*edges: str | tuple[str, str], amount: float = 1.0) -> GuaranteeGraph:
    """Edges as 'ab' (single-letter parties) or (src, dst); relation ids r0, r1, ..."""
    g = GuaranteeGraph()
    for i, e in enumerate(edges):
        src, dst = (e[0], e[1])
        g.add(rel(f"r{i}", src, dst, amount))
    return g


def ring(names: list[str], prefix: str = "c") -> list[Relation]:
    return [rel(f"{prefix}{i}", a, b) for i, (a, b) in enumerate(zip(names, names[1:] + names[:1]))]


def is_path(g: GuaranteeGraph, path: list[str]) -> bool:
    return all(g.g.has_edge(a, b) for a, b in zip(path, path[1:]))


# --- circles ------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 3, 4, 5, 6])
def test_circle_of_each_size_is_found_with_its_path(size):
    members = [f"P{i}" for i in range(size)]
    g = GuaranteeGraph.from_relations(ring(members))
    # noise around it: tails in and out, a parallel branch that does not close
    for i, m in enumerate(members):
        g.add(rel(f"in{i}", f"IN{i}", m))
        g.add(rel(f"out{i}", m, f"OUT{i}"))
    g.add(rel("x", "OUT0", "OUT1"))
    circle = g.cycle_through(members[-1], members[0])
    assert circle == [members[-1], *members]
    assert len(circle) - 1 == size
    assert g.relations_on(circle) == [f"c{size - 1}", *[f"c{i}" for i in range(size - 1)]]


def test_mutual_guarantee_is_a_circle_of_two():
    g = graph_of("ab", "ba")
    assert g.cycle_through("a", "b") == ["a", "b", "a"]
    assert g.relations_on(["a", "b", "a"]) == ["r0", "r1"]


def test_the_shortest_circle_through_the_edge_is_returned():
    # a -> b -> c -> d -> e -> a (5) and the shortcut c -> a (3), both through a -> b
    g = graph_of("ab", "bc", "cd", "de", "ea", "ca")
    assert g.cycle_through("a", "b") == ["a", "b", "c", "a"]
    # d -> e only lies on the longer one
    assert g.cycle_through("d", "e") == ["d", "e", "a", "b", "c", "d"]


def test_a_new_guarantee_is_checked_before_it_is_added():
    g = graph_of("ab", "bc", "cd")
    assert g.cycle_through("d", "a") == ["d", "a", "b", "c", "d"]
    assert not g.g.has_edge("d", "a")
    assert g.cycle_through("d", "unknown") is None
    assert g.cycle_through("unknown", "a") is None


def test_no_false_circle_on_a_dag():
    rng = random.Random(5)
    layers = [[f"L{k}_{i}" for i in range(8)] for k in range(6)]
    g = GuaranteeGraph()
    n = 0
    for k in range(5):  # edges only from a layer to a later one: acyclic, with many paths
        for a in layers[k]:
            for later in layers[k + 1:]:
                for b in rng.sample(later, 3):
                    g.add(rel(f"r{n}", a, b))
                    n += 1
    assert nx.is_directed_acyclic_graph(g.g) and n > 300
    assert all(g.cycle_through(a, b, max_len=12) is None for a, b in g.g.edges)
    assert circles(g, max_len=12) == []
    # one edge back closes circles: the check sees it
    assert g.cycle_through(layers[5][0], layers[0][0], max_len=12) is not None


def test_a_circle_of_seven_is_beyond_max_len_six():
    members = [f"P{i}" for i in range(7)]
    g = GuaranteeGraph.from_relations(ring(members))
    assert g.cycle_through("P6", "P0", max_len=6) is None
    assert g.cycle_through("P6", "P0", max_len=7) == ["P6", *members]


def test_circles_agree_with_networkx_shortest_paths_on_random_graphs():
    rng = random.Random(11)
    for trial in range(20):
        n = rng.randint(10, 60)
        g = GuaranteeGraph()
        for i in range(rng.randint(n, 3 * n)):
            a, b = rng.sample(range(n), 2)
            g.add(rel(f"r{i}", str(a), str(b)))
        for a, b in g.g.edges:
            circle = g.cycle_through(a, b, max_len=6)
            try:
                expected = nx.shortest_path_length(g.g, b, a) + 1
            except nx.NetworkXNoPath:
                expected = None
            if expected is None or expected > 6:
                assert circle is None
            else:
                assert len(circle) - 1 == expected
                assert circle[:2] == [a, b] and circle[-1] == a and is_path(g, circle)
                assert len(set(circle[:-1])) == expected  # simple
    assert g.truncated == 0


def test_snapshot_scan_reports_each_circle_once():
    g = GuaranteeGraph.from_relations(ring(["a", "b", "c"]) + ring(["x", "y"], "m") + [rel("t", "c", "z")])
    found = circles(g)
    assert sorted(sorted(c[:-1]) for c in found) == [["a", "b", "c"], ["x", "y"]]


# --- fan-out and work bounds ----------------------------------------------------


def hub_circle() -> GuaranteeGraph:
    """Y -> H -> X249 -> W249 -> Y, where H guarantees 300 firms (X0..X299) and Y has
    300 guarantors (W0..W299): the circle runs through the 250th of each."""
    g = GuaranteeGraph()
    g.add(rel("yh", "Y", "H"))
    for i in range(300):
        g.add(rel(f"hx{i}", "H", f"X{i}"))
        g.add(rel(f"wy{i}", f"W{i}", "Y"))
    g.add(rel("xw", "X249", "W249"))
    return g


def test_fanout_bound_follows_only_the_first_guarantees_and_counts_the_miss():
    g = hub_circle()
    assert g.cycle_through("Y", "H", max_fanout=200) is None
    assert g.truncated == 1 and g.searches == 1
    assert g.cycle_through("Y", "H", max_fanout=300) == ["Y", "H", "X249", "W249", "Y"]
    assert g.truncated == 1 and g.searches == 2


def test_fanout_bound_never_hides_a_mutual_guarantee_or_a_circle_the_other_side_finds():
    g = hub_circle()
    g.add(rel("hy", "H", "Y"))  # added last: beyond any fan-out bound
    assert g.cycle_through("Y", "H", max_fanout=5) == ["Y", "H", "Y"]
    # Z's single guarantor is H's last: found from Z's side although H is cut to 5
    g.add(rel("hz", "H", "Z"))
    g.add(rel("zq", "Z", "Q"))
    assert g.cycle_through("Q", "H", max_fanout=5) == ["Q", "H", "Z", "Q"]


def test_a_guarantee_beyond_the_fanout_bound_still_meets_parties_the_other_side_reached():
    # new guarantee Y -> S; S -> M, S -> K; M guarantees X0..X299; X299 -> Y; V1..V3 -> Y
    g = GuaranteeGraph()
    for rid, a, b in [("sm", "S", "M"), ("sk", "S", "K"), *[(f"v{i}", f"V{i}", "Y") for i in range(3)]]:
        g.add(rel(rid, a, b))
    for i in range(300):
        g.add(rel(f"mx{i}", "M", f"X{i}"))
    g.add(rel("xy", "X299", "Y"))
    assert g.cycle_through("Y", "S", max_len=4, max_fanout=200) == ["Y", "S", "M", "X299", "Y"]
    assert g.truncated == 1


def test_work_bound_stops_a_search():
    g = hub_circle()
    assert g.cycle_through("Y", "H", max_fanout=300, max_nodes=100) is None
    assert g.truncated == 1


# --- chains ----------------------------------------------------------------------


def test_chain_through_an_edge_extends_both_ways():
    g = graph_of("ab", "bc", "cd", "de", "ef", "xb", "dy")
    assert g.chain_through("c", "d") == ["a", "b", "c", "d", "e", "f"]
    assert g.relations_on(g.chain_through("c", "d")) == ["r0", "r1", "r2", "r3", "r4"]


def test_chain_picks_the_longest_branch_and_respects_max_len():
    # upstream of c: b <- a (2) or s1 <- s2 <- s3 <- c (3); downstream of d: e, f
    g = graph_of("ab", "bc", ("s3", "s2"), ("s2", "s1"), ("s1", "c"), "cd", "de", "ef")
    assert g.chain_through("c", "d") == ["s3", "s2", "s1", "c", "d", "e", "f"]
    short = g.chain_through("c", "d", max_len=3)
    assert len(short) - 1 == 3 and short[short.index("c") + 1] == "d" and is_path(g, short)


def test_chain_of_eight_guarantees_ending_at_a_borrower():
    names = [f"F{i}" for i in range(8)] + ["B"]
    g = GuaranteeGraph.from_relations([rel(f"r{i}", a, b) for i, (a, b) in enumerate(zip(names, names[1:]))])
    assert g.chain_through("F7", "B") == names
    assert g.chain_at("F3") == names
    assert g.chain_at("nobody") == ["nobody"]


def test_chain_through_a_circle_stays_simple():
    g = graph_of("ab", "bc", "cd", "da", "de", "ef")
    for chain in (g.chain_through("a", "b"), g.chain_at("a"), g.chain_at("c")):
        assert len(set(chain)) == len(chain) and is_path(g, chain)
    assert g.chain_through("a", "b") == ["a", "b", "c", "d", "e", "f"]


# --- exposure and relations --------------------------------------------------------


def test_exposure_sums_guarantees_and_several_on_one_pair_add_up():
    g = GuaranteeGraph()
    g.add(rel("r1", "G", "B1", 1_000_000))
    g.add(rel("r2", "G", "B1", 500_000))
    g.add(rel("r3", "G", "B2", 250_000))
    g.add(rel("r4", "G", "B3", None))
    g.add(rel("o1", "G", "B4", 9e9, kind="ownership"))  # not a guarantee
    assert g.exposure("G") == 1_750_000
    assert g.exposure("B1") == 0 and g.exposure("nobody") == 0
    assert g.gives("G")["B1"] == {"amount": 1_500_000, "relations": ["r1", "r2"]}
    assert g.relations_on(["G", "B1"]) == ["r1", "r2"]
    assert "B4" not in g and len(g) == 4


def test_an_amended_guarantee_replaces_the_old_one_and_remove_takes_it_out():
    g = GuaranteeGraph()
    g.add(rel("r1", "G", "B1", 1_000_000))
    g.add(rel("r2", "G", "B1", 500_000))
    g.add(rel("r1", "G", "B1", 400_000))
    assert g.exposure("G") == 900_000 and g.gives("G")["B1"]["relations"] == ["r2", "r1"]
    assert g.remove("r2") and not g.remove("r2")
    assert g.exposure("G") == 400_000
    g.add(rel("back", "B1", "G"))
    assert g.cycle_through("B1", "G") == ["B1", "G", "B1"]
    g.remove("r1")
    assert g.exposure("G") == 0 and g.cycle_through("B1", "G") is None


# --- contagion -------------------------------------------------------------------------


def test_contagion_paths_both_ways_within_depth():
    # g3 -> g2 -> g1 -> P -> b1 -> b2 -> b3, and co-guarantor s of b1 (not reached)
    g = graph_of(("g3", "g2"), ("g2", "g1"), ("g1", "P"), ("P", "b1"), ("b1", "b2"), ("b2", "b3"), ("s", "b1"))
    assert g.contagion("P", depth=2) == [["g1", "P"], ["g2", "g1", "P"], ["P", "b1"], ["P", "b1", "b2"]]
    assert g.contagion("P", depth=1) == [["g1", "P"], ["P", "b1"]]
    assert g.contagion("P", depth=3)[-1] == ["P", "b1", "b2", "b3"]
    assert g.relations_on(["g2", "g1", "P"]) == ["r1", "r2"]
    assert g.contagion("nobody") == []


def test_contagion_in_a_circle_reaches_each_party_by_a_shortest_path():
    g = graph_of("ab", "bc", "ca")
    assert g.contagion("a", depth=2) == [["c", "a"], ["b", "c", "a"], ["a", "b"], ["a", "b", "c"]]


def test_contagion_fanout_bound():
    g = GuaranteeGraph()
    for i in range(10):
        g.add(rel(f"r{i}", "P", f"B{i}"))
    assert len(g.contagion("P", max_fanout=4)) == 4 and g.truncated == 1
    assert len(g.contagion("P", max_fanout=10)) == 10 and g.truncated == 1


def test_neighbourhood_for_the_analyst():
    g = graph_of("ab", "ba", ("G", "a"), ("b", "c"), amount=100.0)
    n = g.neighbourhood("a", depth=2)
    assert n["exposure"] == 100.0
    assert n["gives"] == [{"party": "b", "amount": 100.0, "relations": ["r0"]}]
    assert {r["party"] for r in n["receives"]} == {"b", "G"}
    assert n["circles"] == [["a", "b", "a"]]
    assert n["chain"] == ["G", "a", "b", "c"]
    assert ["G", "a"] in n["guarantors"] and ["a", "b", "c"] in n["guaranteed"]
    assert n["truncated"] is False


# --- identity index -----------------------------------------------------------------------


def party(pid: str, legal_rep: str | None = None, address: str | None = None, phone: str | None = None) -> Party:
    return Party(id=pid, kind="firm", name=pid, sector="wholesale", region="SH", registered_on=D,
                 legal_rep=legal_rep, address=address, phone=phone)


def test_identity_index_finds_shared_phone_address_and_legal_rep():
    idx = IdentityIndex()
    assert idx.add(party("A", "Wang Wei (ID 1975)", "12 Nanjing Road, Shanghai", "13800001111")) == []
    assert idx.add(party("U", "Li Na (ID 1980)", "9 Huaihai Road, Shanghai", "13900002222")) == []
    assert idx.add(party("P", phone="+86 138-0000-1111")) == [("A", "phone", "+86 138-0000-1111")]
    assert idx.add(party("R", address="12 NANJING ROAD,  Shanghai.")) == [("A", "address", "12 NANJING ROAD,  Shanghai.")]
    assert idx.add(party("L", legal_rep="wang wei (id 1975)", phone="021-5555")) == [("A", "legal_rep", "wang wei (id 1975)")]
    assert idx.shared_with("A") == [("L", "legal_rep", "Wang Wei (ID 1975)"), ("R", "address", "12 Nanjing Road, Shanghai"),
                                    ("P", "phone", "13800001111")]
    assert idx.shared_with("U") == []


def test_identity_index_ignores_unrelated_and_empty_identifiers():
    idx = IdentityIndex()
    idx.add(party("A", None, "", "13800001111"))
    assert idx.add(party("B", None, "", "13800001112")) == []  # one digit apart
    assert idx.add(party("C", None, "12 Nanjing Road", None)) == []
    assert idx.add(party("D", None, "12 Nanjing Road West", None)) == []  # not the same address
    assert normalise("address", " , ") is None and normalise("phone", "n/a") is None


def test_identity_index_update_drops_the_old_identifiers():
    idx = IdentityIndex()
    idx.add(party("A", phone="111"))
    idx.add(party("B", phone="111"))
    assert idx.add(party("B", phone="222")) == []
    assert idx.shared_with("A") == []
    idx.remove("A")
    assert idx.add(party("C", phone="111")) == []


def test_identity_index_caps_a_crowded_identifier():
    idx = IdentityIndex(max_group=3)
    for i in range(6):
        idx.add(party(f"F{i}", address="1 Business Centre"))
    assert [p for p, _, _ in idx.add(party("N", address="1 business centre"))] == ["F0", "F1", "F2"]
    assert idx.truncated == 3  # F4, F5 and N each met more than 3 holders
    assert idx.crowded() == [("address", "1 business centre", 7)]
