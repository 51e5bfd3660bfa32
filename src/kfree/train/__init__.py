"""Training: one optimisation step (:mod:`.step`) under one loop (:mod:`.trainer`: seeded,
resumable, validated step-wise, with an optional progress hook); constraint fine-tuning
(:mod:`.finetune`, BCL-FT) and the ICPR 2020 CNN in the reproductions take the same step."""

from .step import optimisation_step
from .trainer import TrainResult, train_embedding

__all__ = ["TrainResult", "optimisation_step", "train_embedding"]
