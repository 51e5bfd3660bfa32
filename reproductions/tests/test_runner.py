"""Experiments as data: the shipped experiment files, and the runner that reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfree.exceptions import ConfigError
from kfree_reproductions import runner

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
REPO = Path(__file__).resolve().parents[2]


def test_every_committed_result_has_its_experiment_file_and_is_reused_by_it(monkeypatch):
    """Each file's runs find their committed cells made under exactly that configuration (the
    resume policy would reuse them all), so the files are the runs behind results/."""
    import kfree_reproductions.bcl2019.experiment as bcl

    monkeypatch.chdir(REPO)
    assert len(CONFIGS) >= 9  # (a new file is committed with the results it made)
    # the BCL variants' heads were saved before training records were kept beside heads: a run of
    # their files would train those heads again (and so recompute the cells); only these may
    no_records = set()
    for path in CONFIGS:
        pl = runner.plan(path)
        for cfg, out in pl.runs if pl.experiment == "bcl2019" else []:
            for name in bcl.heads_to_train(cfg, out):
                assert not (out / "models" / cfg.variant / f"{name}_seed{cfg.seed}.json").exists(), (path.name, name)
                no_records.add(str(out))
    assert sorted(no_records) == [f"results/bcl2019/variants/{v}" for v in
                                  ("dropout0.3", "stepwise", "stepwise_dropout0.3")]
    # (whose runs are therefore refused, not run over the committed results: --no-resume recomputes them)
    for path in CONFIGS:
        pl = runner.plan(path)
        if any(str(out) in no_records for _, out in pl.runs):
            with pytest.raises(ConfigError, match="no training record"):
                runner.pending(pl)
            continue
        for out, todo in runner.pending(pl):
            assert todo == [], f"{path.name}: {out} would compute {todo}"


def _write(tmp_path, text):
    f = tmp_path / "e.toml"
    f.write_text(text)
    return f


@pytest.mark.parametrize(("text", "message"), [
    ('experiment = "bcl2019"\nout = "o"\nwhatever = 1\n', r"unknown key\(s\) \['whatever'\]"),
    ('experiment = "nope"\nout = "o"\n', "experiment='nope' is not one of"),
    ('experiment = "bcl2019"\n', 'set out = "folder"'),
    ('experiment = "bcl2019"\nout = "o"\n[grid]\nseed = 3\n', r"grid field\(s\) \['seed'\] must be non-empty lists"),
    ('experiment = "bcl2019"\nout = "o"\n[config]\nepoch = 3\n', r"unknown Bcl2019Config field\(s\) \['epoch'\]"),
    ('experiment = "bcl2019"\nout = "o/{loss}"\n', r"out uses \{loss\}"),
    ('experiment = "bcl2019"\nout = "o_{seed"\n', r"out = 'o_\{seed' is not a folder pattern"),
    ('experiment = "bcl2019"\nout = "o"\nreport = true\n[report_options]\nattt = false\n',
     r"unknown \[report_options\] \['attt'\]; the report takes \['att'\]"),
    ('experiment = "icpr2020-b"\nout = "o"\n[report_options]\natt = false\n', "writes no report"),
    ('experiment = "icpr2020-b"\nout = "o"\nreport = true\n', "has no report to write"),
    ('experiment = "bcl2019"\nout = "o"\n[config]\nimages_per_track = 3\n', "images_per_track=3 must be 1 or 2"),
    ('experiment = "bcl2019"\nout = "o"\n[config\n', "cannot read the experiment file"),
    # a value of another type than the field's is refused, naming the field (found by a newcomer:
    # "no" was true, 2.5 epochs ran, a text seed failed deep in a dry run)
    ('experiment = "bcl2019"\nout = "o"\n[config]\nkmeans_variants = "no"\n',
     r"Bcl2019Config.kmeans_variants = 'no' must be bool"),
    ('experiment = "bcl2019"\nout = "o"\n[config]\nepochs = 2.5\n', r"Bcl2019Config.epochs = 2.5 must be int"),
    ('experiment = "bcl2019"\nout = "o"\n[grid]\nseed = ["five"]\n', r"Bcl2019Config.seed = 'five' must be int"),
    ('experiment = "bcl2019"\nout = "o"\n[config]\ndims = 64\n', r"Bcl2019Config.dims = 64 must be tuple\[int, \.\.\.\]"),
    ('experiment = "bcl2019"\nout = "o"\n[config]\nbatches_per_epoch = "many"\n',
     r"batches_per_epoch = 'many' must be int \| None"),
])
def test_bad_experiment_files_are_refused_with_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        runner.plan(_write(tmp_path, text))


def test_toml_values_become_the_config_types(tmp_path):
    pl = runner.plan(_write(tmp_path, 'experiment = "bcl2019"\nout = "runs/s{seed}"\n'
                                      '[config]\neval_every_steps = "none"\ndims = [8, 4]\n'
                                      '[config.ft]\niterations = 7\n[grid]\nseed = [3, 1]\n'))
    (a, out_a), (b, out_b) = pl.runs
    assert a.eval_every_steps is None and a.dims == (8, 4) and a.ft.iterations == 7
    assert (a.seed, b.seed) == (3, 1) and (out_a, out_b) == (Path("runs/s3"), Path("runs/s1"))


def test_run_calls_the_experiment_per_grid_point_then_reports_each_folder_once(tmp_path, monkeypatch):
    from kfree_reproductions.bcl2019.experiment import Bcl2019Config

    calls = []
    fake = runner.Experiment(lambda: Bcl2019Config, lambda cfg, out, resume: calls.append((cfg.seed, out, resume)),
                             lambda out, **kw: calls.append(("report", out, kw)))
    monkeypatch.setitem(runner.EXPERIMENTS, "bcl2019", lambda: fake)
    f = _write(tmp_path, 'experiment = "bcl2019"\nout = "o"\nreport = true\n[grid]\nseed = [0, 1]\n'
                         '[report_options]\natt = false\n')
    runner.run(f, resume=False)
    assert calls == [(0, Path("o"), False), (1, Path("o"), False), ("report", Path("o"), {"att": False})]
    calls.clear()
    runner.run(f, dry_run=True)
    assert calls == []
