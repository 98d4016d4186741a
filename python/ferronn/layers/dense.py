"""``Dense``: the fully connected layer."""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from .. import names as _names
from . import elementwise as _elementwise
from .activations import Activation, activation_arg, activation_spec, activation_step, parse_activation
from .._keras_methods import SOFTMAX_ACTIVATION
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
    "tanh", ...; "softmax" only on a model's output layer before a cross-entropy
    loss, which then trains it in the fused logits form), an elementwise activation layer (``fn.LeakyReLU(0.2)``,
    ``fn.GELU(approximate="tanh")``), or None for none (the identity); ``alpha``
    sets the slope of "leaky_relu" / "elu" given by name. The kernel initializer
    defaults to He for the ReLU family and Xavier (Glorot) otherwise; names
    follow Keras ("he_normal", "glorot_uniform", ...). ``input_dim`` on the first
    layer fixes the model's input width, so it can be built before ``fit``.
    ``kernel_regularizer`` / ``bias_regularizer`` (``fn.regularizers.l2(1e-4)``)
    add an L1/L2 penalty to the loss (see ``fn.regularizers``).

    On N-D inputs (a sequence ``(steps, features)``, an image ``(h, w, channels)``)
    it acts on the last axis, as Keras' Dense: the same ``W`` at every position,
    output shape ``(..., units)``. Use ``Flatten()`` first to connect every value.
    """

    param_names = ("weight", "bias")

    def __init__(self, units: int, activation: Union[None, str, Activation] = None, *,
                 alpha: Optional[float] = None, kernel_initializer: InitArg = None,
                 bias_initializer: InitArg = "zeros", kernel_regularizer: RegArg = None,
                 bias_regularizer: RegArg = None, input_dim: Optional[int] = None) -> None:
        self.units = positive_int(units, "Dense units")
        if isinstance(activation, str) and activation.lower() == SOFTMAX_ACTIVATION and alpha is None:
            # Keras' output layer: Sequential trains it fused with the cross-entropy loss.
            self.activation, self.alpha = SOFTMAX_ACTIVATION, None
        else:
            self.activation, self.alpha = activation_arg(activation, alpha, "Dense activation")
        self._set_weight_options(kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)
        self.input_dim = None if input_dim is None else positive_int(input_dim, "input_dim")

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "dense", "units": self.units,
                               "activation": activation_spec(self.activation, self.alpha)}
        if self._input_shape is not None and len(self._input_shape) > 1:
            out["in_features"] = self._input_shape[-1]  # acts on the last axis
        return self._weight_spec(out)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Dense":
        name, alpha = parse_activation(spec.get("activation", "identity"), "Dense activation")
        units: Any = spec.get("units")  # checked by __init__
        layer = cls(units, name, alpha=alpha, **cls._weight_kwargs(spec))
        features = spec.get("in_features")
        if features is not None:  # built on the last axis of N-D inputs; a model re-records the full shape
            layer._input_shape = (-1, positive_int(features, "Dense in_features"))
        return layer

    def output_dim(self, input_dim: int) -> int:
        return self.units

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*tuple(input_shape)[:-1], self.units)

    def passes_mask(self) -> bool:
        return self._input_shape is not None and len(self._input_shape) > 1  # on the last axis of sequences

    def follows_steps(self) -> bool:
        return self.passes_mask()

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        features = p["weight"].shape[0]  # per position: the last axis of N-D inputs
        z = (h.reshape(-1, features) @ p["weight"] + p["bias"]).reshape(len(h), -1)
        if self.activation == SOFTMAX_ACTIVATION:
            return NumpyStep(ref.softmax(z.reshape(-1, self.units), 1.0, log=False).reshape(len(h), -1))
        return activation_step(self.activation, self.alpha, z, ref)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        shape = self._input_shape
        nd = shape is not None and len(shape) > 1
        if nd:  # on the last axis: MatMul broadcasts over the positions ([N, ..., F] @ [F, units])
            y = g.node("MatMul", [g.nd(x, shape, where), g.weight(f"{where}.weight")], where)
            y = g.node("Add", [y, g.weight(f"{where}.bias")], where)
        else:
            y = g.gemm(x, where, where)
        if self.activation == SOFTMAX_ACTIVATION:
            y = g.node("Softmax", [y], where, axis=-1)
        else:
            y = _elementwise.onnx_nodes(g, self.activation, self.alpha, y, where)
        return g.flat_nd(y, self.output_shape(shape), where) if nd else y  # type: ignore[arg-type]

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        if self._input_shape is not None and len(self._input_shape) > 1:
            d = self._input_shape[-1]  # nn.Linear acts on the last axis too
        # nn.Linear, then the activation as a module of its own (so two indices).
        modules = [f"nn.Linear({d}, {self.units})"]
        if self.activation == SOFTMAX_ACTIVATION:
            modules.append("nn.Softmax(dim=-1)")
        elif _names.activation(self.activation).name != "identity":
            modules.append(_elementwise.torch_module(self.activation, self.alpha))
        return TorchPart(modules, [TorchEntry(f"{t}.weight", f"{f}.weight", True), TorchEntry(f"{t}.bias", f"{f}.bias")])

    def __repr__(self) -> str:
        args = [str(self.units)]
        if self.activation != "identity":
            args.append(f"activation={self.activation!r}")
        if self.alpha is not None:
            args.append(f"alpha={self.alpha!r}")
        return f"Dense({', '.join(args)})"
