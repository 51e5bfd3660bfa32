"""Paper reproductions as library calls (one module per paper; ``kfree experiment`` runs them)."""

from .bcl2019 import SETS, Bcl2019Config, load_cells, run_bcl2019
from .bcl2019_finetune import FinetuneConfig, finetune_on_episode
from .bcl2019_methods import METHODS, FittedMethod, fit_method

__all__ = [
           "METHODS",
           "SETS",
           "Bcl2019Config",
           "FinetuneConfig",
           "FittedMethod",
           "finetune_on_episode",
           "fit_method",
           "load_cells",
           "run_bcl2019",
]
