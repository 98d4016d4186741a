"""Input checks and conversions done once at the Python boundary.

The Rust core re-checks what it needs (shapes against the model, finiteness,
label range) so that every entry point is safe; this module turns arbitrary
array-likes into the C-contiguous float32 / int64 arrays the core borrows without
copying, and rejects what cannot be converted with a named error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ConfigError, DTypeError, EmptyInputError, ShapeError

_NUMERIC_KINDS = "biuf"


def _array(a: Any, name: str) -> np.ndarray:
    if a is None:
        raise ShapeError(f"{name} is None; expected an array")
    try:
        arr = np.asarray(a)
    except ValueError as e:  # ragged nested lists
        raise ShapeError(f"{name} is not a rectangular array: {e}") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise DTypeError(f"{name} has dtype {arr.dtype}; expected a real numeric array (float or int)")
    return arr


def features(x: Any, name: str = "X") -> np.ndarray:
    """A 2-D float32 C-contiguous array of samples × features."""
    arr = _array(x, name)
    if arr.ndim != 2:
        raise ShapeError(
            f"{name} must be 2-D (samples, features), got {arr.ndim}-D with shape {arr.shape}"
            + ("; use x.reshape(1, -1) for a single sample" if arr.ndim == 1 else "")
        )
    if arr.shape[0] == 0:
        raise EmptyInputError(f"{name} has no samples (shape {arr.shape}); expected at least one row")
    return np.ascontiguousarray(arr, dtype=np.float32)


def labels(y: Any, name: str = "y") -> np.ndarray:
    """A 1-D int64 C-contiguous array of class labels."""
    arr = _array(y, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be 1-D class labels, got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise DTypeError(
            f"{name} has dtype {arr.dtype}; class labels must be integers (e.g. y.astype(int))"
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def targets(y: Any, n_outputs: int, name: str = "y") -> np.ndarray:
    """A 2-D float32 C-contiguous array of regression / binary targets."""
    arr = _array(y, name)
    if arr.ndim == 1:
        if n_outputs != 1:
            raise ShapeError(f"{name} is 1-D but the model has {n_outputs} outputs; expected shape (n, {n_outputs})")
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def weights(w: Any, name: str) -> np.ndarray:
    """A float32 C-contiguous copy of a user-supplied parameter array."""
    return np.ascontiguousarray(_array(w, name), dtype=np.float32)


def seed(value: Any) -> int:
    """A seed usable by the core: an integer in [0, 2**64)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < 2**64:
        raise ConfigError(f"seed must be an integer in [0, 2**64), got {value!r}")
    return int(value)


def same_length(x: np.ndarray, y: np.ndarray) -> None:
    if len(x) != len(y):
        raise ShapeError(f"X has {len(x)} samples but y has {len(y)}; expected the same number")
