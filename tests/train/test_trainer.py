"""The training loop with every registered loss, and the optional noisy-triplet sampler."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from _ddp_cases import score_on

from kfree import registry
from kfree.config import TrainConfig
from kfree.data.samplers import PKSampler, TripletSampler
from kfree.data.synthetic import sphere_blobs
from kfree.embed.models import MLPEmbedder
from kfree.exceptions import ConfigError
from kfree.losses import TripletLoss
from kfree.train.trainer import make_sampler, train_embedding

PARAMS = {"bcl-ft": {"b": 0.15}, "pairwise": {"b": 0.15}}


@pytest.fixture(scope="module")
def data():
    X, y = sphere_blobs(8, 8, 16, spread=0.3, seed=0)
    return X, y


def _model(seed: int = 0) -> MLPEmbedder:
    torch.manual_seed(seed)
    return MLPEmbedder(16, (16, 8))


@pytest.mark.parametrize("name", registry.names("loss"))
def test_every_registered_loss_trains(name, data):
    X, y = data
    loss = registry.get("loss", name, **PARAMS.get(name, {}))
    cfg = TrainConfig(loss=name, dims=(16, 8), epochs=3, p=4, k=4, eval_every=3, eval_every_steps=None, patience=None)
    result = train_embedding(_model(), loss, X, y, cfg, score_fn=score_on(X[:24], y[:24]))
    losses = [row["loss"] for row in result.history]
    assert len(losses) == 3 and np.isfinite(losses).all()
    assert "val_nmi" in result.history[-1]


def test_best_step_is_kept_and_patience_stops(data):
    """Validations at steps 0, 2, 4, ...: the best score's weights come back (a tie goes to the
    later step), and ``patience`` validations without a better score stop training."""
    X, y = data
    nmis = iter([0.1, 0.5, 0.3, 0.5, 0.2, 0.9])  # steps 0, 2 (best), 4, 6 (tie: kept), 8 (3rd miss: stop)
    weights = {}

    def score_fn(model, loss):
        weights[len(weights) * 2] = copy.deepcopy(model.state_dict())
        return {"val_nmi": next(nmis)}

    cfg = TrainConfig(epochs=50, p=4, k=4, batches_per_epoch=1, eval_every_steps=2, patience=3, lr=1e-2)
    model = _model()
    result = train_embedding(model, registry.get("loss", "bcl"), X, y, cfg, score_fn=score_fn)
    assert (result.steps, result.best_step, result.stopped_early) == (8, 6, True)
    assert [row["val_nmi"] for row in result.history] == [0.1, 0.5, 0.3, 0.5, 0.2]
    assert not torch.equal(weights[6]["linears.0.weight"], weights[8]["linears.0.weight"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[6][k]), k


@pytest.mark.parametrize("name", ["softmax", "norm-softmax"])
def test_classifier_weights_are_optimised(name, data):
    X, y = data
    loss = registry.get("loss", name)
    loss.on_num_classes(8, 8)  # the trainer calls it again with the same sizes: weights kept
    before = [p.detach().clone() for p in loss.parameters()]
    train_embedding(_model(), loss, X, y, TrainConfig(loss=name, epochs=2, p=4, k=4))
    after = list(loss.parameters())
    assert len(after) == len(before) and all(not torch.equal(a, b) for a, b in zip(after, before))


def test_noisy_triplet_training(data):
    X, y = data
    cfg = TrainConfig(loss="triplet-l3", epochs=4, sampler="triplets", triplets_per_batch=10,
                      wrong_positives=0.1, wrong_negatives="random", p=4, k=4)
    loss = TripletLoss(variant="l3", mining="given")
    result = train_embedding(_model(), loss, X, y, cfg)
    rows = [r["loss"] for r in result.history]
    assert rows[-1] < rows[0]
    sampler = make_sampler(np.unique(y, return_inverse=True)[1], loss, cfg)
    assert isinstance(sampler, TripletSampler) and sampler.batch_size == 10
    assert sampler.wrong_positives == 0.1 and sampler.wrong_negatives == "random"
    default = make_sampler(y, loss, TrainConfig(sampler="triplets", p=4, k=4))
    assert default.batch_size == 6  # ceil(p*k/3): about as many rows as a P x K batch
    assert isinstance(make_sampler(y, TripletLoss(), TrainConfig()), PKSampler)


def test_sampler_and_loss_layout_must_agree(data):
    X, y = data
    with pytest.raises(ConfigError, match="sampler='triplets' yields .* loss 'bcl' does not read"):
        train_embedding(_model(), registry.get("loss", "bcl"), X, y, TrainConfig(sampler="triplets", epochs=1))
    with pytest.raises(ConfigError, match="set sampler='triplets'"):
        train_embedding(_model(), TripletLoss(mining="given"), X, y, TrainConfig(epochs=1))


def test_the_final_step_is_validated_when_it_falls_between_validations(data):
    """3 steps with eval_every_steps=10: the final weights are scored and kept when best (a short
    run could only keep step 0, the untrained head)."""
    X, y = data
    nmis = iter([0.1, 0.9])
    cfg = TrainConfig(epochs=1, p=4, k=4, batches_per_epoch=3, eval_every_steps=10, lr=1e-2)
    model = _model()
    result = train_embedding(model, registry.get("loss", "bcl"), X, y, cfg,
                             score_fn=lambda m, lo: {"val_nmi": next(nmis)})
    assert [(row["step"], row["val_nmi"]) for row in result.history] == [(0, 0.1), (3, 0.9)]
    assert (result.steps, result.best_step) == (3, 3)


def test_patience_without_select_best_and_a_stopped_run_stays_stopped(data, tmp_path):
    """Patience stops training whether or not the best step's weights are kept; and running a
    run that stopped early again from its checkpoint returns it as it was (it trained on)."""
    X, y = data

    def scores():
        nmis = iter([0.5, 0.4, 0.3, 0.2, 0.1] + [0.9] * 100)
        return lambda model, loss: {"val_nmi": next(nmis)}

    cfg = TrainConfig(epochs=50, p=4, k=4, batches_per_epoch=1, eval_every_steps=2, patience=2, lr=1e-2,
                      select_best=False)
    result = train_embedding(_model(), registry.get("loss", "bcl"), X, y, cfg, score_fn=scores())
    assert (result.steps, result.stopped_early) == (4, True)

    cfg = cfg.replace(select_best=True)
    ckpt = tmp_path / "ckpt.pt"
    first, again = _model(), _model(7)
    r1 = train_embedding(first, registry.get("loss", "bcl"), X, y, cfg, score_fn=scores(), checkpoint_path=ckpt)
    r2 = train_embedding(again, registry.get("loss", "bcl"), X, y, cfg, score_fn=scores(), checkpoint_path=ckpt)
    assert r1.stopped_early and r2.stopped_early
    assert (r1.steps, r1.best_step, len(r1.history)) == (r2.steps, r2.best_step, len(r2.history)) == (4, 0, 3)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_with_triplet_sampler_is_exact(data, tmp_path):
    X, y = data
    cfg = TrainConfig(epochs=3, sampler="triplets", triplets_per_batch=8, wrong_positives=0.2,
                      wrong_negatives=0.05, p=4, k=4, seed=5)
    straight = _model(1)
    train_embedding(straight, TripletLoss(mining="given"), X, y, cfg)
    ckpt = tmp_path / "ckpt.pt"
    resumed = _model(1)
    train_embedding(resumed, TripletLoss(mining="given"), X, y, cfg.replace(epochs=2), checkpoint_path=ckpt)
    resumed2 = _model(99)  # different init: everything must come from the checkpoint
    train_embedding(resumed2, TripletLoss(mining="given"), X, y, cfg, checkpoint_path=ckpt)
    for a, b in zip(straight.state_dict().values(), resumed2.state_dict().values()):
        assert torch.equal(a, b)
    # the same config on other data does not resume that checkpoint
    from kfree.exceptions import CheckpointError

    with pytest.raises(CheckpointError, match=r"written by another run \(64 rows, this run 40; 8 identities, "
                                              r"this run 5\)"):
        train_embedding(_model(1), TripletLoss(mining="given"), X[:40], y[:40], cfg, checkpoint_path=ckpt)
    # found by review: other data of the same shape, other loss settings, another head, or fewer
    # epochs than the checkpoint holds resumed silently (or failed deep inside)
    others = [("other data of the same shape", _model(1), TripletLoss(mining="given"), X[::-1].copy(), y, cfg),
              ("loss .*'variant': 'l1'", _model(1), TripletLoss(mining="given", variant="l1", alpha=0.2), X, y, cfg),
              ("another head", torch.nn.Sequential(torch.nn.Linear(16, 8)), TripletLoss(mining="given"), X, y, cfg),
              ("holds 3 epochs, more than this run's epochs=2", _model(1), TripletLoss(mining="given"), X, y,
               cfg.replace(epochs=2))]
    for message, model, loss, X_, y_, cfg_ in others:
        with pytest.raises(CheckpointError, match=message):
            train_embedding(model, loss, X_, y_, cfg_, checkpoint_path=ckpt)


def test_checkpoint_of_another_config_or_carrying_code_is_refused(data, tmp_path):
    from kfree.exceptions import CheckpointError

    X, y = data
    cfg = TrainConfig(epochs=1, sampler="triplets", triplets_per_batch=8, p=4, k=4, seed=5)
    ckpt = tmp_path / "ckpt.pt"
    train_embedding(_model(1), TripletLoss(mining="given"), X, y, cfg, checkpoint_path=ckpt)
    with pytest.raises(CheckpointError, match="lr"):
        train_embedding(_model(1), TripletLoss(mining="given"), X, y, cfg.replace(epochs=2, lr=0.5),
                        checkpoint_path=ckpt)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model": Evil()}, ckpt)
    with pytest.raises(CheckpointError):
        train_embedding(_model(1), TripletLoss(mining="given"), X, y, cfg, checkpoint_path=ckpt)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sampler": "random"}, "sampler='random'"),
        ({"wrong_positives": 0.1}, "apply to sampler='triplets'"),
        ({"sampler": "triplets", "wrong_positives": 1.0}, "wrong_positives=1.0"),
        ({"sampler": "triplets", "wrong_negatives": "uniform"}, "wrong_negatives='uniform'"),
        ({"sampler": "triplets", "wrong_negatives": -0.1}, "wrong_negatives=-0.1"),
        ({"sampler": "triplets", "triplets_per_batch": 0}, "triplets_per_batch=0"),
        ({"p": 1}, "p=1"),
        ({"k": 0}, "k=0"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_noisy_triplet_config():
    cfg = TrainConfig(loss="triplet-l3", loss_params={"mining": "given"}, sampler="triplets",
                      wrong_positives=0.05, wrong_negatives="random")
    assert cfg.wrong_negatives == "random" and cfg.to_dict()["sampler"] == "triplets"
    assert TrainConfig().sampler == "pk"


@pytest.mark.parametrize("name", ["bcl", "triplet-l3", "contrastive", "prototypical", "bcl-ft"])
def test_k_below_two_is_rejected_for_losses_that_need_positives(name, data):
    X, y = data
    loss = registry.get("loss", name, **PARAMS.get(name, {}))
    with pytest.raises(ConfigError, match=rf"k=1 samples per identity, but loss '{loss.name}' needs k >= 2"):
        train_embedding(_model(), loss, X, y, TrainConfig(epochs=1, p=4, k=1))


def test_k_one_is_fine_for_classification_losses(data):
    X, y = data
    result = train_embedding(_model(), registry.get("loss", "softmax"), X, y, TrainConfig(epochs=1, p=8, k=1))
    assert np.isfinite(result.history[0]["loss"])


def test_a_loss_whose_implied_threshold_is_a_bare_number_is_told_before_training(data):
    """Found by a newcomer adding a loss: ``implied_threshold()`` returning a float failed at the
    first validation with "'float' object has no attribute 'value'"."""
    from kfree.losses.base import EmbeddingLoss

    class Bare(EmbeddingLoss):
        name = "bare"

        def compute_loss(self, embeddings, labels):
            return embeddings.pow(2).sum()

        def implied_threshold(self):
            return 0.75

    X, y = data
    with pytest.raises(ConfigError, match=r"loss 'bare': implied_threshold\(\) returned float 0.75; return a "
                                          r"kfree.threshold.Threshold"):
        train_embedding(_model(), Bare(), X, y, TrainConfig(epochs=1, p=4, k=2))
