"""A self-contained ``index.html`` for a run: metrics table, montage, cluster examples, config."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.io import write_text
from .figures import largest_clusters, pd_isna, plural, sample_clusters

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.muted{color:#666;font-size:90%}
img{max-width:100%;border:1px solid #ddd}pre{background:#f7f7f7;padding:1em;overflow:auto}
.cl{margin:.6em 0;padding:.4em .8em;border-left:4px solid #4a90d9;background:#fafafa}
.cl,li,td,h1,p{overflow-wrap:anywhere}.cl li{white-space:pre-wrap}.id{color:#666;font-size:90%;margin-right:.5em}"""

#: characters of one text shown on a page (a 20,000-character ticket filled the screen)
TEXT_CHARS = 500

METRIC_COLUMNS = [("method", "method"), ("n_true", "true #"), ("n_clusters", "#clusters"), ("nmi", "NMI"),
                  ("wcp", "WCP"), ("acc", "ACC"), ("ari", "ARI"), ("pairwise_f1", "pairwise F"), ("bcubed_f1", "BCubed F"),
                  ("threshold", "threshold"), ("wall_s", "time (s)")]


def metric_cells(row: dict[str, Any], columns: list[tuple[str, str]]) -> list[str]:
    """A metrics row's cells in ``columns`` order ([(key, header)]): floats to 3 decimals, a missing
    key empty. The page and the terminal (kfree.cli.console.metrics_table) show the same text."""
    return [f"{v:.3f}" if isinstance(v := row.get(k, ""), float) else str(v) for k, _ in columns]


def metrics_html(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{h}</th>" for _, h in METRIC_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in metric_cells(r, METRIC_COLUMNS)) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def shown_note(labels_pred: np.ndarray, max_clusters: int | None, what: str) -> str:
    """What a page shows of the clusters: all of them, or "the 40 largest of 74"."""
    total = int(np.unique(labels_pred).shape[0])
    if total == 1:
        return f"{what} of the one cluster"
    if max_clusters is None or total <= max_clusters:
        return f"{what} of each of the {total:,} clusters, largest first"
    return f"{what} of the {max_clusters:,} largest of the {total:,} clusters"


def _text(t: Any) -> str:
    """A text as a page shows it: escaped, its line breaks kept (``pre-wrap``), cut at
    :data:`TEXT_CHARS`; an empty or blank one said so (a ticket trial read the empty bodies'
    cluster as a list of nothing)."""
    s = str(t)
    if not s.strip():
        return f"<span class='muted'>({'empty' if not s else 'blank'} text)</span>"
    if len(s) <= TEXT_CHARS:
        return html.escape(s)
    return f"{html.escape(s[:TEXT_CHARS])}… <span class='muted'>({len(s) - TEXT_CHARS:,} more characters)</span>"


def _id(v: Any) -> str:
    """A row id before its text, whole, as the page shows every id (figures shorten theirs:
    :func:`~kfree.report.figures.short_id`)."""
    return f"<span class='id'>{html.escape(str(v))}</span>"


def text_clusters_html(texts: np.ndarray, labels_pred: np.ndarray, label_names: list[str] | None,
                       labels_true: np.ndarray | None, *, max_clusters: int = 30, per_cluster: int = 5, seed: int = 0,
                       ids: np.ndarray | None = None) -> str:
    """Each shown cluster's head (size, majority label) and up to ``per_cluster`` random texts,
    each after its row id when ``ids`` are given (a ticket trial had to search the clusters file
    for a text to find its ticket)."""
    out = [f"<p class='muted'>{shown_note(labels_pred, max_clusters, f'Up to {per_cluster} random texts')}.</p>"]
    for c, members, pick, majority, share in sample_clusters(labels_pred, per_cluster, labels_true=labels_true,
                                                             max_clusters=max_clusters, seed=seed):
        head = f"cluster {html.escape(str(c))} — {plural(members.size, 'item')}"  # a cluster id is the user's text
        if majority is not None:
            name = label_names[int(majority)] if label_names is not None else str(majority)
            n_known = int((~np.asarray(pd_isna(labels_true[members]), dtype=bool)).sum())
            # (of the labelled rows alone, said so: a ticket trial's page named a new intent's cluster of 38
            # by the one labelled row in it, "100%")
            head += (f" — majority label <b>{html.escape(name)}</b> ({share:.0%})" if n_known == members.size else
                     f" — majority label <b>{html.escape(name)}</b> ({round(share * n_known)} of its {n_known} "
                     f"labelled row{'' if n_known == 1 else 's'})")
        items = "".join(f"<li>{'' if ids is None else _id(ids[i])}{_text(texts[i])}</li>" for i in pick)
        out.append(f"<div class='cl'>{head}<ul>{items}</ul></div>")
    return "\n".join(out)


#: the members a page lists under each shown cluster's heading, at most
MEMBERS_LISTED = 200


def members_html(labels_pred: np.ndarray, names: list[str], *, max_clusters: int = 40) -> str:
    """Each shown cluster's members by name (a photo's file name), folded, largest cluster first:
    the montage shows a few of each, and a photo-library trial had to go back to the clusters
    file to find which photos made up a cluster."""
    out = ["<h2>Members</h2><p class='muted'>The image of each row of the clusters shown (click a cluster; "
           f"at most {MEMBERS_LISTED} each, in row order).</p>"]
    for c in largest_clusters(labels_pred, max_clusters):
        rows = np.flatnonzero(labels_pred == c)
        listed = "".join(f"<li>{html.escape(names[i]) or '<span class=muted>(no image)</span>'}</li>"
                         for i in rows[:MEMBERS_LISTED])
        more = (f"<li class='muted'>… and {rows.size - MEMBERS_LISTED:,} more</li>"
                if rows.size > MEMBERS_LISTED else "")
        out.append(f"<details><summary>cluster {html.escape(str(c))} — {plural(rows.size, 'item')}</summary>"
                   f"<ul>{listed}{more}</ul></details>")
    return "\n".join(out)


def truth_tables_html(labels_pred: np.ndarray, labels_true: np.ndarray, *, max_clusters: int = 40) -> str:
    """Two tables that say where a clustering and the true labels part, for a page without
    pictures of the rows (a TV-episode trial had only sizes, scores and a map to go by): each of
    the largest clusters with its majority label, its share and how many labels it mixes, and
    each of the largest true labels with how many clusters hold it and its share in the largest
    of them. Rows without a true label are left out of both."""
    import pandas as pd

    known = ~np.asarray(pd_isna(labels_true), dtype=bool)
    pairs = pd.DataFrame({"cluster": np.asarray(labels_pred)[known], "label": np.asarray(labels_true)[known]})
    if pairs.empty:
        return ""
    counts = pairs.groupby(["cluster", "label"], sort=False).size().rename("n").reset_index()

    def table(by: str, other: str, heads: tuple[str, ...], limit: int, verbs: tuple[str, str]) -> str:
        g = counts.sort_values("n", ascending=False, kind="stable").groupby(by, sort=False)
        summary = pd.DataFrame({"rows": g["n"].sum(), "top": g[other].first(), "top_n": g["n"].first(),
                                "kinds": g[other].nunique()}).sort_values("rows", ascending=False, kind="stable")
        def rows(part: pd.DataFrame) -> str:
            return "".join(f"<tr><td>{html.escape(str(k))}</td><td>{r.rows:,}</td><td>{html.escape(str(r.top))}</td>"
                           f"<td>{r.top_n / r.rows:.0%}</td><td>{r.kinds:,}</td></tr>" for k, r in part.iterrows())

        head = "<table><tr>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>"
        out = head + rows(summary.head(limit)) + "</table>"
        if len(summary) <= limit:
            return out
        # the mixed ones below the largest, most rows outside their majority first: sorted by size
        # alone, a page showed 40 pure clusters and none of the 20 that merged people (a pictures trial)
        rest = summary.iloc[limit:]
        mixed = rest[rest["kinds"] > 1]
        mixed = mixed.assign(off=mixed["rows"] - mixed["top_n"]).sort_values("off", ascending=False, kind="stable")
        out += f"<p class='muted'>The {limit:,} largest of {len(summary):,}"
        if mixed.empty:
            return out + f"; none of the other {len(rest):,} {verbs[0]}.</p>"
        shown = mixed.head(limit)
        return (out + f". Of the other {len(rest):,}, {len(mixed):,} {verbs[0] if len(mixed) == 1 else verbs[1]}"
                + (f"; the {len(shown):,} with the most rows outside their majority" if len(shown) < len(mixed) else "")
                + f":</p>{head}{rows(shown.drop(columns='off'))}</table>")

    return ("<h2>Clusters and true labels</h2><p class='muted'>Rows with a true label only. A cluster that mixes "
            "labels merged them; a label held by several clusters was split.</p>"
            + table("cluster", "label", ("cluster", "rows", "majority label", "its share", "labels in it"), max_clusters,
                    ("mixes labels", "mix labels"))
            + table("label", "cluster", ("true label", "rows", "its largest cluster", "share there", "clusters holding it"),
                    max_clusters, ("is split", "are split")))


def write_run_index(path: str | Path, *, title: str, summary: str, rows: list[dict[str, Any]],
                    montage: str | None = None, montage_note: str = "One row per predicted cluster, largest first",
                    extra_html: str = "", config: dict[str, Any] | None = None,
                    files: list[str] | None = None, credit: str = "") -> Path:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>{summary}</p>"] + (["<h2>Results</h2>", metrics_html(rows)] if rows else [])
    if montage:
        parts += ["<h2>Predicted clusters</h2>",
                  f"<p class='muted'>{html.escape(montage_note)}, random members; where the true "
                  "labels are known, green frame = the cluster's majority label, red = another.</p>", f"<img src='{html.escape(montage)}' alt='montage'>"]
    parts.append(extra_html)
    if files:
        parts.append("<h2>Files</h2><ul>" + "".join(f"<li><a href='{html.escape(f)}'>{html.escape(f)}</a></li>" for f in files) + "</ul>")
    if config:
        parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(config, indent=2, default=str)) + "</pre>")
    if credit:
        parts.append(f"<p class='muted'>Data: {html.escape(credit)}</p>")
    parts.append("</body></html>")
    return write_text(path, "\n".join(parts))
