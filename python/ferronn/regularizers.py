"""L1 and L2 weight penalties for layers, as Keras' ``kernel_regularizer``.

>>> fn.Dense(64, activation="relu", kernel_regularizer=fn.regularizers.l2(1e-4))

A regularizer adds ``l1·Σ|w| + l2·Σw²`` to the loss (the loss that ``fit`` and
``evaluate`` report includes it) and its gradient to the weights' gradient, inside
the Rust training step. It is not the optimizers' ``weight_decay``: AdamW decays the
weights directly, outside the gradient and Adam's moments (decoupled decay), and
SGD/Adam's ``weight_decay`` adds ``λ·w`` to the gradient without reporting a loss.
Note the factor: Keras' ``l2(λ)`` penalises ``λ·Σw²``, whose gradient is ``2λ·w``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np

from . import _validate
from .errors import ConfigError, UnknownNameError

__all__ = ["Regularizer", "l1", "l2", "l1_l2", "get"]


class Regularizer:
    """The penalty ``l1·Σ|w| + l2·Σw²``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _validate.finite_float(l1, "l1", low=0.0)
        self.l2 = _validate.finite_float(l2, "l2", low=0.0)

    def __call__(self, w: Any) -> float:
        """The penalty of the array ``w`` (float64)."""
        w = np.asarray(w, dtype=np.float64)
        return float(self.l1 * np.abs(w).sum() + self.l2 * np.square(w).sum())

    def spec(self) -> dict[str, float]:
        """The strengths as a dict, as saved in model files: ``{"l1": ..., "l2": ...}``."""
        return {"l1": self.l1, "l2": self.l2}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regularizer) and self.spec() == other.spec()

    def __repr__(self) -> str:
        if self.l1 and self.l2:
            return f"l1_l2(l1={self.l1!r}, l2={self.l2!r})"
        return f"l1({self.l1!r})" if self.l1 else f"l2({self.l2!r})"


def l1(factor: float = 0.01) -> Regularizer:
    """``factor·Σ|w|`` (Keras' default factor 0.01): pushes weights to exactly zero."""
    return Regularizer(l1=factor)


def l2(factor: float = 0.01) -> Regularizer:
    """``factor·Σw²`` (Keras' default factor 0.01): shrinks large weights."""
    return Regularizer(l2=factor)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:
    """Both penalties (elastic net)."""
    return Regularizer(l1=l1, l2=l2)


def get(value: Union[None, str, dict, Regularizer]) -> Optional[Regularizer]:
    """A regularizer from an object, a spec dict, or a name ("l1", "l2", "l1_l2" with Keras' defaults)."""
    if value is None or isinstance(value, Regularizer):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"l1", "l2"}
        if unknown:
            raise ConfigError(f"a regularizer has keys l1 and l2, got {sorted(unknown)}")
        return Regularizer(value.get("l1", 0.0), value.get("l2", 0.0))
    if isinstance(value, str):
        makers: dict[str, Callable[[], Regularizer]] = {"l1": l1, "l2": l2, "l1_l2": l1_l2}
        if value.lower() not in makers:
            raise UnknownNameError(f"unknown regularizer {value!r}; expected one of: l1, l2, l1_l2")
        return makers[value.lower()]()
    raise ConfigError(f"expected a regularizer such as fn.regularizers.l2(1e-4), got {value!r}")
