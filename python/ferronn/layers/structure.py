"""Layers that shape how the others run: Dropout and Residual."""

from __future__ import annotations

from typing import Any, Iterable, Union

import numpy as np

from ..errors import ConfigError
from .._validate import finite_float
from .base import Layer, NumpyStep, TorchEntry, TorchPart, from_spec as _layer_from_spec, register

__all__ = ["Dropout", "Residual"]

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
    ``projection.weight`` and ``projection.bias``) takes its place. The block's
    tensors are named ``block.0.weight``, ``block.1.bias``, ...; see
    ``get_params()``, or read them on the inner layers themselves.
    """

    def __init__(self, layers: Union[Layer, Iterable[Layer]]) -> None:
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

    def named_sublayers(self, prefix: str) -> list[tuple[str, Layer]]:
        return [(f"{prefix}.block.{j}", layer) for j, layer in enumerate(self.layers)]

    def spec(self) -> dict[str, Any]:
        return {"type": "residual", "layers": [layer.spec() for layer in self.layers]}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Residual":
        specs = spec.get("layers")
        if not isinstance(specs, list):
            raise ConfigError(f"residual layer spec needs a list of layers, got {specs!r}")
        return cls([_layer_from_spec(s) for s in specs])

    def output_dim(self, input_dim: int) -> int:
        for layer in self.layers:
            input_dim = layer.output_dim(input_dim)
        return input_dim

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(d) for d in input_shape)
        out = shape
        for layer in self.layers:
            out = layer.output_shape(out)
        if len(shape) > 1 and out != shape:
            raise ConfigError(f"Residual on inputs of shape {shape}: its block must keep that shape, got {out} "
                              "(a projection for images is not supported yet)")
        return out if len(shape) > 1 else (self.output_dim(shape[0]),)

    def _built_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = self.output_shape(input_shape)  # checks first, then records
        self._input_shape = tuple(int(d) for d in input_shape)
        shape = self._input_shape
        for layer in self.layers:
            shape = layer._built_for(shape)
        return out

    def __repr__(self) -> str:
        return f"Residual([{', '.join(repr(layer) for layer in self.layers)}])"

    # The block runs through the tool's own walker; the skip path is x, or the
    # projection x·P + p when the core made one (the block changes the width).

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        inner = ref.run(self.layers, h, f"{where}.block")
        skip = h @ p["projection.weight"] + p["projection.bias"] if "projection.weight" in p else h
        return NumpyStep(skip + inner)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        out = g.layers(self.layers, x, f"{where}.block")
        proj = f"{where}.projection"
        skip = g.gemm(x, proj, proj) if g.has(f"{proj}.weight") else x
        return g.node("Add", [skip, out], where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        inner = layout.walk(self.layers, d, f"{f}.block", f"{t}.block")
        entries, projection = list(inner.entries), ""
        if layout.has(f"{f}.projection.weight"):
            entries += [TorchEntry(f"{t}.projection.weight", f"{f}.projection.weight", True),
                        TorchEntry(f"{t}.projection.bias", f"{f}.projection.bias")]
            projection = f", projection=nn.Linear({d}, {self.output_dim(d)})"
        module = f"Residual(nn.Sequential({', '.join(inner.modules)}){projection})"
        return TorchPart([module], entries, inner.helpers + (_TORCH_RESIDUAL,))
