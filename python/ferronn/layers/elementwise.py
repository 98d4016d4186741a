"""Each elementwise activation outside the core: in float64 NumPy (the reference of
``fn.diagnostics.check_gradients``), as ONNX nodes, and as a PyTorch module.

The core's table (``fn.names``) owns the names, aliases and default alphas;
this module holds only what the core cannot know: how each function is written
in other frameworks. Every function is keyed by its canonical name, and every
lookup goes through ``fn.names.activation`` first, so aliases ("swish") work
everywhere. A function missing here raises the tool's named error
(``ExportError`` for the exports, ``ConfigError`` for the diagnostics).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, cast

import numpy as np

from .. import names as _names
from ..errors import ConfigError, ExportError

__all__ = ["FLOAT64", "float64", "onnx_nodes", "torch_module"]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid64(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _gelu_tanh64(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


#: The activations in float64, ``f(x, alpha)`` (``alpha`` already defaulted),
#: written from their definitions rather than from the core's kernels.
FLOAT64: dict[str, Callable[[np.ndarray, Optional[float]], np.ndarray]] = {
    "identity": lambda x, a: x,
    "sigmoid": lambda x, a: _sigmoid64(x),
    "tanh": lambda x, a: np.tanh(x),
    "relu": lambda x, a: np.where(x > 0, x, 0.0),
    "leaky_relu": lambda x, a: np.where(x > 0, x, a * x),
    "elu": lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x, a: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x, a: _gelu_tanh64(x),
    "silu": lambda x, a: x * _sigmoid64(x),
    "softplus": lambda x, a: np.logaddexp(0.0, x),
}


def _resolve(name: str, alpha: Optional[float]) -> tuple[str, Optional[float]]:
    """The canonical name, and ``alpha`` or the core's default for it."""
    info = _names.activation(name)
    return info.name, info.default_alpha if alpha is None else alpha


def float64(name: str, x: np.ndarray, alpha: Optional[float]) -> np.ndarray:
    """``f(x)`` in float64 for activation ``name``."""
    name, alpha = _resolve(name, alpha)
    if name not in FLOAT64:
        raise ConfigError(f"the diagnostics have no float64 form of the activation {name!r}")
    return FLOAT64[name](x, alpha)


# ONNX operators that are the function itself (one node on x).
_ONNX_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}


def _onnx_gelu(g: Any, name: str, x: str, scope: str) -> str:
    # The Gelu operator only exists from opset 20; before, its formula.
    if g.opset >= 20:
        return g.node("Gelu", [x], scope, approximate="none" if name == "gelu" else "tanh")
    if name == "gelu":
        inner = g.node("Erf", [g.node("Div", [x, g.scalar(math.sqrt(2.0))], scope)], scope)
    else:
        cube = g.node("Mul", [g.node("Mul", [x, x], scope), x], scope)
        poly = g.node("Add", [x, g.node("Mul", [cube, g.scalar(0.044715)], scope)], scope)
        inner = g.node("Tanh", [g.node("Mul", [poly, g.scalar(math.sqrt(2.0 / math.pi))], scope)], scope)
    half_x = g.node("Mul", [x, g.scalar(0.5)], scope)
    return g.node("Mul", [half_x, g.node("Add", [inner, g.scalar(1.0)], scope)], scope)


def onnx_nodes(g: Any, name: str, alpha: Optional[float], x: str, scope: str) -> str:
    """Adds activation ``name`` on value ``x`` to the ONNX graph ``g``; returns the output value."""
    name, alpha = _resolve(name, alpha)
    if name == "identity":
        return x
    if name in _ONNX_OPS:
        return g.node(_ONNX_OPS[name], [x], scope)
    if name in ("leaky_relu", "elu"):
        return g.node("LeakyRelu" if name == "leaky_relu" else "Elu", [x], scope, alpha=float(cast(float, alpha)))  # _resolve filled the default
    if name == "silu":
        return g.node("Mul", [x, g.node("Sigmoid", [x], scope)], scope)
    if name in ("gelu", "gelu_tanh"):
        return _onnx_gelu(g, name, x, scope)
    raise ExportError(f"{scope}: the activation {name!r} has no ONNX form here")


_TORCH = {
    "relu": "nn.ReLU()", "gelu": "nn.GELU()", "gelu_tanh": "nn.GELU(approximate='tanh')", "silu": "nn.SiLU()",
    "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()", "softplus": "nn.Softplus()", "identity": "nn.Identity()",
}


def torch_module(name: str, alpha: Optional[float]) -> str:
    """The PyTorch module expression for activation ``name`` ("nn.LeakyReLU(0.2)")."""
    name, alpha = _resolve(name, alpha)
    if name == "leaky_relu":
        return f"nn.LeakyReLU({alpha!r})"
    if name == "elu":
        return f"nn.ELU({alpha!r})"
    if name not in _TORCH:
        raise ExportError(f"activation {name!r} has no PyTorch module in ferronn's torch layout")
    return _TORCH[name]
