"""The scikit-learn-style estimator: learn an embedding *and* the threshold where clusters end.

>>> learner = ClusterLearner(TrainConfig(loss="bcl", epochs=30, seed=0)).fit(X_train, y_train)
>>> labels = learner.cluster(X_new)          # unseen identities, no K given
>>> learner.threshold_                        # the chosen rule's cut, e.g. Threshold(value=..., 'euclidean',
...                                           # 'Ward, training+validation #clusters=30') for raw features
>>> learner.learned_threshold_                # the loss's own: Threshold(value=4b, 'sqeuclidean', '4b')

``fit`` holds out a fraction of the *identities* as validation classes, trains the head with the
chosen loss, validating every few optimisation steps, and keeps the step that clusters the
validation classes best. It then compares every way of clustering it can offer — the loss's own
threshold, validation-calibrated cuts, and the same cuts of the *raw input features* — on those
classes and keeps the best (``rule_``; ``selection_`` records all of them). When the raw features
win, the model says so and clusters them: a learned model is never worse than its input on the
held-out identities without saying so. That is a promise about those identities: on new ones of
another size a kept model can still lose to its input (a trial's Banking77 model, kept at 0.92 on
both validation halves, scored 0.847 where the raw features' Ward cut scored 0.901), so hold out
identities drawn like the data you will cluster (``X_val``, ``y_val``).
``transform`` maps into the chosen space; ``cluster`` cuts it. Seeded runs are reproducible bit
for bit on CPU.

The estimator orchestrates; the jobs live below it: :class:`~kfree.config.TrainConfig` says how to
train (one typed config, the same one the trainer takes), :mod:`kfree.train` trains,
:mod:`kfree.evaluate.selection` and :mod:`kfree.evaluate.calibrate` score and calibrate the
clustering rules, :mod:`kfree.utils.model_file` writes and reads the model file and
:mod:`kfree.utils.provenance` records versions. ``BallClusterLearner`` is the old name (with the
training options spelled out flat); it still works and warns.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ._version import __version__
from .config import TrainConfig, check_choice, check_count, finite_positive
from .distances import check_features, check_labels, length_range, resolve_cut, unlike_lengths
from .exceptions import (
    ClusterSizeWarning,
    ConfigError,
    DataError,
    DataWarning,
    FeatureNamesWarning,
    ModelError,
    ParameterConflictWarning,
    ResourceError,
    ScaleWarning,
    user_stacklevel,
)
from .threshold import WARD_SOURCE, Threshold
from .utils.model_file import MODEL_FORMAT, read_model, write_model

log = logging.getLogger(__name__)

#: the training options a TrainConfig holds
_TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))

#: above this many rows ``cluster`` does not cut a chosen Ward rule (O(n²) time) but the best
#: validated complete-linkage rule (see :meth:`ClusterLearner.rule_for_rows`)
WARD_MAX_ROWS = 50_000
#: a chosen Ward cut gives way to the best validated complete-linkage cut when that cut finds
#: clusters of fewer than this share of the rows per identity the Ward cut was calibrated on
#: (see :meth:`ClusterLearner.cluster`)
WARD_MIN_SIZE_RATIO = 0.5
#: ... or this many times as many: there Ward over-splits more than complete linkage does (chosen
#: on ``results/benchmarks/ward_size.md``, where every switch at 2.5 gained and one at 2.4 lost)
WARD_MAX_SIZE_RATIO = 2.5
#: ... estimated, above this many rows, on a seeded sample of this many (the check is a second
#: agglomeration, complete linkage)
WARD_SIZE_CHECK_ROWS = 5_000
#: ... and kept, with a warning, from this many times as many: Ward splits identities that much larger
#: than its validation ones, but the complete-linkage cut scored lower there (``ward_size.md``)
WARD_WARN_SIZE_RATIO = 1.5
#: ... and below this share of them (an estimate biased towards 1: that cut, calibrated on the larger
#: identities, merges smaller ones too; a promise trial's identities of 0.30 the size were estimated
#: at 0.58, and Ward found 12 clusters for 27 without a word). No true-size cell of ``ward_size.md``
#: was estimated below 0.76
WARD_WARN_LOW_RATIO = 0.7
#: ... but kept when that complete-linkage cut finds clusters within this factor of the size it found
#: on the validation rows: such a batch is drawn like them, whatever that cut does to their identities
WARD_LIKE_VALIDATION = 1.1
#: a model whose Ward cut was calibrated on at least this many identities (the raw features': training and
#: validation ones; a model's: the validation ones) reads it at a batch's rows per identity
#: (:meth:`ClusterLearner._ward_at_batch_size`). With fewer the curve is noise: curves on the rows of 3, 4,
#: 5 and 6 held-out Banking77 intents changed NMI by −0.129, −0.056, +0.021 and +0.083 on average over 15
#: cells each (down to −0.63), on 4 and 6 CelebA identities by −0.007 and −0.006 (one trial, seeds 0–4, not a
#: committed table); on 10 and more identities they gained (``results/benchmarks/held_out_size.md``)
SIZE_CURVE_MIN_IDENTITIES = 8
#: a complete-linkage cut is used as validated, but said to be at risk of splitting identities
#: when a row's cluster here holds this many times as many rows as a validation row's identity
COMPLETE_SIZE_RATIO = 2.5
#: the estimator's own parameters (everything else is in its TrainConfig)
LEARNER_PARAMS = ("head", "val_identities", "linkage", "threshold_mode", "compare_raw", "threshold", "calibration")


class ClusterLearner(TransformerMixin, BaseEstimator):
    """Learn an embedding whose geometry carries the clustering threshold — and check it.

    Parameters
    ----------
    train : TrainConfig, optional
        How to train the head: loss (``"bcl"`` by default; see ``kfree.registry.names("loss")``)
        and its parameters, head sizes (``dims``; ``None`` = the head's default), schedule
        (``epochs`` as an upper bound, ``lr``, ``weight_decay``), batches (``p`` identities ×
        ``k`` samples, or noisy triplets), validation every ``eval_every_steps`` steps with early
        stopping after ``patience`` validations, and the ``seed``. ``None``: ``TrainConfig()``.
    head : {"residual", "mlp"}
        ``"residual"`` (default): ``normalize(x + g(x))`` with ``g``'s last layer zero at the
        start, so training starts from the input geometry (:class:`~kfree.embed.models.ResidualEmbedder`);
        ``"mlp"``: the BCL paper's MLP (``train.dims`` = layer sizes, embedding size last).
    val_identities : float or int
        Identities held out for validation when ``fit`` is not given ``X_val``/``y_val``
        (fraction in (0, 1) or a count; 0 disables validation, selection and the raw check).
    linkage : {"auto", "complete", "average", "single", "ward"}
        Linkage of the recalibrated candidates. ``"auto"``: complete and Ward, whichever
        clusters the validation classes better. The loss's own threshold always uses complete
        linkage (BCL's ``4b`` is derived for it).
    threshold_mode : {"auto", "learned", "recalibrated"}
        Which thresholds compete: the loss's own (``"learned"``; losses that imply none are
        always calibrated), cuts calibrated to the number of validation classes
        (``"recalibrated"``), or both (``"auto"``).
    compare_raw : bool
        Also score the raw input features (recalibrated cuts) and use them if they win.
    threshold : float, optional
        Override the chosen threshold (in its distance units).
    calibration : {"n_clusters", "logistic"}
        How a recalibrated complete-linkage cut is fitted: where HAC gives the true number of
        validation identities (the BCL paper's protocol), or the 0.5 crossing of a logistic
        regression on validation pair distances (the ICPR 2020 protocol; its probabilities feed
        ``method="multicut"``).

    Attributes
    ----------
    model_ : the trained head (weights of the best validation step)
    loss_ : EmbeddingLoss
    rule_ : :class:`~kfree.evaluate.selection.ClusterRule` — features, linkage and threshold used
    uses_raw_ : bool — the raw features won on validation; ``transform``/``cluster`` use them
    selection_ : dict — every candidate rule with its validation score, the chosen one and why
    threshold_ : Threshold — the chosen rule's threshold (or the override)
    learned_threshold_ : Threshold — the loss's own threshold (or its calibration)
    pair_calibration_ : LogisticCalibration or None — ``p(different | d)`` fitted on pairs of the
        chosen features: of the held-out identities for the model's embedding, of the training and
        held-out identities for the raw features (which trained on none, as their cuts are); what
        ``method="multicut"`` cuts by (a complete-linkage cut is a cluster's diameter, too wide a
        bound for single pairs); ``None`` without held-out identities
    labels_, n_clusters_ : clusters of the training data (set by ``fit_predict`` only).
    history_ : list of dict — the validation curve (step, epoch, loss, val_nmi, …)
    n_features_in_ : int
    """

    def __init__(
        self,
        train: TrainConfig | None = None,
        *,
        head: str = "residual",
        val_identities: float = 0.2,
        linkage: str = "auto",
        threshold_mode: str = "auto",
        compare_raw: bool = True,
        threshold: float | None = None,
        calibration: str = "n_clusters",
    ) -> None:
        self.train = train
        self.head = head
        self.val_identities = val_identities
        self.linkage = linkage
        self.threshold_mode = threshold_mode
        self.compare_raw = compare_raw
        self.threshold = threshold
        self.calibration = calibration

    @classmethod
    def from_params(cls, **params: Any) -> ClusterLearner:
        """Build from one flat mapping of training options and estimator parameters.

        For configuration files, command lines and model files of format ``kfree-model/2``,
        which spell everything in one level: ``ClusterLearner.from_params(loss="bcl", epochs=30,
        threshold_mode="auto")`` is ``ClusterLearner(TrainConfig(loss="bcl", epochs=30),
        threshold_mode="auto")``. An unknown name raises a ConfigError listing the valid ones.
        """
        unknown = sorted(set(params) - _TRAIN_FIELDS - set(LEARNER_PARAMS))
        if unknown:
            raise ConfigError(f"unknown learner parameter(s) {unknown}; training options are "
                              f"{sorted(_TRAIN_FIELDS)}, estimator parameters {list(LEARNER_PARAMS)}")
        train = {k: v for k, v in params.items() if k in _TRAIN_FIELDS}
        if train.get("loss_params") is None:
            train.pop("loss_params", None)
        own = {k: v for k, v in params.items() if k in LEARNER_PARAMS}
        return cls(TrainConfig(**train), **own)

    def set_params(self, **params: Any) -> ClusterLearner:
        """scikit-learn's ``set_params``, plus ``train__<option>`` for one training option
        (``GridSearchCV(..., {"train__epochs": [10, 30]})``, ``clusterlearner__train__lr`` in a
        Pipeline): the TrainConfig is immutable, so it is replaced by a checked copy."""
        options = {k.partition("__")[2]: params.pop(k) for k in list(params) if k.startswith("train__")}
        if options:
            if "train" not in self.get_params(deep=False):
                raise ConfigError(f"{type(self).__name__} spells training options flat: set_params("
                                  f"{', '.join(f'{k}=…' for k in options)})")
            base = params.pop("train", self.train)
            _check_train(base)
            if unknown := sorted(set(options) - _TRAIN_FIELDS):
                raise ConfigError(f"unknown training option(s) {unknown}; they are {sorted(_TRAIN_FIELDS)}")
            params["train"] = (TrainConfig() if base is None else base).replace(**options)
        return super().set_params(**params)

    # ------------------------------------------------------------------ fitting
    def _train_config(self) -> TrainConfig:
        from .embed.models import HEADS

        check_choice("head", self.head, HEADS)
        _check_train(cfg := self.train)
        return TrainConfig() if cfg is None else cfg

    @property
    def train_config(self) -> TrainConfig:
        """The TrainConfig in effect (``train``, or the defaults when it is ``None``)."""
        return self._train_config()

    def _modes(self, implied: bool) -> tuple[str, ...]:
        if not implied or self.threshold_mode == "recalibrated":
            return ("recalibrated",)
        return ("learned",) if self.threshold_mode == "learned" else ("learned", "recalibrated")

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None, hook=None,
            checkpoint: str | Path | None = None) -> ClusterLearner:
        """Train on labelled data ``X`` (n, d) with identity labels ``y`` (n,).

        ``X_val``/``y_val`` are validation data of *other* identities (label values that ``y``
        also holds are one identity on both sides, and a warning); when omitted,
        ``val_identities`` of the identities in ``y`` are held out automatically. Draw them like
        the data you will cluster (similar items per identity): calibrated cuts depend on it.

        The run is seeded by ``seed`` alone and leaves the caller's random state as it found it:
        Python's, NumPy's and torch's global generators are seeded inside and restored afterwards
        (:func:`kfree.utils.seeding.seeded`).

        Under ``torchrun`` the processes train the head together (each embeds a slice of every
        batch; :mod:`kfree.train.distributed`); rank 0 validates and selects the rule, and every
        process returns with the same fitted attributes.

        ``checkpoint``: a file where training saves its state after every epoch, and from which a
        fit resumes when it exists, so a stopped run continues where it was and ends with the
        model an uninterrupted run gives (:mod:`kfree.train.trainer`); a checkpoint of other
        training data or settings is refused (:class:`~kfree.exceptions.CheckpointError`).

        ``hook``: a progress callback, called after every epoch as ``hook("train", completed=epoch,
        total=epochs, loss=…, steps=…, stopped_early=…, **scores)``, where ``scores`` are the latest
        validation scores and ``val_rule``, the rule they are of (training is silent otherwise;
        ``hook=lambda stage, **s: print(s["completed"], s.get("loss"))`` prints a line per epoch).
        """
        from .utils.seeding import seeded

        cfg = self._train_config()
        for name in ("labels_", "n_clusters_"):  # fit_predict's, of the data fitted before
            self.__dict__.pop(name, None)
        with seeded(cfg.seed):
            # imported inside: a first import of the training stack (scipy, scikit-learn) draws
            # from Python's global generator, which fit promises to leave as it found it
            from .train.distributed import session

            with session():  # several processes only under torchrun; one otherwise
                self._fitting = True  # (fit's own steps pass the rows on without their names)
                try:
                    return self._fit(cfg, X, y, X_val=X_val, y_val=y_val, hook=hook, checkpoint=checkpoint)
                finally:
                    del self._fitting

    def _fit(self, cfg: TrainConfig, X: Any, y: Any, *, X_val: Any, y_val: Any, hook,
             checkpoint: str | Path | None = None) -> ClusterLearner:
        """fit's three steps: the rows checked and split (:meth:`_fit_rows`), the head trained
        and scored on the validation identities step by step, and the rule chosen
        (:meth:`_choose_rule`); then what was chosen and how is recorded."""
        import torch

        from . import registry
        from .embed.encode import encode
        from .embed.models import build_head
        from .evaluate.selection import ValidationSet, best_rule, halves_row
        from .train.distributed import current, share_attributes
        from .train.trainer import train_embedding
        from .utils.provenance import versions

        seed = cfg.seed
        t0 = time.perf_counter()
        X, y, X_tr, y_tr, X_val, y_val, n_ids, linkages = self._fit_rows(cfg, X, y, X_val, y_val)
        has_val = X_val is not None and len(np.unique(y_val)) >= 2
        self.n_features_in_ = X.shape[1]
        model = build_head(self.head, X.shape[1], cfg.dims, dropout=cfg.dropout)
        Xt = torch.tensor(np.asarray(X_tr, dtype=np.float32))
        model.set_standardization(Xt.mean(0), Xt.std(0) if Xt.shape[0] > 1 else torch.ones(X.shape[1]))
        loss_params = dict(cfg.loss_params)
        if cfg.sampler == "triplets" and cfg.loss.startswith("triplet"):
            loss_params.setdefault("mining", "given")  # the sampler already chose the triplets
        loss = registry.get("loss", cfg.loss, **loss_params)
        implied = loss.implied_threshold() is not None
        modes = self._modes(implied)
        if self.calibration == "logistic" and "recalibrated" not in modes:
            raise ConfigError(f"calibration='logistic' fits the recalibrated cut, but threshold_mode="
                              f"{self.threshold_mode!r} with loss {cfg.loss!r} keeps only the loss's own "
                              "threshold: use threshold_mode 'auto' or 'recalibrated', or leave calibration")
        vset = ValidationSet(y_val, linkages=linkages, seed=seed) if has_val else None
        X_val_np = np.asarray(X_val, dtype=np.float32) if has_val else None

        def score_fn(m, lo) -> dict[str, Any]:
            # only the kept validation rows are embedded: a large validation set costs no more
            rules = vset.rules(encode(m, X_val_np[vset.idx]), features="model", learned=lo.implied_threshold(),
                               modes=modes)
            best = best_rule(rules)
            row: dict[str, Any] = {"val_nmi": best.val_nmi, "val_clusters": best.val_clusters,
                                   "val_true": best.val_true, "val_gap": best.extra["val_gap"],
                                   "val_rule": f"{best.linkage}/{best.mode}", "val_halves": halves_row(rules)}
            for r in rules:
                row[f"val_nmi_{r.linkage}_{r.mode}"] = r.val_nmi
                row[f"val_clusters_{r.linkage}_{r.mode}"] = r.val_clusters
            return row

        result = train_embedding(model, loss, X_tr, y_tr, cfg, hook=hook, score_fn=score_fn if has_val else None,
                                 checkpoint_path=checkpoint)
        self.model_ = model
        self.loss_ = loss
        dctx = current()
        if dctx.enabled and not dctx.is_main:  # rank 0 selects the rule; this process receives it
            share_attributes(self, dctx, skip=("model_", "loss_"))
            return self
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.best_step_ = result.best_step
        chosen, candidates, thr, cross, raw_pair_cut, cal_rows = self._choose_rule(
            cfg, loss, model, result, vset, X_val_np, y_val, X_tr, y_tr, modes)
        self.learned_threshold_ = thr
        self.rule_ = chosen
        self.uses_raw_ = chosen.features == "raw"
        self.selection_ = {
            "chosen": chosen.to_dict(),
            "candidates": [r.to_dict() for r in candidates],
            "compared_with_raw": bool(has_val and self.compare_raw),
            "reason": _selection_reason(chosen, candidates, has_val, self.compare_raw, cross) + (
                f" (each half holds {len(np.unique(y_val)) // 2} identities: scores of so few vary much from half "
                "to half; validate on more identities, e.g. kfree train --validation)"
                if has_val and 4 <= len(np.unique(y_val)) < 8 else ""),
        }
        if has_val:  # what a Ward height was calibrated for (its heights grow with cluster sizes)
            self.selection_["val_rows_per_identity"] = vset.y.shape[0] / vset.n_true
            sizes = np.unique(vset.y, return_counts=True)[1].astype(np.float64)
            self.selection_["val_rows_per_row_identity"] = float((sizes ** 2).sum() / sizes.sum())
        if cross is not None:
            self.selection_["model_cross_fit"] = cross
        if raw_pair_cut is not None:
            self.selection_["raw_pair_cut"] = raw_pair_cut.to_dict()
        self.provenance_ = {
            "loss": cfg.loss, "loss_hparams": loss.hparams(), "train_config": cfg.to_dict(), "head": self.head,
            "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "n_identities": int(n_ids),
            "n_train_identities": len(np.unique(y_tr)),
            "n_val_identities": len(np.unique(y_val)) if y_val is not None else 0,
            "best_epoch": result.best_epoch, "best_step": result.best_step, "steps": result.steps,
            "stopped_early": result.stopped_early, "seed": seed, "versions": versions(),
            "train_time_s": round(time.perf_counter() - t0, 3),
        }
        if has_val:  # the size check's reference: the same estimate a batch gets, on the validation rows
            self.selection_["val_complete_rows_per_cluster"] = self._complete_rows_per_cluster(X_val_np)
            n_cal = len(np.unique(cal_rows[1]))
            if chosen.linkage == "ward" and n_cal >= SIZE_CURVE_MIN_IDENTITIES:
                from .evaluate.calibrate import SizeCurve

                # a Ward cut holds for identities of the size it was calibrated on: cluster reads it at a
                # batch's size (_ward_at_batch_size), on the rows it was calibrated on
                self.selection_["size_curve"] = SizeCurve.fit(*cal_rows, seed=seed).to_dict()
        # the training rows' lengths (5th, 95th percentile), after fit's own use of _features: rows of
        # another encoder or scale are said (_warn_if_unlike)
        self.provenance_["row_lengths"] = list(length_range(X))
        if dctx.enabled:
            self.provenance_["distributed"] = {"world_size": dctx.world_size, "backend": dctx.backend}
            share_attributes(self, dctx, skip=("model_", "loss_"))
        return self


    def _fit_rows(self, cfg: TrainConfig, X: Any, y: Any, X_val: Any, y_val: Any) -> tuple:
        """The arguments of fit checked (one clear error or warning each) and the rows split:
        ``(X, y, X_tr, y_tr, X_val, y_val, n_ids, linkages)``. Without ``X_val``, and with 4 or
        more identities, ``val_identities`` of y's identities are held out (seeded by
        ``cfg.seed``; ``val_identities=0`` holds out none); else all of them train."""
        from .data.splits import split_identities
        from .evaluate.calibrate import CALIBRATION_METHODS
        from .evaluate.selection import candidate_linkages, check_threshold_mode

        if y is None:
            raise DataError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "fit needs identity labels (one per row of X)"
            )
        seed = cfg.seed
        names = _column_names(X)  # a DataFrame's column names: feature_names_in_, as scikit-learn keeps them
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        else:
            self.__dict__.pop("feature_names_in_", None)
        val_names = _column_names(X_val)
        if names is not None and val_names is not None and val_names != names:
            raise DataError("X_val's columns are not X's (" + ("in another order" if set(val_names) == set(names)
                            else f"{sorted(set(val_names) ^ set(names))[:5]} in one only") + "); select them as "
                            "in X (X_val[X.columns]): a validation row must mean what a training row means")
        check_choice("calibration", self.calibration, CALIBRATION_METHODS)
        linkages = candidate_linkages(self.linkage)
        check_threshold_mode(self.threshold_mode)
        X = check_features(X, min_samples=2)
        if names is not None:  # an id left in a DataFrame: warned as a table's is
            from .data.io import warn_id_like

            warn_id_like(X, [str(c) for c in names], "X", "drop them from X first (X.drop(columns={names}))")
        y = check_labels(y, X.shape[0])
        _check_val_identities(self.val_identities)
        if isinstance(self.threshold, Threshold):  # (saved with the model as a number: a review)
            raise ConfigError(f"threshold={self.threshold!r}: the constructor's threshold is a number in the chosen "
                              "rule's distance units, saved with the model; pass a Threshold to "
                              "cluster(threshold=...)")
        if self.threshold is not None:
            finite_positive("threshold", self.threshold, "an override of the chosen cut, in its distance units")
        if (X_val is None) != (y_val is None):
            raise ConfigError("give X_val and y_val together (validation rows and their identity labels), or "
                              "neither (val_identities of y's identities are then held out)")
        n_ids = np.unique(y).shape[0]
        if n_ids < 2:
            raise DataError(f"training needs at least 2 identities, got {n_ids}; add labelled data of other identities")
        _check_identities(y, "y")
        if X_val is None and self.val_identities and n_ids < 4:
            warnings.warn(f"only {n_ids} identities: none held out for validation (it needs 2, and training "
                          "keeps 2), so the loss's own threshold is used unchecked; give X_val/y_val "
                          "(kfree train --validation) or more identities", DataWarning, stacklevel=user_stacklevel())
        if X_val is None and self.val_identities and n_ids >= 4:
            n_val = self.val_identities
            fraction = isinstance(n_val, (float, np.floating)) and n_val < 1  # np.float32(0.5) too
            asked = round(n_val * n_ids) if fraction else int(n_val)
            n_val_count = min(max(asked, 2), n_ids - 2)
            if n_val_count != asked and not fraction:
                warnings.warn(f"val_identities={asked}: holding out {n_val_count} of the {n_ids} identities "
                              "instead (validation needs 2 identities, training keeps at least 2)", DataWarning, stacklevel=user_stacklevel())
            sp = split_identities(y, n_ids - n_val_count, n_val_count, seed=seed)
            X_tr, y_tr, X_val, y_val = X[sp.train_idx], y[sp.train_idx], X[sp.val_idx], y[sp.val_idx]
        else:
            X_tr, y_tr = X, y
            if X_val is not None:
                X_val = check_features(X_val, name="X_val", min_samples=2)
                if X_val.shape[1] != X.shape[1]:
                    raise DataError(f"X_val has {X_val.shape[1]} features but X has {X.shape[1]}")
                y_val = check_labels(y_val, X_val.shape[0], name="y_val")
                shared = sorted(set(np.unique(y).tolist()) & set(np.unique(y_val).tolist()), key=str)
                if shared:  # labels name identities: a shared value is one identity on both sides
                    warnings.warn(
                        f"{len(shared)} label value(s) of y_val are also in y (e.g. {shared[0]!r}): those "
                        "identities are trained on, so validating on them overrates the model against "
                        "the raw features, and the raw features' cut treats each value as one identity. "
                        "Give X_val/y_val identities that y does not hold; if the two label sets are "
                        "numbered separately, make their values distinct", DataWarning, stacklevel=user_stacklevel())
                _check_identities(y_val, "y_val")
                if np.unique(y_val).shape[0] < 2:  # (a README trial: the unchecked cut it shipped lost to no file)
                    raise DataError("y_val (the --validation file) holds one identity: a cut is checked on 2 or more; "
                                    "give validation rows of several identities, or none (identities of y are then "
                                    "held out)")
                _warn_other_scale(X, X_val, int(np.unique(y_val).shape[0]))
        return X, y, X_tr, y_tr, X_val, y_val, n_ids, linkages

    def _choose_rule(self, cfg: TrainConfig, loss, model, result, vset, X_val_np, y_val, X_tr, y_tr,
                     modes) -> tuple:
        """The rule fit delivers, with the candidates it was chosen from: ``(chosen, candidates,
        learned_threshold, cross, raw_pair_cut, cal_rows)``, ``cal_rows`` the rows and identities
        the chosen cut was calibrated on (None without validation identities); sets
        ``calibration_`` and ``pair_calibration_``.

        With validation identities (``vset``), the model's rules at the kept step and, with
        ``compare_raw``, the raw features' rules are scored on them, and
        :func:`~kfree.evaluate.selection.choose_rule` picks one (a tie goes to the raw features).
        Without, the model's own or training-calibrated cut is used unchecked."""
        from .embed.encode import encode
        from .evaluate.calibrate import LogisticCalibration, threshold_for_n_clusters
        from .evaluate.selection import (
            ClusterRule,
            choose_rule,
            cross_fitted,
            raw_rules,
            subsample_classes,
        )

        seed, has_val = cfg.seed, vset is not None
        implied = loss.implied_threshold() is not None
        thr = loss.implied_threshold()
        self.calibration_ = self.pair_calibration_ = None
        candidates: list[ClusterRule] = []
        raw_pair_cut = cross = cal_rows = None
        if has_val:
            Z_val = encode(model, X_val_np)
            if self.calibration == "logistic":  # the recalibrated complete cut: a logistic crossing
                self.calibration_ = LogisticCalibration.fit_embeddings(Z_val, y_val, seed=seed)
            model_rules = vset.rules(Z_val, features="model", learned=thr, modes=modes, step=result.best_step,
                                     logistic=self.calibration_)
            raw = []
            if self.compare_raw:
                # the raw features never trained on any class: their cuts are calibrated on the
                # training identities too, and scored on the model's own halves of validation
                raw, X_rc, y_rc = raw_rules(vset, X_val_np, y_val, X_tr, y_tr, seed=seed)
            candidates = raw + model_rules
            # the model's halves scored at the step chosen on the other half (no winner's curse)
            cross = cross_fitted(result.history, select_best=cfg.select_best)
            chosen = choose_rule(raw, model_rules, cross=cross)  # a tie goes to the raw features
            if chosen.features == "raw":
                kept = subsample_classes(y_rc, seed=seed)  # the rows raw_rules calibrated on
                cal_rows = (X_rc[kept], y_rc[kept])
                self.pair_calibration_ = _pair_calibration(X_rc, y_rc, seed)
                if all(r.linkage == "ward" for r in raw):  # (linkage="ward"): see _distance_rule
                    raw_pair_cut = threshold_for_n_clusters(X_rc, len(np.unique(y_rc)), linkage="complete")
            else:
                cal_rows = (Z_val[vset.idx], vset.y)
                self.pair_calibration_ = self.calibration_ or _pair_calibration(Z_val, y_val, seed)
            if thr is None:  # the model's own pair-distance cut (what multicut and --state use)
                own = ([r for r in model_rules if r.linkage == "complete"]
                       or [r for r in model_rules if r.linkage != "ward"])
                # Ward's merge height is no pair distance: with Ward alone, calibrate a complete cut
                thr = own[0].threshold if own else threshold_for_n_clusters(
                    Z_val, len(np.unique(y_val)), linkage="complete")
        else:
            if thr is None:  # nothing held out: calibrate on the training identities, and say so
                Z_cal = encode(model, np.asarray(X_tr, dtype=np.float32))
                if self.calibration == "logistic":
                    self.calibration_ = LogisticCalibration.fit_embeddings(Z_cal, y_tr, seed=seed)
                    thr = self.calibration_.threshold()
                else:
                    thr = threshold_for_n_clusters(Z_cal, len(np.unique(y_tr)), linkage="complete")
                thr = Threshold(thr.value, thr.distance, thr.source + " (on training identities)")
            lk = "complete" if self.linkage in ("auto", "ward") else self.linkage
            chosen = ClusterRule("model", lk, thr, "learned" if implied else "recalibrated", step=result.best_step)
        return chosen, candidates, thr, cross, raw_pair_cut, cal_rows

    # ---------------------------------------------------------------- inference
    @property
    def threshold_(self) -> Threshold:
        """The threshold ``cluster`` uses: the override, else the chosen rule's."""
        self._check_fitted()
        if self.threshold is not None:
            return Threshold(self.threshold, self.rule_.threshold.distance, "user override")
        return self.rule_.threshold

    def _check_fitted(self) -> None:
        from sklearn.exceptions import NotFittedError

        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) or load a model")

    def _check_X(self, X: Any, min_samples: int = 1) -> np.ndarray:
        fitted, names = getattr(self, "feature_names_in_", None), _column_names(X)
        if fitted is not None and names is not None and names != [str(c) for c in fitted]:
            # a DataFrame's columns must be the ones fitted, in that order (else silently permuted)
            extra, missing = sorted(set(names) - set(fitted)), sorted(set(fitted) - set(names))
            what = (f"it has {extra[:5]} that it was not, lacks {missing[:5]}" if extra or missing
                    else "they are in another order")
            raise DataError(f"X's columns are not those {type(self).__name__} was trained on: {what}; select "
                            "them as in training (X[learner.feature_names_in_])")
        if fitted is not None and not hasattr(X, "columns") and not getattr(self, "_fitting", False):
            # (a scikit-learn trial: an array of the columns in reverse order was taken without a word)
            shown = ", ".join(str(c) for c in fitted[:4]) + (", …" if len(fitted) > 4 else "")
            warnings.warn(f"X has no column names, but {type(self).__name__} was fitted on a DataFrame with them "
                          f"({shown}): its columns are taken as those, in that order", FeatureNamesWarning,
                          stacklevel=user_stacklevel())
        if fitted is None and names is not None and not getattr(self, "_fitting", False):
            # as scikit-learn warns (a scikit-learn user's trial): a model fitted on an array knows no
            # columns, so a DataFrame's are taken by position, whatever their names
            warnings.warn(f"X has feature names, but {type(self).__name__} was fitted without feature names: its "
                          "columns are taken by position", FeatureNamesWarning, stacklevel=user_stacklevel())
        X = check_features(X, min_samples=min_samples)
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (the model was trained on them); "
                "use features from the same extractor as the training data"
            )
        return X

    def embed(self, X: Any) -> np.ndarray:
        """The learned embedding of ``X`` (n, d) → (n, embedding_dim), unit-norm rows, whatever
        rule was chosen."""
        from .embed.encode import encode

        self._check_fitted()
        X = self._check_X(X)
        self._warn_if_unlike(X, embedding=True)
        return encode(self.model_, X)

    def transform(self, X: Any) -> np.ndarray:
        """``X`` in the space ``cluster`` cuts: the learned embedding, or the raw features (as
        float32) when they won on validation (``uses_raw_``)."""
        return self._features(X)

    def transform_sha256(self) -> str:
        """A SHA-256 of what :meth:`transform` computes: the features it returns (raw, or the
        model's), the input columns it takes, and, for the model's, the head's layers, weights
        and buffers (its standardisation too). Two model files with the same value embed every row
        alike: a cluster state made with one takes rows embedded by the other. A model trained
        again deterministically is another file (its provenance holds the training's wall time),
        and was refused by the states of the first (an operations trial)."""
        import hashlib
        import json

        self._check_fitted()
        names = getattr(self, "feature_names_in_", None)
        h = hashlib.sha256(json.dumps({
            "features": "raw" if self.uses_raw_ else "model", "n_features": int(self.n_features_in_),
            "names": None if names is None else [str(c) for c in names],
            "head": None if self.uses_raw_ else [repr(self.model_), getattr(self.model_, "config", dict)()]},
            sort_keys=True, default=str).encode())  # (config: normalize is in neither the repr nor the weights)
        if not self.uses_raw_:
            for key, value in sorted(self.model_.state_dict().items()):
                t = value.detach().cpu().contiguous()
                h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.numpy().tobytes())
        return h.hexdigest()

    def _features(self, X: Any, *, checked: bool = False) -> np.ndarray:
        """:meth:`transform` as an array, whatever ``set_output`` asked of ``transform``
        (``checked``: ``X`` is rows :meth:`_check_X` returned, whose names were checked then)."""
        from .embed.encode import encode

        self._check_fitted()
        X = X if checked else self._check_X(X)
        self._warn_if_unlike(X)
        return np.asarray(X, dtype=np.float32) if self.uses_raw_ else encode(self.model_, X)

    def _warn_if_unlike(self, X: np.ndarray, *, embedding: bool = False) -> None:
        """Warn when the rows' median length lies outside the training rows' lengths
        (:func:`~kfree.distances.unlike_lengths`): the head standardises its input with the
        training rows' statistics and the raw rule cuts in their units, so rows scaled otherwise
        (another encoder, a forgotten normalisation) are clustered wrongly without a word (an
        embeddings trial: rows ×3, 1,810 clusters for 99 people). Not when the raw features are cut
        by cosine distance, which ignores lengths; not for models saved before kfree kept the range."""
        lengths = getattr(self, "provenance_", {}).get("row_lengths")
        if lengths is None or (self.uses_raw_ and not embedding and self.rule_.threshold.distance == "cosine"):
            return
        new = unlike_lengths(tuple(lengths), X)
        if new is not None:
            lo, hi = (f"{v:.3g}" for v in lengths)
            warnings.warn(DataWarning(
                f"the rows' median length is {new:.3g}, outside the training rows' "
                + (f"{lo}–{hi} (5th to 95th percentile)" if lo != hi else f"{lo} (every one of them, to 3 digits)")
                + ": made by another encoder, or scaled otherwise? The model and its cut hold for rows "
                "embedded and scaled as its training rows were (L2-normalise both, or neither); they are used "
                "all the same"), stacklevel=user_stacklevel())

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of :meth:`transform`'s columns (what ``set_output(transform="pandas")`` labels them
        with): the input's names when the raw features won (``uses_raw_``), else
        ``clusterlearner0``, ``clusterlearner1``, … for the embedding's dimensions."""
        self._check_fitted()
        if self.uses_raw_:
            names = getattr(self, "feature_names_in_", None)
            return np.asarray(list(names) if names is not None else [f"x{i}" for i in range(self.n_features_in_)],
                              dtype=object)
        return np.asarray([f"clusterlearner{i}" for i in range(self.model_.out_dim)], dtype=object)

    def cluster(
        self, X: Any, *, threshold: float | None = None, method: str = "hac", n_clusters: int | None = None,
        must_link: Any = None, cannot_link: Any = None, return_rule: bool = False, hook: Any = None,
    ) -> np.ndarray | tuple[np.ndarray, Any]:
        """Cluster data of unseen identities; returns labels of shape (n,).

        ``method="hac"`` (default) applies the chosen rule (its features, linkage and threshold;
        ``threshold`` overrides the value). A number ``threshold`` is in the chosen rule's distance
        units (``threshold_.distance``) for every method but ``"ward"`` (a Ward merge height); a
        :class:`~kfree.threshold.Threshold` (``learned_threshold_``, say) says its own kind and is
        converted. ``method`` may name any registered
        back-end (``kfree.registry.names("cluster")``): ``multicut`` weighs each pair by
        :meth:`pair_model` (``p(different | d)`` fitted on the held-out identities' pairs), else
        (a ``threshold``, or no held-out identities) cuts at the best non-Ward threshold of the
        chosen features; methods that need K (k-means, HAC at
        k) take ``n_clusters``; K-estimating ones (X-means, G-means, HDBSCAN, FINCH) take
        neither. ``n_clusters`` with ``method="hac"`` cuts the chosen linkage's tree at K.

        A chosen Ward cut is applied up to :data:`WARD_MAX_ROWS` rows; above, ``"hac"`` uses
        :meth:`rule_for_rows` (the best validated complete-linkage cut, which scales) with a
        :class:`~kfree.exceptions.ScaleWarning`; ``method="ward"`` keeps Ward at any size. A Ward
        height also grows with cluster sizes: when the best validated complete-linkage cut finds
        clusters of fewer than half the rows per identity the Ward cut was calibrated on (a small
        batch), or 2.5 times as many (a library of hundreds of photos per person), that cut
        is used instead, with a :class:`~kfree.exceptions.ClusterSizeWarning` (above
        :data:`WARD_SIZE_CHECK_ROWS` rows the sizes are estimated on a sample of that many). A
        model with a size curve reads its Ward cut at the batch's rows per identity instead: fitted
        without ``X_val``, below 2.5 times the held-out identities' size; with it, below half
        (:meth:`_ward_at_batch_size`).

        ``must_link`` / ``cannot_link``: row pairs (arrays of shape (m, 2)) that must or cannot
        share a cluster — frames of one face track, tracks that appear together — for
        ``method="hac"``: exact constrained agglomeration at the chosen rule's cut (a Ward cut
        takes none: its best validated complete-linkage cut is used, with a
        :class:`~kfree.exceptions.ParameterConflictWarning`).

        ``return_rule``: return ``(labels, rule)``, the :class:`~kfree.evaluate.selection.ClusterRule`
        ``method="hac"`` applied (the chosen one, or the complete-linkage cut it gave way to at
        this size or for these pairs), so that a caller can say which cut it used; ``None`` for
        the other methods.

        ``hook``: a progress callback ``hook(stage, completed=, total=)`` for the threshold HAC
        (minutes at scale; ``kfree cluster MODEL`` passes its progress lines).
        """
        from . import registry

        hac = method == "hac"

        def done(labels: np.ndarray, rule):
            return (labels, rule if hac else None) if return_rule else labels

        self._check_fitted()
        X = self._check_X(X, min_samples=1 if method == "hac" else 2)
        constrained = must_link is not None or cannot_link is not None
        if constrained and method != "hac":
            raise ConfigError(f"must_link/cannot_link are for method='hac' (the chosen rule, exact constrained "
                              f"agglomeration), not {method!r}")
        if threshold is not None and n_clusters is not None:
            raise ConfigError(f"threshold={threshold!r} and n_clusters={n_clusters!r} both decide where the clusters "
                              "end: give one")
        if self.threshold is not None and threshold is None and (
                n_clusters is not None or "threshold" not in registry.resolve_class("cluster", method)[0].capabilities):
            warnings.warn(f"this learner's threshold={self.threshold!r} is not used: "
                          + (f"n_clusters={n_clusters!r} decides the cut" if n_clusters is not None else
                             f"method {method!r} cuts at no threshold"), ParameterConflictWarning, stacklevel=user_stacklevel())
        override = threshold if threshold is not None else self.threshold
        # a Threshold (kfree's own: refused as "not a finite number > 0" before, an embeddings trial) keeps
        # its kind until the clusterer that cuts with it converts it, or refuses what would change the cut
        given = override if isinstance(override, Threshold) else None
        if override is not None and given is None:
            override = finite_positive("threshold", override, f"a float in the chosen rule's distance units "
                                                              f"({self.rule_.threshold.distance}), or a Threshold")
        if X.shape[0] == 1 and n_clusters is None and not constrained:  # one row: one cluster, at any cut
            return done(np.zeros(1, dtype=np.int64), self.rule_)
        Z = self._features(X, checked=True)
        rule = self.rule_
        if constrained and rule.linkage == "ward":
            if override is not None:
                raise ConfigError("a threshold override is in the chosen Ward cut's units (a merge height), and "
                                  "must-link / cannot-link pairs need a complete-linkage cut: give no threshold")
            try:
                rule = self.state_rule()
            except ConfigError:
                raise ConfigError("a Ward cut takes no must-link / cannot-link pairs, and this model has no validated "
                                  "complete-linkage cut to use instead: train with linkage 'auto' or 'complete'") from None
            warnings.warn(f"a Ward cut takes no must-link / cannot-link pairs: the best validated complete-linkage "
                          f"cut is used ({rule.name}, validation NMI {rule.val_nmi:.3f}; Ward's "
                          f"{self.rule_.val_nmi:.3f})", ParameterConflictWarning, stacklevel=user_stacklevel())
            if n_clusters is None:
                return done(rule.cluster(Z, must_link=must_link, cannot_link=cannot_link, hook=hook), rule)
        if method == "hac" and n_clusters is None:
            if override is None:  # (an override is in the chosen rule's units: it keeps that rule)
                rule = self.rule_for_rows(X.shape[0], warn=True)
                if rule.linkage == "ward":
                    other = self._ward_at_batch_size(Z) or self._complete_if_sizes_differ(Z, hook)
                    if other is not None:
                        return done(*other)
            thr = (None if override is None else Threshold(override, rule.threshold.distance, "override")
                   if given is None else resolve_cut(given, rule.threshold.distance, merge_height=rule.linkage == "ward",
                                                     by_pairs=rule.linkage in ("complete", "single")))
            labels = rule.cluster(Z, threshold=thr, must_link=must_link, cannot_link=cannot_link, hook=hook)
            if override is None and rule.linkage == "complete":
                self.check_cluster_sizes(labels)
            # the rule as applied: an override's threshold, not the validated one it replaced
            return done(labels, rule if thr is None else dataclasses.replace(rule, threshold=thr))
        if method == "hac" and rule.linkage == "ward" and not constrained:
            method = "ward"
        # an unknown method, no K for one that needs it, a K for one that finds it, a threshold for
        # one that takes none or together with a K (which decides the cut): refused here
        accepted = registry.cluster_capabilities(method, n_clusters=n_clusters, threshold=threshold,
                                                 k_option="n_clusters (--n-clusters)",
                                                 threshold_option="threshold (--threshold)")
        kwargs = self._backend_kwargs(method, accepted, n_clusters, override, given)
        est = registry.get("cluster", method, **kwargs)
        told = {"hook": hook} if hook is not None and getattr(est, "reports_progress", False) else {}
        return done((est.fit(Z, must_link=must_link, cannot_link=cannot_link, **told) if constrained
                     else est.fit(Z, **told)).labels_, rule)

    def _backend_kwargs(self, method: str, accepted: frozenset[str], n_clusters: int | None, override: Any,
                        given: Threshold | None) -> dict[str, Any]:
        """The arguments :meth:`cluster` gives a registered back-end other than the chosen rule:
        K when given; else a multicut's pair model, or a threshold in the chosen rule's units (a
        number ``override``, or a Threshold ``given`` that says its own kind), or the model's
        best validated pair-distance (or Ward) cut; with its linkage and distance where the
        back-end takes them (``accepted``: its capabilities). Refuses (ConfigError) an
        ``n_clusters`` below 1, and a back-end that chains single pairs (``knn-cc``) without a
        threshold: no rule of the model was validated for it."""
        from . import registry

        kwargs: dict[str, Any] = {}
        dist_rule = self._distance_rule  # called only where a pair-distance rule is needed
        if n_clusters is not None:
            kwargs["n_clusters"] = check_count("n_clusters", n_clusters, 1, None)
        elif "cut_probability" in accepted and (pair := self.pair_model()) is not None and override is None:
            # a fitted p(different | d) is a better multicut cost than a hard threshold, and a
            # complete-linkage cut (a diameter) would join most pairs of neighbouring clusters
            kwargs["cut_probability"] = pair.cut_probability
            kwargs["distance"] = pair.distance
        elif getattr(registry.resolve("cluster", method)[0], "joins_single_pairs", False) and override is None:
            # its threshold bounds single pairs (a k-NN graph's components, chained) or a radius: no
            # rule of the model is validated for that (a diameter cut, or a pair model's 0.5 crossing)
            raise ConfigError(f"method {method!r} cuts at a threshold that is no cluster's diameter (it joins "
                              "single pairs, or bounds a radius); this model validated no cut for that: give a "
                              f"threshold (--threshold, in the model's {self.rule_.threshold.distance} units), or "
                              "use method 'hac' (the validated rule) or 'multicut'")
        elif "threshold" in accepted:
            if given is None and override is not None and method != "ward":
                # a number is in the chosen rule's units for every method, as for "hac" (multicut read it in
                # its pair rule's squared units: the paper's τ = 0.7746 cut at 0.88, a research trial)
                given = Threshold(override, self.rule_.threshold.distance, "override")
            base = self._ward_rule().threshold if method == "ward" and override is None else dist_rule().threshold
            kwargs["threshold"] = base.value if override is None else given or override
            if "distance" in accepted:  # (a Threshold's own kind: measured as the clusterer alone would)
                kwargs["distance"] = base.distance if given is None else given.distance
            elif method != "ward":  # it cuts in units of its own: the cut with its kind, for it to convert
                # (a bare number in the rule's squared units was read in its own: a contributor trial, ARI 0.52)
                kwargs["threshold"] = (base if override is None else
                                       given or Threshold(override, base.distance, "override"))
        if "linkage" in accepted:
            kwargs["linkage"] = dist_rule().linkage
        if "n_clusters" in kwargs and "distance" in accepted:
            kwargs.setdefault("distance", dist_rule().threshold.distance)
        return kwargs

    def rule_for(self, method: str = "hac"):
        """The :class:`~kfree.evaluate.selection.ClusterRule` whose threshold ``cluster(X,
        method=method)`` cuts at: the chosen rule for ``"hac"``, the best calibrated Ward cut for
        ``"ward"``, and for other threshold methods (multicut) the best rule of the chosen
        features whose threshold is a pair distance (what multicut cuts at when it has no
        :meth:`pair_model` or is given a threshold)."""
        self._check_fitted()
        if method == "hac":
            return self.rule_
        if method == "ward":
            return self._ward_rule()
        from . import registry

        cls, _ = registry.resolve_class("cluster", method)  # an unknown method is refused, not given a rule
        if "threshold" not in cls.capabilities:  # (k-means cuts at K: no rule of the model says where)
            raise ConfigError(f"method {method!r} takes no threshold, so no rule of the model is cut at one: "
                              "rule_for names the rule of a threshold method (hac, ward, multicut)")
        return self._distance_rule()

    def threshold_for(self, rule) -> Threshold:
        """The threshold ``rule`` is cut at: :attr:`threshold_` (which honours the ``threshold``
        override) for the chosen rule, the rule's own for any other candidate."""
        return self.threshold_ if rule is self.rule_ else rule.threshold

    def rule_for_rows(self, n: int, *, warn: bool = False):
        """The rule ``cluster(X)`` applies to ``n`` rows: the chosen one, except that a chosen
        Ward cut gives way above :data:`WARD_MAX_ROWS` rows to the best validated complete-linkage
        cut of the same features (:meth:`state_rule`): Ward's agglomeration takes O(n²) time, the
        complete-linkage cut runs on the sparse τ-radius graph. ``warn`` says so as a
        :class:`~kfree.exceptions.ScaleWarning`."""
        self._check_fitted()
        if self.rule_.linkage != "ward" or n <= WARD_MAX_ROWS:
            return self.rule_
        try:
            rule = self.state_rule()
        except ConfigError:
            return self.rule_  # no complete-linkage candidate: Ward it is, at its cost
        if warn:
            warnings.warn(f"{n:,} rows is above {WARD_MAX_ROWS:,}, where the chosen Ward cut (O(n^2) time) gives way "
                          f"to the best validated complete-linkage cut ({rule.name}, validation NMI {rule.val_nmi:.3f}; "
                          f"Ward's {self.rule_.val_nmi:.3f}); method='ward' keeps Ward", ScaleWarning, stacklevel=user_stacklevel())
        return rule

    def check_cluster_sizes(self, labels: np.ndarray) -> None:
        """A :class:`~kfree.exceptions.ClusterSizeWarning` when the clusters of ``labels`` are far
        larger than the validation identities the complete-linkage cut was calibrated on (by the
        size of the cluster an average row sits in, so that many singletons do not hide a few
        large clusters). A diameter calibrated on identities of ~10 rows splits one of hundreds:
        found by a user trial, where a labelled 10 % of each product's photos was the validation
        and products of 500 photos came out in 3-9 clusters, without a word. ``cluster`` calls it;
        so do ``kfree cluster --state`` and ``kfree assign``, which cluster through a state."""
        m_cal = self.selection_.get("val_rows_per_row_identity")  # (None in model files before it)
        if m_cal is None or labels.size == 0:
            return
        sizes = np.bincount(labels).astype(np.float64)
        m_new = float((sizes ** 2).sum() / labels.size)
        if m_new < COMPLETE_SIZE_RATIO * m_cal:
            return
        warnings.warn(ClusterSizeWarning(
            f"these clusters are larger than the identities the cut was calibrated on: a row's cluster holds "
            f"{m_new:.0f} rows on average, a validation row's identity {m_cal:.0f}. Either these rows hold larger "
            "identities, which a complete-linkage cut (a diameter) calibrated on smaller ones can split: validate on "
            "identities of their size (kfree train --validation); or the cut merged identities that lie closer "
            "together than the validation ones: check a sample of the large clusters"), stacklevel=user_stacklevel())

    def _complete_rows_per_cluster(self, X_val: np.ndarray) -> float | None:
        """Rows per cluster of the best validated complete-linkage cut on the validation rows
        (``None`` without such a cut). :meth:`_complete_if_sizes_differ` keeps Ward for a batch on
        which that cut finds about as many: compared with the validation identities' true size
        alone, the check called the validation rows themselves a mismatch wherever that cut
        over-splits them (a research trial: 47 clusters of 8.5 rows for 10 intents of 40, so the
        Ward cut chosen at NMI 0.961 gave way to a complete cut at 0.786 on the very rows it was
        chosen on). It is no replacement for the true size: that cut over-splits larger identities
        more, and as the only reference it lost 0.013 NMI on ``results/benchmarks/ward_size.md``."""
        try:
            rule = self.state_rule()
        except ConfigError:
            return None
        labels = rule.cluster(self._features(X_val))
        return float(X_val.shape[0] / (int(labels.max()) + 1))

    def _ward_at_batch_size(self, Z: np.ndarray) -> tuple[np.ndarray, Any] | None:
        """``(labels, rule)``: the chosen Ward cut read at the rows per identity of ``Z`` on the
        model's size curve (:class:`~kfree.evaluate.calibrate.SizeCurve`), with a
        :class:`~kfree.exceptions.ClusterSizeWarning` when that size is far from the validation
        identities'; ``None`` without a curve (a cut calibrated on fewer than
        :data:`SIZE_CURVE_MIN_IDENTITIES` identities, or a model file from before it), for
        identities of :data:`WARD_MAX_SIZE_RATIO` times the validation ones' size or more (beyond
        the curve's end), and, for validation rows the user gave, of more than
        :data:`WARD_MIN_SIZE_RATIO` times: the size check decides there.

        Why: a Ward cut holds for identities of the size it was calibrated on. Identities held
        out of the training data (``fit`` without ``X_val``) have the training data's size, not
        the batch's: a Ward cut calibrated on Banking77 intents of ~180 rows put 27 unseen intents
        of 20 rows into 12 clusters on average, and the curve's reading scores higher at every
        smaller size (``results/benchmarks/held_out_size.md``). Validation rows the user gives are
        drawn like the data to cluster (as the README asks): there the curve only replaces the
        complete-linkage cut the size check would use for much smaller identities, and the
        calibrated cut is kept near the validation size, where the curve's estimate of the size
        cost up to 0.013 NMI (one trial on the grid of ``results/benchmarks/ward_size.md``, whose
        committed run reads the curve only below half: 11 cells higher, none lower). The size
        comes from the complete-linkage curve's smallest fixed point, on a seeded sample of
        :data:`WARD_SIZE_CHECK_ROWS` rows above that many."""
        from .evaluate.calibrate import SizeCurve, merge_tree

        curve = self.selection_.get("size_curve")
        if curve is None:
            return None
        curve, m_cal, n = SizeCurve.from_dict(curve), self.selection_["val_rows_per_identity"], Z.shape[0]
        held_out = self._held_out_of_training()
        sampled = n > WARD_SIZE_CHECK_ROWS
        Zs = Z[np.sort(np.random.default_rng(0).choice(n, WARD_SIZE_CHECK_ROWS, replace=False))] if sampled else Z
        try:
            # from the smallest size up: the smallest self-consistent size (pairs of identities merged
            # at a larger cut look like larger identities, so a larger fixed point can be theirs)
            k = curve.clusters_at_fixed_point(merge_tree(Zs, "complete"), curve.sizes[0])
        except ResourceError:
            return None  # the size check that follows says so
        s = rows_per_identity(n, k, WARD_SIZE_CHECK_ROWS) if sampled else n / k
        if s >= WARD_MAX_SIZE_RATIO * m_cal or (not held_out and s >= WARD_MIN_SIZE_RATIO * m_cal):
            return None
        h = curve.height("ward", s)
        rule = dataclasses.replace(self.rule_, threshold=Threshold(
            h, self.rule_.threshold.distance, f"{WARD_SOURCE} cut read at {s:.1f} rows per identity"))
        if not WARD_WARN_LOW_RATIO * m_cal <= s < WARD_WARN_SIZE_RATIO * m_cal:
            warnings.warn(ClusterSizeWarning(
                "the chosen Ward cut was calibrated on "
                + ("identities of the training data (no --validation)" if held_out else "the validation identities")
                + f", of {m_cal:.1f} rows each; these {n:,} rows look like identities of {s:.1f} rows"
                + (f" (estimated on {WARD_SIZE_CHECK_ROWS:,} of them)" if sampled else "")
                + f", so the Ward cut for that size is used (calibrated on those identities cut down to it): height "
                f"{h:.4g} (at {m_cal:.0f} rows: {self.rule_.threshold.value:.4g}). For a cut calibrated on "
                "identities like these, give kfree train --validation rows drawn like them"),
                stacklevel=user_stacklevel())
        return rule.cluster(Z), rule

    def _complete_if_sizes_differ(self, Z: np.ndarray, hook: Any = None) -> tuple[np.ndarray, Any] | None:
        """``(labels, rule)``: the best validated complete-linkage cut and its clusters of ``Z``
        when they hold far fewer or far more rows each than the identities the chosen Ward cut
        was calibrated on, with a
        :class:`~kfree.exceptions.ClusterSizeWarning`; ``None`` when Ward applies.

        Why: a Ward merge height grows with the sizes of the clusters it merges (√(2|A||B|/(|A|+|B|))
        times their centres' distance), so a cut calibrated on identities of ~40 rows merges
        everything in a batch of one or two rows per identity, and splits identities of hundreds
        of rows into many. A complete-linkage cut, a diameter, depends far less on cluster sizes:
        its clusters estimate the batch's rows per cluster, and are the answer when Ward's is not
        (``results/benchmarks/ward_size.md``).
        Above :data:`WARD_SIZE_CHECK_ROWS` rows the estimate comes from a seeded sample of that
        many: its clusters count the identities the sample shows, and :func:`rows_per_identity`
        turns that count into their size. A check that does not fit in memory keeps Ward."""
        m_cal = self.selection_.get("val_rows_per_identity")  # (None in model files before it)
        if m_cal is None:
            return None
        # what the same complete-linkage cut found on the validation rows (None in model files before it)
        m_ref = self.selection_.get("val_complete_rows_per_cluster")
        try:
            rule = self.state_rule()
        except ConfigError:
            return None  # no validated complete-linkage cut: Ward it is
        n = Z.shape[0]
        labels, sampled = None, n > WARD_SIZE_CHECK_ROWS
        try:
            if sampled:
                idx = np.sort(np.random.default_rng(0).choice(n, WARD_SIZE_CHECK_ROWS, replace=False))
                m_new = rows_per_identity(n, int(rule.cluster(Z[idx], hook=hook).max()) + 1, WARD_SIZE_CHECK_ROWS)
            else:
                labels = rule.cluster(Z, hook=hook)
                m_new = n / (int(labels.max()) + 1)
            like = m_ref is not None and m_ref / WARD_LIKE_VALIDATION <= m_new < m_ref * WARD_LIKE_VALIDATION
            if WARD_MIN_SIZE_RATIO * m_cal <= m_new < WARD_MAX_SIZE_RATIO * m_cal or like:
                larger = m_new >= WARD_WARN_SIZE_RATIO * m_cal  # (a ticket trial: 250 clusters, 77 intents)
                if (larger or m_new < WARD_WARN_LOW_RATIO * m_cal) and not like:
                    warnings.warn(ClusterSizeWarning(
                        f"the chosen Ward cut was calibrated on identities of {m_cal:.1f} rows each; in these {n:,} "
                        f"rows its complete-linkage counterpart finds clusters of {m_new:.1f} rows"
                        + (f" (estimated on {WARD_SIZE_CHECK_ROWS:,} of them)" if sampled else "")
                        + (", so the identities here are likely larger, and a Ward merge height (it grows with "
                           "cluster sizes) splits them into more clusters than there are identities" if larger else
                           ", so the identities here are likely smaller (that cut, calibrated on the larger ones, "
                           "merges some of them too), and a Ward merge height (it grows with cluster sizes) may "
                           "merge them into fewer clusters than there are identities")
                        + ". The Ward cut is kept (at this ratio it still scored above the complete-linkage cut on "
                        "kfree's benchmark); for a cut calibrated on identities of this size, give kfree train "
                        "--validation rows drawn like these"), stacklevel=user_stacklevel())
                elif (larger or m_new < WARD_WARN_LOW_RATIO * m_cal) and self._held_out_of_training():
                    # as on validation identities held out of the training data, far from their size (a ticket
                    # trial: intents of 40 rows against 130, the complete cut merging both to ~75 rows, so the
                    # batch passed as drawn like validation; Ward, 24 clusters for 71). Not for validation rows
                    # the user gave, drawn like the data: there the same figures are their own (a research trial)
                    warnings.warn(ClusterSizeWarning(
                        f"the chosen Ward cut was calibrated on identities of {m_cal:.1f} rows each; in these {n:,} "
                        f"rows its complete-linkage counterpart finds clusters of {m_new:.1f} rows"
                        + (f" (estimated on {WARD_SIZE_CHECK_ROWS:,} of them)" if sampled else "")
                        + f", as it did on the validation rows ({m_ref:.1f}: identities held out of the training data, "
                        "no --validation), so the Ward cut is kept: these rows look drawn like them. Sizes cannot "
                        "tell more: if their identities hold "
                        f"{'fewer' if m_new < m_cal else 'more'} rows than {m_cal:.0f}, that cut "
                        f"{'merges' if m_new < m_cal else 'splits'} them as it did the validation ones, and the Ward "
                        f"cut {'merges' if m_new < m_cal else 'splits'} them; kfree train --validation with rows "
                        "drawn like these calibrates a cut for them"), stacklevel=user_stacklevel())
                return None
            if labels is None:
                labels = rule.cluster(Z)
        except ResourceError as e:  # Ward's own agglomeration needs O(n·d) memory: it goes on alone
            warnings.warn(ClusterSizeWarning(
                f"the check of the chosen Ward cut against cluster sizes (a complete-linkage cut) did not fit "
                f"in memory, so the Ward cut is used unchecked: {str(e).split(';')[0]}"), stacklevel=user_stacklevel())
            return None

        found = (f"in these {n:,} rows its complete-linkage counterpart finds clusters of {m_new:.1f} rows"
                 + (f" (estimated on {WARD_SIZE_CHECK_ROWS:,} of them)" if sampled else "")
                 + (f" (on the validation rows: {m_ref:.1f})" if m_ref is not None else ""))
        harm = ("would merge too much" if m_new < m_cal else "would split identities with many more rows than "
                "the validation ones")
        warnings.warn(ClusterSizeWarning(
                      f"the chosen Ward cut was calibrated on identities of {m_cal:.1f} rows each; {found}, "
                      f"where a Ward merge height (it grows with cluster sizes) {harm}: the best validated "
                      f"complete-linkage cut is used ({rule.name}, validation NMI {rule.val_nmi:.3f}; Ward's "
                      f"{self.rule_.val_nmi:.3f}), though it was calibrated on those identities too; method='ward' "
                      "keeps Ward. For a cut calibrated on identities of this size, give kfree train --validation "
                      "rows drawn like these (X_val, y_val)", replaced=True), stacklevel=user_stacklevel())
        return labels, rule

    def _held_out_of_training(self) -> bool:
        """Whether the validation identities were held out of the training data (no ``X_val``): drawn
        like the training identities, not like the data to cluster."""
        prov = getattr(self, "provenance_", {})
        return 0 < int(prov.get("n_train_identities") or 0) < int(prov.get("n_identities") or 0)

    def pair_model(self):
        """The pair model multicut cuts by: :attr:`pair_calibration_`, else (a model file from
        before it, or no held-out identities) the logistic calibration of the model's features."""
        pair = getattr(self, "pair_calibration_", None)
        if pair is None and not self.uses_raw_:
            pair = self.calibration_
        return pair

    def state_rule(self):
        """The rule a cluster state (``kfree cluster --state``, :mod:`kfree.cluster.incremental`)
        keeps: complete linkage, the one cut a new row can be checked against exactly (it joins a
        cluster only if every member is within τ). The chosen rule when it is complete linkage;
        for a chosen Ward cut, the best validated non-Ward candidate of the same features (a Ward
        merge height says nothing about single pairs), when that is complete linkage.

        Raises :class:`~kfree.exceptions.ConfigError` when the model has no such rule (trained
        with ``linkage="ward"``, ``"average"`` or ``"single"``)."""
        self._check_fitted()
        if self.rule_.linkage == "complete":
            return self.rule_
        rule = self._best_candidate(ward=False) if self.rule_.linkage == "ward" else None
        if rule is None or rule.linkage != "complete":
            raise ConfigError(f"this model clusters with {self.rule_.linkage} linkage and has no validated "
                              "complete-linkage cut; a cluster state (kfree assign) needs complete linkage: "
                              "train with --linkage auto or complete, or cluster without --state")
        return rule

    def _best_candidate(self, ward: bool):
        """The best validated candidate on the chosen features that is (``ward=True``) or is not a
        Ward cut, or ``None``."""
        from .evaluate.selection import ClusterRule, best_rule

        same = [ClusterRule.from_dict(d) for d in self.selection_.get("candidates", [])]
        same = [r for r in same if r.features == self.rule_.features and (r.linkage == "ward") == ward]
        return best_rule(same) if same else None

    def _ward_rule(self):
        """The best Ward candidate on the chosen features (a Ward merge height is not a pair
        distance, so no other rule's threshold can stand in for it)."""
        if self.rule_.linkage == "ward":
            return self.rule_
        rule = self._best_candidate(ward=True)
        if rule is None:
            raise ConfigError("this model has no calibrated Ward cut (it was trained with linkage="
                              f"{self.linkage!r}); pass threshold (a Ward merge height) or n_clusters")
        return rule

    def _distance_rule(self):
        """The best candidate on the chosen features whose threshold is a pair distance (not
        Ward's merge height): what distance-threshold back-ends such as multicut cut at.

        With a Ward cut alone (``linkage="ward"``) there is no such candidate: for the model it is
        the model's own pair cut (:attr:`learned_threshold_`); for the raw features, the
        complete-linkage cut calibrated on their calibration set at fit (the model's cut is in
        the model's units and means nothing for them)."""
        from .evaluate.selection import ClusterRule

        if self.rule_.linkage != "ward":
            return self.rule_
        rule = self._best_candidate(ward=False)
        if rule is not None:
            return rule
        if self.rule_.features == "model":
            return ClusterRule("model", "complete", self.learned_threshold_, "learned")
        cut = self.selection_.get("raw_pair_cut")
        if cut is None:
            raise ConfigError("this model clusters the raw features at a Ward cut and its file holds no "
                              "pair-distance cut for them (written by an earlier kfree): use method 'hac' or "
                              "'ward' (the Ward cut, or Ward at n_clusters), or train the model again")
        return ClusterRule("raw", "complete", Threshold.from_dict(cut), "recalibrated")

    def finetune(self, X: Any, *, must_link: Any = None, cannot_link: Any = None, config: Any = None,
                 holdout: float = 0.2, hook: Any = None) -> ClusterLearner:
        """A copy whose head was fine-tuned on the pairs of unlabelled rows ``X`` — ``must_link``
        (the frames of one track), ``cannot_link`` (tracks seen together), arrays of row pairs
        (m, 2) — with the cut frozen (the BCL paper's BCL-FT: ``4b`` for a BCL model at its own
        threshold, the chosen rule's complete-linkage cut otherwise;
        :mod:`kfree.train.finetune`, ``config`` a :class:`~kfree.train.finetune.FinetuneConfig`).

        A seeded ``holdout`` share of each kind of pair is held out of the training (must-links by
        whole groups, a track's frames, so that no held-out pair is implied by trained ones; 2 or
        more distinct pairs of each kind are needed): the copy keeps the fine-tuned head only when
        neither kind fares worse on the held-out pairs (must-links within the cut, cannot-links
        beyond it) and both together fare better than with the head it started from, and the head
        it started from otherwise — in our reproduction fine-tuning over-merged the episodes, so
        it is checked, not trusted. The check sees only the pairs given, not merges between rows
        no pair relates.
        ``finetune_`` (also in ``provenance_["finetune"]``) says which, with both scores. A kept
        head of a model whose chosen rule is a Ward cut clusters at the complete-linkage cut it was
        fine-tuned for (a Ward height calibrated on the old head would not fit the new one).

        Refused for a model that clusters the raw features (fine-tuning its head would change
        nothing it clusters) or cuts cosine distances."""
        import copy

        from .cluster._constraints import check_pairs
        from .distances import to_sq
        from .losses.ball_cluster import BallClusterLoss
        from .losses.pairwise import PairwiseConstraintLoss
        from .train.finetune import FinetuneConfig, finetune_head, pair_shares
        from .utils.seeding import seeded

        self._check_fitted()
        if self.uses_raw_:
            raise ConfigError("this model clusters the raw features (they won on validation), so fine-tuning its "
                              "head would not change its clusters; give the pairs to cluster (must_link, "
                              "cannot_link: kfree cluster --link-column/--cannot-link), or fine-tune a model "
                              "trained with compare_raw=False (kfree train --no-compare-raw)")
        cfg = FinetuneConfig() if config is None else config
        if not isinstance(cfg, FinetuneConfig):
            raise ConfigError(f"config={config!r}: give a kfree.train.finetune.FinetuneConfig")
        if not (isinstance(holdout, (int, float)) and 0 < holdout < 1):
            raise ConfigError(f"holdout={holdout!r} must be a share in (0, 1), e.g. 0.2")
        X = self._check_X(X, min_samples=2)
        must = np.unique(np.sort(check_pairs(must_link, X.shape[0], "must_link"), axis=1), axis=0)
        cannot = np.unique(np.sort(check_pairs(cannot_link, X.shape[0], "cannot_link"), axis=1), axis=0)
        must, cannot = must[must[:, 0] != must[:, 1]], cannot[cannot[:, 0] != cannot[:, 1]]
        if must.shape[0] < 2 or cannot.shape[0] < 2:
            # (a review: with no held-out cannot-link a head that merges everything keeps every must-link)
            raise DataError(f"fine-tuning needs 2 or more distinct pairs of each kind to train on some and check on "
                            f"others (got {must.shape[0]} must-link, {cannot.shape[0]} cannot-link): must-links "
                            "alone cannot tell a better head from one that merges everything, cannot-links alone "
                            "one that splits everything")
        must_tr, must_ho, cannot_tr, cannot_ho = _held_out_pairs(must, cannot, holdout, cfg.seed)
        rule = self.rule_ if self.rule_.linkage != "ward" else self.state_rule()
        cut = self.threshold_for(rule)
        if cut.distance == "cosine":
            raise ConfigError("this model cuts cosine distances; fine-tuning holds a squared Euclidean cut")
        loss = (PairwiseConstraintLoss.from_bcl(self.loss_) if isinstance(self.loss_, BallClusterLoss)
                and rule.mode == "learned" and self.threshold is None else PairwiseConstraintLoss.from_threshold(cut))
        tuned = copy.deepcopy(self)
        with seeded(cfg.seed):  # (the caller's generators are left as they were, as fit leaves them)
            log = finetune_head(tuned.model_, loss, X, must_tr, cannot_tr, cfg, hook=hook)
        cut_sq = to_sq(cut.value, cut.distance)
        before = pair_shares(self.embed(X), must_ho, cannot_ho, cut_sq)
        after = pair_shares(tuned.embed(X), must_ho, cannot_ho, cut_sq)
        # better on the held-out pairs, and worse on neither kind: a head that merges (or splits) more
        # trades one kind for the other (a review: one cluster for 8 identities passed a mean of the two)
        kept = after[0] >= before[0] and after[1] >= before[1] and sum(after) > sum(before)
        out = tuned if kept else copy.deepcopy(self)
        if kept and rule is not self.rule_:  # the head was fine-tuned for this cut: clustered at it, as in the paper
            out.rule_ = rule  # (and saved so: a model file's rule is its selection's chosen one)
            out.selection_ = {**out.selection_, "chosen": rule.to_dict(),
                              "reason": out.selection_.get("reason", "") + f" Fine-tuned on pairs, it clusters at "
                              f"the complete-linkage cut it was fine-tuned for ({rule.name})."}
        out.finetune_ = {"kept_finetuned_head": bool(kept), "heldout_pairs_on_their_side_before": 0.5 * sum(before),
                         "heldout_pairs_on_their_side_after": 0.5 * sum(after),
                         "heldout_must_link_within_before_after": [before[0], after[0]],
                         "heldout_cannot_link_beyond_before_after": [before[1], after[1]],
                         "n_heldout_must_link": int(must_ho.shape[0]),
                         "n_heldout_cannot_link": int(cannot_ho.shape[0]), "cut": cut.to_dict(),
                         "config": dataclasses.asdict(cfg), **log}
        out.provenance_ = {**out.provenance_, "finetune": out.finetune_}
        return out

    def fit_predict(self, X: Any, y: Any, **fit_params: Any) -> np.ndarray:
        """Fit on labelled data and return the clusters of that same data at the threshold.

        Also sets ``labels_`` and ``n_clusters_``. (``fit`` alone does not cluster the training
        data: that can cost more than training when it is large.)
        """
        self.labels_ = self.fit(X, y, **fit_params).cluster(X)
        self.n_clusters_ = int(self.labels_.max()) + 1
        return self.labels_

    def summary(self) -> str:
        """One line: what ``cluster`` will do, and why."""
        self._check_fitted()
        reason = self.selection_["reason"]
        if self.rule_.linkage == "ward" and "size_curve" in self.selection_:  # (_ward_at_batch_size)
            m_cal = self.selection_["val_rows_per_identity"]
            reason += (f". Its Ward cut holds for identities of {m_cal:.0f} rows, the held-out ones' size, which says "
                       "nothing of the data to cluster: cluster() reads it at each batch's rows per identity, on a "
                       "size curve" if self._held_out_of_training() else
                       f". A batch whose identities look under half the validation ones' size ({m_cal:.0f} rows each) "
                       "gets the Ward cut calibrated for its size (a size curve)")
        if self.threshold is not None:  # (cluster() cuts there, not at the validated value)
            rule = self.rule_
            unit = "Ward merge height" if rule.linkage == "ward" else rule.threshold.distance
            reason += (f"; cluster() cuts at threshold={self.threshold:g} ({unit}), this learner's override of the "
                       f"validated {rule.threshold.value:.4g}")
        return reason

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.non_deterministic = False
        tags.input_tags.sparse = False
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # ------------------------------------------------------------- persistence
    def get_train_params(self) -> dict[str, Any]:
        """The estimator's parameters with its TrainConfig as a plain dict (what a model file stores)."""
        params = {name: getattr(self, name) for name in LEARNER_PARAMS}
        params["train"] = self._train_config().to_dict()
        return params

    def save(self, path: str | Path) -> Path:
        """Write the fitted model, its chosen rule, the validation curve and provenance to one
        file (atomically; see :mod:`kfree.utils.model_file`)."""
        self._check_fitted()
        state = {
            "model_config": self.model_.config(),
            "model_state": self.model_.state_dict(),
            "loss_state": self.loss_.state_dict(),
            "threshold": self.learned_threshold_.to_dict(),
            "selection": self.selection_,
            "calibration": None if self.calibration_ is None else self.calibration_.to_dict(),
            "pair_calibration": None if self.pair_calibration_ is None else self.pair_calibration_.to_dict(),
            "provenance": self.provenance_,
            "history": self.history_,
            # a table's feature columns, so a table of other or reordered columns is caught
            "feature_names": None if getattr(self, "feature_names_in_", None) is None
            else [str(c) for c in self.feature_names_in_],
        }
        return write_model(path, params=self.get_train_params(), state=state)

    @classmethod
    def load(cls, path: str | Path) -> ClusterLearner:
        """Load a model saved with :meth:`save` (this version's format or an earlier one).

        Always returns a :class:`ClusterLearner`, also when called on the deprecated alias.
        """
        from . import registry
        from .embed.models import head_from_config
        from .evaluate.selection import ClusterRule

        p = Path(path)
        fmt, params, payload = read_model(p)
        if fmt == MODEL_FORMAT:
            _refuse_unknown_options(p, params, payload)
        try:
            if fmt == MODEL_FORMAT:
                params = dict(params)
                self = ClusterLearner(TrainConfig(**params.pop("train")), **params)
            else:  # kfree-model/1 and /2 spelled every option flat
                if fmt == "kfree-model/1":  # before heads and rule selection
                    params.update(head="mlp", threshold_mode="learned", compare_raw=False)
                self = ClusterLearner.from_params(**params)
            cfg = self._train_config()
            import torch

            if cfg.loss not in registry.names("loss"):  # the file is whole: its loss is not here
                raise ModelError(f"{p.name} was trained with loss {cfg.loss!r}, which this kfree does not know: "
                                 "import the module that registers it (@register('loss', ...)) before loading "
                                 "(for the CLI: KFREE_PLUGINS=that_module, or a kfree.plugins entry point), or "
                                 "load it with the kfree it was trained with")
            # the head's layers and a loss's parameters are initialised from torch's global generator
            # before the saved ones replace them: a load moved the caller's random stream (a service trial)
            with torch.random.fork_rng(devices=[]):
                self.model_ = head_from_config(payload["model_config"])
                self.loss_ = registry.get("loss", cfg.loss, **cfg.loss_params)
                self.loss_.on_num_classes(int(payload["provenance"].get("n_train_identities", 2)),
                                          self.model_.out_dim)
            self.model_.load_state_dict(payload["model_state"])
            self.model_.eval()
            self.loss_.load_state_dict(payload["loss_state"])
            self.learned_threshold_ = Threshold.from_dict(payload["threshold"])
            from .evaluate.calibrate import LogisticCalibration

            cal, pair = payload.get("calibration"), payload.get("pair_calibration")
            self.calibration_ = None if cal is None else LogisticCalibration.from_dict(cal)
            self.pair_calibration_ = None if pair is None else LogisticCalibration.from_dict(pair)
            sel = payload.get("selection")
            if sel is None:
                lk = params.get("linkage", "complete")
                rule = ClusterRule("model", lk, self.learned_threshold_, "learned")
                sel = {"chosen": rule.to_dict(), "candidates": [], "compared_with_raw": False,
                       "reason": "model file of format kfree-model/1: the model at its own threshold, "
                                 "not compared with the raw features"}
            self.selection_ = sel
            self.rule_ = ClusterRule.from_dict(sel["chosen"])
            if self.rule_.features not in ("model", "raw"):
                raise ValueError(f"the chosen rule clusters features {self.rule_.features!r}")
            self.uses_raw_ = self.rule_.features == "raw"
            self.provenance_ = dict(payload["provenance"])
            self.history_ = list(payload["history"])
            self.n_features_in_ = int(payload["model_config"]["in_dim"])
            names = payload.get("feature_names")  # (absent in files before it, None for arrays)
            if names is not None:
                self.feature_names_in_ = np.asarray(names, dtype=object)
            self.best_epoch_ = self.provenance_.get("best_epoch")
            self.best_step_ = self.provenance_.get("best_step")
        except ModelError:
            raise  # (said already: a loss this kfree does not know is no damage; a contributor trial)
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, ConfigError) as e:
            raise ModelError(f"{p.name} is a damaged kfree model file ({type(e).__name__}: {e}); "
                             "train the model again") from None
        return self


def _held_out_pairs(must: np.ndarray, cannot: np.ndarray, holdout: float, seed: int):
    """``(must_train, must_held, cannot_train, cannot_held)``: a seeded ``holdout`` share of each
    kind (at least one) held out of fine-tuning. Must-links go out by whole groups (rows joined by
    must-links: a track's frames), so that no held-out pair is implied by trained ones through a
    shared row (a review: 64 % of them were)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    n = int(max(must.max(), cannot.max())) + 1
    graph = coo_matrix((np.ones(must.shape[0]), (must[:, 0], must[:, 1])), shape=(n, n))
    group = connected_components(graph, directed=False)[1][must[:, 0]]
    out_groups: list[int] = []
    taken = 0
    for g in rng.permutation(np.unique(group)).tolist():
        if taken >= max(1, round(holdout * must.shape[0])) or len(out_groups) == np.unique(group).size - 1:
            break
        out_groups.append(g)
        taken += int(np.count_nonzero(group == g))
    held = np.isin(group, out_groups)
    order = rng.permutation(cannot.shape[0])
    k = min(max(1, round(holdout * cannot.shape[0])), cannot.shape[0] - 1)
    return must[~held], must[held], cannot[order[k:]], cannot[order[:k]]


def _check_train(train: Any) -> None:
    """``train`` must be a TrainConfig or None."""
    if train is not None and not isinstance(train, TrainConfig):
        raise ConfigError(f"train must be a kfree.config.TrainConfig (or None), got {type(train).__name__}; "
                          "flat options go through ClusterLearner.from_params(...)")


def _refuse_unknown_options(p: Path, params: dict[str, Any], payload: dict[str, Any]) -> None:
    """A model file whose options this kfree does not know was written by a newer kfree that
    added them (the format name stays while options are only added): say so, and which ones,
    instead of calling the file damaged."""
    import inspect

    known = set(inspect.signature(ClusterLearner.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - known)
    train = params.get("train")
    if isinstance(train, dict):
        unknown += sorted(f"train.{k}" for k in set(train) - _TRAIN_FIELDS)
    if unknown:
        prov = payload.get("provenance")
        vers = prov.get("versions") if isinstance(prov, dict) else None
        written = str(vers.get("kfree", "unknown")) if isinstance(vers, dict) else "unknown"
        if written == str(__version__):  # this very version wrote options it does not know: damage
            raise ModelError(f"{p.name} is a damaged kfree model file (options {', '.join(unknown)} that this "
                             f"kfree {__version__}, which wrote it, does not know); train the model again")
        raise ModelError(f"{p.name} has options this kfree {__version__} does not know "
                         f"({', '.join(unknown)}; written by kfree {written}): it was saved by a newer "
                         "kfree; upgrade kfree to use it")


class BallClusterLearner(ClusterLearner):
    """Deprecated: the old name of :class:`ClusterLearner`, with the training options spelled flat.

    ``BallClusterLearner(loss, epochs=…, lr=…, threshold_mode=…)`` equals
    ``ClusterLearner.from_params(loss=loss, epochs=…, lr=…, threshold_mode=…)``; it warns once per
    construction. Kept so code written against kfree 0.1 keeps working.
    """

    def __init__(
        self,
        loss: str = "bcl",
        *,
        loss_params: dict[str, Any] | None = None,
        head: str = "residual",
        dims: tuple[int, ...] | None = None,
        dropout: float = 0.0,
        epochs: int = 60,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        p: int = 16,
        k: int = 4,
        batches_per_epoch: int | None = None,
        val_identities: float = 0.2,
        eval_every_steps: int | None = 10,
        eval_every: int = 5,
        patience: int | None = 30,
        linkage: str = "auto",
        threshold_mode: str = "auto",
        compare_raw: bool = True,
        threshold: float | None = None,
        calibration: str = "n_clusters",
        sampler: str = "pk",
        triplets_per_batch: int | None = None,
        wrong_positives: float = 0.0,
        wrong_negatives: float | str = 0.0,
        seed: int = 0,
    ) -> None:
        warnings.warn("BallClusterLearner is deprecated: use ClusterLearner(TrainConfig(...), ...) "
                      "(or ClusterLearner.from_params(...) with flat options)", DeprecationWarning, stacklevel=user_stacklevel())
        self.loss = loss
        self.loss_params = loss_params
        self.head = head
        self.dims = dims
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.p = p
        self.k = k
        self.batches_per_epoch = batches_per_epoch
        self.val_identities = val_identities
        self.eval_every_steps = eval_every_steps
        self.eval_every = eval_every
        self.patience = patience
        self.linkage = linkage
        self.threshold_mode = threshold_mode
        self.compare_raw = compare_raw
        self.threshold = threshold
        self.calibration = calibration
        self.sampler = sampler
        self.triplets_per_batch = triplets_per_batch
        self.wrong_positives = wrong_positives
        self.wrong_negatives = wrong_negatives
        self.seed = seed

    @property
    def train(self) -> TrainConfig:  # type: ignore[override]
        """The TrainConfig the flat options spell."""
        flat = {name: getattr(self, name) for name in _TRAIN_FIELDS if hasattr(self, name)}
        if flat.get("loss_params") is None:
            flat["loss_params"] = {}
        return TrainConfig(**flat)


def _column_names(X: Any) -> list[str] | None:
    """A DataFrame's column names when they are all text (as scikit-learn's feature_names_in_),
    else ``None``."""
    cols = getattr(X, "columns", None)
    if cols is None or not all(isinstance(c, str) for c in cols):
        return None
    return [str(c) for c in cols]


def _pair_calibration(Z: np.ndarray, y: np.ndarray, seed: int):
    """``p(different | d)`` fitted on the pairs of labelled rows ``Z`` (n, d), or ``None`` when
    those pairs cannot fit one (e.g. every pair of one kind)."""
    from .evaluate.calibrate import LogisticCalibration

    try:
        return LogisticCalibration.fit_embeddings(Z, y, seed=seed)
    except (DataError, ConfigError, ValueError):
        return None


def _warn_other_scale(X: np.ndarray, X_val: np.ndarray, n_val_ids: int) -> None:
    """Say so when ``X_val`` is on another scale than ``X``: in a scikit-learn Pipeline, fit
    parameters such as ``X_val`` skip the steps before the learner, so a scaled ``X`` meets a raw
    ``X_val`` and every cut is calibrated in the wrong units (found by a user: 1,290 clusters for 75
    people). Other identities differ in where they lie, not by orders of magnitude in spread; a
    few identities spread less than many (one identity's rows alone: 0.24 times as much), so a
    far smaller spread counts only from 4 validation identities on."""
    X, X_val = np.asarray(X, dtype=np.float64), np.asarray(X_val, dtype=np.float64)  # (float16 sums overflow)
    sd, sd_val = X.std(axis=0), X_val.std(axis=0)
    live = (sd > 0) & (sd_val > 0)  # a column constant on either side (padding, an absent word) says nothing
    if not live.any():
        return
    sd, sd_val = sd[live], sd_val[live]
    mid, mid_val = np.median(X[:, live], axis=0), np.median(X_val[:, live], axis=0)
    spread = float(np.median(sd_val / sd))
    shift = float(np.median(np.abs(mid_val - mid) / sd))
    if spread > 3 or shift > 3 or (spread < 1 / 5 and n_val_ids >= 4):
        warnings.warn(DataWarning(
            f"X_val is on another scale than X (its columns spread {spread:.3g} times as much, and sit "
            f"{shift:.3g} of X's standard deviations away, medians over the columns): in a scikit-learn "
            "Pipeline, X_val does not pass through the steps before the learner; give "
            "pipeline[:-1].transform(X_val), or X_val as X was given"), stacklevel=user_stacklevel())


def rows_per_identity(n: int, k: int, s: int) -> float:
    """The rows per identity ``m`` of ``n`` rows whose random sample of ``s`` shows ``k`` distinct
    identities: the ``m`` for which ``n/m`` identities of ``m`` rows each leave
    ``(n/m)·(1 − (1 − s/n)^m)`` in the sample (solved by bisection; that count falls as ``m``
    grows). Not ``n/k``: an identity of few rows is mostly seen once or not at all in the
    sample, so ``k`` stays near ``s`` and ``n/k`` would call 3-row identities of 45,000 rows 10."""
    if k >= s:
        return 1.0
    f = s / n
    lo, hi = 1.0, float(n)
    for _ in range(100):
        m = math.sqrt(lo * hi)
        if (n / m) * -math.expm1(m * math.log1p(-f)) > k:
            lo = m
        else:
            hi = m
    return math.sqrt(lo * hi)


def _check_identities(y: np.ndarray, name: str) -> None:
    """What a notebook trial's labels got wrong without a word. Identities of one row give no
    pair of rows of one identity: nothing to pull together in training, and on validation every
    cut that splits them scores perfectly (one ticket per intent: the checks all scored 1.000,
    and 600 tickets of 15 unseen intents came out in 547 clusters); fewer than two identities
    with pairs is refused, over half of them single rows warned about. Negative labels, which
    scikit-learn uses for unlabelled rows, are warned about: here -1 is one more identity."""
    if y.dtype.kind in "if" and (y < 0).any():  # scikit-learn's semi-supervised "unlabelled"
        warnings.warn(DataWarning(
            f"{int((y < 0).sum()):,} rows of {name} have a negative label ({y[y < 0][0].item()!r}), which scikit-learn uses "
            "for unlabelled rows: kfree treats each label value as one identity; drop those rows if they are "
            "unlabelled (kfree train --labelled-only, for a table's empty labels)"), stacklevel=user_stacklevel())
    counts = np.unique(y, return_counts=True)[1]
    paired = int((counts >= 2).sum())
    if paired < 2 and name == "y":
        raise DataError(f"{'none' if paired == 0 else 'only 1'} of the {counts.size} identities in y has more than one "
                        "row: training learns from pairs of rows of one identity and checks the cut on them; label "
                        "at least 2 rows (better 5 or more) of each identity")
    single = int((counts == 1).sum())
    if single * 2 > counts.size:
        warnings.warn(DataWarning(
            f"{single} of the {counts.size} identities in {name} have one row: they give no pair of one identity to "
            + ("learn from or " if name == "y" else "") + "to check the cut on, so a cut that splits scores well on "
            "them; label 2 or more rows (better 5 or more) of each identity"), stacklevel=user_stacklevel())


def _check_val_identities(v: Any) -> None:
    """``val_identities``: how many identities to hold out (an int, 0 = none) or a fraction of
    them in (0, 1). Checked, because a NaN, a negative number or True would otherwise be
    turned silently into some count."""
    ok = (v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0)
          or (isinstance(v, (float, np.floating)) and (0.0 <= v < 1.0 or (v >= 1 and float(v).is_integer()))))
    if not ok:
        raise ConfigError(f"val_identities={v!r} must be a number of identities (an int >= 0; 0 holds none out) "
                          "or a fraction of them in (0, 1)")


def _selection_reason(chosen, candidates, has_val: bool, compare_raw: bool, cross=None) -> str:
    """Say which rule clusters, what it was compared with, and on which scores it won or lost."""
    if not has_val:
        return (f"no validation identities: {chosen.name}; not compared with the raw features "
                "(give X_val/y_val, or hold out identities with val_identities: that needs 4 identities or more)")
    from .evaluate.selection import best_rule

    raw = [c for c in candidates if c.features == "raw"]
    model = [c for c in candidates if c.features == "model"]
    best_raw = best_rule(raw) if raw else None
    best_model = best_rule(model) if model else None
    score = f"validation NMI {chosen.val_nmi:.3f}, {chosen.val_clusters} clusters for {chosen.val_true} identities"

    def pair(values) -> str:
        return " and ".join(f"{x:.3f}" for x in values)

    def halves(rule) -> list[float]:
        return list(rule.extra.get("val_nmi_halves") or [])

    # the model's scores with its pick paid for: each half at the step (and rule) chosen on the other
    picked = unit = None
    if cross is not None:
        unit = cross["unit"]  # "step" or "epoch"
        what = f"the {unit} and rule" if cross["steps_chosen"] else "the rule"
        picked = f"{pair(cross['nmi'])} at {what} chosen on the other half"
    if chosen.features == "raw":
        raw_h = halves(chosen)
        lead = "the learned model did NOT beat the raw features on held-out identities"
        if best_model is None:
            model_part = "no model rule could be compared"
        elif best_model.extra.get("in_sample") and not any(c.extra.get("in_sample") for c in raw):
            # (choose_rule left the model's in-sample cuts out: say so, not their scores as a contest)
            rank = chosen.extra.get("rank_nmi")
            fair = [c for c in model if not c.extra.get("in_sample")]
            # (not "did NOT beat": no fair contest was possible, a promise trial with 12 identities)
            lead = "the raw features are used, as the learned model could not be compared with them fairly"
            model_part = (f"with {chosen.val_true} validation identities there are no halves, so the model's "
                          f"recalibrated cuts were scored on the identities they were cut for (NMI up to "
                          f"{best_model.val_nmi:.3f}, in-sample), which cannot count against the raw features' "
                          "cuts, calibrated on the training identities"
                          + (f" (its own threshold, which needs no calibration, scored {best_rule(fair).val_nmi:.3f})"
                             if fair else "")
                          + "; the raw features' cuts are ranked on the training and validation identities "
                          "together" + (f" (NMI {rank:.3f} on {chosen.extra.get('rank_identities')} identities)"
                                        if rank is not None else "")
                          + "; hold out 4 or more identities for a real comparison")
        elif picked is not None and len(raw_h) > 1:
            model_part = (f"on the two halves of the {chosen.val_true} validation identities the model scored "
                          f"{picked}, the raw features {pair(raw_h)} (cut where the training identities and the "
                          f"other half put it); a model must score higher on each half (at its kept {unit} it "
                          f"scored {pair(halves(best_model))}"
                          + (f", but that {unit} is the best of many on the same identities, which flatters it)"
                             if cross["steps_chosen"] else ")"))
        elif len(raw_h) > 1:
            model_part = (f"on the two halves of the {chosen.val_true} validation identities the model scored "
                          f"{pair(halves(best_model))}, the raw features {pair(raw_h)} (cut where the training "
                          "identities and the other half put it); a model must score higher on each half")
        else:
            model_part = (f"model NMI {best_model.val_nmi:.3f}, raw NMI {chosen.val_nmi:.3f} on the same "
                          f"{chosen.val_true} validation identities (cut where the training identities put it)")
        # the raw cuts are ranked among themselves on every labelled identity, not on the halves the
        # table shows: say so where the halves put another one first
        higher = [c for c in raw if c is not chosen and c.val_nmi > chosen.val_nmi and "rank_nmi" in c.extra]
        ranked = ""
        if higher and "rank_nmi" in chosen.extra:
            o = max(higher, key=lambda c: c.val_nmi)
            ranked = (f" (the raw features' cuts are ranked on all {chosen.extra.get('rank_identities')} training "
                      f"and validation identities, where it scored NMI {chosen.extra['rank_nmi']:.3f} and "
                      f"{o.linkage} linkage {o.extra['rank_nmi']:.3f}; on the validation halves alone {o.linkage} "
                      f"linkage scored higher, {o.val_nmi:.3f} against {chosen.val_nmi:.3f})")
        return (f"{lead}: {model_part}. "
                f"Clustering the raw features, {chosen.linkage} linkage at {chosen.threshold.value:.4g}{ranked}")
    if best_raw is None:
        versus = "; not compared with the raw features (compare_raw=False)"
    elif picked is not None and len(halves(best_raw)) > 1:
        versus = (f"; on the two halves it scored {pair(halves(chosen))}, and {picked}, "
                  f"the raw features {pair(halves(best_raw))}")
    else:
        versus = f"; raw features reached NMI {best_raw.val_nmi:.3f}"
    if chosen.step == 0:  # the head as it started: for the identity-start heads, the input normalised
        return (f"clustering the model as it started (step 0: no training step scored better on the held-out "
                f"identities): {chosen.name} ({score}){versus}")
    return f"clustering the learned embedding: {chosen.name} ({score}){versus}"
