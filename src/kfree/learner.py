"""The scikit-learn-style estimator: learn an embedding *and* the threshold where clusters end.

>>> learner = BallClusterLearner(epochs=30, seed=0).fit(X_train, y_train)
>>> labels = learner.cluster(X_new)          # unseen identities, no K given
>>> learner.threshold_                        # Threshold(value=4b, distance='sqeuclidean', ...)

``fit`` holds out a fraction of the *identities* for validation (model selection, and the
threshold of losses that imply none), trains the MLP head with the chosen loss, and sets
``threshold_``. ``transform`` embeds; ``cluster`` embeds and cuts complete-linkage HAC at the
threshold. Seeded runs are reproducible bit for bit on CPU.
"""

from __future__ import annotations

import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .distances import check_features
from .exceptions import ConfigError, DataError, DataFileNotFoundError, ModelError
from .threshold import Threshold

log = logging.getLogger(__name__)
MODEL_FORMAT = "kfree-model/1"


def _versions() -> dict[str, str]:
    import sklearn
    import torch

    from . import __version__

    return {"kfree": str(__version__), "torch": str(torch.__version__), "numpy": str(np.__version__),
            "sklearn": str(sklearn.__version__), "python": platform.python_version()}


def _plain(obj: Any) -> Any:
    """Convert numpy scalars and tuples to plain Python so ``torch.load(weights_only=True)`` reads it."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


class BallClusterLearner(TransformerMixin, BaseEstimator):
    """Learn an embedding whose geometry carries the clustering threshold.

    Parameters
    ----------
    loss : str
        Registered loss name (``"bcl"`` by default; see ``kfree.registry.names("loss")``).
    loss_params : dict, optional
        Keyword arguments of the loss (e.g. ``{"alpha": 0.8, "beta": 0.4}`` for triplets).
    dims : tuple of int
        Layer sizes of the MLP head; the last is the embedding dimension.
    dropout : float
        Dropout between hidden layers (regularises heads trained on few identities).
    epochs, lr, weight_decay : training schedule (Adam).
    p, k : identities per batch and samples per identity.
    val_identities : float or int
        Identities held out for validation when ``fit`` is not given ``X_val``/``y_val``
        (fraction in (0, 1) or a count; 0 disables it).
    linkage : {"complete", "average", "single"}
        Linkage for clustering (BCL's ``4b`` rule is derived for complete linkage).
    threshold : float, optional
        Override the learned/calibrated threshold (in the threshold's distance units).
    calibration : {"n_clusters", "logistic"}
        For losses that imply no threshold: cut where HAC gives the true number of validation
        identities (the BCL paper's baseline protocol), or fit p(different | distance) by
        logistic regression on validation pairs (the ICPR 2020 protocol; its 0.5 crossing is the
        HAC threshold and its probabilities feed ``method="multicut"``).
    sampler : {"pk", "triplets"}
        P×K batches, or explicit (anchor, positive, negative) triplets with label noise
        (``wrong_positives``, ``wrong_negatives`` = fraction or ``"random"``; triplet losses only).
    triplets_per_batch, wrong_positives, wrong_negatives : see ``sampler``.
    seed : int

    Attributes
    ----------
    model_ : MLPEmbedder
    loss_ : EmbeddingLoss
    threshold_ : Threshold
    labels_, n_clusters_ : clusters of the training data (set by ``fit_predict`` only).
    history_ : list of dict, per-epoch loss and validation scores.
    n_features_in_ : int
    """

    def __init__(
        self,
        loss: str = "bcl",
        *,
        loss_params: dict[str, Any] | None = None,
        dims: tuple[int, ...] = (256, 128, 64, 64),
        dropout: float = 0.0,
        epochs: int = 60,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        p: int = 16,
        k: int = 4,
        batches_per_epoch: int | None = None,
        val_identities: float | int = 0.2,
        eval_every: int = 5,
        linkage: str = "complete",
        threshold: float | None = None,
        calibration: str = "n_clusters",
        sampler: str = "pk",
        triplets_per_batch: int | None = None,
        wrong_positives: float = 0.0,
        wrong_negatives: float | str = 0.0,
        seed: int = 0,
    ) -> None:
        self.loss = loss
        self.loss_params = loss_params
        self.dims = dims
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.p = p
        self.k = k
        self.batches_per_epoch = batches_per_epoch
        self.val_identities = val_identities
        self.eval_every = eval_every
        self.linkage = linkage
        self.threshold = threshold
        self.calibration = calibration
        self.sampler = sampler
        self.triplets_per_batch = triplets_per_batch
        self.wrong_positives = wrong_positives
        self.wrong_negatives = wrong_negatives
        self.seed = seed

    # ------------------------------------------------------------------ fitting
    def _train_config(self):
        from .config import TrainConfig

        return TrainConfig(
            loss=self.loss, loss_params=dict(self.loss_params or {}), dims=tuple(self.dims), dropout=self.dropout,
            epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, p=self.p, k=self.k,
            batches_per_epoch=self.batches_per_epoch, eval_every=self.eval_every, seed=self.seed,
            sampler=self.sampler, triplets_per_batch=self.triplets_per_batch,
            wrong_positives=self.wrong_positives, wrong_negatives=self.wrong_negatives,
        )

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None, hook=None) -> "BallClusterLearner":
        """Train on labelled data ``X`` (n, d) with identity labels ``y`` (n,).

        ``X_val``/``y_val`` are validation data of *other* identities; when omitted,
        ``val_identities`` of the identities in ``y`` are held out automatically.
        """
        import torch

        from . import registry
        from .data.splits import split_identities
        from .embed.models import MLPEmbedder
        from .evaluate.calibrate import LogisticCalibration, threshold_for_n_clusters
        from .train.trainer import train_embedding
        from .utils.seeding import seed_everything

        if y is None:
            raise DataError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "fit needs identity labels (one per row of X)"
            )
        cfg = self._train_config()
        if self.calibration not in ("n_clusters", "logistic"):
            raise ConfigError(f"calibration={self.calibration!r} is not one of ('n_clusters', 'logistic')")
        if self.linkage not in ("complete", "average", "single"):
            raise ConfigError(f"linkage={self.linkage!r} is not one of ('complete', 'average', 'single')")
        X = check_features(X, min_samples=2)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise DataError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        n_ids = np.unique(y).shape[0]
        if n_ids < 2:
            raise DataError(f"training needs at least 2 identities, got {n_ids}; add labelled data of other identities")
        t0 = time.perf_counter()
        seed_everything(self.seed)
        if X_val is None and self.val_identities and n_ids >= 4:
            n_val = self.val_identities
            n_val_count = int(round(n_val * n_ids)) if isinstance(n_val, float) and n_val < 1 else int(n_val)
            n_val_count = min(max(n_val_count, 2), n_ids - 2)
            sp = split_identities(y, n_ids - n_val_count, n_val_count, seed=self.seed)
            X_tr, y_tr, X_val, y_val = X[sp.train_idx], y[sp.train_idx], X[sp.val_idx], y[sp.val_idx]
        else:
            X_tr, y_tr = X, y
            if X_val is not None:
                X_val = check_features(X_val, name="X_val", min_samples=2)
                if X_val.shape[1] != X.shape[1]:
                    raise DataError(f"X_val has {X_val.shape[1]} features but X has {X.shape[1]}")
                y_val = np.asarray(y_val)
        self.n_features_in_ = X.shape[1]
        model = MLPEmbedder(X.shape[1], cfg.dims, dropout=cfg.dropout)
        Xt = torch.tensor(np.asarray(X_tr, dtype=np.float32))
        model.set_standardization(Xt.mean(0), Xt.std(0) if Xt.shape[0] > 1 else torch.ones(X.shape[1]))
        loss_params = dict(cfg.loss_params)
        if cfg.sampler == "triplets" and cfg.loss.startswith("triplet"):
            loss_params.setdefault("mining", "given")  # the sampler already chose the triplets
        loss = registry.get("loss", cfg.loss, **loss_params)
        result = train_embedding(model, loss, X_tr, y_tr, cfg, X_val=X_val, y_val=y_val, hook=hook)
        self.model_ = model
        self.loss_ = loss
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        thr = loss.implied_threshold()
        self.calibration_ = None
        if thr is None:
            has_val = X_val is not None and len(np.unique(y_val)) >= 2
            Z_cal, y_cal = (self.transform(X_val), y_val) if has_val else (self.transform(X_tr), y_tr)
            if self.calibration == "logistic":
                self.calibration_ = LogisticCalibration.fit_embeddings(Z_cal, y_cal, seed=self.seed)
                thr = self.calibration_.threshold()
            else:
                thr = threshold_for_n_clusters(Z_cal, len(np.unique(y_cal)), linkage=self.linkage)
            if not has_val:
                thr = Threshold(thr.value, thr.distance, thr.source + " (on training identities)")
        self.learned_threshold_ = thr
        self.provenance_ = {
            "loss": cfg.loss, "loss_hparams": loss.hparams(), "train_config": cfg.to_dict(),
            "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "n_identities": int(n_ids),
            "n_train_identities": int(len(np.unique(y_tr))),
            "n_val_identities": int(len(np.unique(y_val))) if y_val is not None else 0,
            "best_epoch": result.best_epoch, "seed": self.seed, "versions": _versions(),
            "train_time_s": round(time.perf_counter() - t0, 3),
        }
        return self

    # ---------------------------------------------------------------- inference
    @property
    def threshold_(self) -> Threshold:
        """The threshold ``cluster`` uses: the override, else the learned/calibrated one."""
        self._check_fitted()
        if self.threshold is not None:
            return Threshold(float(self.threshold), self.learned_threshold_.distance, "user override")
        return self.learned_threshold_

    def _check_fitted(self) -> None:
        from sklearn.exceptions import NotFittedError

        if not hasattr(self, "model_"):
            raise NotFittedError("this BallClusterLearner is not fitted yet; call fit(X, y) or load a model")

    def _check_X(self, X: Any, min_samples: int = 1) -> np.ndarray:
        X = check_features(X, min_samples=min_samples)
        if X.shape[1] != self.n_features_in_:
            raise DataError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (the model was trained on them); "
                "use features from the same extractor as the training data"
            )
        return X

    def transform(self, X: Any) -> np.ndarray:
        """Embed ``X`` (n, d) → ndarray of shape (n, embedding_dim), unit-norm rows."""
        from .embed.encode import encode

        self._check_fitted()
        return encode(self.model_, self._check_X(X))

    def cluster(
        self, X: Any, *, threshold: float | None = None, method: str = "hac", n_clusters: int | None = None
    ) -> np.ndarray:
        """Cluster data of unseen identities; returns labels of shape (n,).

        ``method`` is a registered clustering back-end (``kfree.registry.names("cluster")``).
        Threshold methods (``hac``, ``multicut``) cut at the model's threshold — no K needed;
        ``threshold`` overrides it (same distance units). Methods that need K (k-means, HAC at
        k) take ``n_clusters``; K-estimating ones (X-means, G-means, HDBSCAN, FINCH) take
        neither. ``n_clusters`` with ``method="hac"`` cuts the tree at K instead.
        """
        import inspect

        from . import registry

        self._check_fitted()
        X = self._check_X(X, min_samples=2)
        cls, _ = registry.resolve("cluster", method)
        accepted = inspect.signature(cls.__init__).parameters
        kwargs: dict[str, Any] = {}
        if getattr(cls, "requires_n_clusters", False) and n_clusters is None:
            raise ConfigError(f"method {method!r} needs the number of clusters: pass n_clusters (--n-clusters)")
        if n_clusters is not None:
            if "n_clusters" not in accepted:
                raise ConfigError(f"method {method!r} does not take n_clusters; it finds the number itself")
            kwargs["n_clusters"] = int(n_clusters)
        elif "cut_probability" in accepted and self.calibration_ is not None and threshold is None and self.threshold is None:
            # a fitted p(different | d) is a better multicut cost than a hard threshold
            kwargs["cut_probability"] = self.calibration_.cut_probability
            kwargs["distance"] = self.calibration_.distance
        elif "threshold" in accepted:
            thr = self.threshold_ if threshold is None else Threshold(float(threshold), self.threshold_.distance, "argument")
            kwargs["threshold"] = thr.value
            if "distance" in accepted:
                kwargs["distance"] = thr.distance
        if "linkage" in accepted:
            kwargs["linkage"] = self.linkage
        if "n_clusters" in kwargs and "distance" in accepted:
            kwargs.setdefault("distance", self.learned_threshold_.distance)
        from .embed.encode import encode

        # X was validated above; embed it directly rather than through transform (no second check)
        return registry.get("cluster", method, **kwargs).fit(encode(self.model_, X)).labels_

    def fit_predict(self, X: Any, y: Any, **fit_params: Any) -> np.ndarray:
        """Fit on labelled data and return the clusters of that same data at the threshold.

        Also sets ``labels_`` and ``n_clusters_``. (``fit`` alone does not cluster the training
        data: that can cost more than training when it is large.)
        """
        self.labels_ = self.fit(X, y, **fit_params).cluster(X)
        self.n_clusters_ = int(self.labels_.max()) + 1
        return self.labels_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.non_deterministic = False
        tags.input_tags.sparse = False
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # ------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write the fitted model, its threshold and provenance to one file (atomically)."""
        import torch

        from .utils.io import atomic_path

        self._check_fitted()
        payload = {
            "format": MODEL_FORMAT,
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.get_params().items()},
            "model_config": self.model_.config(),
            "model_state": self.model_.state_dict(),
            "loss_state": self.loss_.state_dict(),
            "threshold": self.learned_threshold_.to_dict(),
            "calibration": None if self.calibration_ is None else self.calibration_.to_dict(),
            "provenance": self.provenance_,
            "history": self.history_,
        }
        payload = _plain(payload)
        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "BallClusterLearner":
        """Load a model saved with :meth:`save`."""
        import torch

        from . import registry
        from .embed.models import MLPEmbedder

        p = Path(path)
        if not p.exists():
            raise DataFileNotFoundError(f"model file not found: {p}")
        try:
            payload = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ModelError(
                f"{p.name} is not a kfree model file (it could not be read as one: "
                f"{type(e).__name__}); give a model saved by `kfree train`"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ModelError(f"{p.name} is not a kfree model file (expected format {MODEL_FORMAT})")
        params = dict(payload["params"])
        params["dims"] = tuple(params["dims"])
        self = cls(**params)
        mc = payload["model_config"]
        self.model_ = MLPEmbedder(mc["in_dim"], mc["dims"], normalize=mc["normalize"], dropout=mc["dropout"])
        self.model_.load_state_dict(payload["model_state"])
        self.model_.eval()
        self.loss_ = registry.get("loss", self.loss, **(self.loss_params or {}))
        self.loss_.on_num_classes(int(payload["provenance"].get("n_train_identities", 2)), self.model_.out_dim)
        self.loss_.load_state_dict(payload["loss_state"])
        self.learned_threshold_ = Threshold.from_dict(payload["threshold"])
        cal = payload.get("calibration")
        if cal is not None:
            from .evaluate.calibrate import LogisticCalibration

            self.calibration_ = LogisticCalibration.from_dict(cal)
        else:
            self.calibration_ = None
        self.provenance_ = payload["provenance"]
        self.history_ = payload["history"]
        self.n_features_in_ = int(mc["in_dim"])
        return self
