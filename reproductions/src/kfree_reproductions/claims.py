"""A paper's claims as data, each judged by a stated statistical test over seeds.

A claim file (TOML, next to the reproduction) lists the claims; this module judges them on the
measured values and says which test it used. Code holds no claim of its own, so adding or
rewording one is an edit to the data file.

Every measured quantity is a *group*: one value per seed, selected by a table such as
``{method = "multicut", loss = "l2", pos = 0.0, neg = 0.0}`` (the reproduction supplies the
lookup). The kinds of claim:

``greater``
    Each group of ``a`` has a larger mean than each group of ``b`` (``a``/``b``: one selector or a
    list; ``pairing = "zip"`` compares ``a[i]`` with ``b[i]`` only). Test: one-sided Welch's t per
    pair.
``largest_drop``
    Between ``clean`` and ``noisy`` (two noise points), ``loss`` loses more than each of
    ``others``; drops are paired by seed. Test: one-sided Welch's t on the per-seed drops.
``at_least``
    Each group's mean exceeds ``value``. Test: one-sided one-sample t.
``within``
    For each loss, the per-seed change between ``clean`` and ``noisy`` is inside ±``margin``.
    Test: two one-sided t-tests (TOST).
``greater_in_every_cell``
    ``a`` beats ``b`` (both a method, with ``metric``) in every cell measured for both; cells
    pair by (loss, noise). Test: one-sided Welch's t per cell; the claim holds when every cell
    does.

Verdicts: ``holds`` (every test significant at ``alpha``), ``contradicted`` (some test
significant the other way), ``not shown`` (neither), ``not measured`` (groups missing). With one
value per group (one seed) there is no variance to test: the verdict compares the values and says
so, and with zero variance in both groups the comparison is exact.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kfree.exceptions import ConfigError

Group = dict[int, float]  # seed -> value
Lookup = Callable[[Mapping[str, Any]], Group | None]

KINDS = ("greater", "largest_drop", "at_least", "within", "greater_in_every_cell")


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str  # holds | contradicted | not shown | not measured
    test: str
    evidence: str


def load_claims(path: str | Path) -> list[dict[str, Any]]:
    """The ``[[claim]]`` tables of a TOML file, checked for a known ``kind`` and a ``text``."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the claims ({e})") from None
    claims = data.get("claim", [])
    for i, c in enumerate(claims, 1):
        if c.get("kind") not in KINDS or not c.get("text"):
            raise ConfigError(f"{p}: claim {i} needs a text and a kind in {KINDS}, got {c.get('kind')!r}")
    return claims


# ------------------------------------------------------------------------------ tests
def _flat(x: np.ndarray) -> bool:
    """No spread worth a test (equal values up to rounding of the sums that made them)."""
    return x.size < 2 or float(np.ptp(x)) <= 1e-9 * max(1.0, float(np.abs(x).max()))


def one_sided(x: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    """p-value of "mean(x) > mean(y)" and the test's name."""
    from scipy import stats

    if x.size < 2 or y.size < 2:
        return (0.0 if x.mean() > y.mean() else 1.0), "one seed: values compared, no test"
    if _flat(x) and _flat(y):
        return (0.0 if x.mean() > y.mean() else 1.0), "no variance: exact comparison"
    # Welch's t written out, so a group without spread counts as variance 0 (scipy's moment code
    # warns on such groups and may see rounding noise as spread)
    vx = 0.0 if _flat(x) else x.var(ddof=1) / x.size
    vy = 0.0 if _flat(y) else y.var(ddof=1) / y.size
    se2 = vx + vy
    t_stat = (x.mean() - y.mean()) / np.sqrt(se2)
    df = se2**2 / ((vx**2 / (x.size - 1) if vx else 0.0) + (vy**2 / (y.size - 1) if vy else 0.0))
    return float(stats.t.sf(t_stat, df)), "Welch's t, one-sided"


def _one_sample(x: np.ndarray, value: float) -> tuple[float, str]:
    """p-value of "mean(x) > value"."""
    from scipy import stats

    if _flat(x):
        return (0.0 if x.mean() > value else 1.0), "one seed or no variance: values compared, no test"
    return float(stats.ttest_1samp(x, value, alternative="greater").pvalue), "one-sample t, one-sided"


def _verdict(ps_for: Sequence[float], ps_against: Sequence[float], alpha: float) -> str:
    if any(p < alpha for p in ps_against):
        return "contradicted"
    return "holds" if all(p < alpha for p in ps_for) else "not shown"


def _fmt(name: str, g: np.ndarray) -> str:
    sd = f" ± {g.std(ddof=1):.2f}" if g.size > 1 else ""
    return f"{name} {g.mean():.2f}{sd} (n={g.size})"


def _label(sel: Mapping[str, Any]) -> str:
    if "label" in sel:
        return str(sel["label"])
    parts = [str(sel["method"])] if "method" in sel else []
    if "loss" in sel:
        parts.append(str(sel["loss"]).upper())
    return " ".join(parts)


def _values(g: Group) -> np.ndarray:
    return np.array([g[s] for s in sorted(g)], dtype=float)


def _paired_drop(clean: Group, noisy: Group) -> np.ndarray:
    seeds = sorted(set(clean) & set(noisy))
    return np.array([clean[s] - noisy[s] for s in seeds], dtype=float)


def _as_list(v: Any) -> list[Mapping[str, Any]]:
    return list(v) if isinstance(v, list) else [v]


# ------------------------------------------------------------------------------ kinds
def _greater(c, look, alpha) -> Verdict:
    a_sel, b_sel = _as_list(c["a"]), _as_list(c["b"])
    groups = {id(s): look(s) for s in (*a_sel, *b_sel)}
    if any(g is None or not g for g in groups.values()):
        return Verdict(c["text"], "not measured", "—", "groups missing")
    if c.get("pairing", "all") == "zip":  # a[i] against b[i] (e.g. per loss)
        if len(a_sel) != len(b_sel):
            raise ConfigError(f"claim {c['text']!r}: pairing='zip' needs as many a as b")
        pairs = list(zip(a_sel, b_sel, strict=True))
    else:  # every a against every b
        pairs = [(sa, sb) for sa in a_sel for sb in b_sel]
    p_for, p_against, tests, ev = [], [], set(), []
    for sa, sb in pairs:
        x, y = _values(groups[id(sa)]), _values(groups[id(sb)])
        p, test = one_sided(x, y)
        q, _ = one_sided(y, x)
        p_for.append(p)
        p_against.append(q)
        tests.add(test)
        ev.append(f"{_label(sa)} > {_label(sb)}: p = {p:.3g}")
    shown = [_fmt(_label(s), _values(groups[id(s)])) for s in (*a_sel, *b_sel)]
    return Verdict(c["text"], _verdict(p_for, p_against, alpha), "; ".join(sorted(tests)),
                   ", ".join(dict.fromkeys(shown)) + "; " + "; ".join(ev))


def _largest_drop(c, look, alpha) -> Verdict:
    base = {k: v for k, v in c.items() if k in ("method",)}
    drops = {}
    for loss in (c["loss"], *c["others"]):
        clean = look({**base, "loss": loss, **c["clean"]})
        noisy = look({**base, "loss": loss, **c["noisy"]})
        if not clean or not noisy:
            return Verdict(c["text"], "not measured", "—", "groups missing")
        drops[loss] = _paired_drop(clean, noisy)
    p_for, p_against, tests = [], [], set()
    for other in c["others"]:
        p, test = one_sided(drops[c["loss"]], drops[other])
        q, _ = one_sided(drops[other], drops[c["loss"]])
        p_for.append(p)
        p_against.append(q)
        tests.add(test)
    ev = ", ".join(_fmt(f"{k.upper()} drop", v) for k, v in drops.items())
    ev += "; " + "; ".join(f"{c['loss'].upper()} > {o.upper()}: p = {p:.3g}" for o, p in zip(c["others"], p_for))
    return Verdict(c["text"], _verdict(p_for, p_against, alpha), "; ".join(sorted(tests)) + " on per-seed drops", ev)


def _at_least(c, look, alpha) -> Verdict:
    sels = _as_list(c["groups"])
    groups = [look(s) for s in sels]
    if any(not g for g in groups):
        return Verdict(c["text"], "not measured", "—", "groups missing")
    p_for, p_against, tests, ev = [], [], set(), []
    for s, g in zip(sels, groups):
        x = _values(g)
        p, test = _one_sample(x, float(c["value"]))
        q, _ = _one_sample(-x, -float(c["value"]))
        p_for.append(p)
        p_against.append(q)
        tests.add(test)
        ev.append(f"{_fmt(_label(s), x)}, > {c['value']}: p = {p:.3g}")
    return Verdict(c["text"], _verdict(p_for, p_against, alpha), "; ".join(sorted(tests)), "; ".join(ev))


def _within(c, look, alpha) -> Verdict:
    margin = float(c["margin"])
    p_for, p_against, tests, ev = [], [], set(), []
    for loss in c["losses"]:
        clean = look({"method": c["method"], "loss": loss, **c["clean"]})
        noisy = look({"method": c["method"], "loss": loss, **c["noisy"]})
        if not clean or not noisy:
            return Verdict(c["text"], "not measured", "—", "groups missing")
        d = _paired_drop(clean, noisy)
        lo, test = _one_sample(d, -margin)  # mean > -margin
        hi, _ = _one_sample(-d, -margin)  # mean < margin
        p_for.append(max(lo, hi))
        tests.add(test)
        out_lo, _ = _one_sample(-d, margin)  # mean < -margin: clearly outside
        out_hi, _ = _one_sample(d, margin)  # mean > margin
        p_against.append(min(out_lo, out_hi))
        ev.append(f"{_fmt(loss.upper() + ' drop', d)}, TOST p = {max(lo, hi):.3g}")
    return Verdict(c["text"], _verdict(p_for, p_against, alpha),
                   "two one-sided tests (TOST) of the per-seed drop: " + "; ".join(sorted(tests)), "; ".join(ev))


def _greater_in_every_cell(c, look, alpha, cells: Sequence[Mapping[str, Any]]) -> Verdict:
    metric = c.get("metric", "acc")
    n = wins = losses = 0
    gaps = []
    tests = set()
    for cell in cells:
        a = look({**cell, "method": c["a"], "metric": metric})
        b = look({**cell, "method": c["b"], "metric": metric})
        if not a or not b:
            continue
        x, y = _values(a), _values(b)
        p, test = one_sided(x, y)
        q, _ = one_sided(y, x)
        tests.add(test)
        n += 1
        wins += p < alpha
        losses += q < alpha
        gaps.append(x.mean() - y.mean())
    if n == 0:
        return Verdict(c["text"], "not measured", "—", "no cell has both")
    verdict = "contradicted" if losses else ("holds" if wins == n else "not shown")
    ev = (f"{c['a']} > {c['b']} ({metric}) significantly in {wins} of {n} cells, the reverse in {losses}; "
          f"mean gap {np.mean(gaps):+.2f}")
    return Verdict(c["text"], verdict, "; ".join(sorted(tests)) + " per cell", ev)


def evaluate_claims(claims: Sequence[Mapping[str, Any]], look: Lookup, *, cells: Sequence[Mapping[str, Any]] = (),
                    alpha: float = 0.05) -> list[Verdict]:
    """Judge every claim; ``cells`` lists the (loss, noise) points for ``greater_in_every_cell``."""
    if not 0 < alpha < 1 or math.isnan(alpha):
        raise ConfigError(f"alpha={alpha} must be in (0, 1)")
    out = []
    for c in claims:
        kind = c["kind"]
        if kind == "greater":
            out.append(_greater(c, look, alpha))
        elif kind == "largest_drop":
            out.append(_largest_drop(c, look, alpha))
        elif kind == "at_least":
            out.append(_at_least(c, look, alpha))
        elif kind == "within":
            out.append(_within(c, look, alpha))
        else:
            out.append(_greater_in_every_cell(c, look, alpha, cells))
    return out


def verdicts_markdown(verdicts: Sequence[Verdict], *, alpha: float = 0.05) -> str:
    lines = [f"Each claim is judged over seeds at α = {alpha} with the test named in its row, on its own: the "
             f"{len(verdicts)} tests are not corrected for their number (at α = {alpha}, about one in "
             f"{round(1 / alpha)} claims that do not hold would pass by chance), and a claim judged in every cell "
             "counts each cell at that α.", "",
             "| # | claim | verdict here | test | evidence |", "|---|---|---|---|---|"]
    for i, v in enumerate(verdicts, 1):
        lines.append(f"| {i} | {v.claim} | {v.verdict} | {v.test} | {v.evidence} |")
    return "\n".join(lines)
