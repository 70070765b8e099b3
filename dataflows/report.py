"""The backtest report: one HTML file that opens offline (every plot an inline
SVG drawn by matplotlib, styles inline, a Content-Security-Policy that allows
nothing from outside), plus the same figures as `figures.json` and one Parquet
file per table in `figures/` for notebooks.

Every plot is always drawn: without labels or a second pack it says what is
missing, so a report never silently lacks a section."""

from __future__ import annotations

import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

PLOTS = ("volume", "precision_recall", "scores", "delay", "diff", "top_borrowers")
LEVELS = ("low", "medium", "high", "critical")
LEVEL_COLOURS = {"low": "#8fbc8f", "medium": "#e6b84f", "high": "#e07b39", "critical": "#c0392b"}


def write_report(out: Path, figures: dict[str, list[dict]], summary: dict) -> Path:
    from dataflows.backtest import figures_json

    tables = out / "figures"
    tables.mkdir(exist_ok=True)
    for stale in tables.glob("*.parquet"):
        stale.unlink()
    for name, rows in figures.items():
        if rows:
            pl.DataFrame(rows, infer_schema_length=None).write_parquet(tables / f"{name}.parquet")
    (out / "figures.json").write_text(figures_json(figures, summary))
    path = out / "report.html"
    path.write_text(render(figures, summary))
    return path


def render(figures: dict[str, list[dict]], summary: dict) -> str:
    plots = {
        "volume": ("Alerts over time by rule", _volume(figures["volume"], summary.get("activity_from"))),
        "precision_recall": ("Precision and recall per rule (Wilson 95% intervals)",
                             _precision_recall(figures.get("by_rule"))),
        "scores": ("Score distribution by level", _scores(figures["scores"])),
        "delay": ("Detection delay: first alert less first labelled event", _delay(figures.get("delay"))),
        "diff": ("Pack comparison: alerts gained, lost and changed by rule", _diff(figures.get("diff_by_rule"))),
        "top_borrowers": ("Borrowers with most alerts", _top(figures["top_borrowers"])),
    }
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>fundwatch backtest: {e(summary['pack']['id'])} {e(summary['pack']['version'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Backtest of {e(summary['pack']['id'])} {e(summary['pack']['version'])}</h1>",
        _facts(summary),
    ]
    if figures.get("by_pattern"):
        parts.append(_table("Precision, recall and F1 per pattern", "t-patterns", figures["by_pattern"],
                            ["pattern", "hops", "labels", "found", "recall", "recall_low", "recall_high", "alerts",
                             "true_alerts", "precision", "precision_low", "precision_high", "f1"]))
    for key, (title, svg) in plots.items():
        parts.append(f"<figure id=fig-{key} class=plot><figcaption>{e(title)}</figcaption>{svg}</figure>")
    if figures.get("diff"):
        parts.append(_table("Alerts that differ between the packs", "t-diff", figures["diff"],
                            ["change", "rule_id", "borrower_id", "loan_id", "event_time", "level_base",
                             "level_compared", "score_base", "score_compared", "summary", "alert_id"]))
    parts.append(_table("Borrowers with most alerts", "t-borrowers", figures["top_borrowers"],
                        ["borrower_id", "alerts", "max_score", "rules"]))
    parts.append("</body></html>\n")
    return "\n".join(parts)


_CSS = """body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}figure{margin:1.5em 0}figcaption{font-weight:bold;margin-bottom:.5em}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}svg{max-width:100%;height:auto}"""


def _facts(s: dict) -> str:
    facts = [("pack", f"{s['pack']['id']} {s['pack']['version']} ({s['pack']['rules']}, digest {s['pack']['digest'][:12]})"),
             ("data", s["data"]), ("event time", f"{s['from'] or 'start'} to {s['to'] or 'end'}"),
             ("events", f"{s['events']:,} in {s['seconds']} s ({s['events_per_second']:,.0f}/s)"),
             ("alerts", f"{s['alerts']:,}"), ("dead letters", f"{s['dead_letters']:,}"),
             ("labels", f"{s['labels']} ({s.get('label_count', 0):,} labels, {s.get('labels_from')}; "
                        f"{s.get('scored_alerts', 0):,} alerts scored)" if s["labels"] else "none given")]
    if "compare" in s:
        c = s["compare"]
        facts.append(("compared with", f"{c['id']} {c['version']} ({c['rules']}): {c['gained']:,} gained, "
                                       f"{c['lost']:,} lost, {c['changed']:,} changed"))
    facts.append(("generated", s["generated_at"]))
    return "<dl id=facts>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts) \
        + "</dl>"


def _table(title: str, id_: str, rows: list[dict], columns: list[str], limit: int = 500) -> str:
    def cell(v) -> str:
        if v is None:
            return ""
        return f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows[:limit])
    more = f"<p>{len(rows) - limit:,} more rows in figures.json</p>" if len(rows) > limit else ""
    return f"<h2>{html.escape(title)}</h2><table id={id_}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


# --- plots -----------------------------------------------------------------------


def _svg(fig, name: str) -> str:
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"fundwatch-{name}"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _empty(name: str, message: str) -> str:
    fig, ax = plt.subplots(figsize=(8, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color="#666")
    return _svg(fig, name)


def _volume(rows: list[dict], since: str | None) -> str:
    """Stacked bars per day (per week or month over a long span) from `since`, the
    first day of the payments and readings; graph alerts dated years back by their
    reference data are one bar "before" at the left. Empty bars are not drawn."""
    if not rows:
        return _empty("volume", "no alerts")
    df = pl.DataFrame(rows).with_columns(pl.col("day").str.to_date())
    cutoff = pl.Series([since]).str.to_date()[0] if since else df["day"].min()
    if df.filter(pl.col("day") >= cutoff).is_empty():
        cutoff = df["day"].min()
    earlier = df.filter(pl.col("day") < cutoff).group_by("rule_id").agg(pl.col("alerts").sum())
    df = df.filter(pl.col("day") >= cutoff)
    span = (df["day"].max() - cutoff).days
    every, fmt = ("1d", "%Y-%m-%d") if span <= 120 else ("1w", "%Y-%m-%d") if span <= 3 * 365 else ("1mo", "%Y-%m")
    df = df.with_columns(pl.col("day").dt.truncate(every).alias("bucket")).group_by("bucket", "rule_id") \
        .agg(pl.col("alerts").sum())
    buckets = pl.date_range(df["bucket"].min(), df["bucket"].max(), every, eager=True).to_list()
    labels = [b.strftime(fmt) for b in buckets]
    counts = {(i + 1, r): n for b, r, n in df.iter_rows() for i in [buckets.index(b)]}
    counts |= {(0, r): n for r, n in earlier.iter_rows()}
    rules = sorted({r for _, r in counts})
    fig, ax = plt.subplots(figsize=(11, 4))
    colours = plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors
    bottom = [0] * (len(buckets) + 1)
    for i, rule in enumerate(rules):
        xs = [x for x in range(len(bottom)) if counts.get((x, rule))]
        heights = [counts[(x, rule)] for x in xs]
        ax.bar(xs, heights, bottom=[bottom[x] for x in xs], label=rule, color=colours[i % len(colours)], width=0.9)
        for x, h in zip(xs, heights):
            bottom[x] += h
    step = max(1, len(buckets) // 12)
    ticks = ([0] if earlier.height else []) + list(range(1, len(buckets) + 1, step))
    ax.set_xticks(ticks, [f"before {cutoff}" if x == 0 else labels[x - 1] for x in ticks], rotation=45, ha="right",
                  fontsize=8)
    ax.set_ylabel({"1d": "alerts per day", "1w": "alerts per week", "1mo": "alerts per month"}[every])
    ax.legend(ncol=2, fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    return _svg(fig, "volume")


def _precision_recall(rows: list[dict] | None) -> str:
    if rows is None:
        return _empty("precision_recall", "no labels: give --labels FILE (or an alert store with dispositions)")
    rows = [r for r in rows if r["labels"] or r["alerts"]]
    if not rows:
        return _empty("precision_recall", "no rule has labels or alerts of its patterns")
    names = [f"{r['rule_id']} {r['pattern']}" for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.2))
    y = range(len(rows))
    for offset, what, colour in ((-0.2, "recall", "#3b7dd8"), (0.2, "precision", "#e07b39")):
        values = [r[what] for r in rows]
        low = [max(0.0, r[what] - (r[f"{what}_low"] if r[f"{what}_low"] is not None else r[what])) for r in rows]
        high = [max(0.0, (r[f"{what}_high"] if r[f"{what}_high"] is not None else r[what]) - r[what]) for r in rows]
        ax.barh([i + offset for i in y], values, height=0.38, color=colour, label=what, xerr=[low, high],
                error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.set_yticks(list(y), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.legend(fontsize=8, loc="lower right")
    return _svg(fig, "precision_recall")


def _scores(rows: list[dict]) -> str:
    if not rows:
        return _empty("scores", "no alerts")
    fig, ax = plt.subplots(figsize=(8, 3))
    bins = list(range(0, 105, 5))
    data = [[r["score"] for r in rows if r["level"] == lv for _ in range(r["alerts"])] for lv in LEVELS]
    ax.hist(data, bins=bins, stacked=True, label=list(LEVELS), color=[LEVEL_COLOURS[lv] for lv in LEVELS])
    ax.set_xlabel("score")
    ax.set_ylabel("alerts")
    ax.legend(fontsize=8)
    return _svg(fig, "scores")


def _delay(rows: list[dict] | None) -> str:
    if rows is None:
        return _empty("delay", "no labels: give --labels FILE (or an alert store with dispositions)")
    if not rows:
        return _empty("delay", "no labelled case was found")
    patterns = sorted({r["pattern"] for r in rows})
    data = [[r["delay_hours"] / 24 for r in rows if r["pattern"] == p] for p in patterns]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(patterns) + 1.2))
    ax.boxplot(data, orientation="horizontal", tick_labels=patterns, widths=0.6)
    ax.set_xscale("symlog", linthresh=1)  # hours for a payment, years for a reference-data case dated by validity
    ax.set_xlabel("days from the first labelled event to the first alert (symmetric log scale)")
    ax.tick_params(axis="y", labelsize=8)
    ax.invert_yaxis()
    return _svg(fig, "delay")


def _diff(rows: list[dict] | None) -> str:
    if rows is None:
        return _empty("diff", "one pack: give --compare OTHER_PACK to see what a change would do")
    if not rows:
        return _empty("diff", "the two packs raise exactly the same alerts")
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.2))
    y = list(range(len(rows)))
    ax.barh(y, [r["gained"] for r in rows], color="#3b9b5b", label="gained")
    ax.barh(y, [-r["lost"] for r in rows], color="#c0392b", label="lost")
    ax.scatter([0] * len(rows), y, s=[20 * r["changed"] for r in rows], color="#555", label="changed", zorder=3)
    ax.set_yticks(y, [r["rule_id"] for r in rows], fontsize=8)
    ax.axvline(0, color="#333", linewidth=0.8)
    ax.set_xlabel("alerts (lost to the left, gained to the right)")
    ax.legend(fontsize=8)
    return _svg(fig, "diff")


def _top(rows: list[dict]) -> str:
    if not rows:
        return _empty("top_borrowers", "no alerts")
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1))
    ax.barh(range(len(rows)), [r["alerts"] for r in rows], color="#3b7dd8")
    ax.set_yticks(range(len(rows)), [r["borrower_id"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("alerts")
    return _svg(fig, "top_borrowers")
