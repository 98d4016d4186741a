"""How ``Sequential`` turns users' arrays into the core's rows and back: per-sample
input shapes (images ``[N, H, W, C]``, sequences ``[N, T, F]``) are checked against
the model's and flattened to the ``[N, prod(shape)]`` rows the core computes on;
N-D outputs are reshaped back; targets are checked against the output width."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from . import _keras_methods as _km, _validate, names as _names
from .errors import ShapeError

__all__ = ["ShapedData"]


class ShapedData:
    """Mixin of ``Sequential``: the data side of its per-sample shapes. It reads the
    model's ``layers``, ``loss``, ``_sample_shape`` and ``_whole_float_labels``."""

    layers: list[Any]
    loss: Optional[str]
    _sample_shape: Optional[tuple[int, ...]]
    _whole_float_labels: bool
    _net: Any

    def _output_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Each layer's output shape for ``input_shape``, recording the shapes the
        layers are built for (convolutions write them into their specs)."""
        shapes, shape = [], tuple(input_shape)
        for layer in self.layers:
            shape = layer._built_for(shape)
            shapes.append(shape)
        return shapes

    def _targets(self, y: Any, name: str = "y", input_shape: Optional[tuple[int, ...]] = None) -> np.ndarray:
        if _names.loss_task(self.loss) == "labels":
            return _km.class_targets(y, name, self._whole_float_labels)
        shape = input_shape if input_shape is not None else self._sample_shape
        if shape is not None and len(shape) > 1:
            out_dim = math.prod(self._output_shapes(shape)[-1])
            if np.ndim(y) > 2:  # targets shaped like N-D outputs: one flat row per sample
                y = np.reshape(_validate.numeric_array(y, name), (np.shape(y)[0], -1))
        else:
            out_dim = self.layers[-1].output_dim(0)
        return _validate.targets(y, out_dim, name)

    def _features(self, x: Any, name: str = "X") -> np.ndarray:
        """``x`` as the 2-D float32 rows the core takes: N-D samples are checked against
        the model's input shape (``ShapeError`` naming it) and flattened (a view when
        ``x`` is C-contiguous float32 already)."""
        arr = x if isinstance(x, np.ndarray) else _validate.numeric_array(x, name)
        expected = self._sample_shape
        if arr.ndim > 2 or (expected is not None and len(expected) > 1):
            if arr.ndim < 2:
                raise ShapeError(f"{name} must have a batch axis, got shape {arr.shape}")
            if expected is not None and len(expected) == 1:
                raise ShapeError(f"{name} must be 2-D (samples, features), got {arr.ndim}-D with shape {arr.shape}; "
                                 f"the model expects per-sample shape {tuple(expected)}")
            if expected is not None and tuple(arr.shape[1:]) != tuple(expected):
                raise ShapeError(f"{name} has per-sample shape {tuple(arr.shape[1:])}, but the model expects "
                                 f"{tuple(expected)} (X of shape (N, {', '.join(map(str, expected))}))")
            arr = arr.reshape(arr.shape[0], -1) if arr.shape[0] else arr.reshape(0, math.prod(arr.shape[1:]))
        return _validate.features(arr, name)

    def _shape_of(self, x: Any) -> tuple[int, ...]:
        """The per-sample shape of ``x`` (for a first fit that builds the model)."""
        return tuple(int(d) for d in np.shape(x)[1:])

    def _outputs(self, out: np.ndarray) -> np.ndarray:
        """Core outputs reshaped to the model's per-sample output shape when it is N-D."""
        shape = self._built_output_shape()
        return out.reshape(out.shape[0], *shape) if len(shape) > 1 else out

    def _built_output_shape(self) -> tuple[int, ...]:
        """The per-sample output shape of the current network, worked out once per
        network (a built model's layers no longer change) rather than on every predict."""
        cached = self.__dict__.get("_output_shape_of")
        if cached is None or cached[0] is not self._net:
            shape = self._output_shapes(self._sample_shape)[-1] if self._sample_shape is not None else ()
            cached = self._output_shape_of = (self._net, shape)
        return cached[1]

    def _xy(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        xa = self._features(x)
        ya = self._targets(y, input_shape=self._sample_shape or self._shape_of(x))
        _validate.same_length(xa, ya)
        return xa, ya
