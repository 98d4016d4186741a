"""``Dense``: the fully connected layer."""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from .. import names as _names
from . import elementwise as _elementwise
from .activations import Activation, activation_arg, activation_spec, activation_step, parse_activation
from ..errors import ExportError
from .._validate import positive_int
from .base import Layer, NumpyStep, TorchEntry, TorchPart, register
from .weights import InitArg, RegArg, WeightOptions

__all__ = ["Dense"]


@register("dense")
class Dense(WeightOptions, Layer):
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
    ``kernel_regularizer`` / ``bias_regularizer`` (``fn.regularizers.l2(1e-4)``)
    add an L1/L2 penalty to the loss (see ``fn.regularizers``).

    On sequences ``[N, T, F]`` (e.g. after ``LSTM(return_sequences=True)``) it applies
    to the last axis, at every step with the same weights, as Keras' Dense:
    ``[N, T, F]`` becomes ``[N, T, units]`` and ``W`` is [F, units]. Images need a
    ``Flatten`` first.
    """

    param_names = ("weight", "bias")

    def __init__(self, units: int, activation: Union[None, str, Activation] = None, *,
                 alpha: Optional[float] = None, kernel_initializer: InitArg = None,
                 bias_initializer: InitArg = "zeros", kernel_regularizer: RegArg = None,
                 bias_regularizer: RegArg = None, input_dim: Optional[int] = None) -> None:
        self.units = positive_int(units, "Dense units")
        self.activation, self.alpha = activation_arg(activation, alpha, "Dense activation")
        self._set_weight_options(kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)
        self.input_dim = None if input_dim is None else positive_int(input_dim, "input_dim")

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "dense", "units": self.units,
                               "activation": activation_spec(self.activation, self.alpha)}
        if self._input_shape is not None and len(self._input_shape) > 1:
            out["features"] = self._input_shape[-1]  # applied to the last axis of N-D samples
        return self._weight_spec(out)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Dense":
        name, alpha = parse_activation(spec.get("activation", "identity"), "Dense activation")
        units: Any = spec.get("units")  # checked by __init__
        layer = cls(units, name, alpha=alpha, **cls._weight_kwargs(spec))
        features = spec.get("features")
        if features is not None:
            # Only the last axis matters to the core: one position axis stands for the rest.
            layer._input_shape = (-1, positive_int(features, "Dense features"))
        return layer

    def output_dim(self, input_dim: int) -> int:
        if self._input_shape is not None and len(self._input_shape) > 1:
            return int(input_dim) // self._input_shape[-1] * self.units
        return self.units

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) == 2:  # a sequence [T, F]: per step, as Keras
            return (shape[0], self.units)
        # Images keep asking for a Flatten (a Dense per pixel is rarely what is meant).
        return super().output_shape(shape)

    def _per_position(self) -> bool:
        return self._input_shape is not None and len(self._input_shape) > 1

    def _flat_only(self, what: str, where: str) -> None:
        if self._per_position():
            raise ExportError(f"layer {where} ({self!r}) applies to the last axis of N-D samples; "
                              f"{what} supports Dense on [batch, features] inputs only")

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        if self._per_position():
            x = h.reshape(-1, p["weight"].shape[0])
            step = activation_step(self.activation, self.alpha, x @ p["weight"] + p["bias"], ref)
            n = h.shape[0]
            return step._replace(output=step.output.reshape(n, -1),
                                 pre=None if step.pre is None else step.pre.reshape(n, -1),
                                 post=None if step.post is None else step.post.reshape(n, -1))
        return activation_step(self.activation, self.alpha, h @ p["weight"] + p["bias"], ref)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        self._flat_only("ONNX export", where)
        return _elementwise.onnx_nodes(g, self.activation, self.alpha, g.gemm(x, where, where), where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        self._flat_only("the torch layout", f)
        # nn.Linear, then the activation as a module of its own (so two indices).
        modules = [f"nn.Linear({d}, {self.units})"]
        if _names.activation(self.activation).name != "identity":
            modules.append(_elementwise.torch_module(self.activation, self.alpha))
        return TorchPart(modules, [TorchEntry(f"{t}.weight", f"{f}.weight", True), TorchEntry(f"{t}.bias", f"{f}.bias")])

    def __repr__(self) -> str:
        args = [str(self.units)]
        if self.activation != "identity":
            args.append(f"activation={self.activation!r}")
        if self.alpha is not None:
            args.append(f"alpha={self.alpha!r}")
        return f"Dense({', '.join(args)})"
