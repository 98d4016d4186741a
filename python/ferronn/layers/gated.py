"""Gated linear units: GLU and its variants SwiGLU, GeGLU and ReGLU."""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from . import elementwise as _elementwise
from .activations import Activation, activation_arg, activation_spec, activation_step, parse_activation
from .._validate import positive_int
from .base import Layer, NumpyStep, TorchEntry, TorchPart, register
from .weights import InitArg, RegArg, WeightOptions

__all__ = ["Gated", "GLU", "SwiGLU", "GeGLU", "ReGLU"]

# The PyTorch module a Gated layer becomes.
_TORCH_GATED = '''class Gated(nn.Module):
    """ferronn's Gated: y = gate(x·Wg + bg) * (x·Wv + bv), one Linear to 2·units, gate half first."""

    def __init__(self, in_features, units, gate):
        super().__init__()
        self.proj = nn.Linear(in_features, 2 * units)
        self.gate = gate

    def forward(self, x):
        g, v = self.proj(x).chunk(2, dim=-1)
        return self.gate(g) * v
'''


@register("gated")
class Gated(WeightOptions, Layer):
    """Gated linear unit: ``y = gate(x·Wg + bg) ⊙ (x·Wv + bv)`` (Shazeer 2020).

    Two dense projections of the input, each to ``units`` outputs: one passes
    through the ``gate`` activation and then scales the other value by value
    (⊙ is the elementwise product), so the layer learns which features to let
    through. Used as the feed-forward block of modern transformers.

    The two projections are stored together: ``weight`` has shape
    [inputs, 2·units] and ``bias`` [2·units], the gate's columns first.
    ``gate`` is an activation name or an elementwise activation layer; the
    subclasses fix it: ``GLU`` (sigmoid), ``SwiGLU`` (silu), ``GeGLU`` (gelu),
    ``ReGLU`` (relu).
    """

    param_names = ("weight", "bias")

    def __init__(self, units: int, gate: Union[str, dict, Activation], *, kernel_initializer: InitArg = None,
                 bias_initializer: InitArg = "zeros", kernel_regularizer: RegArg = None,
                 bias_regularizer: RegArg = None) -> None:
        self.units = positive_int(units, f"{type(self).__name__} units")
        self.gate, self.gate_alpha = activation_arg(gate, None, f"{type(self).__name__} gate")
        self._set_weight_options(kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)

    def spec(self) -> dict[str, Any]:
        return self._weight_spec({"type": "gated", "units": self.units,
                                  "gate": activation_spec(self.gate, self.gate_alpha)})

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Gated":
        units: Any = spec.get("units")  # checked by __init__
        gate: Any = spec.get("gate")
        name, alpha = parse_activation(gate, "Gated gate")
        inits = cls._weight_kwargs(spec)
        variant = _VARIANTS.get(name) if alpha is None else None
        if variant is not None:
            return variant(units, **inits)
        return Gated(units, gate, **inits)

    def output_dim(self, input_dim: int) -> int:
        return self.units

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        z = h @ p["weight"] + p["bias"]  # gate columns first, then the values
        step = activation_step(self.gate, self.gate_alpha, z[:, :self.units], ref)
        return step._replace(output=step.post * z[:, self.units:])

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        u = self.units
        split = g.init(f"const.split_{u}_{u}", np.array([u, u], dtype=np.int64))
        gate, value = g.node("Split", [g.gemm(x, where, where), split], where, n_out=2, axis=1)
        return g.node("Mul", [_elementwise.onnx_nodes(g, self.gate, self.gate_alpha, gate, where), value], where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        module = f"Gated({d}, {self.units}, {_elementwise.torch_module(self.gate, self.gate_alpha)})"
        entries = [TorchEntry(f"{t}.proj.weight", f"{f}.weight", True), TorchEntry(f"{t}.proj.bias", f"{f}.bias")]
        return TorchPart([module], entries, (_TORCH_GATED,))

    def __repr__(self) -> str:
        gate = activation_spec(self.gate, self.gate_alpha)
        return f"Gated({self.units}, gate={gate!r})"


class _Variant(Gated):
    """A Gated layer with a fixed gate (set by the subclass)."""

    _gate = ""

    def __init__(self, units: int, *, kernel_initializer: InitArg = None, bias_initializer: InitArg = "zeros",
                 kernel_regularizer: RegArg = None, bias_regularizer: RegArg = None) -> None:
        super().__init__(units, self._gate, kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.units})"


class GLU(_Variant):
    """Gated linear unit with a sigmoid gate (Dauphin et al. 2017):
    ``y = sigmoid(x·Wg + bg) ⊙ (x·Wv + bv)``."""

    _gate = "sigmoid"


class SwiGLU(_Variant):
    """GLU with a SiLU (Swish) gate: ``y = silu(x·Wg + bg) ⊙ (x·Wv + bv)``,
    the feed-forward block of LLaMA and PaLM."""

    _gate = "silu"


class GeGLU(_Variant):
    """GLU with a GELU gate: ``y = gelu(x·Wg + bg) ⊙ (x·Wv + bv)``."""

    _gate = "gelu"


class ReGLU(_Variant):
    """GLU with a ReLU gate: ``y = relu(x·Wg + bg) ⊙ (x·Wv + bv)``."""

    _gate = "relu"


_VARIANTS: dict[str, type[_Variant]] = {v._gate: v for v in (GLU, SwiGLU, GeGLU, ReGLU)}
