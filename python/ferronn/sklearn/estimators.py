"""MLPClassifier and MLPRegressor: scikit-learn's parameters on top of `_BaseMLP`
(the package imports `_base` first, which says clearly when scikit-learn is missing)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from ._base import _BaseMLP, _store_params, _validate_data


__all__ = ["MLPClassifier", "MLPRegressor"]

def _stochastic_solver(est: _BaseMLP) -> bool:
    """``partial_fit`` exists only for the mini-batch solvers (as in scikit-learn, ``hasattr``
    is False with ``solver="lbfgs"``)."""
    if est.solver == "lbfgs":
        raise AttributeError("partial_fit is only available for stochastic optimizers; "
                             f"{est.solver!r} is not stochastic.")
    return True


_COMMON_DOC = """
    The parameters are scikit-learn's, with the same names, defaults and meanings,
    followed by four of ferronn's own.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        Widths of the hidden layers.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Activation of the hidden layers.
    solver : {"lbfgs", "sgd", "adam", "adamw"}, default="adam"
        "lbfgs": scipy's L-BFGS-B on the full batch, as scikit-learn (no ``partial_fit``);
        "adamw" (ferronn's) uses ``weight_decay``.
    alpha : float, default=1e-4
        L2 strength, mapped onto ``fn.regularizers.l2`` on every kernel (module docs).
    batch_size : int or "auto", default="auto"
        "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the SGD solver's rate (SGD only).
    learning_rate_init : float, default=1e-3
        Initial learning rate.
    power_t : float, default=0.5
        Exponent of the "invscaling" schedule.
    max_iter : int, default=200
        Most epochs.
    shuffle : bool, default=True
        Whether to shuffle the samples every epoch.
    random_state : int, RandomState or None, default=None
        Seed of the initial weights, the shuffling and the validation split.
    tol : float, default=1e-4
        Least improvement that counts, for the stopping rule.
    verbose : bool, default=False
        Print the loss of each epoch.
    warm_start : bool, default=False
        A new ``fit`` continues from the current weights.
    momentum : float, default=0.9
        SGD momentum.
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for SGD.
    early_stopping : bool, default=False
        Stop on the validation score of a held-out fraction.
    validation_fraction : float, default=0.1
        The fraction held out for ``early_stopping``.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    max_fun : int, default=15000
        Most loss evaluations of L-BFGS ("lbfgs" only).
    dropout : float, default=0.0
        ferronn's: dropout rate after each hidden layer.
    batch_norm : bool, default=False
        ferronn's: BatchNorm between each hidden layer's product and its activation.
    weight_decay : float, default=0.0
        ferronn's: AdamW's decoupled weight decay (``solver="adamw"`` only).
    n_threads : int or None, default=None
        ferronn's: threads for fitting and predicting (None: ferronn's current thread count).

    Notes
    -----
    Training computes in float32 (ferronn's core); ``coefs_``, ``intercepts_`` and the
    predictions take the dtype of the training data (float64 for float64 input, as
    scikit-learn), holding float32 values. Fitted attributes: ``n_features_in_``,
    ``feature_names_in_`` (string column names), ``loss_``, ``loss_curve_``,
    ``best_loss_``, ``validation_scores_``, ``best_validation_score_`` (these four not
    with "lbfgs", as in scikit-learn), ``n_iter_``, ``t_``, ``coefs_``, ``intercepts_``,
    ``n_layers_``, ``n_outputs_``, ``out_activation_``.
    See the ``ferronn.sklearn`` module docs for the mapping and the known differences.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: ``sklearn.neural_network.MLPClassifier`` trained by ferronn.

    Multiclass targets train a softmax output with cross-entropy; binary targets one
    logistic unit; a 2-D 0/1 indicator ``y`` (multi-label) one logistic unit per label
    with binary cross-entropy, and ``predict`` then returns the indicator matrix.
    Labels may be of any type scikit-learn accepts (ints, strings, ...): they are
    mapped through ``classes_`` by a ``LabelBinarizer``, as in scikit-learn.
    Adds ``classes_`` to the attributes below.
    """

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
                 alpha: float = 0.0001, batch_size: Any = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200,
                 shuffle: bool = True, random_state: Any = None, tol: float = 1e-4, verbose: Any = False,
                 warm_start: bool = False, momentum: float = 0.9, nesterovs_momentum: bool = True,
                 early_stopping: bool = False, validation_fraction: float = 0.1, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: Any = 10, max_fun: int = 15000,
                 dropout: float = 0.0, batch_norm: bool = False, weight_decay: float = 0.0,
                 n_threads: Optional[int] = None) -> None:
        _store_params(self, locals())

    def _loss_kind(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                              dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    @available_if(_stochastic_solver)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> "MLPClassifier":
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state.

        ``classes`` (every label that will ever appear) is required on the first
        call, as in scikit-learn; the argument order is scikit-learn's (>= 1.7).
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        self._fit(X, y, sample_weight=sample_weight, incremental=True)
        return self

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        y_pred = self._forward(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (from ``classes_``), or the 0/1 indicator matrix for multi-label targets."""
        check_is_fitted(self)
        return self._predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, ``(n_samples, n_classes)``, columns in ``classes_`` order (for
        multi-label targets: each label's probability)."""
        check_is_fitted(self)
        y_pred = self._forward(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``."""
        y_prob = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(y_prob, out=y_prob)

    _score_function = staticmethod(accuracy_score)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: ``sklearn.neural_network.MLPRegressor`` trained by ferronn.

    Squared error with an identity output, or with ``loss="poisson"`` (targets >= 0) an
    exponential output and the half Poisson deviance, as scikit-learn; a 2-D ``y``
    trains one output per column (multi-output regression). ``loss`` is
    scikit-learn's first positional parameter.
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss: str = "squared_error", hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: Any = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: Any = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: Any = 10,
                 max_fun: int = 15000, dropout: float = 0.0, batch_norm: bool = False, weight_decay: float = 0.0,
                 n_threads: Optional[int] = None) -> None:
        _store_params(self, locals())

    def _loss_kind(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                              dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' needs non-negative targets (counts or rates); y has negative values")
        return X, y

    @available_if(_stochastic_solver)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> "MLPRegressor":
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state."""
        self._fit(X, y, sample_weight=sample_weight, incremental=True)
        return self

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        y_pred = self._forward(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values, ``(n_samples,)`` or ``(n_samples, n_outputs)``."""
        check_is_fitted(self)
        return self._predict(X)

    _score_function = staticmethod(r2_score)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


MLPClassifier.__doc__ = (MLPClassifier.__doc__ or "") + _COMMON_DOC
MLPRegressor.__doc__ = (MLPRegressor.__doc__ or "") + _COMMON_DOC
