"""The ``Layer`` base class: a description of what to build, and (once its model
is built) a window onto the layer's parameter arrays in the Rust core."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ..errors import ConfigError, NotFittedError

__all__ = ["Layer", "positive_int", "finite_float", "register", "from_spec"]

_REGISTRY: dict[str, Callable[[dict[str, Any]], "Layer"]] = {}


def register(type_name: str):
    """Class decorator: ``from_spec`` rebuilds specs of ``type_name`` with ``cls.from_spec``."""
    def wrap(cls):
        _REGISTRY[type_name] = cls.from_spec
        return cls
    return wrap


def from_spec(spec: dict[str, Any]) -> "Layer":
    """Rebuilds a layer description from its stored spec."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown layer type {kind!r} in model file")
    return _REGISTRY[kind](spec)


def positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def finite_float(value: Any, what: str, low: Optional[float] = None, high: Optional[float] = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``float(value)`` checked to be finite and within [low, high] (open where asked)."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    if not np.isfinite(v) or isinstance(value, bool):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ConfigError(f"{what} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ConfigError(f"{what} must be {'<' if high_open else '<='} {high}, got {v}")
    return v


class Layer:
    """Base class of layers.

    A layer is a description (``spec()``) until its model is built; then the
    model binds it (``_bind``) and its parameters are readable and settable as
    numpy arrays: ``layer.weights``, ``layer.bias``, ``layer.gamma`` ... (see
    ``param_names``), or all at once with ``layer.get_params()``.
    """

    #: Names of the layer's tensors in the core, in order (trainable first, then buffers).
    param_names: tuple[str, ...] = ()
    #: Attribute names that differ from the tensor names (Keras' ``weights`` for ``weight``).
    _aliases = {"weights": "weight", "kernel": "weight"}

    _owner: Any = None
    _prefix: Optional[str] = None

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Layer":
        raise NotImplementedError

    def output_dim(self, input_dim: int) -> int:
        """Width of the output for inputs of width ``input_dim``."""
        return input_dim

    def sublayers(self) -> list["Layer"]:
        """Layers nested inside this one (``Residual``'s block); empty for plain layers."""
        return []

    # -- binding to a built model --------------------------------------------

    def _bind(self, owner: Any, prefix: Optional[str]) -> None:
        """Called by the model: tensors of this layer are ``{prefix}.{name}`` in ``owner``."""
        self._owner, self._prefix = owner, prefix

    def _tensor_name(self, name: str) -> str:
        if self._owner is None or self._prefix is None or not self._owner.built:
            raise NotFittedError(f"{type(self).__name__} has no weights yet: build or fit its model first")
        return f"{self._prefix}.{name}"

    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of this layer's tensors (nested layers' too, as ``block.0.weight``)."""
        if self._owner is None or self._prefix is None or not self._owner.built:
            raise NotFittedError(f"{type(self).__name__} has no weights yet: build or fit its model first")
        start = self._prefix + "."
        return {n[len(start):]: a for n, a in self._owner._tensors() if n.startswith(start)}

    def get_param(self, name: str) -> np.ndarray:
        """A copy of tensor ``name`` (e.g. "weight", "bias", "gamma", "running_mean")."""
        tensor = self._tensor_name(name)  # first: raises NotFittedError when unbound
        return self._owner._get_tensor(tensor)

    def set_param(self, name: str, value: Any) -> None:
        """Overwrites tensor ``name``; the shape must match (ShapeError otherwise)."""
        tensor = self._tensor_name(name)  # first: raises NotFittedError when unbound
        self._owner._set_tensor(tensor, value)

    def __getattr__(self, attr: str) -> Any:
        # Only reached for attributes not found normally: parameter names.
        if attr.startswith("_"):
            raise AttributeError(attr)
        name = self._aliases.get(attr, attr)
        if name in type(self).param_names:
            return self.get_param(name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {attr!r}")

    def __setattr__(self, attr: str, value: Any) -> None:
        name = self._aliases.get(attr, attr)
        if not attr.startswith("_") and name in type(self).param_names:
            self.set_param(name, value)
        else:
            object.__setattr__(self, attr, value)
