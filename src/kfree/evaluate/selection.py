"""Choose how to cluster by how well each choice recovers held-out *classes*.

A threshold learned on seen classes is only worth using if it describes unseen ones. The one
check available before the user's data arrives is a set of validation classes that training never
saw. Every candidate below is judged the same way on them — cluster the validation items, score
NMI against their classes, break ties by ``|#clusters − #classes|`` — and the best one is used:

- the **learned** rule: complete linkage at the threshold the loss implies (BCL's ``4b``, the
  triplet L2/L3 ``√((α+β)/2)``);
- **recalibrated** rules: a linkage (complete, or Ward's) cut at the height that gives the true
  number of validation classes, on the model's embedding;
- the same recalibrated rules on the **raw features** the model started from, calibrated on
  every labelled class — training classes too, which are as unseen to the raw features as the
  validation classes (:func:`raw_calibration_set`) — and scored on the same halves of the
  validation classes as the model (:func:`raw_rules`). These keep the promise that a learned
  model is never worse than its input on the validation classes without saying so (on unseen
  classes of another size it can be: validation classes should be drawn like the data).

A :class:`ClusterRule` is what comes out: which features (``"model"`` or ``"raw"``), which
linkage, which threshold, and its validation score. It is small and serialisable, so the model
file records what was chosen, what it was chosen against, and why.

Scores measure transfer: a recalibrated cut is fitted on one half of the validation classes and
scored on the other (:class:`ValidationSet`), so it gets no credit for having been fitted where
it is judged. The model gets no credit for having been *chosen* where it is judged either: before
it may replace the raw features, each half is scored at the training step chosen on the other half
(:func:`cross_fitted`). The unseen-class benchmark (``results/unseen/``) reports test scores of
every candidate so the choice can be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..cluster.threshold_hac import ThresholdAgglomerative
from ..cluster.ward import WardThreshold
from ..config import check_choice
from ..exceptions import ConfigError, DataError
from ..metrics import nmi
from ..threshold import WARD_SOURCE, Threshold
from .calibrate import cut_height, merge_tree

LINKAGE_CHOICES: tuple[str, ...] = ("complete", "average", "single", "ward", "auto")
THRESHOLD_MODES: tuple[str, ...] = ("auto", "learned", "recalibrated")
#: ``linkage="auto"``: the linkages whose recalibrated cuts are candidates
AUTO_LINKAGES: tuple[str, ...] = ("complete", "ward")
#: validation sets larger than this are cut down to whole classes (a dense tree is O(n²))
MAX_VALIDATION_SAMPLES = 3000


def score_key(val_nmi: float, gap: float) -> tuple[float, float]:
    """How two validation scores compare, larger is better: NMI, then closeness to the true number
    of classes (``gap = |#clusters − #classes|``, or its mean over the halves).

    Rounded, so that scores equal up to float rounding count as a tie. The trainer picks its best
    step by this key and :meth:`ClusterRule.key` extends it, so a step and a rule are judged the
    same way.
    """
    nmi_, gap = float(val_nmi), float(gap)
    # a score that could not be computed (NaN) ranks below every real one: compared as NaN, it
    # would never be replaced once first
    return (-math.inf if math.isnan(nmi_) else round(nmi_, 12), -math.inf if math.isnan(gap) else -round(gap, 9))


@dataclass(frozen=True)
class ClusterRule:
    """How to cluster: features, linkage and threshold, with the validation score that chose it.

    ``features`` is ``"model"`` (the learned embedding) or ``"raw"`` (the input features as
    given); ``mode`` is ``"learned"`` (the loss's own threshold) or ``"recalibrated"`` (the cut
    giving the true #classes on validation). Ward thresholds are Ward merge heights
    (``distance="euclidean"``: two single points merge at their Euclidean distance).
    """

    features: str
    linkage: str
    threshold: Threshold
    mode: str
    val_nmi: float = float("nan")
    val_clusters: int = 0
    val_true: int = 0
    step: int | None = None
    val_margin: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        what = "raw features" if self.features == "raw" else "model"
        how = ("own threshold" if self.mode == "learned" else "validation-calibrated")
        return f"{what}, {self.linkage} linkage at {how} {self.threshold.value:.4g} ({self.threshold.source})"

    def key(self) -> tuple[float, float, float]:
        """Sort key, larger is better: NMI, then closeness to the true #classes, then the margin
        of the cut (``log(h_next / h_prev)`` of the merge heights around the threshold: how far
        the threshold may move before the validation partition changes — a cut in a wide gap
        of the tree transfers to new data more safely than one squeezed between two merges).

        The raw features' rules rank among themselves by their scores on every labelled identity
        (``extra["rank_nmi"]`` …, see :func:`raw_rules`); :meth:`paired_key` is what compares a
        rule with the other features' on the validation halves."""
        if "rank_nmi" in self.extra:
            return (*score_key(self.extra["rank_nmi"], self.extra["rank_gap"]), round(self.extra["rank_margin"], 9))
        return self.paired_key()

    def paired_key(self) -> tuple[float, float, float]:
        """:meth:`key` on the validation halves (``val_nmi``, ``val_gap``, ``val_margin``)."""
        gap = self.extra.get("val_gap", abs(self.val_clusters - self.val_true))
        return (*score_key(self.val_nmi, gap), round(self.val_margin, 9))

    def cluster(self, Z: np.ndarray, *, threshold: Threshold | None = None, must_link: Any = None,
                cannot_link: Any = None, hook: Any = None) -> np.ndarray:
        """Labels of ``Z`` (already in this rule's feature space) at the rule's threshold, with
        must-link / cannot-link row pairs when given (not for a Ward rule); ``hook`` reports the
        threshold HAC's progress (minutes at scale)."""
        thr = threshold or self.threshold
        if self.linkage == "ward":
            if must_link is not None or cannot_link is not None:
                raise ConfigError("a Ward cut takes no must-link / cannot-link pairs; cut a complete-linkage rule")
            return WardThreshold(thr.value).fit(Z).labels_
        return ThresholdAgglomerative(thr.value, linkage=self.linkage, distance=thr.distance).fit(
            Z, must_link=must_link, cannot_link=cannot_link, **({"hook": hook} if hook is not None else {})).labels_

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "linkage": self.linkage, "threshold": self.threshold.to_dict(),
                "mode": self.mode, "val_nmi": float(self.val_nmi), "val_clusters": int(self.val_clusters),
                "val_true": int(self.val_true), "step": self.step, "val_margin": float(self.val_margin),
                "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClusterRule:
        return cls(features=str(d["features"]), linkage=str(d["linkage"]),
                   threshold=Threshold.from_dict(d["threshold"]), mode=str(d["mode"]),
                   val_nmi=float(d.get("val_nmi", float("nan"))), val_clusters=int(d.get("val_clusters", 0)),
                   val_true=int(d.get("val_true", 0)), step=d.get("step"),
                   val_margin=float(d.get("val_margin", 0.0)), extra=dict(d.get("extra") or {}))


def candidate_linkages(linkage: str) -> tuple[str, ...]:
    check_choice("linkage", linkage, LINKAGE_CHOICES)
    return AUTO_LINKAGES if linkage == "auto" else (linkage,)


def check_threshold_mode(mode: str) -> str:
    return check_choice("threshold_mode", mode, THRESHOLD_MODES)


def subsample_classes(y: np.ndarray, max_samples: int = MAX_VALIDATION_SAMPLES, *, seed: int = 0) -> np.ndarray:
    """Row indices of whole classes of ``y``, drawn at random until ``max_samples`` would be
    exceeded (all rows when there are fewer). Whole classes keep each class's size, which the
    cut heights depend on."""
    y = np.asarray(y)
    if y.shape[0] <= max_samples:
        return np.arange(y.shape[0])
    ids, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(ids.shape[0])
    keep, total = [], 0
    for c in order:
        if total + counts[c] > max_samples and len(keep) >= 2:
            continue
        keep.append(c)
        total += counts[c]
    return np.flatnonzero(np.isin(inv, keep))


def raw_calibration_set(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, *,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labelled items on which the *raw* features' rules are calibrated and scored.

    The raw features were not trained on any class, so the training classes are as unseen to
    them as the validation classes: using both gives their cut many more classes to be
    calibrated on. Cut heights depend on how many items a class has, and the validation classes
    are the ones drawn like the data to be clustered, so every training class is cut down to at
    most the median validation class size (seeded).
    """
    rng = np.random.default_rng(seed)
    y_val = np.asarray(y_val)
    cap = max(2, int(np.median(np.unique(y_val, return_counts=True)[1])))
    y_train = np.asarray(y_train)
    keep = []
    for c in np.unique(y_train):
        rows = np.flatnonzero(y_train == c)
        keep.append(rows if rows.shape[0] <= cap else np.sort(rng.choice(rows, cap, replace=False)))
    idx = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    X = np.concatenate([np.asarray(X_val, dtype=np.float32), np.asarray(X_train, dtype=np.float32)[idx]])
    y = np.concatenate([y_val, y_train[idx]])
    return X, y


def _margin(heights: np.ndarray, t: float) -> float:
    """``log(h_above / h_below)``: the merge heights of the tree just above and at/below ``t``
    (0 and +inf ends are clipped to a tiny height / twice the top merge)."""
    h = np.sort(np.asarray(heights, dtype=np.float64))
    if h.shape[0] == 0:
        return 0.0
    i = int(np.searchsorted(h, t, side="right"))
    below = h[i - 1] if i > 0 else 0.0
    above = h[i] if i < h.shape[0] else 2.0 * h[-1]
    tiny = max(h[-1], 1e-12) * 1e-6
    return float(np.log(max(above, tiny) / max(below, tiny)))


class ValidationSet:
    """Validation items of held-out classes, and how every candidate rule is scored on them.

    **Scores measure transfer.** The classes are split into two halves (seeded). A recalibrated
    rule is calibrated on one half — the cut giving that half's number of classes — and scored on
    the other, both ways round, the two scores averaged: exactly what happens to it on the user's
    data, whose classes it never saw. The loss's own threshold, which needs no calibration, is
    scored on the same two halves. (With fewer than 4 validation classes there are no halves and
    every rule is scored on all of them; recalibrated scores are then in-sample.) The threshold a
    chosen recalibrated rule finally uses is calibrated on *all* validation classes.
    """

    def __init__(self, y: np.ndarray, *, linkages: tuple[str, ...], seed: int = 0,
                 classes: str = "validation") -> None:
        y = np.asarray(y)
        self.n_all = int(y.shape[0])
        self.idx = subsample_classes(y, seed=seed)
        self.y = y[self.idx]
        ids = np.unique(self.y)
        self.n_true = int(ids.shape[0])
        # whose number of classes the cuts match, as their thresholds say; a sample of them said so
        # (an embeddings trial read "training+validation #clusters=110" for 300 identities as a miscount)
        n_classes = int(np.unique(y).shape[0])
        self.classes = classes if n_classes == self.n_true else f"a sample of {self.n_true:,} of {n_classes:,} {classes}"
        if self.n_true < 2:
            raise DataError(f"validation needs at least 2 classes, got {self.n_true}")
        self.linkages = linkages
        self.seed = seed
        if self.n_true >= 4:
            perm = np.random.default_rng(seed).permutation(ids)
            halves = (perm[0::2], perm[1::2])
            self.folds = [np.flatnonzero(np.isin(self.y, h)) for h in halves]
        else:
            self.folds = [np.arange(self.y.shape[0])]

    @staticmethod
    def _trees(Z: np.ndarray, linkages: set[str]) -> dict[str, np.ndarray]:
        return {lk: merge_tree(Z, lk) for lk in linkages}

    @staticmethod
    def _cut(tree: np.ndarray, height: float) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster

        return fcluster(tree, height, criterion="distance")

    def _logistic_cross_fit(self, Z: np.ndarray, logistic: Any, h: float) -> list[float]:
        """The squared cut each half is scored at: the 0.5 crossing of the same logistic model
        fitted on the other half (transfer, not in-sample). Where a half's pairs do not separate
        (no positive slope), that half is scored at the full fit's cut ``h``."""
        from .calibrate import LogisticCalibration

        if len(self.folds) < 2:
            return [h]
        out = []
        for i in range(2):
            f = self.folds[1 - i]
            try:
                fit = LogisticCalibration.fit_embeddings(Z[f], self.y[f], distance=logistic.distance, seed=self.seed,
                                                         class_weight=logistic.class_weight)
                out.append(fit.threshold().to("sqeuclidean").value)
            except DataError:
                out.append(h)
        return out

    def rules(self, Z: np.ndarray, *, features: str, learned: Threshold | None = None,
              modes: tuple[str, ...] = ("learned", "recalibrated"), step: int | None = None,
              logistic: Any = None) -> list[ClusterRule]:
        """Every candidate rule for the features ``Z``, scored.

        ``Z`` holds all validation rows, or only the kept ones (``Z[self.idx]``; cheaper to embed
        when the validation set was cut down to whole classes).

        ``learned`` is the loss's own threshold (complete linkage); ``logistic`` a fitted
        :class:`~kfree.evaluate.calibrate.LogisticCalibration` whose 0.5 crossing replaces the
        #classes match for complete linkage. It was fitted on all validation classes, so each half
        is scored at the crossing of a logistic fitted on the other half, as the other cuts are.
        """
        Z = np.asarray(Z)
        if Z.shape[0] == self.n_all:
            Z = Z[self.idx]
        elif Z.shape[0] != self.idx.shape[0]:
            raise DataError(f"Z has {Z.shape[0]} rows; give all {self.n_all} validation rows or the "
                            f"{self.idx.shape[0]} kept ones (ValidationSet.idx)")
        # only the trees some rule is cut from: complete for the loss's own threshold, each
        # candidate linkage for the recalibrated cuts
        need = set(self.linkages) if "recalibrated" in modes else set()
        if learned is not None and "learned" in modes:
            need.add("complete")
        full = self._trees(Z, need)
        fold_trees = [self._trees(Z[f], need) for f in self.folds] if len(self.folds) > 1 else [full]
        fold_y = [self.y[f] for f in self.folds]
        fold_k = [int(np.unique(yf).shape[0]) for yf in fold_y]

        def score(lk: str, heights: list[float]) -> tuple[list[float], list[float], list[float]]:
            """NMI, |#clusters − #classes| and cut margin of fold i's tree cut at heights[i]."""
            s, g, m = [], [], []
            for t, yf, kf, h in zip(fold_trees, fold_y, fold_k, heights):
                lab = self._cut(t[lk], h)
                s.append(nmi(yf, lab))
                g.append(abs(int(np.unique(lab).shape[0]) - kf))
                m.append(_margin(t[lk][:, 2], h))
            return s, g, m

        def make(lk: str, thr: Threshold, mode: str, height: float, heights: list[float]) -> ClusterRule:
            s, g, m = score(lk, heights)
            n_full = int(np.unique(self._cut(full[lk], height)).shape[0])
            # a recalibrated cut scored on the classes it was fitted to (no halves) is in-sample
            in_sample = mode == "recalibrated" and len(fold_trees) == 1
            return ClusterRule(features, lk, thr, mode, float(np.mean(s)), n_full, self.n_true, step,
                               _margin(full[lk][:, 2], height),
                               extra={"val_gap": float(np.mean(g)), "val_nmi_halves": [float(x) for x in s],
                                      "val_gap_halves": [float(x) for x in g], "val_margin_halves": m,
                                      "in_sample": in_sample})

        out: list[ClusterRule] = []
        if learned is not None and "learned" in modes:
            h = learned.to("sqeuclidean").value
            out.append(make("complete", learned, "learned", h, [h] * len(fold_trees)))
        if "recalibrated" in modes:
            for lk in self.linkages:
                if lk == "complete" and logistic is not None:
                    thr = logistic.threshold()
                    h = thr.to("sqeuclidean").value
                    out.append(make(lk, thr, "recalibrated", h, self._logistic_cross_fit(Z, logistic, h)))
                    continue
                h = cut_height(full[lk][:, 2], self.n_true)
                if len(fold_trees) > 1:  # calibrated on the other half
                    other = [cut_height(fold_trees[1 - i][lk][:, 2], fold_k[1 - i]) for i in range(2)]
                else:
                    other = [h]
                if lk == "ward":
                    thr = Threshold(h, "euclidean", f"{WARD_SOURCE}, {self.classes} #clusters={self.n_true}")
                else:
                    thr = Threshold(h, "sqeuclidean", f"{self.classes} #clusters={self.n_true}")
                out.append(make(lk, thr, "recalibrated", h, other))
        return out


def raw_rules(vset: ValidationSet, X_val: np.ndarray, y_val: np.ndarray, X_train: np.ndarray,
              y_train: np.ndarray, *, seed: int = 0) -> tuple[list[ClusterRule], np.ndarray, np.ndarray]:
    """The raw features' recalibrated rules, scored on the *same* halves of the validation
    identities as the model's rules (``vset``), and the calibration set of their final cuts.

    The raw features never trained on any class, so their cuts are calibrated on the training
    classes too (:func:`raw_calibration_set`): half *i* is cut at the height that gives the true
    number of classes on the training classes plus the other half, and scored on half *i* — the
    model's recalibrated cuts see the other half only. The final threshold is calibrated on all of
    them. Why the same halves: NMI depends on how many identities share a tree, and the raw
    features scored on many more identities than the model would give the model a head start; a
    paired comparison of the halves is what :func:`choose_rule` needs.

    Among themselves the raw features' cuts are still ranked by their score on all those
    identities (``extra["rank_nmi"]``, :meth:`ClusterRule.key`): many more identities than the
    validation halves hold, so a steadier choice between complete linkage and Ward. Returns
    ``(rules, X_rc, y_rc)``.
    """
    n_val = np.asarray(y_val).shape[0]
    if n_val != vset.n_all:
        raise DataError(f"y_val has {n_val} rows but the validation set was made of {vset.n_all}: give raw_rules "
                        "the rows the ValidationSet was built from")
    X_rc, y_rc = raw_calibration_set(X_train, y_train, X_val, y_val, seed=seed)
    linkages = set(vset.linkages)
    # the final cuts, and the ranking among them: on all of them
    ranked = ValidationSet(y_rc, linkages=vset.linkages, seed=seed, classes="training+validation").rules(
        X_rc, features="raw", modes=("recalibrated",))
    Zv = X_rc[:n_val][vset.idx]
    # a half's calibration tree holds training rows and the other half: as many rows as the
    # validation trees may hold (whole training classes, drawn at random)
    room = max(MAX_VALIDATION_SAMPLES - max(f.shape[0] for f in vset.folds), 2)
    train = n_val + subsample_classes(y_rc[n_val:], room, seed=seed)
    val_full = vset._trees(Zv, linkages)
    fold_trees = [vset._trees(Zv[f], linkages) for f in vset.folds] if len(vset.folds) > 1 else [val_full]
    out = []
    for rank in ranked:
        lk, thr = rank.linkage, rank.threshold
        h = thr.value  # (the trees' heights: squared distances, or Ward heights in euclidean units)
        s, g = [], []
        for i, f in enumerate(vset.folds):
            other = vset.folds[1 - i] if len(vset.folds) > 1 else np.zeros(0, dtype=np.int64)
            yc = np.concatenate([y_rc[train], vset.y[other]])
            tree = vset._trees(np.concatenate([X_rc[train], Zv[other]]), {lk})[lk]
            lab = vset._cut(fold_trees[i][lk], cut_height(tree[:, 2], int(np.unique(yc).shape[0])))
            s.append(nmi(vset.y[f], lab))
            g.append(abs(int(np.unique(lab).shape[0]) - int(np.unique(vset.y[f]).shape[0])))
        n_full = int(np.unique(vset._cut(val_full[lk], h)).shape[0])
        out.append(ClusterRule("raw", lk, thr, "recalibrated", float(np.mean(s)), n_full, vset.n_true, None,
                               _margin(val_full[lk][:, 2], h),
                               extra={"val_gap": float(np.mean(g)), "val_nmi_halves": [float(x) for x in s],
                                      "in_sample": False, "rank_nmi": rank.val_nmi,
                                      "rank_gap": rank.extra["val_gap"], "rank_margin": rank.val_margin,
                                      "rank_identities": rank.val_true}))
    return out, X_rc, y_rc


def halves_row(rules: list[ClusterRule]) -> dict[str, list[list[float]]]:
    """What a training history row keeps of the model's rules at one step for :func:`cross_fitted`:
    ``{"linkage/mode": [[NMI, gap, margin] of each validation half]}`` (empty when there are no
    halves): what :meth:`ClusterRule.key` ranks by, half by half."""
    out = {}
    for r in rules:
        nmis, gaps = r.extra.get("val_nmi_halves") or [], r.extra.get("val_gap_halves") or []
        margins = r.extra.get("val_margin_halves") or [0.0] * len(nmis)
        if len(nmis) >= 2 and len(gaps) == len(nmis) == len(margins):
            out[f"{r.linkage}/{r.mode}"] = [[float(n), float(g), float(m)] for n, g, m in zip(nmis, gaps, margins)]
    return out


def _half_key(score: list[float]) -> tuple[float, float, float]:
    """:meth:`ClusterRule.key` of one half's ``[NMI, gap, margin]``."""
    return (*score_key(score[0], score[1]), round(float(score[2]) if len(score) > 2 else 0.0, 9))


def cross_fitted(history: list[dict[str, Any]], *, select_best: bool = True) -> dict[str, Any] | None:
    """The model's score on each half of the validation identities at the step and rule chosen on
    the *other* half: what the model is worth once the choice of step is paid for.

    Why: the model's validation score is the best of about thirty validated steps (and a few rules
    per step), all on the same identities, so it is biased upwards — the winner's curse: models
    that beat the raw features on both halves mostly fell below them on the unseen identities
    (results/unseen/). Choosing on one half and
    scoring on the other removes the selection from the score (the recalibrated cuts' heights still
    come from the other half, as in every half's score: a cut is fitted there, not chosen there).
    It is conservative — the delivered step is chosen on both halves, with twice the identities —
    and a tie goes to the raw features, which keeps the promise.

    ``history`` holds the trainer's rows; those with ``val_halves`` (:func:`halves_row`) are the
    candidate steps — only the last one without ``select_best``, whose weights are then kept.
    Returns ``{"nmi": [..], "gap": [..], "picks": [[step, "linkage/mode"], ..], "unit": "step" or
    "epoch", "steps_chosen": bool}`` (half *i*'s score at the pick made on the other half;
    ``steps_chosen`` False when one step was a candidate and only the rule was chosen), or ``None``
    when there are no halves to cross.
    """
    if any("val_nmi" in r and not r.get("val_halves") for r in history):
        return None  # no halves (< 4 identities), or rows from an older kfree (a resumed run): not every step
    rows = [r for r in history if r.get("val_halves")]
    if not select_best:
        rows = rows[-1:]
    if not rows or any(len(h) != 2 for r in rows for h in r["val_halves"].values()):
        return None
    unit = "step" if all("step" in r for r in rows) else "epoch"
    nmi_out, gap_out, picks = [], [], []
    for i in range(2):
        j = 1 - i
        best: tuple[Any, dict[str, Any], str] | None = None
        for r in rows:
            # within a step the best rule by NMI, gap and margin, the first on a tie (best_rule);
            # across steps by NMI and gap, the later on a tie (the trainer's step key)
            name = max(r["val_halves"], key=lambda k: _half_key(r["val_halves"][k][j]))
            key = _half_key(r["val_halves"][name][j])[:2]
            if best is None or key >= best[0]:
                best = (key, r, name)
        _, r, name = best
        nmi_out.append(float(r["val_halves"][name][i][0]))
        gap_out.append(float(r["val_halves"][name][i][1]))
        picks.append([r.get(unit), name])
    return {"nmi": nmi_out, "gap": gap_out, "picks": picks, "unit": unit, "steps_chosen": len(rows) > 1}


def choose_rule(raw: list[ClusterRule], model: list[ClusterRule], *,
                cross: dict[str, Any] | None = None) -> ClusterRule:
    """The best model rule if it beats the best raw-feature rule on *every* half of the
    validation classes, else the best raw rule.

    Why every half: the model's score is the best of many validated steps and rules, the raw
    features' of a few rules, so on a handful of validation classes the model wins by luck more
    often than the raw features do (the winner's curse). Asking for a win on each half of the
    classes separately — two independent small tests — cuts those lucky wins (mean-only
    comparisons kept heads that lost on the unseen identities: results/unseen/). Both sides are
    scored on the same halves (:func:`raw_rules`), so the comparison is paired. With fewer than 4
    validation classes a recalibrated model cut can only be scored in-sample, while the raw
    features' cut is calibrated on the training classes and scored out of sample: such model
    cuts may not replace the raw features.

    ``cross`` (:func:`cross_fitted`): the model must also win on each half at the step and rule
    chosen on the other half, without the credit of having been chosen where it is judged
    (results/unseen/). Both tests, not the second alone: the
    cross-fitted rules are those the trainer tracked, and a logistic complete-linkage cut
    (``calibration="logistic"``) is fitted after training, so it is not among them.
    """
    if not raw:
        return best_rule(model)
    if not any(x.extra.get("in_sample") for x in raw):
        # an in-sample score (a cut fitted to < 4 validation classes and scored on them) cannot be
        # weighed against a transfer score: such model rules may not replace the raw features
        model = [x for x in model if not x.extra.get("in_sample")]
    if not model:
        return best_rule(raw)
    r, m = best_rule(raw), best_rule(model)
    rh, mh = r.extra.get("val_nmi_halves", [r.val_nmi]), m.extra.get("val_nmi_halves", [m.val_nmi])
    if len(rh) != len(mh):
        raise DataError("raw and model rules were scored on different halves of the validation identities; "
                        "score the raw features with raw_rules(vset, ...) on the model's ValidationSet")
    wins = m.paired_key() > r.paired_key() and all(b > a for a, b in zip(rh, mh))  # half by half, same identities
    if wins and cross is not None and len(cross["nmi"]) == len(rh):
        ch = cross["nmi"]
        wins = (score_key(float(np.mean(ch)), float(np.mean(cross["gap"]))) > r.paired_key()[:2]
                and all(b > a for a, b in zip(rh, ch)))
    return m if wins else r


def best_rule(rules: list[ClusterRule]) -> ClusterRule:
    """The rule with the largest :meth:`ClusterRule.key`; on a tie the earlier in the list."""
    if not rules:
        raise DataError("no candidate clustering rule to choose from")
    best = rules[0]
    for r in rules[1:]:
        if r.key() > best.key():
            best = r
    return best
