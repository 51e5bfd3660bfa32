"""``kfree experiment bcl2019`` and ``bcl2019-report``: thin commands over :mod:`.experiment` and :mod:`.report`.

:func:`register` is this package's ``kfree.experiments`` entry point: kfree's CLI calls it with its
``experiment`` sub-app when the reproductions are installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfree.cli.console import cli_errors, console, progress_hook


def _split(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def bcl2019(
    episodes: Annotated[str | None, typer.Option(
        help="Comma-separated test sets (default: the 12 episodes + bbt_all + buffy_all).")] = None,
    methods: Annotated[str | None, typer.Option(
        help="Comma-separated methods: raw,bcl,triplet,prototypical,contrastive,softmax (default all).")] = None,
    finetune: Annotated[bool, typer.Option(
        help="Also fine-tune bcl/triplet/prototypical on each set's must-/cannot-link constraints.")] = False,
    images_per_track: Annotated[int, typer.Option(help="2 (the protocol) or 1 (harder variant).")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the identity split, episodes and training (fine-tuning "
                                           "keeps seed 0, as the committed runs and the TOML runner do).")] = 0,
    epochs: Annotated[int, typer.Option(help="Training epochs per head (same for every loss).")] = 30,
    dropout: Annotated[float, typer.Option(help="Dropout between hidden layers of every head (protocol: 0).")] = 0.0,
    ft_iterations: Annotated[int, typer.Option(help="Fine-tuning iterations per set and method.")] = 2000,
    kmeans_variants: Annotated[bool, typer.Option(help="Run X-means / G-means (Table 2).")] = True,
    out: Annotated[Path, typer.Option(help="Results folder (cells, models, tables, figures).")] = Path("results/bcl2019"),
    resume: Annotated[bool, typer.Option(help="Reuse saved heads and finished cells of the same config.")] = True,
    report: Annotated[bool, typer.Option(help="Write the tables and figures afterwards.")] = True,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Ball Cluster Learning (ICCV 2019): face clustering of TV episodes with unknown K (Tables 1–5)."""
    with cli_errors():
        from kfree_reproductions.bcl2019.experiment import SETS, Bcl2019Config, run_bcl2019
        from kfree_reproductions.bcl2019.finetune import FinetuneConfig
        from kfree_reproductions.bcl2019.methods import METHODS

        cfg = Bcl2019Config(
            sets=_split(episodes) or SETS, methods=_split(methods) or METHODS, seed=seed, epochs=epochs, dropout=dropout,
            images_per_track=images_per_track, finetune=finetune,
            ft=FinetuneConfig(iterations=ft_iterations), kmeans_variants=kmeans_variants,
        )
        console.print(f"[bold]bcl2019[/bold]: {len(cfg.sets)} sets × {len(cfg.methods)} methods, "
                      f"{cfg.images_per_track} image(s) per track, fine-tune={cfg.finetune}, seed {cfg.seed} → {out}")
        with progress_hook(progress) as hook:
            cells = run_bcl2019(cfg, out, resume=resume, hook=hook)
        for name, cell in cells.items():
            ops = "  ".join(f"{m} {r['op']['n_clusters']}/{r['op']['nmi']:.3f}" for m, r in cell["methods"].items())
            console.print(f"{name}: #Ch {cell['n_characters']}  (#Cl/NMI) {ops}")
        if report:
            from kfree_reproductions.bcl2019.report import write_report

            write_report(out)
            console.print(f"tables and figures written to [bold]{out}[/bold]")


def bcl2019_report(
    out: Annotated[Path, typer.Option(help="Results folder written by `kfree experiment bcl2019`.")] = Path("results/bcl2019"),
) -> None:
    """Rewrite the BCL 2019 tables, curves and montages from the saved cells (no training)."""
    with cli_errors():
        from kfree_reproductions.bcl2019.report import write_report

        write_report(out)
        console.print(f"tables and figures written to [bold]{out}[/bold]")


def register(experiment_app: typer.Typer) -> None:
    """Add ``bcl2019`` and ``bcl2019-report`` to kfree's ``experiment`` sub-app."""
    experiment_app.command("bcl2019")(bcl2019)
    experiment_app.command("bcl2019-report")(bcl2019_report)
