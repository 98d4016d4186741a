"""Layers that shape how the others run: Dropout and Residual."""

from __future__ import annotations

from typing import Any, Iterable, Union

import numpy as np

from ..errors import ConfigError
from .._validate import finite_float
from . import _grid
from .base import Layer, NumpyStep, TorchEntry, TorchPart, from_spec as _layer_from_spec, register

__all__ = ["Dropout", "Residual"]

# Residual's skip paths for blocks that change the shape of images (see _make_projection).
_PROJECTIONS = ("auto", "batchnorm")

# The PyTorch module a Residual becomes.
_TORCH_RESIDUAL = '''class Residual(nn.Module):
    """ferronn's Residual: y = x + block(x), or projection(x) + block(x) when the width changes."""

    def __init__(self, block, projection=None):
        super().__init__()
        self.block = block
        self.projection = projection

    def forward(self, x):
        skip = x if self.projection is None else self.projection(x)
        return skip + self.block(x)
'''


@register("dropout")
class Dropout(Layer):
    """Dropout (Srivastava et al. 2014): in training, sets each value to zero with
    probability ``rate`` and scales the survivors by ``1 / (1 − rate)``, so the
    expected output equals the input. At inference it does nothing.

    Dropping random units stops them from relying on each other and so reduces
    overfitting. The masks are drawn from the model's seed, so runs repeat.
    """

    keeps_shape = True

    def passes_mask(self) -> bool:
        return True

    def follows_steps(self) -> bool:
        return True

    def __init__(self, rate: float) -> None:
        self.rate = finite_float(rate, "Dropout rate", low=0.0, high=1.0, high_open=True)

    def spec(self) -> dict[str, Any]:
        return {"type": "dropout", "rate": self.rate}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Dropout":
        rate: Any = spec.get("rate")  # checked by __init__
        return cls(rate)

    def __repr__(self) -> str:
        return f"Dropout({self.rate!r})"

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        if ref.training and self.rate > 0:
            raise ConfigError(f"{where} is Dropout({self.rate}), which is random in training mode; "
                              "use training=False (or a rate of 0) for this check")
        return NumpyStep(h)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        return x  # the identity at inference

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        return TorchPart([f"nn.Dropout({self.rate!r})"], [])


@register("residual")
class Residual(Layer):
    """Residual connection (He et al. 2016): ``y = x + block(x)``.

    ``block`` is the given layers applied in order. Adding the input back lets
    the block learn only a correction to it, and gives the gradient a direct
    path around the block, which is what makes very deep networks trainable.

    When the block changes the width (its output has more or fewer features than
    its input), ``x`` cannot be added as it is: a learned projection
    ``x·P + p`` (a Dense layer without activation, tensors
    ``projection.weight`` and ``projection.bias``) takes its place. On images and
    sequences the skip path is a 1x1 convolution whose strides give the block's
    output size (a ResNet basic block's "downsample"): with a bias for
    ``projection="auto"``, or without one and followed by a per-channel BatchNorm
    for ``projection="batchnorm"`` (PyTorch's ``BasicBlock``: ``conv1x1`` then
    ``BatchNorm2d``); tensors ``projection.0.weight`` (``projection.0.bias``,
    ``projection.1.gamma``, ...). The block's
    tensors are named ``block.0.weight``, ``block.1.bias``, ...; see
    ``get_params()``, or read them on the inner layers themselves.
    """

    def __init__(self, layers: Union[Layer, Iterable[Layer]], projection: str = "auto") -> None:
        if isinstance(layers, Layer):
            layers = [layers]
        elif isinstance(layers, (str, bytes, dict)) or not hasattr(layers, "__iter__"):
            raise ConfigError(f"Residual takes a list of layer objects such as [fn.Dense(32)], got {layers!r}")
        self.layers = list(layers)
        if not self.layers:
            raise ConfigError("Residual needs at least one layer in its block, got an empty list")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise ConfigError(f"Residual takes layer objects such as fn.Dense(32), got {layer!r}")
        if projection not in _PROJECTIONS:
            raise ConfigError(f"Residual projection must be one of {', '.join(map(repr, _PROJECTIONS))}, "
                              f"got {projection!r}")
        self.projection = projection
        self._projection: list[Layer] = []  # the skip path's layers on images, made by _built_for

    def named_sublayers(self, prefix: str) -> list[tuple[str, Layer]]:
        block = [(f"{prefix}.block.{j}", layer) for j, layer in enumerate(self.layers)]
        return block + [(f"{prefix}.projection.{j}", layer) for j, layer in enumerate(self._projection)]

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "residual", "layers": [layer.spec() for layer in self.layers]}
        if self._projection:
            out["projection"] = [layer.spec() for layer in self._projection]
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Residual":
        specs, proj = spec.get("layers"), spec.get("projection", [])
        if not isinstance(specs, list):
            raise ConfigError(f"residual layer spec needs a list of layers, got {specs!r}")
        if not isinstance(proj, list) or len(proj) > 2:
            raise ConfigError(f"residual layer spec's projection must be a list of at most 2 layers, got {proj!r}")
        layer = cls([_layer_from_spec(s) for s in specs], projection="batchnorm" if len(proj) == 2 else "auto")
        layer._projection = [_layer_from_spec(s) for s in proj]
        return layer

    def output_dim(self, input_dim: int) -> int:
        for layer in self.layers:
            input_dim = layer.output_dim(input_dim)
        return input_dim

    def _block_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(d) for d in input_shape)
        out = self._block_shape(shape)
        if len(shape) > 1:
            if out != shape:
                self._make_projection(shape, out)  # checks that one exists
            return out
        if self.projection != "auto":
            raise ConfigError(f"Residual projection={self.projection!r} is for images and sequences; on flat "
                              "inputs a block that changes the width gets a linear projection (projection='auto')")
        return (self.output_dim(shape[0]),)

    def _make_projection(self, shape: tuple[int, ...], out: tuple[int, ...]) -> list[Layer]:
        """The skip path for a block taking ``shape`` to ``out``: a 1x1 convolution
        with the stride that gives ``out``'s sizes and channels (PyTorch's and
        Keras' ResNet "downsample"), then a BatchNorm for projection="batchnorm"."""
        from .conv import Conv1D, Conv2D
        from .norm import BatchNorm

        fmt = next((str(getattr(layer, "data_format")) for layer in self.layers if hasattr(layer, "data_format")),
                   "channels_last")
        rank = len(shape) - 1
        sizes, _ = _grid.split(shape, rank, fmt, "Residual")
        want, channels = (out[1:], out[0]) if fmt == "channels_first" else (out[:-1], out[-1])
        strides = []
        for n, m in zip(sizes, want if len(out) == len(shape) else ()):
            # A 1x1 window with stride s over n cells gives (n - 1) // s + 1 outputs.
            s = next((s for s in range(1, n + 1) if (n - 1) // s + 1 == m), None)
            if s is None:
                break
            strides.append(s)
        if len(out) != len(shape) or len(strides) != rank:
            raise ConfigError(f"Residual on inputs of shape {shape}: its block gives {out}, which no 1x1 strided "
                              "convolution of the input gives, so there is no projection for the skip path")
        batchnorm = self.projection == "batchnorm"
        conv = (Conv1D if rank == 1 else Conv2D)(channels, 1, strides=tuple(strides), data_format=fmt,
                                                 use_bias=not batchnorm)
        layers: list[Layer] = [conv] + ([BatchNorm(axis=1 if fmt == "channels_first" else -1)] if batchnorm else [])
        return layers

    def _built_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = self.output_shape(input_shape)  # checks first, then records
        self._input_shape = tuple(int(d) for d in input_shape)
        shape = self._input_shape
        for layer in self.layers:
            shape = layer._built_for(shape)
        nd = len(self._input_shape) > 1
        self._projection = self._make_projection(self._input_shape, out) if nd and out != self._input_shape else []
        proj_shape = self._input_shape
        for layer in self._projection:
            proj_shape = layer._built_for(proj_shape)
        return out

    def __repr__(self) -> str:
        extra = "" if self.projection == "auto" else f", projection={self.projection!r}"
        return f"Residual([{', '.join(repr(layer) for layer in self.layers)}]{extra})"

    # The block runs through the tool's own walker; the skip path is x, or the
    # projection x·P + p when the core made one (the block changes the width).

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        inner = ref.run(self.layers, h, f"{where}.block")
        if self._projection:
            skip = ref.run(self._projection, h, f"{where}.projection")
        else:
            skip = h @ p["projection.weight"] + p["projection.bias"] if "projection.weight" in p else h
        return NumpyStep(skip + inner)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        out = g.layers(self.layers, x, f"{where}.block")
        proj = f"{where}.projection"
        if self._projection:  # the 1x1 strided convolution (and BatchNorm), as flat rows like the block's
            skip = g.layers(self._projection, x, proj)
        else:
            skip = g.gemm(x, proj, proj) if g.has(f"{proj}.weight") else x
        return g.node("Add", [skip, out], where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        inner = layout.walk(self.layers, d, f"{f}.block", f"{t}.block")
        entries, projection, helpers = list(inner.entries), "", inner.helpers
        if self._projection:  # nn.Sequential(conv 1x1[, BatchNorm]): PyTorch BasicBlock's downsample
            skip = layout.walk(self._projection, d, f"{f}.projection", f"{t}.projection")
            entries += skip.entries
            helpers += tuple(h for h in skip.helpers if h not in helpers)
            projection = f", projection=nn.Sequential({', '.join(skip.modules)})"
        elif layout.has(f"{f}.projection.weight"):
            entries += [TorchEntry(f"{t}.projection.weight", f"{f}.projection.weight", True),
                        TorchEntry(f"{t}.projection.bias", f"{f}.projection.bias")]
            projection = f", projection=nn.Linear({d}, {self.output_dim(d)})"
        module = f"Residual(nn.Sequential({', '.join(inner.modules)}){projection})"
        return TorchPart([module], entries, helpers + (_TORCH_RESIDUAL,))
