"""``kfree experiment icpr2020``: the ICPR 2020 triplet-loss study on CIFAR-10 (thin CLI layer).

:func:`register` is this package's ``kfree.experiments`` entry point; torch and the experiment
modules are imported inside the command so ``kfree --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kfree.cli.console import cli_errors, console, metrics_table, progress_hook

B_COLUMNS = [("cell", "cell"), ("mc_acc", "multicut ACC %"), ("mc_k", "#clusters"), ("mc_nmi", "multicut NMI %"),
             ("km_acc", "k-means ACC %"), ("paper_mc", "paper multicut"), ("paper_km", "paper k-means"),
             ("mc_s", "multicut s")]
A_COLUMNS = [("run", "run"), ("epoch", "epoch"), ("mc_acc", "multicut ACC %"), ("mc_k", "#clusters"),
             ("km_acc", "k-means ACC %"), ("train_s", "epoch s")]


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def icpr2020(
    protocol: Annotated[str, typer.Option(help="B: frozen EfficientNet-Lite0 features + trainable head "
                                               "(the whole noise grid); A: AlexNet-BN trained on the images.")] = "B",
    loss: Annotated[str, typer.Option(help="Triplet variants, comma-separated (l1, l2, l3).")] = "l1,l2,l3",
    noise_pos: Annotated[str, typer.Option(help="Wrong-positive rates, comma-separated (0.05 or 5%).")] = "0,5%,10%,20%",
    noise_neg: Annotated[str, typer.Option(help="Wrong-negative rates, comma-separated, or 'random'.")] = "0,2%,5%,7%,random",
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated.")] = "0",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: B 10, A 100).")] = None,
    resume: Annotated[bool, typer.Option(help="Skip finished cells / continue from the last epoch checkpoint.")] = True,
    out: Annotated[Path | None, typer.Option(help="Output folder (default results/icpr2020/protocol_b[_<backbones>] "
                                                     "or kfree-runs/icpr2020/protocol_a).")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    eval_every: Annotated[int, typer.Option(help="A: cluster the test set every this many epochs.")] = 1,
    eval_first: Annotated[int, typer.Option(help="A: ...and after each of the first this many.")] = 0,
    backbone: Annotated[str, typer.Option(
        help="B: frozen features, several joined by '+' are concatenated "
             "(efficientnet-lite0, efficientnet-lite0+efficientnet-lite2).")] = "efficientnet-lite0",
    eval_workers: Annotated[int | None, typer.Option(
        help="A: processes clustering evaluated epochs while training goes on (default: 0 on CPU, "
             "up to 4 on a GPU).")] = None,
) -> None:
    """Reproduce the ICPR 2020 triplet-loss clustering study on CIFAR-10 (multicut without K, k-means with K)."""
    with cli_errors():
        from kfree.exceptions import ConfigError

        proto = protocol.strip().upper()
        if proto not in ("A", "B"):
            raise ConfigError(f"--protocol {protocol!r} must be A or B")
        losses = tuple(v.lower() for v in _split(loss))
        seed_list = tuple(int(s) for s in _split(seeds))
        pos, neg = _split(noise_pos), _split(noise_neg)
        if proto == "B":
            _run_b(losses, pos, neg, seed_list, epochs, resume, out, progress, backbone)
        else:
            _run_a(losses, pos, neg, seed_list, epochs, resume, out, progress,
                   {"eval_every": eval_every, "eval_first": eval_first, "eval_workers": eval_workers})


def _run_b(losses, pos, neg, seeds, epochs, resume, out, progress, backbone) -> None:
    from kfree_reproductions.icpr2020 import protocol_b as b
    from kfree_reproductions.icpr2020.paper import PAPER_ACC

    cfg = b.ProtocolBConfig(losses=losses, noise_pos=tuple(pos), noise_neg=tuple(neg), seeds=seeds,
                            backbone=backbone, **({"epochs": epochs} if epochs is not None else {}))
    out = out or b.default_protocol_b_out(cfg)
    n = len(cfg.cells())
    console.print(f"[bold]ICPR 2020, Protocol B[/bold]: {n} cells ({len(losses)} losses × {len(cfg.noise_pos)} "
                  f"positive × {len(cfg.noise_neg)} negative noise levels × {len(seeds)} seeds), "
                  f"{cfg.epochs} epochs per head → {out}")
    with progress_hook(progress) as hook:
        records = b.run_protocol_b(cfg, out, resume=resume, hook=hook)
    rows = []
    for r in records:
        c = r["cell"]
        key = (float(c["wrong_positives"]), c["wrong_negatives"] if c["wrong_negatives"] == "random"
               else float(c["wrong_negatives"]))
        rows.append({"cell": r["name"], "mc_acc": 100 * r["multicut"]["acc"], "mc_k": r["multicut"]["n_clusters"],
                     "mc_nmi": 100 * r["multicut"]["nmi"], "km_acc": 100 * r["kmeans"]["acc"],
                     "paper_mc": PAPER_ACC["multicut"][c["loss"]].get(key, ""),
                     "paper_km": PAPER_ACC["kmeans"][c["loss"]].get(key, ""),
                     "mc_s": r["multicut"].get("wall_s", "")})
    console.print(metrics_table("Clustering the 10,000 CIFAR-10 test images (paper: AlexNet-BN, 100 epochs)",
                                rows, B_COLUMNS))
    console.print(f"cells in {Path(out) / 'cells'}")


def _run_a(losses, pos, neg, seeds, epochs, resume, out, progress, schedule) -> None:
    from kfree_reproductions.icpr2020.protocol_a import ProtocolAConfig, run_protocol_a
    from kfree_reproductions.icpr2020.protocol_b import noise_tag, parse_noise

    out = out or Path("kfree-runs/icpr2020/protocol_a")
    rows = []
    for seed in seeds:
        for loss in losses:
            for p in pos[:1] or ["0"]:
                for q in neg[:1] or ["0"]:
                    cfg = ProtocolAConfig(loss=loss, wrong_positives=parse_noise(p), wrong_negatives=parse_noise(q),
                                          seed=seed, **schedule,
                                          **({"epochs": epochs} if epochs is not None else {}))
                    name = f"{loss}_p{noise_tag(cfg.wrong_positives)}_n{noise_tag(cfg.wrong_negatives)}_s{seed}"
                    console.print(f"[bold]ICPR 2020, Protocol A[/bold]: {name}, {cfg.epochs} epochs → {out / name}")
                    with progress_hook(progress) as hook:
                        recs = run_protocol_a(cfg, out / name, resume=resume, hook=hook)
                    for r in recs:
                        if "multicut" in r:
                            rows.append({"run": name, "epoch": r["epoch"], "mc_acc": 100 * r["multicut"]["acc"],
                                         "mc_k": r["multicut"]["n_clusters"], "km_acc": 100 * r["kmeans"]["acc"],
                                         "train_s": r["train_s"]})
    if len(pos) > 1 or len(neg) > 1:
        console.print("[yellow]Protocol A runs the first --noise-pos / --noise-neg value only[/yellow]")
    console.print(metrics_table("Protocol A: ACC after each epoch", rows, A_COLUMNS))


def register(experiment_app: typer.Typer) -> None:
    """Add ``icpr2020`` to kfree's ``experiment`` sub-app."""
    experiment_app.command("icpr2020")(icpr2020)
