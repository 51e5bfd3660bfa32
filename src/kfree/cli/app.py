"""``kfree`` command line: a thin layer over the Python API.

Heavy imports (torch, sklearn) happen inside commands so ``kfree --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

from ..exceptions import (
    CheckpointError,
    ClusterSizeWarning,
    ConfigError,
    DataError,
    DataWarning,
    ModelError,
    ScaleWarning,
    user_stacklevel,
)
from ..utils.io import MUST_BE_NEW, array_sha256, check_output, replace_together, write_json
from .assign import BOX_NAMES, STATE_HELP, check_state_request, face_columns, pending_path
from .columns import (
    CANNOT_HELP,
    ID_HELP,
    IGNORE_HELP,
    LINK_HELP,
    SKIP_INVALID_HELP,
    align_columns,
    cannot_pairs,
    ignored,
    invalid_rows,
    link_pairs,
    model_rows,
)
from .console import (
    _STATE,
    _limit_threads,
    cli_errors,
    console,
    err_console,
    json_result,
    memory_limit_env,
    metrics_table,
    progress_hook,
    record,
    setup_logging,
    shown,
    stdout_is_result,
    strict_warnings,
)

app = typer.Typer(
    name="kfree",
    help="Learn embeddings whose geometry says where a cluster ends; cluster without knowing K.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: entry-point group through which paper reproductions (and anyone's experiments) add commands
EXPERIMENTS_GROUP = "kfree.experiments"


def _register_experiments() -> None:
    """Attach ``kfree experiment …`` from installed plugins.

    The library holds no experiment of its own: each distribution that declares an entry point in
    the ``kfree.experiments`` group (the ``kfree-reproductions`` package beside this one declares
    ``bcl2019`` and ``icpr2020``) names a ``register(experiment_app)`` function that adds its
    commands. Without any, ``kfree experiment`` says how to install them instead of failing.
    """
    from importlib.metadata import entry_points

    experiment_app = typer.Typer(
        help="Reproduce the papers' experiments (installed separately: pip install ./reproductions).",
        no_args_is_help=True,
    )
    plugins = sorted(entry_points(group=EXPERIMENTS_GROUP), key=lambda ep: ep.name)
    for ep in plugins:
        try:
            ep.load()(experiment_app)
        except Exception as e:  # a broken plugin must not take the whole CLI down
            err_console.print(f"[yellow]warning:[/] experiment plugin {ep.name!r} ({ep.value}) failed to load: {e}")
    if not experiment_app.registered_commands:  # none installed, or none loaded
        @experiment_app.command("list")
        def _none() -> None:
            """Say where the experiments are: none is installed."""
            console.print("No experiments are installed. The paper reproductions are a separate package: "
                          "pip install ./reproductions (from a kfree checkout).")
            raise typer.Exit(2)
    app.add_typer(experiment_app, name="experiment")


_register_experiments()


def _register_commands() -> None:
    """Attach ``kfree assign`` (incremental clustering, kfree.cli.assign), ``kfree embed`` (a
    model's rows for back-ends that take features as they are, kfree.cli.embed), ``kfree
    report`` (a page to look at a clustering, kfree.cli.report) and ``kfree encode`` (photos and
    texts to features with pretrained encoders, kfree.cli.encode)."""
    from .assign import assign
    from .embed import embed
    from .encode import encode_app
    from .report import report

    app.command("assign", no_args_is_help=True)(assign)
    app.command("embed", no_args_is_help=True)(embed)
    app.command("report", no_args_is_help=True)(report)
    app.add_typer(encode_app, name="encode")


_register_commands()

EVAL_COLUMNS = [("n_samples", "items"), ("n_true", "true #"), ("n_clusters", "#clusters"), ("nmi", "NMI"),
                ("wcp", "WCP"), ("acc", "ACC"), ("ari", "ARI"), ("pairwise_precision", "pair P"),
                ("pairwise_recall", "pair R"), ("pairwise_f1", "pair F"), ("bcubed_f1", "BCubed F")]


def _version(value: bool) -> None:
    if value:
        from .._version import __version__

        console.print(f"kfree {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only warnings and errors (no results, "
                                                               "tables or progress: the outputs are the files).")] = False,
    threads: Annotated[int | None, typer.Option(
        min=1, help="CPU threads for torch, BLAS, OpenMP and numba together (default: $KFREE_NUM_THREADS, "
                    "$OMP_NUM_THREADS, else the physical cores this process may use).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at a warning of kfree's (about the data, cluster "
                                                           "sizes, scale): exit 1, nothing written. For unattended "
                                                           "jobs, which should not add doubtful rows for good.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Write the command's result as one JSON object on standard "
                                                           "output when it ends (its numbers, outputs, warnings, and "
                                                           "exit_status and error when it fails); its other lines go "
                                                           "to standard error.")] = False,
) -> None:
    setup_logging(verbose, quiet)
    json_result(json_out, ctx.invoked_subcommand)
    if strict:
        strict_warnings()
    _STATE["threads"] = threads
    MUST_BE_NEW.clear()  # (a command's own: one run by the tests' runner in a process that ran others)


@app.command()
def demo(
    dataset: Annotated[str, typer.Option(help="Shipped data set: att_faces (AT&T faces) or banking77 (intents).")] = "att_faces",
    out: Annotated[Path | None, typer.Option(help="Run directory (default kfree-runs/demo-<dataset>-<time>).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the identity split and training.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default per data set).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Write into an --out folder that already holds files.")] = False,
) -> None:
    """Train BCL on seen identities of a shipped data set and cluster unseen ones with no K."""
    with cli_errors():
        if out is not None:
            check_output(out, directory=True, force=force)
        from rich.markup import escape

        from ..demo import demo_config, run_demo
        from ..report.html import METRIC_COLUMNS

        cfg = demo_config(dataset, seed=seed, epochs=epochs)
        console.print(f"[bold]kfree demo[/bold] on {cfg.dataset}: identities split {cfg.n_train} train / "
                      f"{cfg.n_val} validation / {cfg.n_test} unseen test (seed {cfg.seed})")
        with progress_hook(progress) as hook, _limit_threads(torch=True):
            result = run_demo(cfg, out_dir=out, hook=hook)
        columns = [c for c in METRIC_COLUMNS if c[0] != "bcubed_f1"]  # the run page's, narrower
        console.print(metrics_table(f"Clustering {result.rows[0]['n_true']} unseen identities "
                                    f"(learned b = {result.b:.4f}, 4b = {4 * result.b:.4f})", result.rows, columns))
        console.print(f"chosen on the validation identities: {result.summary}")
        console.print(f"total wall time {result.wall_time_s:.1f} s")
        record(dataset=cfg.dataset, seed=cfg.seed, b=result.b, rows=result.rows, summary=result.summary,
               wall_time_s=result.wall_time_s, run_dir=result.run_dir)
        run_dir = escape(str(result.run_dir))
        console.print(f"run directory: [bold]{run_dir}[/bold]  (open {escape(str(result.run_dir / 'index.html'))})")


@app.command()
def train(
    labelled_file: Annotated[Path, typer.Argument(help="Features + identity labels: .npz, .npy (with --labels), .csv or .parquet.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the model (e.g. model.kfree).")],
    loss: Annotated[str, typer.Option(help="Loss name (kfree.registry); bcl by default.")] = "bcl",
    labels: Annotated[Path | None, typer.Option(help="Separate labels file (for .npy features).")] = None,
    x_key: Annotated[str | None, typer.Option(help="Features array in an .npz.")] = None,
    y_key: Annotated[str | None, typer.Option(help="Labels array in an .npz.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a .csv/.parquet (default 'label').")] = None,
    ignore_columns: Annotated[str | None, typer.Option(help=IGNORE_HELP)] = None,
    id_column: Annotated[str | None, typer.Option(help="The column of row ids (a sku_id): not a feature, as "
                                                       "with kfree cluster --id-column.")] = None,
    epochs: Annotated[int, typer.Option(help="Most training epochs (validation stops earlier when it stops improving).")] = 60,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="Adam weight decay.")] = 1e-4,
    dropout: Annotated[float, typer.Option(help="Dropout after hidden layers.")] = 0.0,
    p: Annotated[int, typer.Option(help="Identities per batch.")] = 16,
    k: Annotated[int, typer.Option(help="Samples per identity in a batch.")] = 4,
    batches_per_epoch: Annotated[int | None, typer.Option(
        min=1, help="Batches per epoch (default: about the training rows' number of samples per epoch; the "
                    "README's Banking77 schedule uses 8).")] = None,
    head: Annotated[str, typer.Option(help="residual (starts as the identity of the input) or mlp (the BCL paper's head).")] = "residual",
    dims: Annotated[str | None, typer.Option(help="Layer sizes, comma-separated (residual: hidden sizes, default 256; mlp: default 256,128,64,64).")] = None,
    val_identities: Annotated[float, typer.Option(help="Fraction of identities held out for validation (model selection and the raw-feature check).")] = 0.2,
    validation: Annotated[Path | None, typer.Option(help="Labelled validation rows of other identities, drawn like the data you will "
                                                         "cluster (as many rows per identity): used instead of holding out "
                                                         "--val-identities. Same formats as LABELLED_FILE (.npz, .csv/.parquet "
                                                         "with --label-column).")] = None,
    eval_every_steps: Annotated[int, typer.Option(help="Validate every this many optimisation steps.")] = 10,
    patience: Annotated[int, typer.Option(help="Stop after this many validations without improvement.")] = 30,
    linkage: Annotated[str, typer.Option(help="auto (complete or Ward, chosen on validation), complete, average, single or ward.")] = "auto",
    threshold_mode: Annotated[str, typer.Option(help="auto, learned (the loss's own threshold) or recalibrated (cut fitted to the validation #identities).")] = "auto",
    compare_raw: Annotated[bool, typer.Option(help="Also score the raw features on validation and use them if they win.")] = True,
    loss_param: Annotated[list[str] | None, typer.Option(help="Loss hyper-parameter NAME=VALUE (repeatable).")] = None,
    calibration: Annotated[str, typer.Option(help="For losses with no implied threshold: n_clusters (validation #clusters match) or logistic (pair-distance logistic regression).")] = "n_clusters",
    sampler: Annotated[str, typer.Option(help="pk (P identities x K samples) or triplets (explicit triplets, with label noise).")] = "pk",
    triplets_per_batch: Annotated[int | None, typer.Option(help="Triplets per batch with --sampler triplets.")] = None,
    wrong_positives: Annotated[str, typer.Option(help="Fraction of positives drawn from another identity, as 0.1 or 10% (--sampler triplets).")] = "0",
    wrong_negatives: Annotated[str, typer.Option(help="Fraction of negatives drawn from the anchor's identity, as 0.05 or 5%, or 'random' (--sampler triplets).")] = "0",
    keep_last: Annotated[bool, typer.Option("--keep-last", help="Keep the model of the last step (the ICPR 2020 protocol: "
                                                                "train the epochs, use the last), not the best validated "
                                                                "one; its rule is still chosen on validation.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    labelled_only: Annotated[bool, typer.Option("--labelled-only", help="Train on the rows that have a label and "
                                                                        "pass over the others (an empty or blank "
                                                                        "label is none); else every row needs one.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Learn an embedding and its clustering threshold from labelled data; save the model.

    Under torchrun (`torchrun --nproc-per-node N -m kfree train ...`) the N processes train one
    model together; rank 0 validates, prints and writes the model, the others exit with 0.
    """
    with cli_errors():
        from ..train.distributed import torchrun_env

        rank0 = torchrun_env().is_main  # a half-set torchrun environment stops here, with one line
        if not rank0:
            import logging

            logging.getLogger().setLevel(logging.ERROR)  # rank 0 reports; the others only fail loudly
        check_output(out, inputs=(labelled_file, labels, validation), force=force)
        # the validation curve is written beside the model: checked alike, before any training
        check_output(_validation_plot_path(out), inputs=(labelled_file, labels), outputs={"--out": out},
                     force=force, option="the validation curve",
                     rename="choose another --out name (the curve is written beside it as <name>-validation.png)")
        from ..config import TrainConfig
        from ..data.io import TABLES, load_features
        from ..learner import ClusterLearner

        data = load_features(labelled_file, x_key=x_key, y_key=y_key, label_column=label_column,
                             labels_path=labels, require_labels=not labelled_only, min_samples=2,
                             ignore_columns=ignored(ignore_columns), partial_labels=labelled_only,
                             id_column=id_column)
        if labelled_only:
            data = labelled_rows(data, labelled_file)
        # --label-column names a table's column: a validation .npz keeps its labels under --y-key (research trial)
        val = None if validation is None else load_features(
            validation, x_key=x_key, y_key=y_key, require_labels=True, min_samples=2,
            label_column=label_column if validation.suffix.lower() in TABLES else None,
            ignore_columns=ignored(ignore_columns), ignore_missing=True)
        if val is not None and data.columns is not None:  # the validation table's columns in training's order
            val.X = align_columns(val, data.columns, validation, f"{labelled_file.name}'s",
                                  f"{labelled_file.name} does not have", f"of {labelled_file.name}")
        if val is not None and val.X.shape[1] != data.X.shape[1]:
            raise DataError(f"--validation {validation.name} has {val.X.shape[1]} features but {labelled_file.name} "
                            f"has {data.X.shape[1]}: validation rows must be the same kind of features")
        cfg = TrainConfig(loss=loss, loss_params=_parse_params(loss_param),
                          dims=None if dims is None else _parse_dims(dims), dropout=dropout, epochs=epochs,
                          lr=lr, weight_decay=weight_decay, p=p, k=k, batches_per_epoch=batches_per_epoch,
                          eval_every_steps=eval_every_steps,
                          patience=patience, seed=seed, sampler=sampler, triplets_per_batch=triplets_per_batch,
                          wrong_positives=_parse_noise(wrong_positives, "--wrong-positives", random=False),
                          wrong_negatives=_parse_noise(wrong_negatives, "--wrong-negatives"), select_best=not keep_last)
        learner = ClusterLearner(cfg, head=head, val_identities=val_identities, linkage=linkage,
                                 threshold_mode=threshold_mode, compare_raw=compare_raw, calibration=calibration)
        # a stopped run continues from its checkpoint, kept beside --out and named by what it trains (the
        # data and every setting), so another run never takes it up (an operations trial lost a whole
        # training to each kill, though the trainer could resume)
        from rich.markup import escape

        ckpt = _train_checkpoint(out, data, val, learner)
        if ckpt.exists() and rank0:
            console.print(f"continuing a stopped run of this training from its checkpoint ({escape(ckpt.name)})",
                          highlight=False)
        with progress_hook(progress and rank0) as hook, _limit_threads(torch=True):
            def fit():
                learner.fit(data.X, data.y, hook=hook, X_val=None if val is None else val.X,
                            y_val=None if val is None else val.y, checkpoint=ckpt)

            try:
                try:
                    fit()
                except CheckpointError:  # damaged, or made by another kfree: start over
                    if rank0:
                        console.print(f"the checkpoint {escape(ckpt.name)} cannot be continued; training from the "
                                      "start", highlight=False)
                        ckpt.unlink(missing_ok=True)
                    fit()
            except KeyboardInterrupt:
                # (a docs trial: a stopped run did not say it could be continued; the checkpoint is a dot file)
                if rank0 and ckpt.exists():
                    err_console.print(f"the run's checkpoint is kept ({escape(str(ckpt))}): the same command "
                                      "continues it", highlight=False, soft_wrap=True)
                raise
        if not rank0:
            return  # rank 0 saves the (identical) model and reports
        from rich.markup import escape

        learner.provenance_["source"] = str(labelled_file)
        if data.columns is not None:  # a table's feature columns: kfree cluster checks a table's against them
            import numpy as np

            learner.feature_names_in_ = np.asarray(data.columns, dtype=object)
            if ignored(ignore_columns):  # and the columns left out of it, which kfree cluster leaves out too
                learner.provenance_["ignored_columns"] = list(ignored(ignore_columns))
        # the model and its validation curve are written aside and put in place together (a kill between
        # the two left a new model beside the last run's curve: an operations trial)
        from ..report.validation import plot_learner_validation

        curve = _validation_plot_path(out)
        with removed_after(pending_path(out), pending_path(curve)):
            learner.save(pending_path(out))
            plot = plot_learner_validation(learner, pending_path(curve))
            replace_together([(pending_path(out), out), *([(plot, curve)] if plot else [])])
        if plot is None:  # (an earlier run's curve does not describe this model)
            curve.unlink(missing_ok=True)
        plot = None if plot is None else curve
        for stale in out.parent.glob(f".{out.name}.*.checkpoint"):  # (this run's, and any a stopped other left)
            stale.unlink(missing_ok=True)
        prov = learner.provenance_
        kept = {None: "kept the last step (--keep-last)" if keep_last else
                "kept the last step (nothing held out to choose another)",
                0: "kept step 0: the head as it started, no step scored better on the held-out identities"}.get(
            learner.best_step_, f"kept step {learner.best_step_}")
        console.print(f"trained {loss} on {data.n_samples} rows, {prov['n_identities']} identities "
                      f"({prov['n_val_identities']} " + ("held out for validation" if validation is None else
                                                         f"for validation, from {escape(validation.name)}")
                      + f"); {prov['steps']} steps"
                      f"{' (stopped early)' if prov['stopped_early'] else ''}, {kept}")
        _print_candidates(learner)
        console.print(f"model saved to [bold]{out}[/bold]" + (f"; validation curve: {plot}" if plot else ""))
        rule = learner.rule_
        record(out=out, validation_curve=plot, loss=loss, rows=data.n_samples, identities=prov["n_identities"],
               validation_identities=prov["n_val_identities"], steps=prov["steps"],
               stopped_early=prov["stopped_early"], kept_step=learner.best_step_, features=rule.features,
               linkage=rule.linkage, threshold=learner.threshold_.value, distance=learner.threshold_.distance,
               val_nmi=rule.val_nmi, summary=learner.summary(),
               candidates=learner.selection_.get("candidates", []))  # (every rule scored: a ticket trial)


@app.command(no_args_is_help=True)
def cluster(
    first: Annotated[Path | None, typer.Argument(
        metavar="MODEL", show_default=False,
        help="A model saved by `kfree train`: DATA is embedded with it and cut at its threshold. "
             "Leave it out (give DATA alone, with --threshold) to cluster the features as they are.")] = None,
    *,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .csv or .parquet: index,cluster[,label] (with "
                                      "--backend dask also .npy); index = row of DATA, or the value of DATA's own "
                                      "'index' column, then with a 'row' column; the faces of `kfree encode faces` "
                                      "also get their 'photo'.")],
    second: Annotated[Path | None, typer.Argument(
        metavar="DATA", show_default=False,
        help="Features to cluster: .npz, .npy, .csv or .parquet.")] = None,
    threshold: Annotated[float | None, typer.Option(
        help="Distance at which clusters end. With a model: overrides its threshold (same units). "
             "Without: required by methods that cut at a threshold (hac, multicut, …: `kfree methods`), in "
             "--distance units.")] = None,
    distance: Annotated[str | None, typer.Option(
        help="Without a model: sqeuclidean (default), euclidean or cosine (1 - cos). For unit-norm "
             "features a threshold lies in [0, 4] sqeuclidean, [0, 2] euclidean or cosine. --method ward "
             "cuts at a Ward merge height, in euclidean units (default) or sqeuclidean, never cosine.")] = None,
    method: Annotated[str, typer.Option(help="Clustering back-end: hac (default, at the threshold), multicut, or a baseline (see `kfree methods`).")] = "hac",
    linkage: Annotated[str | None, typer.Option(help="Without a model, --method hac: complete (default), average or "
                                                "single linkage (a model clusters with the linkage it chose).")] = None,
    n_clusters: Annotated[int | None, typer.Option(help="K, for methods that need it (k-means, HAC at k).")] = None,
    k_max: Annotated[int | None, typer.Option(min=1, help="At most this many clusters, for methods that find the "
                                                          "number themselves and take a bound (xmeans: the BCL "
                                                          "paper's K_max; without a model).")] = None,
    x_key: Annotated[str | None, typer.Option(help="Features array in an .npz.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a table, if present (default 'label').")] = None,
    ignore_columns: Annotated[str | None, typer.Option(help=IGNORE_HELP)] = None,
    id_column: Annotated[str | None, typer.Option(help=ID_HELP)] = None,
    link_column: Annotated[str | None, typer.Option(help=LINK_HELP)] = None,
    cannot_link: Annotated[Path | None, typer.Option(help=CANNOT_HELP)] = None,
    finetune: Annotated[bool, typer.Option("--finetune", help="With a model and --link-column/--cannot-link: first "
                                                             "fine-tune its head on those pairs at its frozen cut (the "
                                                             "BCL paper's BCL-FT), kept only if it puts more of a "
                                                             "held-out fifth of the pairs on their side of the cut; "
                                                             "then cluster with the pairs.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out (or --state) file.")] = False,
    state: Annotated[Path | None, typer.Option("--state", help=STATE_HELP)] = None,
    backend: Annotated[str, typer.Option(help="local (default), or dask: exact threshold HAC on a Dask cluster, "
                                         "reading .npy (memory-mapped) or .parquet in blocks (pip install 'kfree\\[dask]').")] = "local",
    scheduler: Annotated[str | None, typer.Option(help="With --backend dask: the scheduler's address (tcp://host:8786); "
                                                  "default: a local cluster started for this command.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="With --backend dask and no --scheduler: worker processes.")] = None,
    memory_limit: Annotated[float | None, typer.Option(
        "--memory-limit", min=0.001, help="GiB the exact clustering's τ-edges and distance blocks may use before it "
        "refuses (default: half this machine's memory, or $KFREE_MEMORY_LIMIT_GB); the rows themselves and a "
        "--state come on top; with --backend dask, per worker kfree starts.")] = None,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help=SKIP_INVALID_HELP + ", and a --state leaves them out (its rows are then numbered "
                               "without them). Without it such a file is refused, naming the first of them.")] = False,
) -> None:
    """Cluster data without knowing K: with a trained model at its threshold, or features as they are.

    \b
    kfree cluster model.kfree new.npy --out clusters.csv      # embed, cut at the model's threshold
    kfree cluster feats.npy --threshold 1.2 --out clusters.csv  # raw features, sqeuclidean units
    kfree cluster feats.npy --threshold 0.3 --distance cosine --method multicut --out c.csv
    kfree cluster big.npy --threshold 0.6 --backend dask --workers 8 --out c.csv  # Dask, exact
    """
    if first is None:  # (optional in the help: MODEL may be left out, DATA not)
        with cli_errors():
            raise ConfigError("say what to cluster: kfree cluster DATA --threshold T --out clusters.csv, or with a "
                              "model, kfree cluster MODEL DATA --out clusters.csv")
    with memory_limit_env(memory_limit), held_state(state):  # (the limit: also the Dask workers kfree starts)
        if backend != "local" or scheduler is not None or workers is not None:
            with cli_errors():
                if link_column or cannot_link or skip_invalid:
                    raise ConfigError("--link-column, --cannot-link and --skip-invalid are for the local backend; "
                                      "the Dask backend clusters every row of the file as it is, unconstrained")
                with removed_after(pending_path(out), None if state is None else pending_path(state)):
                    _cluster_dask(first, second, out, threshold, distance, method, n_clusters, force, backend,
                                  scheduler, workers, state, linkage, memory_limit,
                                  ignore=tuple(ignored(ignore_columns)), id_column=id_column)
            return
        state_pending = None if state is None else pending_path(state)  # (put in place once --out is written)
        with cli_errors(), removed_after(pending_path(out), state_pending):
            # typer fills the places left to right: without the optional MODEL, DATA sits in the first
            model, data_path = (first, second) if second is not None else (None, first)
            if model is None and data_path.suffix.lower() == ".kfree":
                raise ConfigError(f"{data_path.name} is a model; say what to cluster with it: "
                                  f"kfree cluster {data_path} DATA --out clusters.csv")
            check_output(out, inputs=(first, second), force=force, formats=(".csv", ".parquet"))
            check_state_request(state, method, n_clusters, inputs=(first, second), out=out, force=force,
                                linkage=linkage)
            constrained = link_column is not None or cannot_link is not None
            if constrained and method != "hac":
                raise ConfigError(f"--link-column/--cannot-link are for --method hac: --method {method} takes no "
                                  "pairs")
            if constrained and state is not None:
                raise ConfigError("--link-column/--cannot-link are for kfree cluster without --state: a cluster state "
                                  "keeps no pairs for the rows kfree assign adds (give a track's rows as one row, "
                                  "their mean, with its own id)")
            if finetune and (first is None or second is None or not constrained):
                raise ConfigError("--finetune fine-tunes a model's head on the pairs of DATA: give the model, "
                                  "--link-column and --cannot-link: kfree cluster MODEL DATA --link-column TRACK "
                                  "--cannot-link PAIRS --finetune")
            if finetune and (threshold is not None or n_clusters is not None):
                raise ConfigError("--finetune tunes the head for the model's own cut and checks it there: leave out "
                                  f"{'--threshold' if threshold is not None else '--n-clusters'} (a review: the head "
                                  "was tuned at one cut and clustered at another)")
            if constrained and skip_invalid:
                raise ConfigError("--skip-invalid would leave rows out of the pairs --link-column/--cannot-link name: "
                                  "drop the invalid rows from the file (and their pairs) instead")
            learner = None if model is None else _load_model_to_cluster(model, data_path, out)
            must, first_row, linked = link_pairs(data_path, link_column)
            n_linked = None if linked is None else len(linked)
            # the columns a model was trained without (kfree train --ignore-columns), unless others are named:
            # each batch of tickets holds the same ids and timestamps (found by a README trial)
            remembered = tuple(learner.provenance_.get("ignored_columns") or ()) if (
                learner is not None and ignore_columns is None) else ()
            left_out = remembered or ignored(ignore_columns)
            skip = (*left_out, *((link_column,) if link_column and data_path.suffix.lower() != ".npz" else ()))

            def read_data():
                """DATA's rows (one is enough for HAC at a threshold; with --skip-invalid the valid ones),
                its cannot-link row pairs, every row read and which of them are valid."""
                fewest = 1 if method == "hac" and n_clusters is None else 2
                read = load_features(data_path, x_key=x_key, label_column=label_column, min_samples=fewest,
                                     ignore_columns=skip, ignore_missing=bool(remembered), partial_labels=True,
                                     id_column=id_column, invalid="keep")
                if remembered and read.columns is not None:
                    console.print(f"leaving out the columns {', '.join(remembered)} as {escape(model.name)} was "
                                  "trained (--ignore-columns names others)", soft_wrap=True, highlight=False)
                if n_linked is not None and n_linked != read.n_samples:  # (an .npz's array of another length)
                    raise DataError(f"{data_path.name}: --link-column {link_column} has {n_linked} values for "
                                    f"{read.n_samples} rows of features; give one per row")
                invalid_rows(read, data_path, skip_invalid, "cluster")
                d, keep = read.valid_rows()
                if d.n_samples < fewest:
                    raise DataError(f"{data_path.name} has {d.n_samples} rows without NaN or infinite features; "
                                    f"at least {fewest} are needed")
                return d, cannot_pairs(cannot_link, data_path, d, link_column, first_row, id_column), read, keep

            from rich.markup import escape

            from .. import registry
            from ..data.images import face_photos
            from ..data.io import load_features
            from ..evaluate.compare import fill_rows, index_columns, write_predictions

            # an unknown or uninstalled method, or options it does not take: fail before any work
            accepted = registry.cluster_capabilities(method, n_clusters=n_clusters, threshold=threshold,
                                                     k_option="--n-clusters", threshold_option="--threshold")
            photos = face_photos(data_path)  # (the photo and box of each face, from kfree encode faces; located once)
            common = dict(method=method, accepted=accepted, threshold=threshold, n_clusters=n_clusters, k_max=k_max,
                          distance=distance, linkage=linkage, must=must, constrained=constrained, state=state,
                          state_pending=state_pending, left_out=left_out, id_column=id_column, photos=photos)
            if learner is not None:
                data, cannot, read, keep, labels, how, unit, used, rule, learner = _cluster_with_model(
                    learner, model, data_path, read_data, finetune=finetune, **common)
            else:
                data, cannot, read, keep, labels, how, unit, used, rule, _ = _cluster_features(
                    data_path, read_data, **common)
            if constrained:
                how += (f", {0 if must is None else len(must):,} must-link and {0 if cannot is None else len(cannot):,} "
                        "cannot-link pairs kept")
            # the clusters file names each row's group (a TV trial's frames came back without their tracks,
            # and --id-column refused the track column for repeating)
            groups = {} if linked is None or link_column in ("index", "row", "cluster", "label", "photo", *BOX_NAMES) else {
                link_column: linked}
            faces = face_columns(photos)
            if state is None:
                write_predictions(out, fill_rows(labels, keep), y=read.y, **index_columns(read.index, read.n_samples),
                                  **faces, **groups)
            else:  # both or neither: the state is put in place, then --out (as kfree assign does)
                write_predictions(pending_path(out), fill_rows(labels, keep), y=read.y,
                                  **index_columns(read.index, read.n_samples), **faces)
                replace_together([(state_pending, state), (pending_path(out), out)])
            n_found = len(set(labels.tolist()))
            record(out=out, state=state, rows=data.n_samples, clusters=n_found, method=method,
                   rule=how.removeprefix(", ") or None)
            console.print(f"{data.n_samples} row{'' if data.n_samples == 1 else 's'} → {n_found} cluster{'' if n_found == 1 else 's'} ({escape(method)}{how}); "
                          f"wrote [bold]{escape(str(out))}[/bold]")
            n_groups = None if linked is None else len(first_row)
            if (n_groups is not None and n_clusters is None and 20 <= n_groups < data.n_samples
                    and n_found == n_groups):
                # (a TV trial: 2,621 frames in 656 clusters, one a track, times and boxes clustered as features)
                warnings.warn(f"every --link-column {link_column} group is a cluster of its own ({n_groups:,}): no two "
                              f"groups joined at the threshold {used:g} {unit}; "
                              "check that every column clustered is a feature (--ignore-columns leaves ids, frames, "
                              "times and boxes out)" + ("" if model is not None else
                                                        " and the threshold's units (--distance)"),
                              DataWarning, stacklevel=user_stacklevel())
            elif model is None and method == "hac" and threshold is not None and n_clusters is None and (
                    data.n_samples >= 20 and n_found in (1, data.n_samples)):
                # (a TV-episode trial: 1,967 frames in 1,967 clusters, a frame id and a track number clustered as
                # features beside 128-d descriptors; a threshold in the wrong units does the same)
                what = ("every row is a cluster of its own: no two rows lie within" if n_found > 1 else
                        "all rows are one cluster at")
                warnings.warn(f"{what} the threshold {threshold:g} {unit}; check its units "
                              "(--distance: sqeuclidean unless given) and that every column clustered is a feature "
                              "(--ignore-columns leaves ids, tracks and counts out)", DataWarning, stacklevel=user_stacklevel())
            # (a cut that gave way for the size of the batch or for the pairs was named by its warning,
            # one that gave way for the number of rows before the work)
            if model is not None and state is not None and rule is not learner.rule_:
                _gave_way(learner, rule, state)
            if state is not None:
                from .assign import state_line

                console.print(state_line(state))
                if read.invalid.size and data.index is None:  # (rows with ids are named by them)
                    console.print(f"the state holds the other {data.n_samples:,} rows, numbered from 0 without the "
                                  "left-out ones: kfree assign --all-rows writes those numbers, not DATA's rows (rows "
                                  "with ids, an 'index' column or --id-column, are named by them)")


class _Clustered(NamedTuple):
    """What :func:`cluster`'s two ways of clustering hand to its output stage."""

    data: Any  # the valid rows clustered (LabelledData)
    cannot: Any  # cannot-link row pairs, or None
    read: Any  # every row read (LabelledData)
    keep: Any  # which of them are valid
    labels: Any
    how: str  # how they were clustered, for the summary line
    unit: str  # the threshold's units
    used: float | None  # the threshold used
    rule: Any = None  # a model's rule applied (ClusterRule), else None
    learner: Any = None  # the model (fine-tuned with --finetune), else None


def _cluster_with_model(learner, model: Path, data_path: Path, read_data, *, method: str, accepted, threshold,
                        n_clusters, k_max, distance, linkage, finetune: bool, must, constrained: bool, state,
                        state_pending, left_out, id_column, photos) -> _Clustered:
    """``kfree cluster MODEL DATA``: DATA embedded with the model and cut by its rule (or the
    --threshold/--n-clusters given), with a cluster state when asked."""
    if k_max is not None:
        raise ConfigError("--k-max is for clustering without a model: write the model's rows with "
                          "`kfree embed MODEL DATA --out rows.npy` (--learned for its own embedding), then "
                          "kfree cluster rows.npy --method xmeans --k-max K")
    if distance is not None or linkage is not None:
        raise ConfigError(f"--{'distance' if distance is not None else 'linkage'} is for clustering "
                          "without a model; a model clusters with the rule it chose (its distance and "
                          "linkage)")
    data, cannot, read, keep = read_data()
    data.X = model_rows(learner, data, data_path, left_out)
    if finetune:
        with _limit_threads(torch=True), progress_hook() as hook:
            learner = learner.finetune(data.X, must_link=must, cannot_link=cannot, hook=hook)
        ft = learner.finetune_
        console.print(f"fine-tuned on {ft['n_must_link']:,} must-link and {ft['n_cannot_link']:,} "
                      f"cannot-link pairs: {ft['heldout_pairs_on_their_side_after']:.1%} of the "
                      f"{ft['n_heldout_must_link'] + ft['n_heldout_cannot_link']:,} held-out pairs on their "
                      f"side of the cut, against {ft['heldout_pairs_on_their_side_before']:.1%} before: "
                      + ("the fine-tuned head clusters" if ft["kept_finetuned_head"] else
                         "not better, so the model's own head clusters"), soft_wrap=True, highlight=False)
        record(finetune={k: v for k, v in ft.items() if k != "config"})
    applied = None  # the rule hac applied, when it gave way to another (said below)
    with _limit_threads():
        if state is None:
            ahead = learner.rule_for_rows(data.n_samples)  # said before the work: it may fail
            if (method == "hac" and n_clusters is None and threshold is None and learner.threshold is None
                    and not constrained and ahead is not learner.rule_):
                _gave_way(learner, ahead, None)
            with warnings.catch_warnings(), progress_hook() as hook:  # (a model run was silent for minutes)
                warnings.simplefilter("ignore", ScaleWarning)  # said above, in one line
                shown(ClusterSizeWarning)  # shown, and names the cut used
                labels, applied = learner.cluster(data.X, threshold=threshold, method=method,
                                                  n_clusters=n_clusters, must_link=must, cannot_link=cannot,
                                                  return_rule=True, hook=hook)
        else:
            from .assign import cluster_model_state, state_photos

            names = getattr(learner, "feature_names_in_", None)  # (data.X is in their order)
            labels, applied = cluster_model_state(
                learner, model, data.X, threshold, state_pending, data_path,
                columns=[str(c) for c in names] if names is not None else data.columns,
                left_out=left_out, ids=data.index, id_column=id_column,
                photos=state_photos(photos, keep))
    if method == "ward":  # a Ward height, calibrated or given
        rule, unit = None, "(Ward merge height)"
        used = threshold if threshold is not None or n_clusters is not None else (
            learner.rule_for("ward").threshold.value)
    else:
        # the rule learner.cluster applied (it may give way to a scalable or complete-linkage one)
        # (a method without a threshold, k-means say, is described without one: any rule serves)
        rule = applied or (learner.rule_for(method) if "threshold" in accepted else learner.rule_)
        unit = "(Ward merge height)" if rule.linkage == "ward" else rule.threshold.distance
        if threshold is not None and method != "hac":  # a number is in the chosen rule's units
            unit = learner.rule_.threshold.distance  # (its own was named: a review)
        used = threshold if threshold is not None else learner.threshold_for(rule).value
    how = _how(method, accepted, n_clusters, used, unit,
               logistic=learner.pair_model() is not None and threshold is None and learner.threshold is None)
    if method == "hac" and n_clusters is None:
        how = f", {rule.features} features, {rule.linkage} linkage{how}"
    else:  # (k-means of three losses' models gave one file, as each chose the raw features: a research trial)
        how = f", {'raw' if learner.uses_raw_ else 'model'} features{how}"
    return _Clustered(data, cannot, read, keep, labels, how, unit, used, rule, learner)


def _cluster_features(data_path: Path, read_data, *, method: str, accepted, threshold, n_clusters, k_max, distance,
                      linkage, must, constrained: bool, state, state_pending, left_out, id_column,
                      photos) -> _Clustered:
    """``kfree cluster DATA``: the features as they are, by --method at --threshold (in
    --distance units) or --n-clusters, with a cluster state when asked."""
    from .. import registry
    from ..distances import check_distance

    dist = check_distance(distance or "sqeuclidean")
    unit: str = dist
    if distance is None and threshold is not None and "distance" in accepted and _face_descriptors(
            data_path):  # (found by a photo-library trial: 18 clusters for 32 people, no word)
        warnings.warn(DataWarning(
            f"{data_path.name} holds face descriptors (kfree encode faces), whose usual cut (dlib's 0.6) "
            f"is a euclidean distance; --threshold {threshold:g} is read in sqeuclidean units here (the "
            f"default; euclidean {threshold ** 0.5:.3g}): add --distance euclidean for a euclidean cut, or "
            "--distance sqeuclidean to keep this one"), stacklevel=user_stacklevel())
    # the methods that take no --distance measure Euclidean distances (Ward, k-means, …)
    if "distance" not in accepted and distance is not None and dist == "cosine":
        raise ConfigError(f"--method {method} measures Euclidean distances" + (
            " (its --threshold is a Ward merge height in Euclidean units)" if method == "ward" else "")
            + "; --distance cosine would be ignored: L2-normalise the rows first (Euclidean distance "
            "then ranks pairs as cosine does), or use a method that takes --distance (`kfree methods`)")
    if "distance" not in accepted and distance is not None and "threshold" in accepted and method != "ward":
        raise ConfigError(f"--method {method} cuts at a threshold in units of its own and takes no --distance: "
                          "leave --distance out")
    kwargs: dict[str, object] = {}
    if k_max is not None:  # (a research trial: the paper's K_max 40/80/150/300 was Python-only)
        if "k_max" not in accepted:
            raise ConfigError(f"--k-max bounds the number a method finds itself; --method {method} takes "
                              "none (`kfree methods` lists what each takes)")
        kwargs["k_max"] = int(k_max)
    if linkage == "ward" and method == "hac":
        raise ConfigError("--linkage ward: Ward's cut is a merge height, not a distance between two rows; "
                          "use --method ward --threshold HEIGHT (or --n-clusters K)")
    if linkage is not None:
        if "linkage" not in accepted:
            raise ConfigError(f"--method {method} has no linkage to choose; --linkage is for --method hac")
        kwargs["linkage"] = linkage
    if n_clusters is not None:
        kwargs["n_clusters"] = int(n_clusters)
    elif "threshold" in accepted:
        if threshold is None:
            units = ("a Ward merge height, in Euclidean units" if method == "ward" else "in --distance units")
            raise ConfigError(f"method {method!r} without a model needs --threshold ({units}), or a "
                              "model: kfree cluster MODEL DATA")
        kwargs["threshold"] = float(threshold)
        if method == "ward":  # Ward merge heights are Euclidean: a squared one is converted
            from ..distances import resolve_cut

            wanted = distance or "euclidean"
            height = resolve_cut(float(threshold), wanted).to("euclidean").value
            kwargs["threshold"] = height
            unit = ("(Ward merge height, euclidean units)" if wanted == "euclidean" else
                    f"{wanted} = Ward merge height {height:.6g} (euclidean units)")
    # the distance goes to methods that cut at a threshold (also when cut at K instead), or
    # when asked for; baselines keep their own default (FINCH: cosine)
    if "distance" in accepted and ("threshold" in accepted or distance is not None):
        kwargs["distance"] = dist
    data, cannot, read, keep = read_data()
    est = registry.get("cluster", method, **kwargs)
    # progress of the exact threshold HAC (minutes at scale), as the Dask backend shows its own
    with _limit_threads(), progress_hook(getattr(est, "reports_progress", False)) as hook:
        est.fit(data.X, **({"hook": hook} if hook is not None else {}),
                **({"must_link": must, "cannot_link": cannot} if constrained else {}))
        labels = est.labels_
        if state is not None:
            from .assign import save_plain_state, state_photos

            save_plain_state(est, data.X, state_pending, columns=data.columns, left_out=left_out,
                             ids=data.index, id_column=id_column, photos=state_photos(photos, keep))
    from ..threshold import Threshold

    cut = getattr(est, "threshold_", None)
    if isinstance(cut, Threshold) and "distance" not in accepted and method != "ward":
        threshold, unit = cut.value, cut.distance  # (its own units: named as it cut, a contributor trial)
    how = _how(method, accepted, n_clusters, threshold, unit)
    if linkage is not None:
        how = f", {linkage} linkage{how}"
    if getattr(est, "n_noise_", 0) and (labels >= 0).all():  # (research trial: 469 of 502 were noise)
        how += f"; {est.n_noise_:,} of the clusters are noise rows, one each"
    return _Clustered(data, cannot, read, keep, labels, how, unit, threshold)


def _gave_way(learner, rule, state: Path | None) -> None:
    """Say that a model's chosen Ward cut gives way to its best validated complete-linkage cut
    ``rule``: for a cluster state, or (``state`` None) above ``WARD_MAX_ROWS`` rows."""
    from ..learner import WARD_MAX_ROWS

    why, keep = (("a cluster state needs complete linkage", "`kfree cluster` without --state gives the Ward clusters")
                 if state is not None else
                 (f"above {WARD_MAX_ROWS:,} rows Ward's O(n²) agglomeration is too slow", "--method ward keeps Ward"))
    console.print(f"the model's chosen rule is a Ward cut (validation NMI {learner.rule_.val_nmi:.3f}); {why}, so these "
                  f"clusters use its best validated complete-linkage cut (validation NMI {rule.val_nmi:.3f}); {keep}")
    record(chosen_rule_gave_way={"chosen": learner.rule_.name, "chosen_val_nmi": learner.rule_.val_nmi,
                                 "used": rule.name, "used_val_nmi": rule.val_nmi, "why": why})


def _face_descriptors(p: Path) -> bool:
    """``p`` is the .npz of ``kfree encode faces`` (its faces' boxes in their photos)."""
    if p.suffix.lower() != ".npz":
        return False
    from ..data.io import read_npz

    names, _ = read_npz(p, ())
    return {"embeddings", "paths", "boxes"} <= set(names)


def _load_model_to_cluster(model: Path, data_path: Path, out: Path):
    """The model of ``kfree cluster MODEL DATA``; a first file that is not a model says what the
    two places are for, and what to type for what the user likely meant (their data or a cluster
    state in the model's place is never called damaged)."""
    from ..data.io import FORMATS
    from ..learner import ClusterLearner

    try:
        return ClusterLearner.load(model)
    except ModelError:
        places = ("with two files, the first must be a model saved by `kfree train` and the second the data "
                  "(kfree cluster MODEL DATA)")
        if model.suffix.lower() == ".kstate":
            raise ModelError(f"{model.name} is a cluster state, not a model: {places}; to add the rows of "
                             f"{data_path.name} to its clustering, use kfree assign [MODEL] {model} {data_path} "
                             f"--out {out}") from None
        if model.suffix.lower() in FORMATS:
            raise ModelError(f"{model.name} is not a kfree model: {places}; to cluster {model.name} without a "
                             f"model, give it alone: kfree cluster {model} --threshold T --out {out}") from None
        raise


def _train_checkpoint(out: Path, data, val, learner) -> Path:
    """Where ``kfree train`` keeps its checkpoint: beside ``out``, named by a digest of the
    training and validation rows and labels and of every setting, so that only a rerun of the
    same training continues it."""
    import hashlib
    import json

    def labels(y) -> str:
        return "" if y is None else hashlib.sha256("\n".join(map(str, y.tolist())).encode()).hexdigest()

    what = [array_sha256(data.X), labels(data.y), None if val is None else array_sha256(val.X),
            None if val is None else labels(val.y), repr(learner.get_params(deep=False))]
    digest = hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()[:16]
    return out.with_name(f".{out.name}.{digest}.checkpoint")


@contextlib.contextmanager
def removed_after(*paths: Path | None):
    """Remove ``paths`` (written aside until put in place) when the block ends, however it ends."""
    try:
        yield
    finally:
        for p in paths:
            if p is not None:
                with contextlib.suppress(OSError):  # (a place that could not be written holds nothing)
                    p.unlink(missing_ok=True)


@contextlib.contextmanager
def held_state(state: Path | None):
    """Hold the lock ``kfree assign`` takes on an existing ``--state`` while ``kfree cluster``
    replaces it: an assign adding to it meanwhile lost its rows, or had them written over (an
    operations trial: cluster ids given out twice)."""
    with cli_errors():  # (a name too long for the file system: one line, not a traceback; an operations trial)
        held = state is not None and state.is_file()
    if not held:
        yield
        return
    from .assign import locked_state

    with cli_errors(), locked_state(state):
        yield


def _cluster_dask(first, second, out, threshold, distance, method, n_clusters, force, backend, scheduler,
                  workers, state=None, linkage=None, memory_limit=None, *, ignore: tuple[str, ...] = (),
                  id_column: str | None = None) -> None:
    """``kfree cluster DATA --backend dask``: features as they are, cut exactly at --threshold on Dask.

    A Parquet file or folder is read by the workers (:class:`~kfree.cluster.distributed.ParquetRows`,
    without ``ignore`` and ``id_column``); here only its ids are read. With ``--state`` the rows
    are then read here once (a state keeps every clustered row, so ``kfree assign`` can check new
    ones against the members exactly) and the state is built from the Dask labels."""
    from rich.markup import escape

    if backend not in ("local", "dask"):
        raise ConfigError(f"--backend {backend!r} is not one of local, dask")
    if backend != "dask":
        raise ConfigError("--scheduler and --workers are for --backend dask")
    if second is not None or first.suffix.lower() == ".kfree":
        raise ConfigError("--backend dask clusters features as they are (no model): write the rows a model "
                          "clusters with kfree embed MODEL DATA --out emb.npy (it prints the threshold T), then "
                          "kfree cluster emb.npy --threshold T --backend dask --out clusters.csv")
    if method != "hac":
        raise ConfigError(f"--backend dask runs threshold HAC (--method hac), not {method!r}")
    if n_clusters is not None:
        raise ConfigError("--backend dask cuts at --threshold; --n-clusters needs the full tree (local backend)")
    if threshold is None:
        raise ConfigError("--backend dask needs --threshold (in --distance units)")
    if scheduler is not None and workers is not None:
        raise ConfigError("--workers starts a local cluster; with --scheduler the cluster's own workers run")
    check_output(out, inputs=(first,), force=force, formats=(".csv", ".parquet", ".npy"))
    if state is not None and first.is_dir():
        raise ConfigError(f"--state keeps every clustered row and reads them from one file; {first} is a "
                          "folder: write the rows to one .npy or .parquet file, or leave out --state")
    check_state_request(state, method, n_clusters, inputs=(first,), out=out, force=force, linkage=linkage)
    from ..cluster import ThresholdAgglomerative
    from ..cluster.distributed import import_distributed
    from ..distances import check_distance
    from .console import level_library_loggers

    dist = check_distance(distance or "sqeuclidean")
    import_distributed()  # (a clear error when Dask is not installed) distributed sets its log level
    level_library_loggers()  # on import: back to the CLI's
    from ..data.io import load_features

    def read_here():
        return load_features(first, min_samples=2, ignore_columns=ignore, id_column=id_column, partial_labels=True)

    index = data = None  # a table's own 'index' column: the clusters file names the rows by it
    if first.suffix.lower() == ".npy":
        if ignore or id_column:
            raise ConfigError(f"{first.name} is an array without columns: --ignore-columns and --id-column are for "
                              "tables (.parquet, .csv)")
        X = first  # read in blocks by the workers, never loaded here
    elif first.suffix.lower() in (".parquet", ".pq") or first.is_dir():
        from ..cluster.distributed import ParquetRows

        X = ParquetRows(first, ignore_columns=(*ignore, *([id_column] if id_column else [])))
        index = _parquet_index(first, id_column)
    else:
        data = read_here()
        X, index = data.X, data.index
    with progress_hook() as hook:
        # float32, as every file kfree reads (load_features): the local backend and the state's
        # rows cluster the same values, also for a pair within float32 rounding of the cut
        # (memory_limit given here reaches the workers of a --scheduler too, not only those started here)
        m = ThresholdAgglomerative(float(threshold), linkage=linkage or "complete", distance=dist, backend="dask",
                                   scheduler=scheduler, n_workers=workers, dtype="float32",
                                   memory_limit=memory_limit).fit(X, hook=hook)
    from ..data.images import face_photos
    from ..evaluate.compare import index_columns, write_predictions

    written = out if state is None else pending_path(out)  # (with a state: both or neither, state first)
    photos = face_photos(first) if data is not None else None
    if out.suffix.lower() == ".npy":  # the labels alone
        from ..cluster.distributed import DaskThresholdResult

        DaskThresholdResult(m.labels_.shape[0], m.merge_pairs_, m.merge_heights_, {}).write(written)
    else:  # .csv or .parquet: index, cluster[, row]
        write_predictions(written, m.labels_, **index_columns(index, m.labels_.shape[0]),
                          **face_columns(photos))
    if state is not None:
        from .assign import save_plain_state, state_photos

        if data is None:  # (read by the workers: the rows are read here once)
            data = read_here()
        save_plain_state(m, data.X, pending_path(state), columns=data.columns, ids=data.index,
                         photos=state_photos(photos))
        replace_together([(pending_path(state), state), (written, out)])
    record(out=out, state=state, rows=m.labels_.shape[0], clusters=m.n_clusters_, method="hac", backend="dask",
           rule=f"{m.linkage} linkage, threshold {float(threshold):.6g} {dist}")
    console.print(f"{m.labels_.shape[0]} rows → {m.n_clusters_} clusters (hac on dask, {m.linkage} linkage, threshold "
                  f"{float(threshold):.6g} {dist}); wrote [bold]{escape(str(out))}[/bold]")
    if state is not None:
        from .assign import state_line

        console.print(state_line(state))


def _parquet_index(path: Path, id_column: str | None = None):
    """The ``index`` column (or ``id_column``) of a Parquet file (or folder of them, in the order
    the Dask backend reads them), checked as :func:`kfree.data.io.load_features` checks a table's;
    None without one. Only that column is read here: the features stay with the workers."""
    import pandas as pd

    from ..data.io import check_index, parquet_errors, parquet_files

    column = id_column or "index"
    parts, without = [], []
    for f, pf in parquet_files(path):
        with parquet_errors(f):
            if column in pf.schema_arrow.names:
                parts.append(pf.read(columns=[column]).column(column).to_pandas())
            else:
                without.append(f.name)
    if id_column is not None and without:
        raise DataError(f"{without[0]} has no id column {id_column!r} (--id-column)")
    if not parts:
        return None
    if without:
        raise DataError(f"{path.name}: {without[0]} has no 'index' column but other files of it have one; "
                        "give every file the column, or none")
    return check_index(pd.concat(parts, ignore_index=True), path, column)


def _how(method: str, accepted, n_clusters: int | None, threshold: float | None, distance: str,
         *, logistic: bool = False) -> str:
    """The summary's parameter: K, the threshold (only for methods that cut at one), or nothing."""
    if n_clusters is not None:
        return f", K={n_clusters}"
    if logistic and "cut_probability" in accepted:
        return ", logistic pair costs"
    if "threshold" in accepted and threshold is not None:
        return f", threshold {threshold:.6g} {distance}"
    return ""


@app.command()
def methods() -> None:
    """List the registered losses and clustering back-ends: what each method is told (from its
    declared capabilities), and which need an optional package."""
    stdout_is_result()
    with cli_errors():  # (a plugin that fails to import: one line, as elsewhere; a review)
        from rich.markup import escape

        from .. import registry

        console.print("[bold]losses[/bold] (kfree train --loss):  " + ", ".join(registry.names("loss")))
        console.print("[bold]clustering[/bold] (kfree cluster --method):")
        missing = set()
        listed: dict[str, dict] = {}
        width = max(map(len, registry.names("cluster"))) + 1  # (a longer name kept its column: a contributor trial)
        for name in registry.names("cluster"):
            cls, _ = registry.resolve_class("cluster", name)
            caps = cls.capabilities
            own = "threshold" not in caps and not getattr(cls, "requires_n_clusters", False)  # it finds K
            k = ("finds the number itself" + (", or --n-clusters" if "n_clusters" in caps else "") if own else
                 "--n-clusters" + ("" if "threshold" in caps else " (needed)") if "n_clusters" in caps else "")
            takes = [t for t in (("--threshold" if "threshold" in caps else ""), k,
                                 ("--distance" if "distance" in caps else ""), ("--linkage" if "linkage" in caps else ""),
                                 ("a model's pair costs" if "cut_probability" in caps else ""),
                                 ("--k-max" if "k_max" in caps else "")) if t]
            line = f"  {name:<{width}} {', '.join(takes)}"
            listed[name] = {"takes": takes, "installed": registry.available("cluster", name)}
            if not registry.available("cluster", name):
                line += " (not installed)"
                missing.add(registry.REQUIRES[("cluster", name)][1])
                listed[name]["extra"] = registry.REQUIRES[("cluster", name)][1]
            console.print(escape(line), highlight=False)
        for extra in sorted(missing):
            console.print(escape(f"not installed: pip install 'kfree[{extra}]' adds them"))
        record(losses=registry.names("loss"), methods=listed)


@app.command()
def evaluate(
    labels_csv: Annotated[Path, typer.Argument(help="Predicted clusters (CSV with a 'cluster' column, e.g. from `kfree cluster`).")],
    truth: Annotated[Path, typer.Argument(help="Any supported file with true labels (joined by 'index' when both have it, else by row order).")],
    label_column: Annotated[str | None, typer.Option(help="Label column/array in TRUTH.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the metrics as JSON here.")] = None,
    labelled_only: Annotated[bool, typer.Option("--labelled-only", help="Score only the rows with a true label "
                                                "(a labelled sample); without it a row with none is an error.")] = False,
    id_column: Annotated[str | None, typer.Option(help="TRUTH's column of row ids (a sku_id) when it is not named "
                                                       "'index': the clusters' 'index' is joined to it.")] = None,
    group_column: Annotated[str | None, typer.Option(help="A column (of either file) naming groups of rows scored "
                                                          "as one item each, as face tracks are: a group takes the "
                                                          "cluster and label most of its rows have.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
) -> None:
    """Score predicted clusters against true labels (NMI, WCP, ACC, ARI, pairwise and BCubed F)."""
    with cli_errors():
        if out is not None:
            check_output(out, inputs=(labels_csv, truth), force=force)
        else:
            stdout_is_result()
        from rich.markup import escape

        from ..evaluate.compare import evaluate_files

        metrics = evaluate_files(labels_csv, truth, label_column=label_column, labelled_only=labelled_only,
                                 id_column=id_column, group_column=group_column)
        if group_column is not None:
            console.print(f"scored {metrics['n_samples']:,} groups ({group_column!r}) of {metrics['n_rows']:,} rows, "
                          f"each in the cluster most of its rows are in; {metrics['groups_split']:,} of them "
                          f"{'lies' if metrics['groups_split'] == 1 else 'lie'} in more than one cluster" + (f", and {metrics['groups_mixed']:,} hold more than one true "
                                                     "label" if metrics["groups_mixed"] else ""), soft_wrap=True)
        if metrics.get("unlabelled_rows"):
            console.print(f"scored the {metrics['n_samples']:,} rows with a true label; "
                          f"{metrics['unlabelled_rows']:,} rows have none (--labelled-only)")
        console.print(metrics_table(f"{escape(labels_csv.name)} vs {escape(truth.name)}", [metrics], EVAL_COLUMNS))
        if out is not None:
            write_json(out, metrics)
            console.print(f"metrics written to [bold]{escape(str(out))}[/bold]")
        record(out=out, **metrics)


def _print_candidates(learner) -> None:
    """Every rule scored on the validation identities (learned vs recalibrated vs raw), and the choice."""
    from rich.table import Table

    cands = learner.selection_.get("candidates", [])
    if cands:
        from rich import box

        # val. NMI is scored on each half of the identities at the cut calibrated on the other half
        # (a rule that joins identities of different halves is not seen there); #clusters cuts all
        # of them at once, which shows it
        halves = not any(c.get("extra", {}).get("in_sample") for c in cands)
        table = Table(title="clustering rules on the validation identities (green: the one used; why: below)",
                      caption=("val. NMI: mean of the two halves of the identities, each cut where the other "
                               "half calibrated it; " if halves else
                               "val. NMI: fewer than 4 validation identities, so no halves: a recalibrated cut is "
                               "scored on the identities it was calibrated on; ")
                              + "#clusters: all validation identities cut together",
                      box=box.HEAVY_HEAD if console.is_terminal else box.ASCII)
        for col in ("features", "linkage", "threshold", "value", "val. NMI (halves)", "#clusters, all (true)"):
            table.add_column(col)
        chosen = learner.selection_["chosen"]
        for c in cands:
            mark = "[bold green]" if c == chosen else ""
            table.add_row(f"{mark}{c['features']}", c["linkage"],
                          ("own: " if c["mode"] == "learned" else "recalibrated: ") + c["threshold"]["source"],
                          f"{c['threshold']['value']:.6g} {c['threshold']['distance']}", f"{c['val_nmi']:.3f}",
                          f"{c['val_clusters']} ({c['val_true']})")
        console.print(table)
    style = "bold yellow" if learner.uses_raw_ or not learner.selection_.get("compared_with_raw") else "bold"
    console.print(f"[{style}]{learner.summary()}[/{style}]")


def labelled_rows(data, path: Path):
    """``kfree train --labelled-only``: the rows of ``data`` that have a label (a table labelled
    in part, as a labelling tool leaves it), said in one line; none or one is a DataError."""
    import numpy as np

    from ..data.io import LabelledData

    if data.y is None:
        raise DataError(f"{path.name} has no labels: give its label column with --label-column (or --labels FILE)")
    keep = np.array([v is not None for v in data.y.tolist()], dtype=bool)
    if keep.sum() < 2:
        raise DataError(f"{path.name} has {int(keep.sum())} labelled rows of {keep.size:,}; training needs at least 2")
    if keep.all():
        return data
    console.print(f"training on the {int(keep.sum()):,} labelled rows of {path.name} ({int((~keep).sum()):,} of "
                  f"its {keep.size:,} rows have no label)", highlight=False)
    y = np.asarray(data.y[keep].tolist())  # (the labels' own type again: text or numbers)
    return LabelledData(X=data.X[keep], y=y, index=None if data.index is None else data.index[keep],
                        columns=data.columns)


def _validation_plot_path(model_path: Path) -> Path:
    """Where ``kfree train --out MODEL`` writes the validation curve: beside MODEL."""
    return model_path.with_name(model_path.stem + "-validation.png")


def _parse_dims(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--dims {text!r} must be comma-separated integers, e.g. 256,128,64") from None
    if not dims:
        raise ConfigError("--dims needs at least one layer size")
    return dims


def _parse_noise(text: str, option: str, *, random: bool = True) -> float | str:
    """A label-noise option: a fraction (0.05), a percentage (5%), or for negatives 'random' (as
    ``kfree experiment icpr2020 --noise-neg`` takes them: a research trial's 10% was refused here)."""
    t = text.strip().lower()
    if random and t == "random":
        return "random"
    try:
        return float(t[:-1]) / 100.0 if t.endswith("%") else float(t)
    except ValueError:
        raise ConfigError(f"{option} {text!r} must be a fraction like 0.05 or a percentage like 5%"
                          + (", or 'random'" if random else "")) from None


def _parse_params(items: list[str] | None) -> dict[str, object]:
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


def _flags_without_a_type() -> None:
    """Show on/off and counting flags in ``--help`` without a type: typer 0.29 lists ``--force
    <bool>`` and ``--verbose <int>``, which a docs trial took for options that take a value
    (``kfree --verbose 2`` failed; ``--force true`` read ``true`` as the data file). Done by the
    ``kfree`` command alone (:func:`main`), not on import, so that other typer programs in the
    process keep typer's own help."""
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_kfree", False):
        return
    typed = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if (self.is_flag or self.count) and self.metavar is None else typed(self, ctx)

    display_type_rich._kfree = True
    TyperOption.display_type_rich = display_type_rich


def main() -> None:
    from .console import emit_result, stdout_verdict, tolerant_streams

    _flags_without_a_type()
    tolerant_streams()  # (the kfree command's streams only: not those of a program calling app())
    json_result("--json" in sys.argv[1:])  # (a command line refused before the options are read: still one object)
    try:
        app()
    except SystemExit as e:  # (typer ends every command so)
        code = e.code if isinstance(e.code, int) or e.code is None else 1
        emit_result(code)  # (kfree --json: once the exit status is known, before the verdict on stdout,
        raise SystemExit(stdout_verdict(code)) from None  # which a lost object fails too: a review)
    except BaseException as e:  # a defect's traceback follows; --json still says the command failed
        emit_result(130 if isinstance(e, KeyboardInterrupt) else 1, f"{type(e).__name__}: {e}")
        raise
    finally:
        # the process ends now: its last garbage collections would walk every object torch and
        # the other imports made (about half a second of each command), to free memory the exit
        # frees anyway; exit handlers still run
        import gc

        gc.freeze()


if __name__ == "__main__":
    main()
