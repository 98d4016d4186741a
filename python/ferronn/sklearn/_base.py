"""The shared machinery of ferronn.sklearn's estimators: input checks, the
mapping onto a ferronn model, the start of a fit (new, warm, or from weights set
by hand), prediction and pickling. The solvers: ``_stochastic`` (sgd, adam,
adamw, with scikit-learn's stopping rule) and ``_lbfgs``; the fitted weights as
scikit-learn exposes them: ``_params``."""

from __future__ import annotations

import contextlib
from numbers import Integral, Real
from typing import Any, Iterator, Optional

import numpy as np

try:
    import scipy.sparse  # noqa: F401  (needed by the package: fail here, with the message below)
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import NotFittedError
    from sklearn.utils import check_random_state
    from sklearn.utils._param_validation import Interval, Options, StrOptions
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted
except ImportError as _e:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("ferronn.sklearn needs scikit-learn (and scipy): pip install 'ferronn[sklearn]'") from _e

try:
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # scikit-learn < 1.6
    def _validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        return estimator._validate_data(*args, **kwargs)

from .. import _core, _validate, layers as _layers, optim as _optim, regularizers as _regularizers
from ..errors import ConfigError, NonFiniteError
from ..model import Sequential
from ..threads import get_num_threads, set_num_threads
from . import _params
from ._lbfgs import fit_lbfgs
from ._stochastic import _StochasticSolver


_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_ACTIVATION_LAYERS = {"identity": _layers.Identity, "logistic": _layers.Sigmoid, "tanh": _layers.Tanh,
                      "relu": _layers.ReLU}

#: Checks of ``sklearn.utils.estimator_checks`` these estimators are known to fail, with the reason
#: (pass to ``parametrize_with_checks(..., expected_failed_checks=...)``; see ``_more_tags`` for older
#: scikit-learn).
_EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "float32 arithmetic: fitting with integer sample weights and fitting on repeated samples sum "
        "in different orders, so their predictions agree to about 1e-5, not to the check's rtol=1e-7 "
        "(tests/python/test_sklearn.py checks the equivalence at float32 precision)",
    "check_sample_weight_equivalence_on_sparse_data":
        "float32 arithmetic: as check_sample_weight_equivalence_on_dense_data",
}


def _store_params(estimator: Any, params: dict[str, Any]) -> None:
    """Stores every ``__init__`` argument unchanged under its own name, as scikit-learn
    requires (``__init__`` passes its ``locals()``)."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


@contextlib.contextmanager
def _threads(n: Optional[int]) -> Iterator[None]:
    """ferronn's thread count set to ``n`` for the duration (None: unchanged)."""
    if n is None:
        yield
        return
    before = get_num_threads()
    set_num_threads(int(n))
    try:
        yield
    finally:
        set_num_threads(before)


#: The core's loss for each output activation (scikit-learn's canonical link pairs).
_CORE_LOSSES = {"softmax": "cross_entropy", "logistic": "binary_cross_entropy", "identity": "mse",
                "exp": "poisson_nll"}


class _RateView:
    """The one attribute of scikit-learn's ``_optimizer`` that code reads: ``learning_rate``."""

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = learning_rate


def _init_arrays(rs: np.random.RandomState, layer_units: list[int], activation: str,
                 dtype: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's initial (coef, intercept) per layer, drawn in scikit-learn's order."""
    factor = 2.0 if activation == "logistic" else 6.0
    out = []
    for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        coef = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype, copy=False)
        intercept = rs.uniform(-bound, bound, fan_out).astype(dtype, copy=False)
        out.append((coef, intercept))
    return out


class _BaseMLP(_StochasticSolver, BaseEstimator):
    """The shared machinery: building the ferronn network, the epoch loop with
    scikit-learn's stopping rules, prediction, pickling. Not for direct use."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam", "adamw"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "n_threads": [None, Interval(Integral, 1, None, closed="left")],
    }

    # Set by the subclasses' __init__ (scikit-learn's convention: parameters only).
    hidden_layer_sizes: Any
    activation: str
    solver: str
    alpha: float
    batch_size: Any
    learning_rate: str
    learning_rate_init: float
    power_t: float
    max_iter: int
    shuffle: bool
    random_state: Any
    tol: float
    verbose: Any
    warm_start: bool
    momentum: float
    nesterovs_momentum: bool
    early_stopping: bool
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float
    n_iter_no_change: Any
    max_fun: int
    dropout: float
    batch_norm: bool
    weight_decay: float
    n_threads: Optional[int]
    # Fitted state (set by fit).
    n_outputs_: int
    _model: Optional[Sequential]

    # ------------------------------------------------------------------ subclass hooks

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        raise NotImplementedError

    def _loss_kind(self) -> str:
        """"softmax", "logistic", "identity" or "exp" (the output activation)."""
        raise NotImplementedError

    #: The metric ``score`` reports (accuracy for classifiers, R² for regressors).
    _score_function: Any = None

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return self._score_with_function(X, y, sample_weight, type(self)._score_function)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ checks

    def _check_supported(self) -> None:
        if self.solver == "lbfgs" and (self.dropout > 0 or self.batch_norm):
            raise ConfigError("solver='lbfgs' minimises one deterministic full-batch objective: it cannot be "
                              "combined with dropout or batch_norm; use solver='adam', 'sgd' or 'adamw' for those")

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if not all(_validate.is_integer(s) for s in sizes):
            raise ValueError(f"hidden_layer_sizes must hold positive integers, got {self.hidden_layer_sizes!r}")
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    # ------------------------------------------------------------------ the network

    def _loss_scale(self, n_outputs: int) -> float:
        """``c``: ferronn's per-sample loss divided by the one whose gradient scikit-learn follows."""
        kind = self._loss_kind()
        if kind == "softmax":
            return 1.0
        if kind in ("logistic", "exp"):  # ferronn averages over the outputs, scikit-learn sums
            return 1.0 / n_outputs
        return 2.0 / n_outputs

    def _build(self, n_features: int, hidden: list[int], n_outputs: int, batch_size: int, seed: int,
               tensors: list[tuple[str, np.ndarray]], mean_weight: float,
               l2_samples: Optional[float] = None) -> None:
        """A fresh ferronn model (new optimizer state) holding ``tensors``. ``mean_weight``:
        the mean sample weight of this fit (it scales ferronn's gradients; see the module docs).
        ``l2_samples``: what scikit-learn divides ``alpha`` by (default ``batch_size``; lbfgs:
        the sum of the sample weights)."""
        c = self._loss_scale(n_outputs)
        l2 = c * float(self.alpha) / (2.0 * (batch_size if l2_samples is None else l2_samples))
        reg = _regularizers.l2(l2) if l2 > 0 else None
        act = self.activation
        layers: list[_layers.Layer] = []
        dense: list[int] = []
        for h in hidden:
            dense.append(len(layers))
            if self.batch_norm:
                layers += [_layers.Dense(h, kernel_regularizer=reg), _layers.BatchNorm(),
                           _ACTIVATION_LAYERS[act]()]
            else:
                layers.append(_layers.Dense(h, activation=_ACTIVATIONS[act], kernel_regularizer=reg))
            if self.dropout > 0:
                layers.append(_layers.Dropout(float(self.dropout)))
        dense.append(len(layers))
        layers.append(_layers.Dense(n_outputs, kernel_regularizer=reg))
        if self.solver == "sgd":
            opt: _optim.Optimizer = _optim.SGD(float(self.learning_rate_init), momentum=float(self.momentum),
                                               nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        elif self.solver == "adamw":
            opt = _optim.AdamW(float(self.learning_rate_init), betas=(float(self.beta_1), float(self.beta_2)),
                               eps=float(self.epsilon) * c * mean_weight, weight_decay=float(self.weight_decay))
        else:
            opt = _optim.Adam(float(self.learning_rate_init), betas=(float(self.beta_1), float(self.beta_2)),
                              eps=float(self.epsilon) * c * mean_weight)
        loss = _CORE_LOSSES[self._loss_kind()]
        model = Sequential(layers, input_dim=n_features, seed=seed)
        model.compile(optimizer=opt, loss=loss)
        net = model._require_built("fit")
        for name, value in tensors:
            net.set_param(name, np.ascontiguousarray(value, dtype=np.float32))
        net.training = True
        self._model = model
        self._dense_layers = dense
        self._batch_ref = int(batch_size)
        self._lr = float(self.learning_rate_init)  # scikit-learn's optimizer.learning_rate

    def _net(self) -> Any:
        model = self.__dict__.get("_model")
        if model is None:
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")
        return model._require_built("predict")

    coefs_ = _params.attribute(
        "_coefs", "Weight matrices ``[n_in, n_out]`` of each Dense layer, in the dtype of the training data "
        "(float32 values: the core trains in float32); may be set, as in scikit-learn.")
    intercepts_ = _params.attribute(
        "_intercepts", "Bias vectors of each Dense layer, in the dtype of the training data; may be set.")

    @property
    def _optimizer(self) -> Any:
        """What scikit-learn's private ``_optimizer`` tells about the rate: ``learning_rate``
        (SGD: the current rate of the ``learning_rate`` schedule; Adam: scikit-learn's
        bias-corrected step size after the steps taken), for code that reads it."""
        if self.solver == "lbfgs" or "_lr" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute '_optimizer'")
        rate = self._lr
        if self.solver != "sgd":
            t = int(self._net().optimizer_steps)
            if t > 0:
                rate = rate * np.sqrt(1.0 - self.beta_2 ** t) / (1.0 - self.beta_1 ** t)
        return _RateView(float(rate))

    # ------------------------------------------------------------------ fitting

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> "_BaseMLP":
        self._validate_params()
        self._check_supported()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        hidden = self._hidden_sizes()
        # As scikit-learn: weights set by hand (coefs_) on an unfitted estimator are continued from.
        first_pass = "_coefs" not in self.__dict__ or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        if not first_pass and "n_outputs_" in self.__dict__ and y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1]} outputs but this {type(self).__name__} was fitted with "
                             f"{self.n_outputs_}; fit afresh (warm_start=False) to change the outputs")
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden + [self.n_outputs_]
        self._random_state = rs = check_random_state(self.random_state)
        init = None
        if first_pass:
            self._coef_dtype = X.dtype
            init = self._initialize(y, layer_units, rs)
        else:
            self.__dict__.setdefault("_coef_dtype", np.asarray(self._coefs[0]).dtype
                                     if np.asarray(self._coefs[0]).dtype.kind == "f" else np.float64)
            self._continue_defaults()
            if self.__dict__.get("_model") is None:
                init = self._hand_set_tensors(hidden)
            else:
                _params.push(self)
        self._in_fit = True  # the lists are refreshed at the end: until then predicting must not push them
        try:
            with _threads(self.n_threads):
                if self.solver == "lbfgs":
                    self._fit_lbfgs(X, y, sample_weight, hidden, init)
                else:
                    self._fit_stochastic(X, y, sample_weight, hidden, init, incremental)
        finally:
            del self._in_fit
            if self.__dict__.get("_model") is not None:
                _params.pull(self)
        return self

    def _continue_defaults(self) -> None:
        """The state a fit continues from, where weights set by hand came without it."""
        for name, default in (("n_iter_", 0), ("t_", 0), ("_epoch", 0), ("_no_improvement_count", 0),
                              ("loss_curve_", []), ("best_loss_", np.inf), ("validation_scores_", None),
                              ("best_validation_score_", None)):
            self.__dict__.setdefault(name, default)

    def _hand_set_tensors(self, hidden: list[int]) -> list[tuple[str, np.ndarray]]:
        """The network's tensors from ``coefs_`` / ``intercepts_`` set by hand (scikit-learn
        lets a fit or ``partial_fit`` continue from them); the state a fit keeps besides
        them starts afresh where it was not set too."""
        arrays = _params.hand_set_arrays(self)
        assert arrays is not None  # not a first pass: coefs_ is set
        if len(arrays) != len(hidden) + 1:
            raise ValueError(f"coefs_ holds {len(arrays)} layers but hidden_layer_sizes={self.hidden_layer_sizes!r} "
                             f"needs {len(hidden) + 1}")
        self.n_layers_ = len(arrays) + 1
        self.out_activation_ = self._loss_kind()
        return self._named(arrays)

    def _build_from_hand_set(self, n_features: int) -> None:
        """A network for ``coefs_`` / ``intercepts_`` set by hand on an unfitted estimator, to
        predict with (a later fit or ``partial_fit`` builds its own: ``_batch_ref`` is None)."""
        arrays = _params.hand_set_arrays(self)
        assert arrays is not None
        hidden = [int(c.shape[1]) for c, _ in arrays[:-1]]
        self._build(n_features, hidden, int(arrays[-1][0].shape[1]), 1, 0, self._named(arrays), 1.0)
        self._batch_ref = None
        self.__dict__.setdefault("_coef_dtype", arrays[0][0].dtype)

    def _named(self, arrays: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
        """``(coef, intercept)`` per layer as the named tensors of the layout ``_build`` uses."""
        per_hidden = (3 if self.batch_norm else 1) + (1 if self.dropout > 0 else 0)
        out = []
        for j, (coef, intercept) in enumerate(arrays):
            i = j * per_hidden
            out += [(f"layers.{i}.weight", coef), (f"layers.{i}.bias", intercept)]
        return out

    def _initialize(self, y: np.ndarray, layer_units: list[int],
                    rs: np.random.RandomState) -> list[tuple[str, np.ndarray]]:
        """Fitted attributes of a new fit, and the initial tensors (scikit-learn's draws)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._loss_kind()
        self._model = None
        self.__dict__.pop("_coefs", None)
        self.__dict__.pop("_intercepts", None)
        self._epoch = 0
        for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
            self.__dict__.pop(name, None)
        if self.solver != "lbfgs":  # as scikit-learn: the stopping rule's attributes are the stochastic solvers'
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_: Optional[list[float]] = []
                self.best_validation_score_: Optional[float] = -np.inf
                self.best_loss_: Optional[float] = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        return self._named(_init_arrays(rs, layer_units, self.activation, np.float64))

    def _fit_lbfgs(self, X: Any, y: np.ndarray, sample_weight: Optional[np.ndarray], hidden: list[int],
                   init: Optional[list[tuple[str, np.ndarray]]]) -> None:
        """Full-batch L-BFGS-B (``_lbfgs``) from the initial, hand-set or current weights."""
        n_samples = X.shape[0]
        sw_sum = float(n_samples) if sample_weight is None else float(np.sum(sample_weight))
        if not sw_sum > 0:
            raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")
        seed = int(self._random_state.randint(0, np.iinfo(np.int32).max))
        tensors = init if init is not None else [(n, a) for n, a, _ in self._net().tensors()]
        self._build(X.shape[1], hidden, self.n_outputs_, n_samples, seed, tensors, 1.0, l2_samples=sw_sum)
        weights = None
        if sample_weight is not None:
            weights = np.ascontiguousarray(sample_weight * (n_samples / sw_sum), dtype=np.float32)
        self._loss_offset = _params.loss_offset(self._loss_kind(), y, sample_weight)
        fit_lbfgs(self, self._net(), _params.to_float32(X, fitting=True), self._targets(y), weights, sw_sum)
        if not all(np.isfinite(a).all() for _, a in self._net().params()):
            raise NonFiniteError(_params.SKLEARN_NONFINITE)

    def _targets(self, y: np.ndarray) -> np.ndarray:
        if self._loss_kind() == "softmax":
            return np.ascontiguousarray(np.argmax(y, axis=1), dtype=np.int64)
        return np.ascontiguousarray(y, dtype=np.float32)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_BaseMLP":
        """Fits the network to ``X`` (n_samples, n_features) and ``y``; returns ``self``.

        ``sample_weight``: one weight per sample (see the module docs for how it maps).
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    # ------------------------------------------------------------------ prediction

    def _forward(self, X: Any, check_input: bool = True) -> np.ndarray:
        """The output activations (softmax / sigmoid / identity) in X's float dtype."""
        check_is_fitted(self)
        if check_input:
            X = _validate_data(self, X, accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        if "_in_fit" not in self.__dict__:
            if self.__dict__.get("_model") is None and "_coefs" in self.__dict__:
                self._build_from_hand_set(X.shape[1])
            _params.push(self)
        net = self._net()
        with _threads(self.n_threads):
            z = net.predict(_params.to_float32(X, fitting=False)).astype(np.float64)
        kind = self._loss_kind()
        if kind == "softmax":
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
        elif kind == "logistic":
            z = 1.0 / (1.0 + np.exp(-z))
        elif kind == "exp":
            z = np.exp(z)
        return z.astype(dtype, copy=False)

    def _score_with_function(self, X: Any, y: Any, sample_weight: Any, score_function: Any) -> float:
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return float(score_function(y, y_pred, sample_weight=sample_weight))

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        model = state.pop("_model", None)
        state.pop("_best_tensors", None)
        state.pop("_in_fit", None)
        if model is not None:
            net = model._require_built("pickle")
            state["_model_bytes"] = net.to_bytes(model._extra())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        data = state.pop("_model_bytes", None)
        if data is not None:
            model = Sequential._from_net(*_core.Network.from_bytes(data))
            model._require_built("unpickle").training = True
            state["_model"] = model
        super().__setstate__(state)
        if data is not None and "_coefs" not in self.__dict__:
            # Pickled before coefs_ / intercepts_ were stored lists: read them from the network.
            self.__dict__.setdefault("_coef_dtype", np.float32)
            _params.pull(self)

    # ------------------------------------------------------------------ tags

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _more_tags(self) -> dict[str, Any]:
        # scikit-learn < 1.6 reads tags (and expected check failures) here; untested, best effort.
        return {"_xfail_checks": dict(_EXPECTED_FAILED_CHECKS),
                "multilabel": isinstance(self, ClassifierMixin), "multioutput": True}

    @staticmethod
    def _expected_failed_checks() -> dict[str, str]:
        """The estimator checks known to fail and why (for ``parametrize_with_checks``)."""
        return dict(_EXPECTED_FAILED_CHECKS)
