"""Training with 2 torchrun processes (gloo) gives what one process gives; the environment is checked.

The two-process tests start ``python -m torch.distributed.run --standalone`` (torchrun on a free
port), so they exercise what a user runs: the environment torchrun exports, the process group
started from it, DDP, the gathered loss, rank-0-only validation/saving, and clean exits.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from typer.testing import CliRunner

import kfree
from kfree.cli.app import app
from kfree.data.synthetic import sphere_blobs
from kfree.train.distributed import (
    TORCHRUN_VARS,
    DistContext,
    DistributedSetupError,
    row_counts,
    session,
    torchrun_env,
)
from kfree.utils.model_file import read_model

HERE = Path(__file__).resolve().parent
needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")
FULL_ENV = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def _torchrun(args: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``torchrun --standalone --nproc-per-node 2 ARGS`` with this checkout's kfree first on
    the path, and its temporary files (torchrun leaves a ``torchelastic_*`` folder) under ``cwd``."""
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    src = str(Path(kfree.__file__).resolve().parents[1])
    env.update(PYTHONPATH=os.pathsep.join([src, env.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
               KFREE_NUM_THREADS="1", TMPDIR=str(cwd))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: killed whole on a hang


def _wait(launch: subprocess.Popen, timeout: float = 180) -> tuple[str, str]:
    """Its stdout and stderr once it exits; on a hang torchrun and its ranks are killed."""
    try:
        return launch.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.communicate()
        raise


def _cases_module():
    spec = importlib.util.spec_from_file_location("_ddp_cases", HERE / "_ddp_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ environment (no processes)
def test_no_torchrun_environment_is_one_process():
    ctx = torchrun_env({})
    assert ctx == DistContext() and not ctx.enabled and ctx.is_main


def test_full_environment_is_parsed():
    ctx = torchrun_env(FULL_ENV)
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.enabled, ctx.is_main) == (1, 2, 1, True, False)


@pytest.mark.parametrize("drop", ["MASTER_ADDR", "WORLD_SIZE", "LOCAL_RANK"])
def test_half_set_environment_is_one_clear_error(drop):
    env = {k: v for k, v in FULL_ENV.items() if k != drop}
    with pytest.raises(DistributedSetupError, match=f"half a torchrun environment: .* but {drop} not"):
        torchrun_env(env)


@pytest.mark.parametrize("changes,message", [
    ({"RANK": "one"}, "RANK='one' must be an integer"),
    ({"RANK": "2"}, "0 <= RANK < WORLD_SIZE"),
    ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE >= 1"),
])
def test_inconsistent_environment_is_refused(changes, message):
    with pytest.raises(DistributedSetupError, match=message):
        torchrun_env({**FULL_ENV, **changes})


@pytest.mark.parametrize("missing,message", [
    ("is_available", "this torch build has no torch.distributed"),
    ("is_gloo_available", "the gloo backend .* is not in this torch build"),
])
def test_missing_backend_is_one_clear_error(monkeypatch, missing, message):
    for k, v in {**FULL_ENV, "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(dist, missing, lambda: False)
    with pytest.raises(DistributedSetupError, match=message), session():
        pass


def test_session_without_environment_starts_nothing(monkeypatch):
    for v in TORCHRUN_VARS:
        monkeypatch.delenv(v, raising=False)
    with session() as ctx:
        assert not ctx.enabled and not dist.is_initialized()


def test_cli_train_refuses_half_set_environment(monkeypatch, tmp_path):
    X, y = sphere_blobs(4, 5, dim=6, seed=0)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    monkeypatch.setenv("RANK", "0")
    for v in TORCHRUN_VARS[1:]:
        monkeypatch.delenv(v, raising=False)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m.kfree")])
    assert result.exit_code == 1
    assert "half a torchrun environment: RANK=0 set but WORLD_SIZE" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m.kfree").exists()


def test_row_counts_cover_the_batch():
    assert row_counts(15, 2) == [8, 7]
    assert row_counts(16, 3) == [6, 5, 5]
    assert sum(row_counts(7, 7)) == 7


# ------------------------------------------------------------------ two processes
@needs_gloo
def test_two_processes_train_like_one(tmp_path):
    """One ``torchrun --nproc-per-node 2`` run (its start-up costs ~10 s, so everything is checked
    in one) trains every case of ``_ddp_cases.py``, then runs ``kfree train``.

    Cases: per-step losses, validation scores, stopping step, kept step and final weights (model
    and loss parameters: BCL's b, softmax class weights) of 2 gloo processes equal one process's
    (to rounding: the ranks multiply other row blocks) and, bit for bit, those of one process
    that embeds each batch in the same two row slices.

    CLI: ``kfree train`` under torchrun exits 0, rank 0 alone reports and writes the model, and
    the model equals the one a single process trains."""
    cases = _cases_module()
    cases.cli_data(tmp_path)
    launch = _torchrun([str(HERE / "_ddp_cases.py"), str(tmp_path)], cwd=tmp_path)
    try:  # the one-process references are computed while the ranks train
        (tmp_path / "one").mkdir()
        (tmp_path / "chunked").mkdir()
        one = cases.run_cases(tmp_path / "one")
        # one process embedding each batch in the two slices the ranks embed does the same
        # arithmetic as the two ranks (the scalings by 2 are exact): it must match them bit for bit
        chunked = cases.run_cases(tmp_path / "chunked", chunks=2)
        grads = cases.one_step_gradients()
        ref_learner = cases.fit_learner()
        assert cases.cli_train(tmp_path / "d.npz", tmp_path / "one.kfree") == 0
    finally:
        stdout, stderr = _wait(launch)
    assert launch.returncode == 0, stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["_world"]["world_size"] for r in ranks] == [2, 2]
    assert [r["_world"]["backend"] for r in ranks] == ["gloo", "gloo"]
    for name in cases.CASES:
        ref, r0, r1 = one[name], ranks[0][name], ranks[1][name]
        for got in (r0, r1):
            losses = [[row["loss"] for row in run["history"]] for run in (ref, got)]
            assert len(losses[0]) == len(losses[1]) >= 6, name
            np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4, err_msg=name)  # NaN = step 0
            nmi = [[row.get("val_nmi") for row in run["history"]] for run in (ref, got)]
            assert nmi[1] == nmi[0], name
            assert (got["steps"], got["best_step"], got["stopped_early"]) == (
                ref["steps"], ref["best_step"], ref["stopped_early"]), name
            for part in ("model", "loss"):
                assert got[part].keys() == ref[part].keys()
                for k in ref[part]:
                    torch.testing.assert_close(got[part][k], ref[part][k], rtol=1e-4, atol=1e-5,
                                               msg=f"{name} {part}.{k}")
        for part in ("model", "loss"):  # the ranks end with the same weights, bit for bit
            for k in r0[part]:
                assert torch.equal(r0[part][k], r1[part][k]), f"{name} {part}.{k}"
                assert torch.equal(r0[part][k], chunked[name][part][k]), f"{name} {part}.{k} vs chunked"
        assert [row["loss"] for row in r0["history"]][1:] == [row["loss"] for row in chunked[name]["history"]][1:]
    for name, ref in grads.items():  # the scale too: Adam's steps would hide a factor of 2
        assert ref["loss"], f"{name} has no loss parameters with a gradient"
        for r in ranks:
            got = r["_gradients"][name]
            assert got["value"] == pytest.approx(ref["value"], rel=1e-5)
            for part in ("model", "loss"):
                assert got[part].keys() == ref[part].keys()
                for k, g in ref[part].items():
                    torch.testing.assert_close(got[part][k], g, rtol=1e-4, atol=1e-6, msg=f"grad {name} {part}.{k}")
    # the estimator: every rank ends with rank 0's selection, and it is one process's
    assert ref_learner["distributed"] is None
    for r in ranks:
        got = r["_learner"]
        assert got["distributed"] == {"world_size": 2, "backend": "gloo"}
        assert (got["summary"], got["best_step"], got["labels"]) == (
            ref_learner["summary"], ref_learner["best_step"], ref_learner["labels"])
        assert got["threshold"] == pytest.approx(ref_learner["threshold"], rel=1e-4)
        np.testing.assert_allclose(got["history"], ref_learner["history"], rtol=1e-4)
        for k, v in ref_learner["model"].items():
            torch.testing.assert_close(got["model"][k], v, rtol=1e-4, atol=1e-5)
    # a failure in a rank-0-only part reaches the other rank as an error, not as a hang
    assert ranks[0]["_error"] == {"type": "ValueError", "message": "validation broke"}
    assert ranks[1]["_error"] == {"type": "DistributedRankError",
                                  "message": "rank 0 failed: ValueError: validation broke"}
    assert one["bcl-val"]["stopped_early"]  # early stopping was exercised
    assert (tmp_path / "ckpt.pt").exists()  # rank 0 checkpointed the resumed case
    assert one["softmax"]["loss"]  # and a loss with its own weights
    _check_cli_under_torchrun(tmp_path, stdout)


def _check_cli_under_torchrun(tmp_path: Path, stdout: str) -> None:
    """``kfree train`` under torchrun: rank 0 alone reported and wrote ``two.kfree`` (and its
    validation figure), which equals ``one.kfree`` from one process."""
    assert stdout.count("model saved to") == 1 and stdout.count("trained bcl on") == 1
    assert sorted(p.name for p in tmp_path.glob("two*")) == ["two-validation.png", "two.kfree"]
    one, two = (read_model(tmp_path / f)[2] for f in ("one.kfree", "two.kfree"))
    assert two["provenance"]["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert "distributed" not in one["provenance"]
    assert two["provenance"]["steps"] == one["provenance"]["steps"] >= 6
    assert two["provenance"]["best_step"] == one["provenance"]["best_step"]
    for k, v in one["model_state"].items():
        torch.testing.assert_close(two["model_state"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    for k, v in one["loss_state"].items():
        torch.testing.assert_close(two["loss_state"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    np.testing.assert_allclose([r["loss"] for r in two["history"]], [r["loss"] for r in one["history"]], rtol=1e-4)
    assert two["selection"]["chosen"]["linkage"] == one["selection"]["chosen"]["linkage"]
