"""Small helpers for preparing data, with Keras' names.

>>> fn.utils.to_categorical([0, 2, 1], num_classes=3)
array([[1., 0., 0.],
       [0., 0., 1.],
       [0., 1., 0.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _validate
from .errors import DTypeError, LabelError

__all__ = ["to_categorical"]


def to_categorical(x: Any, num_classes: Optional[int] = None, dtype: Any = "float32") -> np.ndarray:
    """One-hot rows from integer class labels, as Keras' ``to_categorical``: labels of
    shape ``s`` give shape ``s + (num_classes,)`` (a trailing axis of size 1 is dropped
    first); ``num_classes`` defaults to ``max(x) + 1``. Labels must be whole numbers in
    ``0 .. num_classes-1`` (``LabelError`` naming the first one that is not)."""
    arr = _validate.numeric_array(x, "x")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise DTypeError("to_categorical takes integer class labels; x has values that are not whole numbers")
    labels = arr.astype(np.int64)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    num_classes = _validate.non_negative_int(num_classes, "num_classes")
    flat = labels.ravel()
    bad = np.flatnonzero((flat < 0) | (flat >= num_classes))
    if bad.size:
        raise LabelError(f"to_categorical: label {int(flat[bad[0]])} at flat index {int(bad[0])} is not in "
                         f"0..{num_classes - 1} (num_classes={num_classes})")
    out = np.zeros((flat.size, num_classes), dtype=dtype)
    out[np.arange(flat.size), flat] = 1
    return out.reshape(*labels.shape, num_classes)
