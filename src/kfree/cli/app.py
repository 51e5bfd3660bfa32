"""``kfree`` command line: a thin layer over the Python API.

Heavy imports (torch, sklearn) happen inside commands so ``kfree --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ._console import cli_errors, console, metrics_table, progress_hook, setup_logging

app = typer.Typer(
    name="kfree",
    help="Learn embeddings whose geometry says where a cluster ends; cluster without knowing K.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _register_experiments() -> None:
    """Attach ``kfree experiment …`` (paper reproductions); each lives in its own module."""
    from .experiment import experiment_app
    from .experiment_icpr import icpr2020

    experiment_app.command("icpr2020")(icpr2020)
    app.add_typer(experiment_app, name="experiment")


_register_experiments()

DEMO_COLUMNS = [("method", "method"), ("n_true", "true #"), ("n_clusters", "#clusters"), ("nmi", "NMI"),
                ("wcp", "WCP"), ("ari", "ARI"), ("pairwise_f1", "pairwise F"), ("threshold", "threshold"),
                ("wall_s", "time (s)")]
EVAL_COLUMNS = [("n_samples", "items"), ("n_true", "true #"), ("n_clusters", "#clusters"), ("nmi", "NMI"),
                ("wcp", "WCP"), ("acc", "ACC"), ("ari", "ARI"), ("pairwise_precision", "pair P"),
                ("pairwise_recall", "pair R"), ("pairwise_f1", "pair F"), ("bcubed_f1", "BCubed F")]


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> None:
    setup_logging(verbose, quiet)


@app.command()
def demo(
    dataset: Annotated[str, typer.Option(help="Shipped data set: att_faces (AT&T faces) or banking77 (intents).")] = "att_faces",
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default kfree-runs/demo-<dataset>-<time>).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the identity split and training.")] = 0,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs (default per data set).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train BCL on seen identities of a shipped data set and cluster unseen ones with no K."""
    with cli_errors():
        from ..evaluate.demo import demo_config, run_demo

        cfg = demo_config(dataset, seed=seed, epochs=epochs)
        console.print(f"[bold]kfree demo[/bold] on {cfg.dataset}: identities split {cfg.n_train} train / "
                      f"{cfg.n_val} validation / {cfg.n_test} unseen test (seed {cfg.seed})")
        with progress_hook(progress) as hook:
            result = run_demo(cfg, out_dir=out, hook=hook)
        console.print(metrics_table(f"Clustering {result.rows[0]['n_true']} unseen identities "
                                    f"(learned b = {result.b:.4f}, 4b = {4 * result.b:.4f})",
                                    result.rows, DEMO_COLUMNS))
        console.print(f"chosen on the validation identities: {result.summary}")
        console.print(f"total wall time {result.wall_time_s:.1f} s")
        console.print(f"run directory: [bold]{result.run_dir}[/bold]  (open {result.run_dir / 'index.html'})")


@app.command()
def train(
    labelled_file: Annotated[Path, typer.Argument(help="Features + identity labels: .npz, .npy (with --labels), .csv or .parquet.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the model (e.g. model.kfree).")],
    loss: Annotated[str, typer.Option(help="Loss name (kfree.registry); bcl by default.")] = "bcl",
    labels: Annotated[Optional[Path], typer.Option(help="Separate labels file (for .npy features).")] = None,
    x_key: Annotated[Optional[str], typer.Option(help="Features array in an .npz.")] = None,
    y_key: Annotated[Optional[str], typer.Option(help="Labels array in an .npz.")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="Label column of a .csv/.parquet (default 'label').")] = None,
    epochs: Annotated[int, typer.Option(help="Most training epochs (validation stops earlier when it stops improving).")] = 60,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay.")] = 1e-4,
    dropout: Annotated[float, typer.Option(help="Dropout after hidden layers.")] = 0.0,
    p: Annotated[int, typer.Option(help="Identities per batch.")] = 16,
    k: Annotated[int, typer.Option(help="Samples per identity in a batch.")] = 4,
    head: Annotated[str, typer.Option(help="residual (starts as the identity of the input) or mlp (the BCL paper's head).")] = "residual",
    dims: Annotated[Optional[str], typer.Option(help="Layer sizes, comma-separated (residual: hidden sizes, default 256; mlp: default 256,128,64,64).")] = None,
    val_identities: Annotated[float, typer.Option(help="Fraction of identities held out for validation (model selection and the raw-feature check).")] = 0.2,
    eval_every_steps: Annotated[int, typer.Option(help="Validate every this many optimisation steps.")] = 10,
    patience: Annotated[int, typer.Option(help="Stop after this many validations without improvement.")] = 30,
    linkage: Annotated[str, typer.Option(help="auto (complete or Ward, chosen on validation), complete, average, single or ward.")] = "auto",
    threshold_mode: Annotated[str, typer.Option(help="auto, learned (the loss's own threshold) or recalibrated (cut fitted to the validation #identities).")] = "auto",
    compare_raw: Annotated[bool, typer.Option(help="Also score the raw features on validation and use them if they win.")] = True,
    loss_param: Annotated[Optional[list[str]], typer.Option(help="Loss hyper-parameter NAME=VALUE (repeatable).")] = None,
    calibration: Annotated[str, typer.Option(help="For losses with no implied threshold: n_clusters (validation #clusters match) or logistic (pair-distance logistic regression).")] = "n_clusters",
    sampler: Annotated[str, typer.Option(help="pk (P identities x K samples) or triplets (explicit triplets, with label noise).")] = "pk",
    triplets_per_batch: Annotated[Optional[int], typer.Option(help="Triplets per batch with --sampler triplets.")] = None,
    wrong_positives: Annotated[float, typer.Option(help="Fraction of positives drawn from another identity (--sampler triplets).")] = 0.0,
    wrong_negatives: Annotated[str, typer.Option(help="Fraction of negatives drawn from the anchor's identity, or 'random' (--sampler triplets).")] = "0",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Learn an embedding and its clustering threshold from labelled data; save the model."""
    with cli_errors():
        from ..data.io import load_features
        from ..learner import BallClusterLearner

        data = load_features(labelled_file, x_key=x_key, y_key=y_key, label_column=label_column,
                             labels_path=labels, require_labels=True)
        learner = BallClusterLearner(loss, loss_params=_parse_params(loss_param), head=head,
                                     dims=None if dims is None else _parse_dims(dims), dropout=dropout,
                                     epochs=epochs, lr=lr, weight_decay=weight_decay, p=p, k=k,
                                     val_identities=val_identities, eval_every_steps=eval_every_steps,
                                     patience=patience, linkage=linkage, threshold_mode=threshold_mode,
                                     compare_raw=compare_raw, seed=seed,
                                     calibration=calibration, sampler=sampler, triplets_per_batch=triplets_per_batch,
                                     wrong_positives=wrong_positives, wrong_negatives=_parse_noise(wrong_negatives))
        with progress_hook(progress) as hook:
            learner.fit(data.X, data.y, hook=hook)
        learner.provenance_["source"] = str(labelled_file)
        learner.save(out)
        prov = learner.provenance_
        console.print(f"trained {loss} on {data.n_samples} rows, {prov['n_identities']} identities "
                      f"({prov['n_val_identities']} held out for validation); {prov['steps']} steps"
                      f"{' (stopped early)' if prov['stopped_early'] else ''}, kept step {learner.best_step_}")
        _print_candidates(learner)
        plot = _validation_plot(learner, out)
        console.print(f"model saved to [bold]{out}[/bold]" + (f"; validation curve: {plot}" if plot else ""))


@app.command()
def cluster(
    model: Annotated[Path, typer.Argument(help="A model saved by `kfree train`.")],
    unlabelled_file: Annotated[Path, typer.Argument(help="Features to cluster (.npz, .npy, .csv, .parquet).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output CSV: index,cluster[,label].")],
    threshold: Annotated[Optional[float], typer.Option(help="Override the model's threshold (same distance units).")] = None,
    method: Annotated[str, typer.Option(help="Clustering back-end: hac (default, at the threshold), multicut, or a baseline (see `kfree methods`).")] = "hac",
    n_clusters: Annotated[Optional[int], typer.Option(help="K, for methods that need it (k-means, HAC at k).")] = None,
    x_key: Annotated[Optional[str], typer.Option(help="Features array in an .npz.")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="Label column of a table, if present (default 'label').")] = None,
) -> None:
    """Embed new data and cluster it at the model's threshold (no K needed)."""
    with cli_errors():
        import pandas as pd

        from ..data.io import load_features
        from ..learner import BallClusterLearner
        from ..utils.io import atomic_path

        learner = BallClusterLearner.load(model)
        data = load_features(unlabelled_file, x_key=x_key, label_column=label_column)
        labels = learner.cluster(data.X, threshold=threshold, method=method, n_clusters=n_clusters)
        df = pd.DataFrame({"index": range(data.n_samples), "cluster": labels})
        if data.y is not None:
            df["label"] = data.y
        with atomic_path(out) as tmp:
            df.to_csv(tmp, index=False)
        how = f"K={n_clusters}" if n_clusters is not None else (
            f"threshold {threshold if threshold is not None else learner.threshold_.value:.4f}")
        n_found = len(set(labels.tolist()))
        console.print(f"{data.n_samples} rows → {n_found} clusters ({method}, {how}); wrote [bold]{out}[/bold]")


@app.command()
def methods() -> None:
    """List the registered losses and clustering back-ends."""
    from .. import registry

    console.print("[bold]losses[/bold] (kfree train --loss):  " + ", ".join(registry.names("loss")))
    console.print("[bold]clustering[/bold] (kfree cluster --method):  " + ", ".join(registry.names("cluster")))


@app.command()
def evaluate(
    labels_csv: Annotated[Path, typer.Argument(help="Predicted clusters (CSV with a 'cluster' column, e.g. from `kfree cluster`).")],
    truth: Annotated[Path, typer.Argument(help="Any supported file with true labels (joined by 'index' when both have it, else by row order).")],
    label_column: Annotated[Optional[str], typer.Option(help="Label column/array in TRUTH.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the metrics as JSON here.")] = None,
) -> None:
    """Score predicted clusters against true labels (NMI, WCP, ACC, ARI, pairwise and BCubed F)."""
    with cli_errors():
        from ..evaluate.compare import evaluate_files
        from ..utils.io import write_json

        metrics = evaluate_files(labels_csv, truth, label_column=label_column)
        console.print(metrics_table(f"{labels_csv.name} vs {truth.name}", [metrics], EVAL_COLUMNS))
        if out is not None:
            write_json(out, metrics)
            console.print(f"metrics written to [bold]{out}[/bold]")


def _print_candidates(learner) -> None:
    """Every rule scored on the validation identities (learned vs recalibrated vs raw), and the choice."""
    from rich.table import Table

    cands = learner.selection_.get("candidates", [])
    if cands:
        table = Table(title="clustering rules on the validation identities (the best is used)")
        for col in ("features", "linkage", "threshold", "value", "val. NMI", "#clusters (true)"):
            table.add_column(col)
        chosen = learner.selection_["chosen"]
        for c in cands:
            mark = "[bold green]" if c == chosen else ""
            table.add_row(f"{mark}{c['features']}", c["linkage"],
                          "own (learned)" if c["mode"] == "learned" else "recalibrated",
                          f"{c['threshold']['value']:.4g} {c['threshold']['distance']}", f"{c['val_nmi']:.3f}",
                          f"{c['val_clusters']} ({c['val_true']})")
        console.print(table)
    style = "bold yellow" if learner.uses_raw_ or not learner.selection_.get("compared_with_raw") else "bold"
    console.print(f"[{style}]{learner.summary()}[/{style}]")


def _validation_plot(learner, model_path: Path) -> Path | None:
    from ..report.validation import plot_validation_curve, raw_best_nmi

    path = model_path.with_name(model_path.stem + "-validation.png")
    return plot_validation_curve(learner.history_, path, chosen=learner.selection_["chosen"],
                                 raw_nmi=raw_best_nmi(learner.selection_),
                                 title=f"{learner.loss}: validation on held-out identities")


def _parse_dims(text: str) -> tuple[int, ...]:
    from ..exceptions import ConfigError

    try:
        dims = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--dims {text!r} must be comma-separated integers, e.g. 256,128,64") from None
    if not dims:
        raise ConfigError("--dims needs at least one layer size")
    return dims


def _parse_noise(text: str) -> float | str:
    from ..exceptions import ConfigError

    if text.strip().lower() == "random":
        return "random"
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--wrong-negatives {text!r} must be a fraction like 0.05 or 'random'") from None


def _parse_params(items: list[str] | None) -> dict[str, object]:
    from ..exceptions import ConfigError

    out: dict[str, object] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--loss-param {item!r} must look like NAME=VALUE")
        for conv in (int, float):
            try:
                out[name] = conv(value)
                break
            except ValueError:
                continue
        else:
            out[name] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def main() -> None:
    app()


if __name__ == "__main__":
    main()
