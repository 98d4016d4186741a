"""Layers that shape how the others run: Dropout and Residual."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Union

from ..errors import ConfigError
from .base import Layer, finite_float, from_spec as _layer_from_spec, register

__all__ = ["Dropout", "Residual"]


@register("dropout")
class Dropout(Layer):
    """Dropout (Srivastava et al. 2014): in training, sets each value to zero with
    probability ``rate`` and scales the survivors by ``1 / (1 − rate)``, so the
    expected output equals the input. At inference it does nothing.

    Dropping random units stops them from relying on each other and so reduces
    overfitting. The masks are drawn from the model's seed, so runs repeat.
    """

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

    def sublayers(self) -> list[Layer]:
        return list(self.layers)

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

    def _bind(self, owner: Any, prefix: Optional[str]) -> None:
        super()._bind(owner, prefix)
        for j, layer in enumerate(self.layers):
            layer._bind(owner, None if prefix is None else f"{prefix}.block.{j}")

    def __repr__(self) -> str:
        return f"Residual([{', '.join(repr(layer) for layer in self.layers)}])"
