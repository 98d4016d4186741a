"""Evaluation metrics: plain functions on numpy arrays, as scikit-learn's.

>>> from ferronn import metrics
>>> metrics.accuracy([0, 1, 2, 2], [0, 2, 2, 2])
0.75
>>> metrics.f1_score(y, model.predict(X), average="macro")

Classification metrics take class labels (non-negative integers; integral floats
and booleans are accepted too); ``top_k_accuracy`` takes a score per class
(logits, probabilities: anything that ranks the classes). Regression metrics take
values of shape ``(n,)`` or ``(n, outputs)`` and average over outputs uniformly,
as scikit-learn's default ``multioutput="uniform_average"``.

Inputs are checked: arrays of different lengths raise ``ShapeError``, empty ones
``EmptyInputError``, NaN/inf ``NonFiniteError``, non-numeric ones ``DTypeError``,
negative or out-of-range labels ``LabelError``. Where scikit-learn would divide by
zero (a class never predicted, for its precision) the result is 0, as
scikit-learn's default ``zero_division`` (without its warning).

The same functions are usable in ``Sequential.compile(metrics=[...])`` under the
names in ``NAMES``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import numpy as np

from . import _validate
from .errors import ConfigError, DTypeError, EmptyInputError, LabelError, NonFiniteError, ShapeError, UnknownNameError

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "precision",
    "recall",
    "f1_score",
    "f1",
    "confusion_matrix",
    "mean_absolute_error",
    "mae",
    "mean_squared_error",
    "mse",
    "r2_score",
    "r2",
    "get",
    "NAMES",
]

_AVERAGES = ("macro", "micro", "weighted", "binary", None)


# ------------------------------------------------------------------ input checks

def _numeric(a: Any, name: str) -> np.ndarray:
    arr = _validate.numeric_array(a, name, "a real numeric array")
    if arr.ndim == 0:
        raise ShapeError(f"{name} is a scalar; expected an array with one entry per sample")
    if arr.shape[0] == 0:
        raise EmptyInputError(f"{name} has no samples (shape {arr.shape}); expected at least one")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise NonFiniteError(f"{name} contains NaN or infinity; metrics need finite values")
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if len(a) != len(b):
        raise ShapeError(f"{names[0]} has {len(a)} samples but {names[1]} has {len(b)}; expected the same number")


def _labels(a: Any, name: str) -> np.ndarray:
    arr = _numeric(a, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be 1-D class labels, got shape {arr.shape}"
                         + ("; for scores use y.argmax(axis=1)" if arr.ndim == 2 else ""))
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.round(arr)):
            raise DTypeError(f"{name} holds non-integral floats; class labels must be integers")
    out = arr.astype(np.int64)
    if (out < 0).any():
        i = int(np.argmax(out < 0))
        raise LabelError(f"{name} has the negative label {out[i]} at index {i}; labels must be >= 0")
    return out


def _label_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    _same_length(t, p, ("y_true", "y_pred"))
    return t, p


def _value_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _numeric(y_true, "y_true"), _numeric(y_pred, "y_pred")
    _same_length(t, p, ("y_true", "y_pred"))
    t2, p2 = (a.reshape(len(a), -1) if a.ndim <= 2 else a for a in (t, p))
    if t2.ndim != 2 or p2.ndim != 2 or t2.shape != p2.shape:
        raise ShapeError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}; expected (n,) or (n, outputs), "
                         "the same for both")
    return t2.astype(np.float64), p2.astype(np.float64)


# ------------------------------------------------------------------ classification

def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of samples whose predicted label equals the true one."""
    t, p = _label_pair(y_true, y_pred)
    return float(np.mean(t == p))


def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    ``scores`` has shape ``(n, classes)``. A class tied with the k-th highest
    score counts as in the top k (ties are resolved in the sample's favour).
    """
    k = _validate.positive_int(k, "k")
    t = _labels(y_true, "y_true")
    s = _numeric(scores, "scores")
    if s.ndim != 2:
        raise ShapeError(f"scores must be 2-D (samples, classes), got shape {s.shape}")
    _same_length(t, s, ("y_true", "scores"))
    if (t >= s.shape[1]).any():
        i = int(np.argmax(t >= s.shape[1]))
        raise LabelError(f"y_true has the label {t[i]} at index {i}, out of range for {s.shape[1]} score columns "
                         f"(0..{s.shape[1] - 1})")
    true_score = s[np.arange(len(t)), t]
    better = (s > true_score[:, None]).sum(axis=1)
    return float(np.mean(better < k))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: Optional[int] = None) -> np.ndarray:
    """``C[i, j]``: the number of samples of class ``i`` predicted as class ``j`` (int64).

    ``num_classes`` defaults to the largest label seen plus one.
    """
    t, p = _label_pair(y_true, y_pred)
    seen = int(max(t.max(), p.max())) + 1
    if num_classes is None:
        num_classes = seen
    else:
        num_classes = _validate.positive_int(num_classes, "num_classes")
    if seen > num_classes:
        raise LabelError(f"label {seen - 1} is out of range for num_classes={num_classes} (0..{num_classes - 1})")
    k = int(num_classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def _check_average(average: Any) -> None:
    if average not in _AVERAGES:
        raise ConfigError(f"average must be one of 'macro', 'micro', 'weighted', 'binary' or None, got {average!r}")


def _prf(y_true: Any, y_pred: Any, average: Optional[str], pos_label: int, which: str) -> Union[float, np.ndarray]:
    _check_average(average)
    t, p = _label_pair(y_true, y_pred)
    if average == "binary":
        present = np.union1d(t, p)
        if len(present) > 2 or (len(present) == 2 and pos_label not in present):
            raise ConfigError(f"average='binary' needs two classes, one of them pos_label={pos_label}, got labels "
                              f"{present.tolist()}; use average='macro' (or 'micro', 'weighted') for more classes")
    # The classes are those seen in y_true or y_pred (scikit-learn's default labels).
    classes, inverse = np.unique(np.concatenate([t, p]), return_inverse=True)
    ti, pi = inverse[: len(t)], inverse[len(t):]
    k = len(classes)
    cm = np.bincount(ti * k + pi, minlength=k * k).reshape(k, k).astype(np.float64)
    tp = np.diag(cm)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)

    def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)

    if average == "micro":
        tp_s, pred_s, sup_s = tp.sum(), predicted.sum(), support.sum()
        prec, rec = tp_s / pred_s if pred_s else 0.0, tp_s / sup_s if sup_s else 0.0
        if which == "precision":
            return float(prec)
        if which == "recall":
            return float(rec)
        return float(2 * prec * rec / (prec + rec)) if prec + rec > 0 else 0.0
    if which == "precision":
        per = div(tp, predicted)
    elif which == "recall":
        per = div(tp, support)
    else:  # F1 = 2·tp / (2·tp + fp + fn), 0 where a class is neither present nor predicted
        per = div(2 * tp, predicted + support)
    if average is None:
        return per
    if average == "binary":
        idx = np.flatnonzero(classes == pos_label)
        return float(per[idx[0]]) if len(idx) else 0.0
    if average == "weighted":
        return float(np.sum(per * support) / support.sum())
    return float(np.mean(per))


def precision(y_true: Any, y_pred: Any, average: Optional[str] = "macro", pos_label: int = 1
              ) -> Union[float, np.ndarray]:
    """Of the samples predicted as a class, the fraction that belong to it.

    ``average``: "macro" (unweighted mean over classes), "weighted" (mean weighted by
    each class' number of true samples), "micro" (from the total counts; equals the
    accuracy for single-label data), "binary" (the class ``pos_label`` only), or None
    (an array with one value per class, in sorted label order). The classes are the
    labels present in ``y_true`` or ``y_pred``, as scikit-learn's default.
    """
    return _prf(y_true, y_pred, average, pos_label, "precision")


def recall(y_true: Any, y_pred: Any, average: Optional[str] = "macro", pos_label: int = 1
           ) -> Union[float, np.ndarray]:
    """Of the samples of a class, the fraction predicted as it. ``average`` as in ``precision``."""
    return _prf(y_true, y_pred, average, pos_label, "recall")


def f1_score(y_true: Any, y_pred: Any, average: Optional[str] = "macro", pos_label: int = 1
             ) -> Union[float, np.ndarray]:
    """Harmonic mean of precision and recall, per class, then averaged as ``average`` says
    (as scikit-learn: the macro F1 is the mean of the per-class F1 scores)."""
    return _prf(y_true, y_pred, average, pos_label, "f1")


f1 = f1_score


# ------------------------------------------------------------------ regression

def mean_absolute_error(y_true: Any, y_pred: Any) -> float:
    """Mean of ``|y_true - y_pred|`` over samples (and outputs)."""
    t, p = _value_pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def mean_squared_error(y_true: Any, y_pred: Any) -> float:
    """Mean of ``(y_true - y_pred)²`` over samples (and outputs)."""
    t, p = _value_pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``, averaged over outputs.

    An output whose true values are all equal scores 1.0 if predicted exactly and
    0.0 otherwise (scikit-learn's ``force_finite=True``).
    """
    t, p = _value_pair(y_true, y_pred)
    ss_res = np.sum((t - p) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    safe = ss_tot > 0
    per = np.where(safe, 1.0 - ss_res / np.where(safe, ss_tot, 1.0), np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(per))


mae = mean_absolute_error
mse = mean_squared_error
r2 = r2_score


# ------------------------------------------------------------------ names for compile()

# name -> (log key, function, what it takes: "labels", "scores" or "values")
_BY_NAME: dict[str, tuple[str, Callable[..., Any], str]] = {
    "top_k_accuracy": ("top_k_accuracy", top_k_accuracy, "scores"),
    "precision": ("precision", precision, "labels"),
    "recall": ("recall", recall, "labels"),
    "f1": ("f1", f1_score, "labels"),
    "f1_score": ("f1", f1_score, "labels"),
    "mae": ("mae", mean_absolute_error, "values"),
    "mean_absolute_error": ("mae", mean_absolute_error, "values"),
    "mse": ("mse", mean_squared_error, "values"),
    "mean_squared_error": ("mse", mean_squared_error, "values"),
    "r2": ("r2", r2_score, "values"),
    "r2_score": ("r2", r2_score, "values"),
}

#: Names ``compile(metrics=[...])`` accepts ("accuracy"/"acc" is counted by the core while training).
NAMES = ("accuracy", "acc", *_BY_NAME)


def get(name: str) -> tuple[str, Callable[..., Any], str]:
    """``(log key, function, input kind)`` for a metric name (see ``NAMES``)."""
    key = str(name).lower()
    if key not in _BY_NAME:
        raise UnknownNameError(f"unknown metric {name!r}; expected one of: {', '.join(NAMES)}, or a callable "
                               "f(y_true, y_pred)")
    return _BY_NAME[key]
