"""``Masking``: marks padded time steps of float sequences (Keras' Masking)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .._validate import finite_float
from .base import Layer, NumpyStep, register

__all__ = ["Masking"]


@register("masking")
class Masking(Layer):
    """Marks the time steps of sequences ``[N, T, F]`` whose features all equal
    ``mask_value`` as padding: its output is its input with those steps set to 0, and
    the recurrent layers after it skip them (their state carries over a padded step,
    as in Keras), so a padded batch gives each sequence what it gives alone.

    The mask flows through layers that keep the time axis (Dense on the last axis,
    activations, Dropout, recurrent layers with ``return_sequences=True``); recurrent
    layers and ``GlobalAvgPool1D`` use it. Another layer it reaches ends it with a
    ``MaskWarning`` (as Keras 3), or is a ``ConfigError`` where Keras would mask it
    (``BatchNorm``, ``PReLU``). No weights.

    >>> import numpy as np, ferronn as fn
    >>> m = fn.Sequential([fn.Masking(0.0), fn.SimpleRNN(2)], input_shape=(None, 1), seed=0)
    >>> m.compile(loss="mse")
    >>> padded = np.array([[[0.5], [0.2], [0.0], [0.0]]])
    >>> bool(np.allclose(m.predict(padded), m.predict(padded[:, :2])))
    True
    """

    keeps_shape = True
    takes_sequences = True

    def __init__(self, mask_value: float = 0.0) -> None:
        self.mask_value = finite_float(mask_value, "Masking mask_value")

    def passes_mask(self) -> bool:
        return False  # it makes its own mask (numpy_forward returns it)

    def produces_mask(self) -> bool:
        return True

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 2:
            raise ConfigError(f"Masking takes sequences [batch, timesteps, features], but its input has the "
                              f"per-sample shape {shape}")
        return shape

    def spec(self) -> dict[str, Any]:
        if self._input_shape is None:
            raise ConfigError("Masking needs its input shape: give the model input_shape=(timesteps, features) "
                              "or fn.Input(shape=...), or fit it first")
        return {"type": "masking", "mask_value": self.mask_value, "features": int(self._input_shape[-1])}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Masking":
        layer = cls(spec.get("mask_value", 0.0))  # type: ignore[arg-type]
        features = spec.get("features")
        if not isinstance(features, int) or features < 1:
            raise ConfigError(f"masking layer spec needs its number of features, got {features!r}")
        layer._built_for((1, features))
        return layer

    def step_mask_of(self, h: np.ndarray) -> np.ndarray:
        x = np.asarray(h).reshape(h.shape[0], -1, int((self._input_shape or (0, 1))[-1]))
        return np.any(x != np.float32(self.mask_value), axis=-1)  # compared as the core does, in float32

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        keep = self.step_mask_of(h)
        x = h.reshape(h.shape[0], keep.shape[1], -1)
        return NumpyStep((x * keep[..., None]).reshape(h.shape[0], -1), mask=keep)

    def __repr__(self) -> str:
        return f"Masking({self.mask_value!r})"
