"""Optimizers, with PyTorch's update rules and defaults.

Each class only records hyperparameters; the update itself runs in Rust over
all parameters at once, inside the training step.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError, UnknownNameError

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "get"]


class Optimizer:
    """Base class: holds the learning rate and turns settings into a config."""

    name = ""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def check(self) -> None:
        """Raises ConfigError for NaN/inf settings (``compile`` calls this)."""
        # Ranges are checked by the core when the model is built; NaN/inf must be
        # caught here because JSON cannot carry them to the core.
        for key, value in self.config().items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{type(self).__name__} {key} must be finite, got {value}")

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({fields})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum (Sutskever et al. 2013)."""

    name = "sgd"

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov, self.weight_decay = bool(nesterov), float(weight_decay)

    def config(self) -> dict[str, Any]:
        return {"name": "sgd", "lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015). ``weight_decay`` adds an L2 term to the gradient, as in PyTorch."""

    name = "adam"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr, "beta1": self.betas[0], "beta2": self.betas[1],
                "eps": self.eps, "weight_decay": self.weight_decay}


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): weight decay shrinks the weights directly, decoupled from the gradient."""

    name = "adamw"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(lr, betas, eps, weight_decay)


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get(spec: "str | Optimizer") -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "adamw") or an instance."""
    if isinstance(spec, Optimizer):
        spec.check()
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]()
    raise UnknownNameError(f"unknown optimizer {spec!r}; expected one of {', '.join(_BY_NAME)} or an Optimizer")


def from_config(config: dict[str, Any]) -> Optimizer:
    """Rebuilds an optimizer from ``Optimizer.config()`` (used when loading models)."""
    c = dict(config)
    name = c.pop("name")
    if name == "sgd":
        return SGD(**c)
    betas = (c.pop("beta1"), c.pop("beta2"))
    return _BY_NAME[name](betas=betas, **c)
