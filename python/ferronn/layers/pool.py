"""Pooling over sequences and images (Keras' names and arguments): windowed max and
average pooling, and their global forms over every position."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..errors import ConfigError
from . import _grid
from .. import _torch_modules as _tm
from .base import Layer, NumpyStep, TorchPart, register

__all__ = [
    "MaxPool1D", "MaxPool2D", "AvgPool1D", "AvgPool2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D",
    "AveragePooling2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
]

_CLASSES: dict[tuple[str, int, bool], type] = {}


class _Pool(Layer):
    """What every pooling layer shares: the statistic ``mode`` ("max" or "avg"), the
    spatial ``rank`` (1 or 2) and whether the window is the whole input (``global_``)."""

    mode = "max"
    rank = 2
    global_ = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _CLASSES.setdefault((cls.mode, cls.rank, cls.global_), cls)

    def __init__(self, pool_size: Any = 2, strides: Any = None, padding: str = "valid",
                 data_format: Optional[str] = None) -> None:
        kind = type(self).__name__
        self.pool_size = _grid.ints(pool_size, self.rank, f"{kind} pool_size")
        self.strides = self.pool_size if strides is None else _grid.ints(strides, self.rank, f"{kind} strides")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ConfigError(f"{kind} padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding.lower()
        self.data_format = _grid.data_format(data_format)

    def _geometry(self, input_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], list[int], tuple[int, ...]]:
        """(window, strides, pads, output sizes) for inputs of ``input_shape``."""
        sizes, _ = _grid.split(tuple(input_shape), self.rank, self.data_format, type(self).__name__)
        ones = (1,) * self.rank
        pool, strides = (sizes, ones) if self.global_ else (self.pool_size, self.strides)
        padding = "valid" if self.global_ else self.padding
        pads = _grid.resolve_pads(padding, sizes, pool, strides, ones)
        return pool, strides, pads, _grid.out_size(sizes, pool, strides, ones, pads, type(self).__name__)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, channels = _grid.split(tuple(input_shape), self.rank, self.data_format, type(self).__name__)
        if self.global_:
            return (channels,)
        return _grid.join(self._geometry(input_shape)[3], channels, self.data_format)

    def output_dim(self, input_dim: int) -> int:
        if self._input_shape is None:
            raise ConfigError(f"{type(self).__name__} needs its input shape: give the model input_shape=(...)")
        return math.prod(self.output_shape(self._input_shape))

    def spec(self) -> dict[str, Any]:
        if self._input_shape is None:
            raise ConfigError(f"{type(self).__name__} needs its input shape for its spec: give the model "
                              "input_shape=(...) or fn.Input(shape=...), or fit it first")
        pool, strides, pads, _ = self._geometry(self._input_shape)
        return {"type": "pool", "mode": self.mode, "input": list(self._input_shape), "pool": list(pool),
                "strides": list(strides), "pads": pads, "data_format": self.data_format, "global": self.global_}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "_Pool":
        pool, pads, shape = spec.get("pool"), spec.get("pads"), spec.get("input")
        if not isinstance(pool, list) or len(pool) not in (1, 2) or not isinstance(shape, list):
            raise ConfigError(f"pool layer spec needs a window of 1 or 2 sizes and an input shape, got {spec!r}")
        global_ = bool(spec.get("global", False))
        kind = _CLASSES.get((spec.get("mode"), len(pool), global_))  # type: ignore[arg-type]
        if kind is None:
            raise ConfigError(f"pool layer spec has an unknown mode {spec.get('mode')!r}")
        if global_:
            layer = kind(data_format=spec.get("data_format"))
        else:
            layer = kind(pool, spec.get("strides"), "valid", spec.get("data_format"))
            if pads != [0] * (2 * len(pool)):
                # Written with "same": the pads are what "same" gives for this input shape.
                layer.padding = "same"
        layer._built_for(tuple(shape))
        if not global_ and layer.spec()["pads"] != pads:
            raise ConfigError(f"pool layer spec pads {pads!r} are neither 'valid' nor 'same' for input {shape}")
        return layer

    def follows_steps(self) -> bool:
        """Whether this pool takes sequences of any length (the core's ``step_width``): a
        global pool over the rows of [timesteps, channels]."""
        return self.global_ and self.rank == 1 and self.data_format == "channels_last"

    def consumes_mask(self) -> bool:
        # Keras 3: GlobalAveragePooling1D is the one pooling layer with supports_masking.
        return self.global_ and self.mode == "avg" and self.rank == 1

    def check_mask_use(self, where: str, made: str) -> None:
        if self.data_format != "channels_last":
            raise ConfigError(f"{where} ({type(self).__name__}, channels_first) is reached by the step mask made "
                              f"by {made}: the mask marks the first axis of [timesteps, features], which "
                              "channels_first reads as its channels; use channels_last")

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        shape = self._input_shape
        assert shape is not None, "the model records the input shape before the diagnostics run"
        if self.follows_steps():  # this call's number of steps, which may differ from the built one
            shape = (h.shape[1] // shape[-1], shape[-1])
        pool, strides, pads, out = self._geometry(shape)
        x = _grid.to_last(h, shape, self.rank, self.data_format)
        mask = getattr(ref, "mask", None)
        if mask is not None and self.consumes_mask():
            # Keras' masked mean over the real steps; 0 for a sample with none (Keras: 0/0).
            keep = np.asarray(mask, dtype=x.dtype)[:, None, :, None]  # x is [n, 1, steps, c]
            total = (x * keep).sum(axis=2, keepdims=True)
            return NumpyStep(_grid.from_last(total / np.maximum(keep.sum(axis=2, keepdims=True), 1), self.rank,
                                             self.data_format))
        ones = (1,) * self.rank
        views = [v for _, v in _grid.windows(x, pads, np.nan, pool, strides, ones, out, self.rank)]
        stack = np.stack(views)  # padding cells are NaN: skipped by the nan-aware statistics
        y = np.nanmax(stack, axis=0) if self.mode == "max" else np.nanmean(stack, axis=0)
        return NumpyStep(_grid.from_last(y, self.rank, self.data_format))

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        if g.dry:  # every configuration has an ONNX form
            return x
        shape = self._input_shape
        assert shape is not None, "a built model records every layer's input shape"
        y = g.to_channels_first(x, shape, self.rank, self.data_format, where)
        if self.global_:  # [N, C, 1...] flattened is [N, C] in either layout
            return g.flatten(g.node("GlobalMaxPool" if self.mode == "max" else "GlobalAveragePool", [y], where), where)
        pool, strides, pads, _ = self._geometry(shape)
        attrs: dict[str, Any] = {"kernel_shape": list(pool), "strides": list(strides), "pads": pads[0::2] + pads[1::2]}
        if self.mode == "avg":
            attrs["count_include_pad"] = 0  # Keras' "same": the mean of the cells inside the input
        y = g.node("MaxPool" if self.mode == "max" else "AveragePool", [y], where, **attrs)
        return g.from_channels_first(y, self.output_shape(shape), self.rank, self.data_format, where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        shape = self._input_shape
        assert shape is not None, "a built model records every layer's input shape"
        last = self.data_format == "channels_last"
        if self.global_:  # the spatial axes of [N, *shape]
            dims = tuple(range(1, self.rank + 1)) if last else tuple(range(2, self.rank + 2))
            return TorchPart([f"GlobalPool({self.mode!r}, {dims!r})"], [], (_tm.GLOBAL_POOL,))
        pool, strides, pads, _ = self._geometry(shape)
        name = f"{'Max' if self.mode == 'max' else 'Avg'}Pool{self.rank}d"
        args = f"{_tm.tuple_src(pool)}, stride={_tm.tuple_src(strides)}"
        if not last and not any(pads):
            return TorchPart([f"nn.{name}({args})"], [])
        module = f"Layout{name}({args}, pad={_tm.tuple_src(_tm.torch_pad(pads))}, channels_last={last})"
        return TorchPart([module], [], (_tm.LAYOUT,))

    def __repr__(self) -> str:
        if self.global_:
            return f"{type(self).__name__}()"
        size = self.pool_size if self.rank == 2 else self.pool_size[0]
        args = [repr(size)]
        if self.strides != self.pool_size:
            args.append(f"strides={self.strides!r}")
        if self.padding != "valid":
            args.append(f"padding={self.padding!r}")
        if self.data_format != "channels_last":
            args.append(f"data_format={self.data_format!r}")
        return f"{type(self).__name__}({', '.join(args)})"


class _GlobalPool(_Pool):
    global_ = True

    def __init__(self, data_format: Optional[str] = None) -> None:
        self.pool_size = self.strides = (1,) * self.rank
        self.padding = "valid"
        self.data_format = _grid.data_format(data_format)


@register("pool")
class MaxPool2D(_Pool):
    """2-D max pooling (Keras' MaxPooling2D): the largest value of each ``pool_size``
    window, per channel, moving by ``strides`` (default: ``pool_size``). ``padding``
    "same" pads as TensorFlow (padding never wins). In training the gradient flows
    to the winning input of each window (the first one on ties)."""

    mode, rank = "max", 2


class MaxPool1D(_Pool):
    """1-D max pooling over sequences (Keras' MaxPooling1D); see ``MaxPool2D``."""

    mode, rank = "max", 1


class AvgPool2D(_Pool):
    """2-D average pooling (Keras' AveragePooling2D): the mean of each window, per
    channel. With ``padding="same"`` only the cells inside the input are averaged
    (as Keras; PyTorch's AvgPool2d counts padding unless ``count_include_pad=False``)."""

    mode, rank = "avg", 2


class AvgPool1D(_Pool):
    """1-D average pooling over sequences (Keras' AveragePooling1D); see ``AvgPool2D``."""

    mode, rank = "avg", 1


class GlobalMaxPool2D(_GlobalPool):
    """The largest value of each channel over the whole image: output (channels,)."""

    mode, rank = "max", 2


class GlobalMaxPool1D(_GlobalPool):
    """The largest value of each channel over the whole sequence: output (channels,).
    With channels_last it takes sequences of any length, as GlobalAvgPool1D.

    As Keras 3's GlobalMaxPooling1D it does not support masking: a step mask reaching
    it ends there with a ``MaskWarning`` and padded steps take part in the maximum."""

    mode, rank = "max", 1


class GlobalAvgPool2D(_GlobalPool):
    """The mean of each channel over the whole image: output (channels,)."""

    mode, rank = "avg", 2


class GlobalAvgPool1D(_GlobalPool):
    """The mean of each channel over the whole sequence: output (channels,). With
    channels_last it takes sequences of any length (``input_shape=(None, F)``).

    Given the step mask of padded sequences (``Masking``, ``Embedding(mask_zero=True)``
    before it, through layers that keep the time axis) it averages only the real steps,
    as Keras 3, and the gradient reaches only those; the mask ends here. A sample whose
    steps are all padding gets 0 (Keras divides 0 by 0 there, giving NaN).

    >>> import numpy as np, ferronn as fn
    >>> m = fn.Sequential([fn.Masking(0.0), fn.GlobalAvgPool1D()], input_shape=(3, 1))
    >>> m.compile(loss="mse")
    >>> m.predict(np.array([[[2.0], [4.0], [0.0]]])).tolist()
    [[3.0]]
    """

    mode, rank = "avg", 1


MaxPooling1D, MaxPooling2D = MaxPool1D, MaxPool2D
AveragePooling1D, AveragePooling2D = AvgPool1D, AvgPool2D
GlobalAveragePooling1D, GlobalAveragePooling2D = GlobalAvgPool1D, GlobalAvgPool2D
GlobalMaxPooling1D, GlobalMaxPooling2D = GlobalMaxPool1D, GlobalMaxPool2D
