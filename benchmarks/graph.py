"""Guarantee graph costs: the per-edge circle check, chains, contagion, build, memory.

    python benchmarks/graph.py [--parties 100000] [--guarantees 300000] [--new 10000] [--seed 7]

Builds a random guarantee network with realistic clustering (deterministic
seed): firms in local communities (a region and trade), most guarantees inside
a community and given by its few active guarantors, some mutual, some across
communities of one region, and guarantee companies that each guarantee hundreds
of firms.  Then, for new guarantees drawn the same way, it times what the
engine does when a guarantee arrives: `cycle_through` before the guarantee is
added (max_len 6, and 5 for the figure in DESIGN.md), `add`, `chain_through`,
and `contagion` at depth 2 for random parties.

In the same run it times the simplest honest alternatives on a sample of the
same new edges: networkx's own shortest path dst ~> src (bidirectional, no
bounds), and a bounded one-way BFS from dst (networkx
single_source_shortest_path_length with cutoff max_len - 1), and checks that
they agree with the bounded search wherever it was not truncated.

Prints a summary and writes benchmarks/results/graph.json.  Each measurement is
one function of (network, new edges, args) returning a dict: add one to
SECTIONS (fund tracing cost per transaction goes there).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.graph import GuaranteeGraph, IdentityIndex  # noqa: E402
from engine.records import Party, Relation  # noqa: E402

D = date(2020, 1, 1)


# --- the network --------------------------------------------------------------


class Network:
    """Parties 0..n-1 as 'P<i>'; guarantees as (src, dst, amount) arrays."""

    def __init__(self, parties: int, guarantees: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.n = parties
        # communities of 10-400 firms (lognormal, mean about 50), 40 communities a region
        sizes = np.clip(rng.lognormal(3.7, 0.6, size=parties // 10), 10, 400).astype(int)
        sizes = sizes[np.cumsum(sizes) <= parties]
        sizes = np.append(sizes, parties - sizes.sum())
        sizes = sizes[sizes > 0]
        self.community = np.repeat(np.arange(len(sizes)), sizes)
        self.start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.size = sizes
        self.region = self.community // 40
        # guarantee companies: 0.2% of parties, the first ones of each of a few communities
        self.hubs = rng.choice(parties, size=max(1, parties // 500), replace=False)
        # how active a firm is as a guarantor inside its community: heavy-tailed
        self.activity = rng.pareto(1.5, size=parties) + 0.05
        self.src, self.dst, self.amount = self.draw(guarantees)

    def draw(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """k guarantees: 70% inside a community (guarantor by activity, and nine times in
        ten the more active firm of the two guarantees the other: a hierarchy, not a
        tangle), 5% mutual (one of those reversed), 15% across communities of one
        region (the same hierarchy), 10% from a guarantee company to a firm of any community."""
        rng = self.rng
        k0, k = k, k + k // 50  # self-guarantees are dropped below: draw a few extra
        n_in = int(k * 0.70)
        n_cross, n_hub = int(k * 0.15), int(k * 0.10)
        n_mutual = k - n_in - n_cross - n_hub  # 5%
        # inside a community: pick the borrower uniformly, the guarantor by activity in its community
        borrower = rng.integers(0, self.n, size=n_in)
        com = self.community[borrower]
        # activity-weighted pick inside a community: rejection over uniform draws (vectorised, 8 tries)
        best = self.start[com] + rng.integers(0, 1 << 30, size=n_in) % self.size[com]
        for _ in range(7):
            cand = self.start[com] + rng.integers(0, 1 << 30, size=n_in) % self.size[com]
            take = self.activity[cand] > self.activity[best]
            best = np.where(take & (rng.random(n_in) < 0.5), cand, best)
        guarantor = best
        flip = (self.activity[borrower] > self.activity[guarantor]) & (rng.random(n_in) < 0.9)
        guarantor, borrower = np.where(flip, borrower, guarantor), np.where(flip, guarantor, borrower)
        # mutual: reverse some of the in-community ones
        pick = rng.integers(0, n_in, size=n_mutual)
        m_src, m_dst = borrower[pick], guarantor[pick]
        # across communities of one region
        c_dst = rng.integers(0, self.n, size=n_cross)
        region_com = self.region[c_dst] * 40 + rng.integers(0, 40, size=n_cross)
        region_com = np.minimum(region_com, len(self.size) - 1)
        c_src = self.start[region_com] + rng.integers(0, 1 << 30, size=n_cross) % self.size[region_com]
        flip = (self.activity[c_dst] > self.activity[c_src]) & (rng.random(n_cross) < 0.9)
        c_src, c_dst = np.where(flip, c_dst, c_src), np.where(flip, c_src, c_dst)
        # guarantee companies, skewed: a few carry most
        h_src = self.hubs[np.minimum(rng.zipf(1.3, size=n_hub) - 1, len(self.hubs) - 1)]
        h_dst = rng.integers(0, self.n, size=n_hub)
        src = np.concatenate([guarantor, m_src, c_src, h_src])
        dst = np.concatenate([borrower, m_dst, c_dst, h_dst])
        keep = src != dst
        src, dst = src[keep][:k0], dst[keep][:k0]
        order = rng.permutation(len(src))
        amount = np.round(rng.lognormal(14.5, 1.0, size=len(src)), -3)
        return src[order], dst[order], amount[order]

    def relations(self, src, dst, amount, prefix: str) -> list[Relation]:
        return [Relation(id=f"{prefix}{i}", kind="guarantee", src=f"P{s}", dst=f"P{d}", amount=float(a),
                         valid_from=D)
                for i, (s, d, a) in enumerate(zip(src.tolist(), dst.tolist(), amount.tolist()))]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stats(us: list[float]) -> dict[str, float]:
    if not us:
        return {"n": 0}
    xs = sorted(us)
    return {"n": len(xs), "median_us": round(statistics.median(xs), 2), "mean_us": round(statistics.fmean(xs), 2),
            "p99_us": round(xs[min(len(xs) - 1, int(0.99 * len(xs)))], 2),
            "p999_us": round(xs[min(len(xs) - 1, int(0.999 * len(xs)))], 2), "max_us": round(xs[-1], 2)}


def timed(fn: Callable, *args, **kw) -> tuple[object, float]:
    t = time.perf_counter_ns()
    out = fn(*args, **kw)
    return out, (time.perf_counter_ns() - t) / 1000


# --- sections ---------------------------------------------------------------------


def build(net: Network, args) -> tuple[GuaranteeGraph, dict]:
    rels = net.relations(net.src, net.dst, net.amount, "g")
    gc.collect()
    before = rss_mb()
    t = time.perf_counter()
    graph = GuaranteeGraph.from_relations(rels)
    seconds = time.perf_counter() - t
    gc.collect()
    degrees = [len(v) for v in graph.g._succ.values()]
    indeg = [len(v) for v in graph.g._pred.values()]
    scc = max((len(c) for c in nx.strongly_connected_components(graph.g)), default=0)
    return graph, {
        "parties": net.n, "parties_in_graph": graph.g.number_of_nodes(), "guarantees": len(graph), "pairs": graph.g.number_of_edges(),
        "communities": int(len(net.size)), "guarantee_companies": int(len(net.hubs)),
        "max_out_degree": max(degrees), "max_in_degree": max(indeg),
        "parties_over_200_guarantees_given": sum(d > 200 for d in degrees),
        "largest_strongly_connected_component": scc,
        "build_seconds": round(seconds, 3), "build_us_per_guarantee": round(seconds * 1e6 / len(rels), 2),
        "rss_mb_for_graph": round(rss_mb() - before, 1),
    }


def edge_checks(graph: GuaranteeGraph, new: list[Relation], args) -> dict:
    """What a new guarantee costs: the circle check before adding it, then the add.
    Each check runs on the graph as it stands when that guarantee arrives.  Two
    passes, max_len 6 then (after taking the new guarantees out again) max_len 5,
    so neither runs on caches the other warmed."""
    out: dict = {}
    for max_len in (6, 5):
        times, adds, sizes = [], [], {}
        split: dict[str, list[float]] = {"found": [], "not_found": [], "truncated": []}
        for r in new:
            before = graph.truncated
            circle, us = timed(graph.cycle_through, r.src, r.dst, max_len)
            times.append(us)
            split["found" if circle else "not_found"].append(us)
            if graph.truncated > before:
                split["truncated"].append(us)
            if circle is not None:
                sizes[len(circle) - 1] = sizes.get(len(circle) - 1, 0) + 1
            _, us = timed(graph.add, r)
            adds.append(us)
        out[f"cycle_through_max_len_{max_len}"] = stats(times) | {
            "closes_a_circle": len(split["found"]), "found": stats(split["found"]),
            "not_found": stats(split["not_found"]), "truncated": stats(split["truncated"]),
            "circle_sizes": dict(sorted(sizes.items()))}
        if max_len == 6:
            out["add"] = stats(adds)
            for r in new:
                graph.remove(r.id)
    return out


def baselines(graph: GuaranteeGraph, new: list[Relation], args) -> dict:
    """The same question answered by networkx on a sample of the same new edges, on the
    final graph (each sampled edge removed while it is checked, so it is 'new' again)."""
    rng = np.random.default_rng(args.seed + 1)
    sample = sorted(rng.choice(len(new), size=min(args.baseline_sample, len(new)), replace=False).tolist())
    g = graph.g
    ours, unbounded, oneway = [], [], []
    agree = disagree = 0
    for i in sample:
        r = new[i]
        data = g.edges[r.src, r.dst]
        g.remove_edge(r.src, r.dst)
        try:
            before = graph.truncated
            circle, us = timed(graph.cycle_through, r.src, r.dst, 6)
            ours.append(us)
            cut = graph.truncated > before
            t = time.perf_counter_ns()
            try:
                length = len(nx.shortest_path(g, r.dst, r.src))  # parties on dst ~> src = circle size
            except nx.NetworkXNoPath:
                length = None
            unbounded.append((time.perf_counter_ns() - t) / 1000)
            t = time.perf_counter_ns()
            dist = nx.single_source_shortest_path_length(g, r.dst, cutoff=5)
            oneway_len = dist[r.src] + 1 if r.src in dist else None
            oneway.append((time.perf_counter_ns() - t) / 1000)
            expected = length if length is not None and length <= 6 else None
            assert oneway_len == expected, (r, oneway_len, expected)
            mine = None if circle is None else len(circle) - 1
            if not cut:
                agree += mine == expected
                disagree += mine != expected
            elif mine is not None:
                assert expected is not None and mine >= expected
        finally:
            g.add_edge(r.src, r.dst, **data)
    o, u, w = stats(ours), stats(unbounded), stats(oneway)
    return {
        "sample": len(sample),
        "bounded_bidirectional": o,
        "networkx_shortest_path_unbounded": u,
        "networkx_bfs_cutoff_5_one_way": w,
        "ratio_median_unbounded_over_ours": round(u["median_us"] / o["median_us"], 1),
        "ratio_p99_unbounded_over_ours": round(u["p99_us"] / o["p99_us"], 1),
        "ratio_median_oneway_over_ours": round(w["median_us"] / o["median_us"], 1),
        "ratio_p99_oneway_over_ours": round(w["p99_us"] / o["p99_us"], 1),
        "agree_where_not_truncated": agree, "disagree_where_not_truncated": disagree,
    }


def chains(graph: GuaranteeGraph, new: list[Relation], args) -> dict:
    times, lengths = [], []
    before = graph.truncated
    for r in new[: args.chain_sample]:
        chain, us = timed(graph.chain_through, r.src, r.dst, 12)
        times.append(us)
        lengths.append(len(chain) - 1)
    hist = {k: lengths.count(k) for k in sorted(set(lengths))}
    return {"chain_through_max_len_12": stats(times) | {"truncated": graph.truncated - before, "lengths": hist}}


def contagion(graph: GuaranteeGraph, new: list[Relation], args) -> dict:
    rng = np.random.default_rng(args.seed + 2)
    parties = [f"P{i}" for i in rng.integers(0, args.parties, size=args.contagion_sample).tolist()]
    times, counts = [], []
    before = graph.truncated
    for p in parties:
        paths, us = timed(graph.contagion, p, 2)
        times.append(us)
        counts.append(len(paths))
    return {"contagion_depth_2": stats(times) | {"truncated": graph.truncated - before,
                                                 "median_paths": statistics.median(counts), "max_paths": max(counts)}}


def identities(graph: GuaranteeGraph, new: list[Relation], args) -> dict:
    """IdentityIndex.add for every party; 1% share a phone, 1% an address, 1% a legal rep."""
    rng = np.random.default_rng(args.seed + 3)
    n = args.parties
    twin = rng.integers(0, n, size=n)
    roll = rng.random(n)
    parties = []
    for i in range(n):
        j = int(twin[i]) if roll[i] < 0.03 else i
        parties.append(Party(id=f"P{i}", kind="firm", name=f"F{i}", sector="wholesale", region="SH", registered_on=D,
                             legal_rep=f"Rep {j if roll[i] < 0.01 else i}",
                             address=f"{j if 0.01 <= roll[i] < 0.02 else i} Road", phone=f"138{j if roll[i] >= 0.02 else i:08d}"))
    idx = IdentityIndex()
    times, hits = [], 0
    for p in parties:
        shared, us = timed(idx.add, p)
        times.append(us)
        hits += bool(shared)
    return {"identity_add": stats(times) | {"parties_sharing": hits}}


def fund_tracing(graph: GuaranteeGraph, new: list[Relation], args) -> dict:
    """Fund tracing cost per transaction on the simulated bank (2000 borrowers, 90 days).

    Times Tracer.follow alone over every transaction in event order, and
    beside it the simplest alternative, the direct-only check a rule without
    tracing makes (is the payer a disbursement account: one dict look-up)."""
    from benchmarks.data import simulated
    from connectors.reference_files import load_reference
    from engine.tracing import Tracer

    data = simulated(7, 2000, 90)
    ref = load_reference(data)
    party = {a: acc.party_id for a, acc in ref.accounts.items()}
    rows = pl.read_parquet(data / "transactions.parquet", columns=["id", "ts", "from_account", "to_account", "amount"])
    txs = [(i, t, f, to, a, party[f], party[to]) for i, t, f, to, a in rows.iter_rows()]
    tracer, traced, hops = Tracer(), 0, {}
    started = time.perf_counter()
    for tx in txs:
        for trace in tracer.follow(*tx, ref):
            traced += 1
            hops[trace.hops] = hops.get(trace.hops, 0) + 1
    seconds = time.perf_counter() - started
    disbursing = ref.loan_by_account
    started = time.perf_counter()
    direct = sum(1 for tx in txs if tx[2] in disbursing)
    direct_seconds = time.perf_counter() - started
    held = sum(len(parts) for parts in tracer.parts.values())
    return {"fund_tracing": {
        "transactions": len(txs), "us_per_transaction": round(seconds / len(txs) * 1e6, 3),
        "traced_payments": traced, "by_hops": dict(sorted(hops.items())),
        "state_accounts": len(tracer.parts), "state_attributions": held,
        "direct_only_check_us": round(direct_seconds / len(txs) * 1e6, 3), "direct_only_found": direct,
        "ratio_to_direct_only": round(seconds / direct_seconds, 1),
    }}


SECTIONS: list[Callable[[GuaranteeGraph, list[Relation], argparse.Namespace], dict]] = [
    chains, contagion, identities, fund_tracing,
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parties", type=int, default=100_000)
    ap.add_argument("--guarantees", type=int, default=300_000)
    ap.add_argument("--new", type=int, default=10_000, help="new guarantees checked one by one")
    ap.add_argument("--baseline-sample", type=int, default=1_000)
    ap.add_argument("--chain-sample", type=int, default=10_000)
    ap.add_argument("--contagion-sample", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "graph.json")
    args = ap.parse_args()

    net = Network(args.parties, args.guarantees, args.seed)
    graph, built = build(net, args)
    # reference data lives as long as the process: keep the collector from rescanning it
    # (a daemon can do the same after loading its snapshot)
    gc.collect()
    gc.freeze()
    print(f"network: {json.dumps(built)}")
    src, dst, amount = net.draw(args.new)
    new = net.relations(src, dst, amount, "n")
    checks = edge_checks(graph, new, args)
    for key, value in checks.items():
        print(f"{key}: {json.dumps(value)}")
    result = {"network": built, **checks}
    base = baselines(graph, new, args)
    print(f"baselines: {json.dumps(base)}")
    result["baselines"] = base
    for section in SECTIONS:
        part = section(graph, new, args)
        for key, value in part.items():
            print(f"{key}: {json.dumps(value)}")
        result.update(part)
    result["machine"] = {"python": platform.python_version(), "networkx": nx.__version__,
                         "cpus": __import__("os").cpu_count(), "args": {k: str(v) for k, v in vars(args).items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
