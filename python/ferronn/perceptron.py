"""Rosenblatt's perceptron (1958): the first learning rule for a linear classifier.

>>> clf = fn.Perceptron().fit([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 0, 0, 1])   # AND
>>> clf.predict([[1, 1]])
array([1])

The model is one linear threshold unit with a step activation:
``ŷ = 1 if w·x + b > 0 else 0``. Training visits the samples one at a time and,
only when a sample is misclassified, moves the weights towards it::

    w ← w + lr·(y − ŷ)·x
    b ← b + lr·(y − ŷ)

(``y − ŷ`` is +1 for a missed positive and −1 for a false positive.) An epoch
without a mistake ends training. The perceptron convergence theorem (Novikoff
1962) says that when some unit vector ``w*`` separates the classes with margin
``γ`` (``y·(w*·x̃) ≥ γ`` for every augmented sample ``x̃ = (x, 1)`` with labels
±1) and ``R = max ‖x̃‖``, training from zero weights makes at most ``(R/γ)²``
updates, whatever ``lr``. When the data are not linearly separable (XOR is the
classic example) training never ends on its own: ``fit`` stops after
``max_epochs`` and warns with :class:`ConvergenceWarning`.

Labels are 0/1, or −1/+1 (predictions then come back as −1/+1).

The textbook convention, ``ŷ = 1 if w·x + b ≥ 0 else −1`` (a tie counts as the
positive class), is ``threshold_inclusive=True`` with ±1 labels; with ``lr=0.1``
it learns AND in 4 epochs to ``w = (0.2, 0.1)``, ``b = −0.2``, where the strict
default needs 6:

>>> X, y = [[0, 0], [0, 1], [1, 0], [1, 1]], [-1, -1, -1, 1]
>>> clf = fn.Perceptron(lr=0.1, threshold_inclusive=True).fit(X, y)
>>> clf.n_epochs_, clf.coef_.round(6).tolist(), round(clf.intercept_, 6)
(4, [0.2, 0.1], -0.2)
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

from . import _validate
from .errors import EmptyInputError, LabelError, NonFiniteError, NotFittedError, ShapeError

__all__ = ["Perceptron", "ConvergenceWarning"]


class ConvergenceWarning(UserWarning):
    """Training stopped at its epoch limit without reaching zero training mistakes."""


def _features(X: Any, name: str = "X") -> np.ndarray:
    """A 2-D float64 array of samples × features, checked."""
    arr = _validate.numeric_array(X, name)
    if arr.ndim != 2:
        raise ShapeError(f"{name} must be 2-D (samples, features), got {arr.ndim}-D with shape {arr.shape}"
                         + ("; use x.reshape(1, -1) for a single sample" if arr.ndim == 1 else ""))
    if arr.shape[0] == 0:
        raise EmptyInputError(f"{name} has no samples (shape {arr.shape}); expected at least one row")
    if arr.shape[1] == 0:
        raise ShapeError(f"{name} has no features (shape {arr.shape}); expected at least one column")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name} contains NaN or infinity")
    return arr


def _labels(y: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, y01)``: the label set ([0, 1] or [-1, 1]) and the labels as 0/1."""
    arr = _validate.numeric_array(y, "y", "numeric labels 0/1 (or -1/+1)")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ShapeError(f"y must be 1-D (one label per sample), got shape {arr.shape}")
    if len(arr) == 0:
        raise EmptyInputError("y has no labels; expected at least one")
    if len(arr) != n:
        raise ShapeError(f"X has {n} samples but y has {len(arr)}; expected the same number")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise NonFiniteError("y contains NaN or infinity")
    values = set(np.unique(arr).tolist())
    if values <= {0, 1}:
        return np.array([0, 1], dtype=np.int64), arr.astype(np.int64)
    if values <= {-1, 1}:
        return np.array([-1, 1], dtype=np.int64), (arr > 0).astype(np.int64)
    raise LabelError(f"the perceptron is a two-class classifier: labels must be 0/1 or -1/+1, got the values "
                     f"{sorted(values)[:10]}")


class Perceptron:
    """Rosenblatt's perceptron: a linear threshold unit trained sample by sample.

    ``lr``: step size (> 0). From zero weights it only scales ``w`` and ``b``, so
    the sequence of mistakes does not depend on it. ``max_epochs``: passes over
    the data before giving up. ``shuffle``: visit the samples in a new random
    order each epoch (from ``random_state``); otherwise in the given order.
    ``threshold_inclusive``: a sample exactly on the boundary (``w·x + b = 0``)
    counts as positive (the textbook's ``≥ 0``), in training and in ``predict``;
    by default it counts as negative (``> 0``).

    After ``fit``: ``coef_`` (w, shape [features]), ``intercept_`` (b),
    ``classes_``, ``converged_`` (an epoch ended without a mistake),
    ``n_epochs_`` (epochs run, the last mistake-free one included),
    ``mistakes_`` (mistakes in each epoch) and ``n_updates_`` (their sum: each
    mistake is one update).
    """

    def __init__(self, lr: float = 1.0, max_epochs: int = 100, shuffle: bool = False,
                 random_state: Optional[int] = None, threshold_inclusive: bool = False) -> None:
        self.lr = _validate.finite_float(lr, "lr", low=0.0, low_open=True)
        self.max_epochs = _validate.positive_int(max_epochs, "max_epochs")
        self.shuffle = bool(shuffle)
        self.random_state = random_state
        self.threshold_inclusive = _validate.boolean(threshold_inclusive, "threshold_inclusive")

    # -- training ------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> "Perceptron":
        """Runs the perceptron rule until an epoch has no mistake or ``max_epochs`` pass."""
        X = _features(X)
        classes, target = _labels(y, len(X))
        rng = np.random.default_rng(self.random_state)
        w = np.zeros(X.shape[1])
        b = 0.0
        mistakes: list[int] = []
        converged = False
        for _ in range(self.max_epochs):
            order = rng.permutation(len(X)) if self.shuffle else range(len(X))
            errors = 0
            for i in order:
                predicted = int(self._positive(X[i] @ w + b))
                delta = target[i] - predicted          # +1, -1, or 0 when right
                if delta != 0:
                    w = w + self.lr * delta * X[i]
                    b = b + self.lr * delta
                    errors += 1
            mistakes.append(errors)
            if errors == 0:
                converged = True
                break
        self.coef_, self.intercept_, self.classes_ = w, float(b), classes
        self.n_features_in_ = X.shape[1]
        self.mistakes_ = mistakes
        self.n_epochs_ = len(mistakes)
        self.n_updates_ = int(sum(mistakes))
        self.converged_ = converged
        if not converged:
            warnings.warn(f"the perceptron did not converge in {self.max_epochs} epochs ({mistakes[-1]} mistakes in "
                          "the last one): the data are probably not linearly separable (or need more epochs)",
                          ConvergenceWarning, stacklevel=2)
        return self

    # -- inference -----------------------------------------------------------

    def _check_X(self, X: Any) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this Perceptron is not fitted yet: call fit(X, y) first")
        X = _features(X)
        if X.shape[1] != self.n_features_in_:
            raise ShapeError(f"X has {X.shape[1]} features but the perceptron was fitted on {self.n_features_in_}")
        return X

    def _positive(self, score: Any) -> Any:
        """Whether ``score`` (``w·x + b``) predicts the positive class."""
        return score >= 0 if self.threshold_inclusive else score > 0

    def decision_function(self, X: Any) -> np.ndarray:
        """``w·x + b`` for each sample (positive: class 1)."""
        X = self._check_X(X)
        return X @ self.coef_ + self.intercept_

    def predict(self, X: Any) -> np.ndarray:
        """The class of each sample, in the label set ``fit`` saw (0/1 or −1/+1)."""
        positive = self._positive(self.decision_function(X))  # first: NotFittedError before fit
        return self.classes_[positive.astype(np.int64)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy: the fraction of samples whose predicted label equals ``y``."""
        X = self._check_X(X)
        _, target = _labels(y, len(X))
        return float(np.mean(self.classes_[target] == self.predict(X)))

    def __repr__(self) -> str:
        return (f"Perceptron(lr={self.lr!r}, max_epochs={self.max_epochs!r}, shuffle={self.shuffle!r}, "
                f"random_state={self.random_state!r}, threshold_inclusive={self.threshold_inclusive!r})")
