"""Layers: descriptions of what to build. The Rust core builds and runs them."""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from . import _core
from .errors import ConfigError

__all__ = ["Layer", "Dense"]

InitArg = Optional[Union[str, dict]]


class Layer:
    """Base class of layers."""

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def output_dim(self, input_dim: int) -> int:
        raise NotImplementedError


def _check_activation(name: str, alpha: Optional[float]) -> None:
    # The core owns the list of activations; asking it now makes Dense("relu6")
    # fail where it is written rather than at the first fit.
    _core.activation_forward(name, np.zeros(1, dtype=np.float32), alpha)


class Dense(Layer):
    """Fully connected layer ``y = activation(x @ W + b)``.

    ``activation`` is a name ("relu", "leaky_relu", "gelu", "gelu_tanh", "silu",
    "tanh", ...) or None for the identity; ``alpha`` sets the slope of leaky_relu /
    elu. The kernel initializer defaults to He for the ReLU family and Xavier
    otherwise; names follow Keras ("he_normal", "glorot_uniform", ...).
    """

    def __init__(self, units: int, activation: Optional[str] = None, *, alpha: Optional[float] = None,
                 kernel_initializer: InitArg = None, bias_initializer: InitArg = "zeros",
                 input_dim: Optional[int] = None) -> None:
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ConfigError(f"Dense units must be a positive integer, got {units!r}")
        if input_dim is not None and (not isinstance(input_dim, (int, np.integer)) or input_dim < 1):
            raise ConfigError(f"input_dim must be a positive integer, got {input_dim!r}")
        self.units = int(units)
        self.activation = "identity" if activation is None else str(activation)
        self.alpha = None if alpha is None else float(alpha)
        _check_activation(self.activation, self.alpha)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.input_dim = None if input_dim is None else int(input_dim)

    def spec(self) -> dict[str, Any]:
        act: Any = self.activation if self.alpha is None else {"name": self.activation, "alpha": self.alpha}
        out: dict[str, Any] = {"type": "dense", "units": self.units, "activation": act}
        if self.kernel_initializer is not None:
            out["kernel_initializer"] = self.kernel_initializer
        if self.bias_initializer is not None:
            out["bias_initializer"] = self.bias_initializer
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Dense":
        act = spec.get("activation", "identity")
        name, alpha = (act["name"], act.get("alpha")) if isinstance(act, dict) else (act, None)
        return cls(spec["units"], name, alpha=alpha, kernel_initializer=spec.get("kernel_initializer"),
                   bias_initializer=spec.get("bias_initializer"))

    def output_dim(self, input_dim: int) -> int:
        return self.units

    def __repr__(self) -> str:
        return f"Dense({self.units}, activation={self.activation!r})"


def from_spec(spec: dict[str, Any]) -> Layer:
    """Rebuilds a layer description from its stored spec."""
    if spec.get("type") == "dense":
        return Dense.from_spec(spec)
    raise ConfigError(f"unknown layer type {spec.get('type')!r} in model file")
