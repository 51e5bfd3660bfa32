"""``kfree embed``: write the rows a model clusters, for back-ends that take features as they are.

``kfree cluster MODEL DATA`` embeds and cuts on one machine; ``--backend dask`` (and any tool of
the user's own) takes features as they are. This command writes the model's rows — the learned
embedding, or the raw features when they won on validation — to a ``.npy`` and prints the cut
that reproduces the model's clustering on them: its complete-linkage rule (for a model whose
chosen rule is a Ward cut, the best validated complete-linkage cut, which is what scales).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..exceptions import ConfigError, DataError
from .columns import IGNORE_HELP, ignored, model_rows
from .console import _limit_threads, cli_errors, console, record


def _as_float16(Z):
    """``Z`` in half precision; rows beyond float16's range (it would write them as inf) are refused."""
    import numpy as np

    top = float(np.abs(Z).max()) if Z.size else 0.0
    limit = float(np.finfo(np.float16).max)
    if top > limit:
        n_rows = int(np.count_nonzero((np.abs(Z) > limit).any(axis=1)))
        raise DataError(f"the rows hold values up to {top:.3g}, which do not fit float16 (largest {limit:.0f}; "
                        f"{n_rows} row{'' if n_rows == 1 else 's'} would be written as inf); leave out --float16 "
                        "to write float32")
    return Z.astype(np.float16)


def embed(
    model: Annotated[Path, typer.Argument(show_default=False, help="A model from `kfree train`.")],
    data: Annotated[Path, typer.Argument(show_default=False, help="Rows to embed: .npz, .npy, .csv or .parquet.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output .npy (required): one row per input row.")] = None,
    float16: Annotated[bool, typer.Option("--float16", help="Write half precision (half the size; the Dask "
                                                              "backend computes distances in float32).")] = False,
    x_key: Annotated[str | None, typer.Option(help="Features array in an .npz.")] = None,
    ignore_columns: Annotated[str | None, typer.Option(help=IGNORE_HELP)] = None,
    learned: Annotated[bool, typer.Option("--learned", help="Write the learned embedding even where the model "
                                                            "chose the raw features (they won on validation): to "
                                                            "compare losses, or cluster it yourself.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Write the rows a model clusters (its embedding, or the raw features it chose) and the cut to use.

    \b
    kfree embed model.kfree photos.npy --out emb.npy --float16
    kfree cluster emb.npy --threshold T --distance D --backend dask --out clusters.csv   # T, D as printed
    """
    with cli_errors():
        import numpy as np
        from rich.markup import escape

        from ..data.io import load_features
        from ..learner import ClusterLearner
        from ..utils.io import atomic_path, check_output

        if out is None:
            raise ConfigError("say where to write the rows: --out embeddings.npy")
        if out.suffix.lower() != ".npy":
            raise ConfigError(f"--out {out.name}: kfree embed writes a .npy file (memory-mapped by the Dask backend)")
        check_output(out, inputs=(model, data), force=force)
        learner = ClusterLearner.load(model)
        table = load_features(data, x_key=x_key, min_samples=1, ignore_columns=ignored(ignore_columns),
                              partial_labels=True)  # (labels are not embedded: some may be missing)
        rows = model_rows(learner, table, data)
        with _limit_threads():
            Z = (learner.embed(rows) if learned else learner.transform(rows)).astype(np.float32, copy=False)
        if float16:
            Z = _as_float16(Z)
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            np.save(f, Z)
        what = ("learned embedding (the model clusters its raw features, which won on validation)"
                if learned and learner.uses_raw_ else
                "raw features (they won on validation; --learned writes the learned embedding)" if learner.uses_raw_
                else "embedding")
        console.print(f"{Z.shape[0]} rows → {Z.shape[1]}-d {what}, {Z.dtype}; wrote [bold]{escape(str(out))}[/bold]")
        record(out=out, rows=Z.shape[0], dims=Z.shape[1], dtype=str(Z.dtype),
               features="model" if learned else learner.rule_.features)
        if learned and learner.uses_raw_:  # the chosen cut is for the raw features: the loss's own is for this
            own = learner.learned_threshold_
            record(threshold=own.value, distance=own.distance)
            console.print(f"the loss's own cut of this embedding ({escape(own.source)}; it lost to the raw features on "
                          f"validation):\n  kfree cluster {escape(str(out))} --threshold {own.value!r} --distance "
                          f"{own.distance} --out clusters.csv", soft_wrap=True)
            return
        try:
            rule = learner.state_rule()
        except ConfigError:
            console.print(f"this model cuts {learner.rule_.linkage} linkage and has no complete-linkage cut; cluster "
                          f"with the model itself: kfree cluster {escape(str(model))} DATA --out clusters.csv")
            return
        note = "" if rule is learner.rule_ else (
            f" (the chosen rule is a Ward cut; this is its best validated complete-linkage cut, validation NMI "
            f"{rule.val_nmi:.3f} against Ward's {learner.rule_.val_nmi:.3f})")
        value = learner.threshold_for(rule).value
        record(threshold=value, distance=rule.threshold.distance)
        console.print(f"cluster them with the model's complete-linkage cut{note}:\n  kfree cluster {escape(str(out))} "
                      f"--threshold {value!r} --distance {rule.threshold.distance} --out clusters.csv"
                      "  [--backend dask]", soft_wrap=True)
