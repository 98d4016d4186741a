"""``Dense``: the fully connected layer."""

from __future__ import annotations

from typing import Any, Optional, Union

from .activations import Activation, activation_arg, activation_spec, parse_activation
from .base import Layer, positive_int, register

__all__ = ["Dense"]

#: An initializer: a name ("he_normal") or a dict ({"name": "uniform", "low": -0.1, "high": 0.1}).
InitArg = Optional[Union[str, dict]]


@register("dense")
class Dense(Layer):
    """Fully connected layer: ``y = activation(x·W + b)``.

    Every output unit is a weighted sum of all inputs plus a bias; ``W`` has shape
    [inputs, units] (``layer.weights``) and ``b`` shape [units] (``layer.bias``).

    ``activation`` is a name ("relu", "leaky_relu", "gelu", "gelu_tanh", "silu",
    "tanh", ...), an elementwise activation layer (``fn.LeakyReLU(0.2)``,
    ``fn.GELU(approximate="tanh")``), or None for none (the identity); ``alpha``
    sets the slope of "leaky_relu" / "elu" given by name. The kernel initializer
    defaults to He for the ReLU family and Xavier (Glorot) otherwise; names
    follow Keras ("he_normal", "glorot_uniform", ...). ``input_dim`` on the first
    layer fixes the model's input width, so it can be built before ``fit``.
    """

    param_names = ("weight", "bias")

    def __init__(self, units: int, activation: Union[None, str, Activation] = None, *,
                 alpha: Optional[float] = None, kernel_initializer: InitArg = None,
                 bias_initializer: InitArg = "zeros", input_dim: Optional[int] = None) -> None:
        self.units = positive_int(units, "Dense units")
        self.activation, self.alpha = activation_arg(activation, alpha, "Dense activation")
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.input_dim = None if input_dim is None else positive_int(input_dim, "input_dim")

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "dense", "units": self.units,
                               "activation": activation_spec(self.activation, self.alpha)}
        if self.kernel_initializer is not None:
            out["kernel_initializer"] = self.kernel_initializer
        if self.bias_initializer is not None:
            out["bias_initializer"] = self.bias_initializer
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Dense":
        name, alpha = parse_activation(spec.get("activation", "identity"), "Dense activation")
        units: Any = spec.get("units")  # checked by __init__
        return cls(units, name, alpha=alpha, kernel_initializer=spec.get("kernel_initializer"),
                   bias_initializer=spec.get("bias_initializer"))

    def output_dim(self, input_dim: int) -> int:
        return self.units

    def __repr__(self) -> str:
        args = [str(self.units)]
        if self.activation != "identity":
            args.append(f"activation={self.activation!r}")
        if self.alpha is not None:
            args.append(f"alpha={self.alpha!r}")
        return f"Dense({', '.join(args)})"
