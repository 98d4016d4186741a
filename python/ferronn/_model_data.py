"""How ``Sequential`` turns users' arrays into the core's rows and back: per-sample
input shapes (images ``[N, H, W, C]``, sequences ``[N, T, F]``) are checked against
the model's and flattened to the ``[N, prod(shape)]`` rows the core computes on;
N-D outputs are reshaped back; targets are checked against the output width."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

import numpy as np

from . import _keras_methods as _km, _validate, names as _names
from .errors import DTypeError, ShapeError

__all__ = ["ShapedData", "declared_shape"]


def built_shape(net: Any) -> tuple[tuple[int, ...], bool]:
    """The per-sample input shape a core network was built for, and whether it takes
    sequences of any length (both read from one parse of its spec)."""
    spec = json.loads(net.spec_json)
    shape = spec.get("input_shape")
    return (tuple(int(d) for d in shape) if shape else (int(net.input_dim),)), bool(spec.get("variable_steps", False))


def declared_shape(shape: tuple[Any, ...]) -> tuple[tuple[int, ...], bool]:
    """A declared per-sample shape whose first axis may be None (sequences of any length,
    Keras' ``input_shape=(None, F)``): the shape the core network is built for (one step
    in place of None; each call then brings its own length) and whether the length varies."""
    if shape and shape[0] is None:
        return (1, *(int(d) for d in shape[1:])), True
    return tuple(int(d) for d in shape), False


def _step_labels(y: Any, steps: int, name: str, whole_floats: bool) -> np.ndarray:
    """Per-step class labels ``[N, T]`` (int64, C-contiguous) for per-step scores
    ``[N, T, C]`` (a tagger); ``ShapeError`` unless there are ``steps`` per sample."""
    arr = _validate.numeric_array(y, name)
    if arr.shape[1] != steps:
        raise ShapeError(f"{name} has per-step labels of shape {arr.shape}, but the model gives {steps} steps per "
                         f"sample; expected (N, {steps})")
    if arr.dtype.kind == "f" and whole_floats and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise DTypeError(f"{name} has dtype {arr.dtype}; class labels must be integers (e.g. y.astype(int))")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _one_hot_steps(y: Any, out: tuple[int, int], name: str) -> np.ndarray:
    """Per-step one-hot targets ``[N, T, C]`` (Keras' ``categorical_crossentropy`` on
    per-step scores, e.g. ``to_categorical`` of ``[N, T]`` labels) as their labels
    ``[N, T]``; ``ShapeError`` unless every step is one row of ``C`` with a single 1."""
    arr = _validate.numeric_array(y, name)
    steps, classes = out
    if arr.shape[2] != classes:
        raise ShapeError(f"{name} has per-step one-hot targets of shape {arr.shape}, but the model gives {classes} "
                         f"classes per step; expected (N, {steps}, {classes}) or labels (N, {steps})")
    hot = arr == 1
    good = np.isin(arr, (0, 1)).all(axis=-1) & (hot.sum(axis=-1) == 1)
    if not good.all():
        i, t = (int(v) for v in np.argwhere(~good)[0])
        raise ShapeError(f"{name} must hold per-step labels (N, {steps}) or one-hot rows (N, {steps}, {classes}) (a "
                         f"single 1 per step, the rest 0), but sample {i}, step {t} is {arr[i, t][:12].tolist()}; "
                         "soft labels have no ferronn counterpart")
    return hot.argmax(axis=-1)


def takes_sequences(layers: list[Any]) -> bool:
    """Whether the first layer reads sequences step by step (recurrent, Embedding,
    Masking), so that a model whose shape comes from its first data accepts other
    lengths later."""
    return bool(layers) and bool(getattr(layers[0], "takes_sequences", False))


class ShapedData:
    """Mixin of ``Sequential``: the data side of its per-sample shapes. It reads the
    model's ``layers``, ``loss``, ``_sample_shape`` and ``_whole_float_labels``."""

    layers: list[Any]
    loss: Optional[str]
    _sample_shape: Optional[tuple[int, ...]]
    _whole_float_labels: bool
    _net: Any
    #: The first axis of ``_sample_shape`` (time steps) may differ between calls.
    _variable_steps: bool = False

    def _output_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Each layer's output shape for ``input_shape``, recording the shapes the
        layers are built for (convolutions write them into their specs)."""
        shapes, shape = [], tuple(input_shape)
        for layer in self.layers:
            shape = layer._built_for(shape)
            shapes.append(shape)
        return shapes

    def _shape_chain(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Each layer's output shape for ``input_shape``, recording nothing (a call's
        own sequence length, which may differ from the one the layers were built for)."""
        shapes, shape = [], tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
            shapes.append(shape)
        return shapes

    def _shape_spec(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """The network spec's shape fields for ``input_shape``: the N-D shape, and
        ``variable_steps`` for sequences of any length (declared with None, or a model
        without a declared shape whose first layer reads sequences)."""
        variable = self._variable_steps or (self._sample_shape is None and takes_sequences(self.layers))
        out: dict[str, Any] = {}
        if len(input_shape) > 1 or variable:
            out["input_shape"] = [int(d) for d in input_shape]
        if variable:
            out["variable_steps"] = True
        return out

    def _public_shape(self, shape: Optional[tuple[int, ...]], output: bool = False) -> Optional[tuple[Any, ...]]:
        """The per-sample input (or output) shape as users see it: None on the time axis
        when the sequence length varies (found by comparing two lengths)."""
        if shape is None or not self._variable_steps:
            return None if shape is None else (self._shape_chain(shape)[-1] if output else shape)
        a, b = ((2, *shape[1:]), (3, *shape[1:]))
        if output:
            a, b = self._shape_chain(a)[-1], self._shape_chain(b)[-1]
        return tuple(None if u != v else u for u, v in zip(a, b))

    def _call_shape(self, x: Any) -> tuple[int, ...]:
        """The per-sample shape a call's data brings: the model's, or with sequences of
        any length the model's with this call's number of steps."""
        if self._sample_shape is None or self._variable_steps:
            return self._shape_of(x)
        return self._sample_shape

    def _targets(self, y: Any, name: str = "y", input_shape: Optional[tuple[int, ...]] = None) -> np.ndarray:
        shape = input_shape if input_shape is not None else self._sample_shape
        if input_shape is None and self._variable_steps and shape is not None and np.ndim(y) >= 2:
            shape = (int(np.shape(y)[1]), *shape[1:])  # per-step targets: this call's length is theirs
        assert self.loss is not None  # targets are read by compiled models only
        if _names.loss_task(self.loss) == "labels":
            out = self._shape_chain(shape)[-1] if shape is not None else ()
            if len(out) == 2 and np.ndim(y) == 2:  # per-step scores [N, T, C]: per-step labels [N, T]
                return _step_labels(y, int(out[0]), name, self._whole_float_labels)
            if len(out) == 2 and np.ndim(y) == 3:  # per-step one-hot rows [N, T, C]: their labels
                return _step_labels(_one_hot_steps(y, (int(out[0]), int(out[1])), name), int(out[0]), name, False)
            return _km.class_targets(y, name, self._whole_float_labels)
        if shape is not None and len(shape) > 1:
            out_dim = math.prod(self._shape_chain(shape)[-1])
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
            if expected is not None and len(expected) == 1 and not self._variable_steps:
                raise ShapeError(f"{name} must be 2-D (samples, features), got {arr.ndim}-D with shape {arr.shape}; "
                                 f"the model expects per-sample shape {tuple(expected)}")
            if self._variable_steps and expected is not None:
                self._check_steps(arr, expected, name)
            elif expected is not None and tuple(arr.shape[1:]) != tuple(expected):
                raise ShapeError(f"{name} has per-sample shape {tuple(arr.shape[1:])}, but the model expects "
                                 f"{tuple(expected)} (X of shape (N, {', '.join(map(str, expected))}))")
            arr = arr.reshape(arr.shape[0], -1) if arr.shape[0] else arr.reshape(0, math.prod(arr.shape[1:]))
        return _validate.features(arr, name)

    @staticmethod
    def _check_steps(arr: np.ndarray, expected: tuple[int, ...], name: str) -> None:
        """``ShapeError`` unless ``arr`` holds sequences of the model's per-step shape
        and at least one step (a model with sequences of any length)."""
        want = "(N, T" + "".join(f", {d}" for d in expected[1:]) + ")"
        if arr.ndim != len(expected) + 1 or tuple(arr.shape[2:]) != tuple(expected[1:]):
            raise ShapeError(f"{name} has shape {arr.shape}, but the model takes sequences {want} "
                             f"of any length T")
        if arr.shape[1] == 0:
            raise ShapeError(f"{name} holds zero-length sequences (shape {arr.shape}); a sequence needs at least "
                             "one time step")

    def _shape_of(self, x: Any) -> tuple[int, ...]:
        """The per-sample shape of ``x`` (for a first fit that builds the model)."""
        return tuple(int(d) for d in np.shape(x)[1:])

    def _outputs(self, out: np.ndarray) -> np.ndarray:
        """Core outputs reshaped to the model's per-sample output shape when it is N-D."""
        shape = self._built_output_shape()
        if self._variable_steps and self._sample_shape is not None:
            per_step = self._public_shape(self._sample_shape, output=True) or ()
            if per_step and per_step[0] is None:  # the time axis reaches the output: this call's length
                rest = tuple(int(d) for d in per_step[1:])
                return out.reshape(out.shape[0], -1, *rest)
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
        ya = self._targets(y, input_shape=self._call_shape(x))
        _validate.same_length(xa, ya)
        return xa, ya
