"""The mini-batch solvers ("sgd", "adam", "adamw") of ferronn.sklearn's estimators:
epochs through ferronn's epoch driver, with scikit-learn's bookkeeping after each one
(reported loss, stopping rule, learning-rate schedule, early stopping). A mixin of
``_base._BaseMLP``, whose attributes and network it uses."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from .._warnings import warn_user
from ..epochs import EpochDriver
from ..errors import NonFiniteError
from . import _params


class _StochasticSolver:
    """``_fit_stochastic`` and the per-epoch rules it applies (see the module docs)."""

    # Provided by _BaseMLP.
    _build: Any
    _net: Any
    _loss_kind: Any
    _loss_scale: Any
    _score: Any
    _targets: Any
    _random_state: Any
    _label_binarizer: Any
    _batch_ref: Any
    _lr: float
    _epoch: int
    _no_improvement_count: int
    _loss_offset: float
    _n_samples_fit: int
    n_outputs_: int
    n_iter_: int
    t_: int
    loss_: float
    loss_curve_: list
    best_loss_: Any
    validation_scores_: Any
    best_validation_score_: Any
    batch_size: Any
    shuffle: bool
    solver: str
    learning_rate: str
    learning_rate_init: float
    power_t: float
    max_iter: int
    tol: float
    verbose: Any
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: Any
    alpha: float

    def _fit_stochastic(self, X: Any, y: np.ndarray, sample_weight: Optional[np.ndarray], hidden: list[int],
                        init: Optional[list[tuple[str, np.ndarray]]], incremental: bool) -> None:
        rs = self._random_state
        early_stopping = self.early_stopping
        X_val = y_val = sw_val = None
        if early_stopping:
            # The split scikit-learn makes, from the same random state (stratified for single-output
            # classification only, as scikit-learn).
            stratify = y if (isinstance(self, ClassifierMixin) and self.n_outputs_ == 1) else None
            arrays = [X, y] if sample_weight is None else [X, y, sample_weight]
            parts = train_test_split(*arrays, random_state=rs, test_size=self.validation_fraction,
                                     stratify=stratify)
            X, X_val, y, y_val = parts[:4]
            if sample_weight is not None:
                sample_weight, sw_val = parts[4], parts[5]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size "
                                 "of your dataset.")
            if isinstance(self, ClassifierMixin):
                y_val = self._label_binarizer.inverse_transform(y_val)
        n_samples = self._n_samples_fit = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch_size = int(np.clip(self.batch_size, 1, n_samples))
        seed = int(rs.randint(0, np.iinfo(np.int32).max))
        mean_w = 1.0
        if sample_weight is not None:
            mean_w = float(np.mean(sample_weight))
            if not mean_w > 0:
                raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")

        if init is not None or self.__dict__.get("_batch_ref") is None:
            # A new fit, weights set by hand, or a network built only to predict from them.
            tensors = init if init is not None else [(n, a) for n, a, _ in self._net().tensors()]
            self._build(X.shape[1], hidden, self.n_outputs_, batch_size, seed, tensors, mean_w)
        elif not incremental:
            # warm_start: scikit-learn keeps the weights and starts a new optimizer.
            old = self._net()
            self._build(X.shape[1], hidden, self.n_outputs_, batch_size, seed,
                        [(n, a) for n, a, _ in old.tensors()], mean_w)
        net = self._net()

        x32 = _params.to_float32(X, fitting=True)
        targets = self._targets(y)
        self._loss_offset = _params.loss_offset(self._loss_kind(), y, sample_weight)
        # ferronn's batch objective is `scale` times scikit-learn's (see the module docs).
        ratio = batch_size / self._batch_ref
        c = self._loss_scale(self.n_outputs_)
        scale = c * mean_w * ratio
        weights = None
        if sample_weight is not None:
            weights = np.ascontiguousarray(sample_weight * ratio, dtype=np.float32)
        elif ratio != 1.0:
            weights = np.full(n_samples, ratio, dtype=np.float32)

        sgd = self.solver == "sgd"
        track_l2 = self._loss_kind() == "identity" and self.n_outputs_ > 1 and self.alpha > 0
        sq = self._sum_sq_coefs() if track_l2 else 0.0
        # Training mode is passed per core call, so a model(x) from another thread keeps its own mode.
        driver = EpochDriver(net, x32, targets, batch_size=batch_size, shuffle=bool(self.shuffle), seed=seed,
                             sample_weight=weights, training=True)
        try:
            with driver:
                self.n_iter_ = 0
                for _ in range(self.max_iter):
                    net.lr_scale = (self._lr / float(self.learning_rate_init)) / scale if sgd else 1.0
                    result = driver.run_epoch(self._epoch)
                    if result.interrupted:
                        warnings.warn("Training interrupted by user.")
                        break
                    self._epoch += 1
                    if result.diverged_at is not None and early_stopping:
                        self._diverged(result.diverged_at)
                        break
                    if result.diverged_at is not None:
                        raise NonFiniteError(
                            f"the loss or its gradients became non-finite (NaN or inf) in epoch {self.n_iter_ + 1}, "
                            f"batch {result.diverged_at}; that step was refused and training stopped (the weights "
                            "are those before it). The input data may contain large values and need to be "
                            "preprocessed, or the learning rate may be too high.")
                    self.n_iter_ += 1
                    sq_start, sq = sq, (self._sum_sq_coefs() if track_l2 else 0.0)
                    self.loss_ = self._sklearn_loss(result.stats.mean_loss / scale, batch_size * mean_w, sq_start, sq)
                    self.t_ += n_samples
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                    if self._end_iteration(early_stopping, X_val, y_val, sw_val, sgd) or incremental:
                        break
        finally:
            net.lr_scale = 1.0
        if early_stopping:
            best = self.__dict__.pop("_best_tensors", None)
            if best is not None:
                for name, a in best:
                    net.set_param(name, a)

    def _diverged(self, batch: int) -> None:
        """A refused (non-finite) step with early stopping: scikit-learn trains on with
        non-finite weights, records NaN validation scores and finally restores the best
        epoch's weights. The core refuses that step, so training stops here instead: the
        epoch is recorded with a NaN loss and validation score, and the best weights are
        restored as usual (by the caller)."""
        self.n_iter_ += 1
        self.t_ += self._n_samples_fit
        self.loss_ = float("nan")
        self.loss_curve_.append(self.loss_)
        self.validation_scores_.append(float("nan"))  # type: ignore[union-attr]
        if self.verbose:
            print("Iteration %d, loss = nan" % self.n_iter_)
        warn_user(f"The loss or its gradients became non-finite (NaN or inf) in epoch {self.n_iter_}, batch {batch}: "
                  "training stopped there and the weights of the best validation score are kept. The learning "
                  "rate may be too high, or the data need to be scaled.", ConvergenceWarning)

    def _end_iteration(self, early_stopping: bool, X_val: Any, y_val: Any, sw_val: Any, sgd: bool) -> bool:
        """scikit-learn's bookkeeping after an epoch; True when training stops."""
        self._update_no_improvement_count(early_stopping, X_val, y_val, sw_val)
        if sgd and self.learning_rate == "invscaling":
            self._lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count > self.n_iter_no_change:
            what = "Validation score" if early_stopping else "Training loss"
            msg = ("%s did not improve more than tol=%f for %d consecutive epochs."
                   % (what, self.tol, self.n_iter_no_change))
            if self._trigger_stopping(msg):
                return True
            self._no_improvement_count = 0
        if self.n_iter_ == self.max_iter:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                          "hasn't converged yet." % self.max_iter, ConvergenceWarning)
        return False

    def _trigger_stopping(self, msg: str) -> bool:
        """scikit-learn's optimizer rule: stop, or (SGD, adaptive) divide the rate by 5."""
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if self._lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._lr /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % self._lr)
        return False

    def _sum_sq_coefs(self) -> float:
        """``Σ‖W‖²`` over the kernels (what scikit-learn's L2 term penalises)."""
        net = self._net()
        return sum(float(np.square(net.get_param(name), dtype=np.float64).sum())
                   for name in _params.dense_names(self, "weight"))

    def _sklearn_loss(self, loss: float, weight_per_batch: float, sq_start: float, sq_end: float) -> float:
        """scikit-learn's reported loss from the objective it follows: for k regression outputs
        scikit-learn reports the data term averaged over the outputs (its gradient sums them).
        The L2 term, which changes batch by batch, is estimated from the weights at the start
        and at the end of the epoch."""
        k = self.n_outputs_
        if self._loss_kind() != "identity" or k == 1:
            return float(loss) + self._loss_offset
        penalty = 0.5 * float(self.alpha) * 0.5 * (sq_start + sq_end) / weight_per_batch
        return float((loss - penalty) / k + penalty)

    def _update_no_improvement_count(self, early_stopping: bool, X_val: Any, y_val: Any, sw_val: Any) -> None:
        if early_stopping:
            score = self._score(X_val, y_val, sample_weight=sw_val)
            self.validation_scores_.append(score)  # type: ignore[union-attr]
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])  # type: ignore[index]
            if score < self.best_validation_score_ + self.tol:  # type: ignore[operator]
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:  # type: ignore[operator]
                self.best_validation_score_ = score
                self._best_tensors = [(n, np.array(a, copy=True)) for n, a, _ in self._net().tensors()]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:  # type: ignore[operator]
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:  # type: ignore[operator]
                self.best_loss_ = self.loss_curve_[-1]
