"""Input checks and conversions done once at the Python boundary.

The Rust core re-checks what it needs (shapes against the model, finiteness,
label range) so that every entry point is safe; this module turns arbitrary
array-likes into the C-contiguous float32 / int64 arrays the core borrows without
copying, and rejects what cannot be converted with a named error.

The scalar validators (``integer``, ``positive_int``, ``non_negative_int``,
``finite_float``, ``boolean``, ``is_integer``) are the one place where an argument
is checked to be a whole number, a finite float or a flag, so every module words
the same mistake the same way: ``"<what> must be <expected>, got <value>"``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

from .errors import ConfigError, DTypeError, EmptyInputError, ShapeError

_NUMERIC_KINDS = "biuf"

# Integers go to the core as i64 / u64 (or usize): a Python int past 64 bits would
# raise a bare OverflowError in the conversion, so the default bounds stop it first.
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


def numeric_array(a: Any, name: str, expected: str = "a real numeric array (float or int)") -> np.ndarray:
    """``np.asarray(a)`` checked to be a rectangular array of real numbers (bool, int or
    float); ``expected`` words the DTypeError."""
    if a is None:
        raise ShapeError(f"{name} is None; expected an array")
    try:
        arr = np.asarray(a)
    except ValueError as e:  # ragged nested lists
        raise ShapeError(f"{name} is not a rectangular array: {e}") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise DTypeError(f"{name} has dtype {arr.dtype}; expected {expected}")
    return arr


def features(x: Any, name: str = "X") -> np.ndarray:
    """A 2-D float32 C-contiguous array of samples × features."""
    arr = numeric_array(x, name)
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
    arr = numeric_array(y, name)
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
    arr = numeric_array(y, name)
    if arr.ndim == 1:
        if n_outputs != 1:
            raise ShapeError(f"{name} is 1-D but the model has {n_outputs} outputs; expected shape (n, {n_outputs})")
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def weights(w: Any, name: str) -> np.ndarray:
    """A float32 C-contiguous copy of a user-supplied parameter array."""
    return np.ascontiguousarray(numeric_array(w, name), dtype=np.float32)


def seed(value: Any) -> int:
    """A seed usable by the core: an integer in [0, 2**64)."""
    return integer(value, "seed", 0, UINT64_MAX, expected="an integer in [0, 2**64)")


def same_length(x: np.ndarray, y: np.ndarray) -> None:
    if len(x) != len(y):
        raise ShapeError(f"X has {len(x)} samples but y has {len(y)}; expected the same number")


# ----------------------------------------------------------------- scalars


def is_integer(value: Any) -> bool:
    """Whether ``value`` is a whole number: a Python or NumPy integer, not a bool
    (``True`` is an ``int`` to Python but never a count here)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _integer_phrase(low: Optional[int], high: Optional[int]) -> str:
    if high is not None and low is not None:
        return f"an integer from {low} to {high}"
    if high is not None:
        return f"an integer <= {high}"
    if low == 1:
        return "a positive integer"
    if low == 0:
        return "a non-negative integer"
    return "an integer" if low is None else f"an integer >= {low}"


def integer(value: Any, what: str, low: Optional[int] = None, high: Optional[int] = None, *,
            expected: Optional[str] = None, error: type = ConfigError) -> int:
    """``int(value)``, checked to be an integer (see ``is_integer``) in ``[low, high]``.

    The message is ``"<what> must be <expected>, got <value!r>"``; ``expected`` defaults
    to a phrase built from the bounds ("a positive integer" for ``low=1``, "a
    non-negative integer" for ``low=0``, "an integer from 17 to 21" ...). Without
    ``high`` the value must still fit in an i64 (at most 2**63 - 1; at least -2**63
    without ``low``), so that a huge Python int is an ``error`` naming ``what``.
    """
    phrase = expected or _integer_phrase(low, high)
    if not is_integer(value):
        raise error(f"{what} must be {phrase}, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise error(f"{what} must be {phrase}, got {value!r}")
    if high is None and v > INT64_MAX:
        raise error(f"{what} must be {phrase}, at most 2**63 - 1, got {value!r}")
    if low is None and v < INT64_MIN:
        raise error(f"{what} must be {phrase}, at least -2**63, got {value!r}")
    return v


def positive_int(value: Any, what: str, *, expected: Optional[str] = None) -> int:
    """An integer >= 1 (a count, a width, a size); message "<what> must be a positive integer"."""
    return integer(value, what, 1, expected=expected)


def non_negative_int(value: Any, what: str, *, expected: Optional[str] = None) -> int:
    """An integer >= 0 (epochs, patience, a step); message "<what> must be a non-negative integer"."""
    return integer(value, what, 0, expected=expected)


def finite_float(value: Any, what: str, low: Optional[float] = None, high: Optional[float] = None,
                 low_open: bool = False, high_open: bool = False, *, expected: Optional[str] = None) -> float:
    """``float(value)``, checked to be a finite number within ``[low, high]`` (open where asked).

    Anything ``float()`` accepts counts as a number except bools and strings
    (``"0.1"`` is a mistake, not a rate). Messages: ``"<what> must be a number"``,
    ``"... must be a finite number"``, ``"... must be > 0"`` (the bound missed), or, if
    ``expected`` is given, ``"<what> must be <expected>, got <value!r>"`` for every failure.
    """
    def fail(phrase: str, shown: Any) -> ConfigError:
        return ConfigError(f"{what} must be {expected or phrase}, got {shown!r}")

    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise fail("a number", value)
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
        raise fail("a number", value) from None
    if not math.isfinite(v):
        raise fail("a finite number", value)
    if low is not None and (v < low or (low_open and v == low)):
        raise fail(f"{'>' if low_open else '>='} {low}", v)
    if high is not None and (v > high or (high_open and v == high)):
        raise fail(f"{'<' if high_open else '<='} {high}", v)
    return v


def boolean(value: Any, what: str) -> bool:
    """A flag: ``True`` / ``False`` (or a NumPy bool), never a truthy number or string."""
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{what} must be True or False, got {value!r}")
    return bool(value)
