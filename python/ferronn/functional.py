"""Activations, softmax and losses as plain functions on numpy arrays.

They run the same Rust kernels the layers use, so they are also how the tests
check the core's math against float64 references.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _core, _validate, names as _names

__all__ = ["activation", "activation_grad", "softmax", "log_softmax", "softmax_grad", "loss", "matmul", "ACTIVATIONS"]

#: Every activation name the core accepts, aliases included (from its table, ``fn.names``).
ACTIVATIONS = _names.activation_names()


def _f32(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise _validate.DTypeError(f"expected a real numeric array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _rows(x: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    arr = _f32(x)
    if arr.ndim == 0:
        raise _validate.ShapeError("expected at least a 1-D array")
    return np.ascontiguousarray(arr.reshape(-1, arr.shape[-1])), arr.shape


def activation(name: str, x: Any, alpha: Optional[float] = None) -> np.ndarray:
    """``f(x)`` elementwise (e.g. ``activation("gelu", x)``)."""
    return _core.activation_forward(name, _f32(x), alpha)


def activation_grad(name: str, x: Any, dy: Any, alpha: Optional[float] = None) -> np.ndarray:
    """``dy * f'(x)``: back-propagates ``dy`` through the activation at ``x``."""
    return _core.activation_backward(name, _f32(x), _f32(dy), alpha)


def softmax(x: Any, temperature: float = 1.0) -> np.ndarray:
    """Softmax over the last axis of ``x / temperature`` (max-shifted, so huge logits are safe)."""
    rows, shape = _rows(x)
    return _core.softmax_rows(rows, float(temperature)).reshape(shape)


def log_softmax(x: Any, temperature: float = 1.0) -> np.ndarray:
    """Log-softmax over the last axis of ``x / temperature`` (log-sum-exp trick)."""
    rows, shape = _rows(x)
    return _core.log_softmax_rows(rows, float(temperature)).reshape(shape)


def softmax_grad(x: Any, dy: Any, temperature: float = 1.0, log: bool = False) -> np.ndarray:
    """Gradient w.r.t. ``x`` of softmax (or log-softmax when ``log``) given the output gradient ``dy``."""
    rows, shape = _rows(x)
    drows, _ = _rows(dy)
    return _core.softmax_backward(rows, drows, float(temperature), bool(log)).reshape(shape)


def loss(name: str, output: Any, y: Any) -> tuple[float, np.ndarray]:
    """``(mean loss, d loss / d output)`` for "mse", "binary_cross_entropy", "cross_entropy" (logits),
    "nll" or "poisson_nll" (log-rates) (or an alias of one: see ``fn.names.losses()``)."""
    out = _validate.features(output, "output")
    if _names.loss(name).uses_labels:
        target = _validate.labels(y)
    else:
        target = _validate.targets(y, out.shape[1])
    return _core.loss_and_grad(name, out, target)


def matmul(a: Any, b: Any) -> np.ndarray:
    """``a @ b`` for 2-D arrays, in float32 through ferronn's GEMM (threaded)."""
    a2, b2 = _validate.features(a, "a"), _validate.features(b, "b")
    if a2.shape[1] != b2.shape[0]:
        raise _validate.ShapeError(f"a is {a2.shape} and b is {b2.shape}; a's columns must equal b's rows")
    return _core.matmul(a2, b2)
