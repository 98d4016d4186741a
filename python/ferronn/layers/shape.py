"""Layers that only change what the shape of a sample is: ``Flatten``, ``Reshape``,
and ``Input``, which declares the model's input shape."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..errors import ConfigError
from .._validate import positive_int
from .. import _torch_modules as _tm
from .base import Layer, NumpyStep, TorchPart, register

__all__ = ["Flatten", "Reshape", "Input"]


def _shape(value: Any, name: str, steps_may_vary: bool = False) -> tuple[Any, ...]:
    """A per-sample shape: one or more integers >= 1 (each within what the core takes);
    with ``steps_may_vary``, the first axis (a sequence's time steps) may be None."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    try:
        shape = tuple(value)
    except TypeError:
        raise ConfigError(f"{name} must be a tuple of positive integers, got {value!r}") from None
    if not shape:
        raise ConfigError(f"{name} must be a tuple of positive integers, got {value!r}")
    if steps_may_vary and shape[0] is None:
        return (None, *(positive_int(d, name) for d in shape[1:]))
    return tuple(positive_int(d, name) for d in shape)


@register("flatten")
class Flatten(Layer):
    """Flattens each sample to one axis (the batch axis stays), in the order of the
    layout in use: (height, width, channels) for channels_last as Keras,
    (channels, height, width) for channels_first as PyTorch's ``nn.Flatten``. The
    core stores samples flattened already, so nothing moves."""

    def spec(self) -> dict[str, Any]:
        return {"type": "flatten"}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Flatten":
        return cls()

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        return NumpyStep(h)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        return x  # the exported graph carries flat rows between layers already

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        return TorchPart(["nn.Flatten()"], [])  # tensors stay in ferronn's layout: the same order

    def __repr__(self) -> str:
        return "Flatten()"


@register("reshape")
class Reshape(Layer):
    """Gives each sample the shape ``target_shape`` (same number of values, read in
    row-major order, as Keras' Reshape and numpy's ``reshape``). One axis may be -1
    (inferred)."""

    def __init__(self, target_shape: Any) -> None:
        if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        items = tuple(target_shape) if isinstance(target_shape, (tuple, list)) else None
        if not items or sum(1 for d in items if d == -1) > 1:
            raise ConfigError(f"Reshape target_shape must be positive integers (at most one -1), got {target_shape!r}")
        _shape([1 if d == -1 else d for d in items], "Reshape target_shape")
        self.target_shape = tuple(int(d) for d in items)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        count = math.prod(input_shape)
        known = math.prod([d for d in self.target_shape if d != -1])
        if -1 in self.target_shape:
            if count % known:
                raise ConfigError(f"Reshape {self.target_shape} cannot hold the {count} values of shape {tuple(input_shape)}")
            return tuple(count // known if d == -1 else d for d in self.target_shape)
        if known != count:
            raise ConfigError(f"Reshape to {self.target_shape} needs {known} values per sample, its input "
                              f"{tuple(input_shape)} has {count}")
        return self.target_shape

    def output_dim(self, input_dim: int) -> int:
        return math.prod(self.output_shape((input_dim,)))

    def spec(self) -> dict[str, Any]:
        if self._input_shape is None:
            if -1 in self.target_shape:
                raise ConfigError("Reshape with -1 needs its input shape: give the model input_shape=(...)")
            return {"type": "reshape", "shape": list(self.target_shape)}
        return {"type": "reshape", "shape": list(self.output_shape(self._input_shape))}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Reshape":
        return cls(spec.get("shape"))

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        return NumpyStep(h)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        return x  # flat rows: the row-major order is unchanged

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        shape = self.output_shape(self._input_shape or (d,))
        return TorchPart([f"Reshape({', '.join(str(v) for v in shape)})"], [], (_tm.RESHAPE,))

    def __repr__(self) -> str:
        return f"Reshape({self.target_shape!r})"


class Input:
    """Declares the per-sample input shape as the first entry of a ``Sequential``
    (Keras' ``keras.Input``): ``Sequential([fn.Input(shape=(28, 28, 1)), ...])``. It
    is not a layer: the model takes the shape from it and leaves it out of ``layers``.

    Sequences of any length: ``fn.Input(shape=(None, F))`` (token ids: ``(None,)``), as
    Keras; each call may then bring another number of time steps."""

    def __init__(self, shape: Any, name: Optional[str] = None) -> None:
        self.shape = _shape(shape, "Input shape", steps_may_vary=True)
        self.name = name  # accepted as Keras does; ferronn does not use it

    def __repr__(self) -> str:
        return f"Input(shape={self.shape!r})"
