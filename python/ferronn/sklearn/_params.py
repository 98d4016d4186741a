"""The estimators' weights as scikit-learn exposes them, and the data as the core takes it.

``coefs_`` / ``intercepts_`` are plain lists of arrays in the dtype of the data the
estimator was first fitted on (float64 for float64 input, as scikit-learn), stored
on the estimator as scikit-learn stores them: they may be set, even on an unfitted
estimator, replaced item by item, or changed in place. The core network trains in
float32 and is the copy that computes: after every epoch (and at the end of a
fit) the lists are refreshed from it, and before it is used again (``predict``,
``partial_fit``, a warm start) whatever the lists hold is written back into it.
The float64 arrays therefore hold float32 values: the precision of training.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

try:
    import scipy.sparse as _sparse
    from scipy.special import xlogy
except ImportError as _e:  # pragma: no cover - _base says clearly that scikit-learn/scipy are missing
    raise ImportError("ferronn.sklearn needs scikit-learn (and scipy): pip install 'ferronn[sklearn]'") from _e

from ..errors import NonFiniteError

_F32_MAX = float(np.finfo(np.float32).max)

#: scikit-learn's words when its float64 training ends with non-finite weights (its
#: ``test_nonfinite_params`` matches them); quoted by the overflow message below.
SKLEARN_NONFINITE = ("Solver produced non-finite parameter weights. The input data may contain large values "
                     "and need to be preprocessed.")


def to_float32(X: Any, fitting: bool) -> np.ndarray:
    """A C-contiguous float32 copy (or view) of validated, finite ``X`` (sparse inputs are
    densified). Float64 values beyond float32's range would become infinite: that is a
    ValueError (``NonFiniteError``) saying so, not the core's "contains NaN or infinity"."""
    if _sparse.issparse(X):
        X = X.toarray()
    with np.errstate(over="ignore"):  # overflow is reported below, in words
        x32 = np.ascontiguousarray(X, dtype=np.float32)
    if X.dtype != np.float32 and not np.isfinite(x32).all():
        largest = float(np.max(np.abs(np.asarray(X, dtype=np.float64))))
        msg = (f"X holds finite values too large for float32 (largest |x| = {largest:.4g}; float32 ends at "
               f"{_F32_MAX:.4g}), the precision ferronn computes in: scale the data first.")
        if fitting:
            msg += f" (scikit-learn, which trains in float64, ends such a fit with: {SKLEARN_NONFINITE})"
        raise NonFiniteError(msg)
    return x32


def loss_offset(kind: str, y: np.ndarray, sample_weight: Optional[np.ndarray]) -> float:
    """What scikit-learn's reported loss adds to the objective ferronn minimises: its Poisson
    loss is the half deviance, ``Σ_k [y log y - y]`` per sample (a constant) more than
    ``exp(z) - y z``; nothing for the other losses."""
    if kind != "exp":
        return 0.0
    return float(np.average((xlogy(y, y) - y).sum(axis=1), weights=sample_weight))


def dense_names(est: Any, what: str) -> list[str]:
    """The core's names of every Dense layer's ``what`` ("weight" or "bias")."""
    return [f"layers.{i}.{what}" for i in est.__dict__["_dense_layers"]]


def pull(est: Any) -> None:
    """Refreshes ``coefs_`` / ``intercepts_`` from the core network (after training)."""
    net = est._net()
    dtype = est.__dict__.get("_coef_dtype", np.float64)
    for attr, what in (("_coefs", "weight"), ("_intercepts", "bias")):
        est.__dict__[attr] = [net.get_param(name).astype(dtype) for name in dense_names(est, what)]


def push(est: Any) -> None:
    """Writes ``coefs_`` / ``intercepts_`` into the core network where they differ from it
    (all or nothing; a wrong count or shape is a ValueError naming it)."""
    model = est.__dict__.get("_model")
    if model is None or "_coefs" not in est.__dict__:
        return
    net = model._require_built("predict")
    changed = []
    for attr, what in (("_coefs", "weight"), ("_intercepts", "bias")):
        names, values = dense_names(est, what), est.__dict__.get(attr)
        if values is None or len(values) != len(names):
            raise ValueError(f"{attr[1:]}_ must hold {len(names)} arrays (one per layer), got "
                             f"{'none' if values is None else len(values)}")
        for j, (name, value) in enumerate(zip(names, values)):
            a, current = np.ascontiguousarray(value, dtype=np.float32), net.get_param(name)
            if a.shape != current.shape:
                raise ValueError(f"{attr[1:]}_[{j}] has shape {a.shape}; this network needs {current.shape}")
            if not np.array_equal(a, current):
                changed.append((name, a))
    if changed:
        model._assign_tensors(changed)


def hand_set_arrays(est: Any) -> Optional[list[tuple[np.ndarray, np.ndarray]]]:
    """``coefs_`` / ``intercepts_`` set by hand on an estimator without a network, as
    ``(coef, intercept)`` per layer; None when unset."""
    coefs, intercepts = est.__dict__.get("_coefs"), est.__dict__.get("_intercepts")
    if coefs is None:
        return None
    if intercepts is None or len(intercepts) != len(coefs):
        raise ValueError("coefs_ and intercepts_ must both be set, with one array per layer each")
    return [(np.asarray(c, dtype=np.float64), np.asarray(b, dtype=np.float64).reshape(-1))
            for c, b in zip(coefs, intercepts)]


def attribute(attr: str, doc: str) -> Any:
    """``coefs_`` / ``intercepts_``: a list stored on the estimator as given (so item
    assignment and in-place changes reach the model), absent until fitted or set. On a
    fitted estimator, a list of the wrong length is refused at once."""

    def get(self: Any) -> list:
        try:
            return self.__dict__[attr]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr[1:] + '_'!r}") from None

    def set_(self: Any, value: Any) -> None:
        if self.__dict__.get("_model") is not None:
            n = len(self.__dict__["_dense_layers"])
            if len(value) != n:
                raise ValueError(f"expected {n} arrays, got {len(value)}")
        self.__dict__[attr] = value

    return property(get, set_, doc=doc)
