"""``keras.utils``: ``to_categorical`` (see ``ferronn.utils``) and ``set_random_seed``."""

from __future__ import annotations

import random
from typing import Optional

import numpy as np

from .. import _validate
from ..utils import to_categorical

__all__ = ["to_categorical", "set_random_seed"]

#: Draws the seeds of ``keras.Sequential`` models made without one, once
#: ``set_random_seed`` was called (None: each model draws fresh entropy, as ferronn does).
_model_seeds: Optional[np.random.Generator] = None


def set_random_seed(seed: int) -> None:
    """Keras' ``set_random_seed``: seeds Python's ``random``, NumPy's global generator and
    the seeds of the ``keras.Sequential`` models made afterwards without one (their
    initial weights, shuffles and dropout masks), so a script runs the same twice."""
    global _model_seeds
    seed = _validate.seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    _model_seeds = np.random.default_rng(seed)


def next_model_seed() -> Optional[int]:
    """The seed for a new ``keras.Sequential`` made without one (None before ``set_random_seed``)."""
    return None if _model_seeds is None else int(_model_seeds.integers(0, 2**63 - 1))
