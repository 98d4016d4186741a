"""scikit-learn estimators trained by ferronn: ``MLPClassifier`` and ``MLPRegressor``.

>>> from ferronn.sklearn import MLPClassifier
>>> clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=200, random_state=0).fit(X, y)
>>> clf.predict(X[:5]), clf.predict_proba(X[:5]), clf.score(X, y)

Drop-in replacements for ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``:
the same constructor parameters (names, defaults, meanings), fitted attributes,
methods, convergence rule and warnings, so they work in ``Pipeline``,
``GridSearchCV``, ``cross_val_score``, ``clone`` and ``pickle`` and pass
scikit-learn's estimator checks and scikit-learn's own MLP test file (run by
tests/python/test_sklearn_mlp_suite.py; two tests excluded, with the reasons). The
forward/backward passes and the optimizer updates run in ferronn's Rust core
(float32, one core call per epoch; for L-BFGS one per evaluation).
scikit-learn is an optional dependency (``pip install "ferronn[sklearn]"``); this
module is the only part of ferronn that imports it.

How scikit-learn's training maps onto ferronn
---------------------------------------------
* **Network**: ``Dense(h, activation)`` per hidden layer (identity, logistic →
  sigmoid, tanh, relu), then a linear ``Dense(n_outputs)``. Output/loss:
  multiclass → softmax + cross-entropy (``out_activation_ = "softmax"``); binary
  (one logistic unit) and multi-label (one per label) → sigmoid + binary
  cross-entropy (``"logistic"``); regression → identity + squared error, or with
  ``loss="poisson"`` an exponential output (``out_activation_ = "exp"``) and the
  core's ``poisson_nll`` on log-rates (scikit-learn's half Poisson deviance up to a
  constant of the targets, which the reported loss adds).
* **Initialisation**: scikit-learn's own: Glorot-uniform weights *and* biases,
  bound ``sqrt(6 / (fan_in + fan_out))`` (``sqrt(2 / ...)`` for logistic), drawn
  from ``check_random_state(random_state)`` in scikit-learn's order, so a given
  ``random_state`` starts from exactly the weights scikit-learn starts from.
* **alpha** (L2): scikit-learn minimises, per batch of size ``b``,
  ``mean_loss + alpha / (2 b) · Σ‖W‖²`` (kernels only, no intercepts). This is
  ``fn.regularizers.l2(c · alpha / (2 · batch_size))`` on every kernel, where ``c``
  is the ratio of ferronn's loss to scikit-learn's (1 for softmax / single-logistic;
  ``1 / k`` for ``k`` labels, since ferronn averages binary cross-entropy over the
  labels where scikit-learn sums; ``2 / k`` for ``k`` regression outputs, since
  ferronn's mse is the mean squared error where scikit-learn's gradient is that
  of half the squared error summed over outputs). To keep every update equal to
  scikit-learn's, SGD's learning rate is divided by ``c`` and Adam's ``epsilon``
  multiplied by ``c`` (ferronn's gradients are ``c`` times scikit-learn's);
  ``loss_curve_`` is reported on scikit-learn's scale. Checked in
  tests/python/test_sklearn.py: with ``shuffle=False`` the weights after 15 epochs
  equal scikit-learn's to float32 precision for every target type and solver. The
  batch size used is the one of the call that built the network; a later
  ``partial_fit`` with a different batch size is rescaled through sample weights.
* **Solvers**: ``"sgd"`` → ``fn.optim.SGD`` (momentum, Nesterov when
  ``nesterovs_momentum`` and ``momentum > 0``), ``"adam"`` → ``fn.optim.Adam``
  (``beta_1``, ``beta_2``, ``epsilon``), plus ``"adamw"`` → ``fn.optim.AdamW`` with
  ``weight_decay`` (decoupled; not in scikit-learn). ``"lbfgs"``: as scikit-learn,
  scipy's L-BFGS-B over the flat parameter vector minimising the full-batch objective
  (``maxiter=max_iter``, ``maxfun=max_fun``, ``gtol=tol``); each evaluation is one core
  call (``_core.Network.loss_and_grads``) returning the loss and its gradient, divided
  by ``c``. ``n_iter_`` and ``loss_`` as scikit-learn, no ``loss_curve_``, a
  ``ConvergenceWarning`` when L-BFGS-B stops without converging, and no
  ``partial_fit`` (``hasattr`` is False). Not with ``dropout`` or ``batch_norm``
  (ConfigError): L-BFGS needs one deterministic objective.
* **learning_rate** (SGD only, as scikit-learn): ``"invscaling"`` sets the rate
  after each epoch to ``learning_rate_init / (t_ + 1) ** power_t`` (``t_`` =
  samples seen), ``"adaptive"`` divides it by 5 each time the no-improvement
  counter exceeds ``n_iter_no_change`` and stops below 1e-6: scikit-learn's rule,
  reimplemented here, not ``fn.callbacks.ReduceLROnPlateau``.
* **Stopping**: scikit-learn's: an epoch counts as no improvement when its loss
  is not below ``best_loss_ - tol`` (or, with ``early_stopping``, its validation
  score not above ``best_validation_score_ + tol``); training stops once that has
  happened more than ``n_iter_no_change`` times in a row. Reaching ``max_iter``
  first emits ``sklearn.exceptions.ConvergenceWarning``. ``early_stopping`` holds
  out ``validation_fraction`` with scikit-learn's ``train_test_split`` (stratified
  for single-output classification) and restores the best epoch's weights.
* **Extras** (not in scikit-learn): ``dropout`` (a ``Dropout`` after each hidden
  activation), ``batch_norm`` (``Dense → BatchNorm → activation`` in each hidden
  layer), ``weight_decay`` (``solver="adamw"`` only) and ``n_threads`` (ferronn's
  thread count during fit/predict; None leaves the process setting alone).

Known differences from scikit-learn
-----------------------------------
* Arithmetic is float32 (scikit-learn uses the input's dtype, usually float64):
  results agree with scikit-learn's to about 1e-5 relative or better, not bit for bit.
  ``coefs_`` / ``intercepts_`` (and predictions) take the dtype of the data, as
  scikit-learn's: float64 arrays for float64 input, holding the float32 values the
  core trains. They are plain lists, as in scikit-learn: set them (also on an
  unfitted estimator, which ``fit``/``partial_fit`` then continue from), replace an
  item or change an array in place, and the next prediction or fit uses them.
  Float64 input beyond float32's range (``|x| > 3.4e38``) is a ``NonFiniteError``
  saying so. L-BFGS runs on float64 parameters but evaluates in float32, so its path
  can part from scikit-learn's on ill-conditioned problems; on a well-conditioned
  one it ends at scikit-learn's minimum (tests/python/test_sklearn_lbfgs.py). For
  several regression outputs scikit-learn's reported objective and its gradient
  disagree by the factor ``k`` (see ``_lbfgs``): ferronn hands scipy the same pair.
* Shuffling uses ferronn's generator, seeded from ``random_state``: the same
  ``random_state`` gives the same initial weights and validation split as
  scikit-learn but a different batch order (``shuffle=False`` makes the whole
  run follow scikit-learn's to float32 precision).
* Adam: PyTorch's placement of ``epsilon``: in scikit-learn's formula ferronn's
  ε acts as ``ε·sqrt(1 - β₂ᵗ)`` (31x smaller at step 1, the same after a few
  thousand steps). Weights whose gradients are within a few orders of magnitude
  of ε (e.g. the L2-only gradients of dead ReLU units) move slightly differently;
  with ``epsilon=1e-14`` both follow the same path.
* SGD momentum follows PyTorch's buffer (gradient units); with a changing rate
  (``invscaling``, ``adaptive``) the velocity is rescaled by the new rate at once,
  where scikit-learn's velocity keeps the old rate. Identical for a constant rate.
* The last, shorter batch of an epoch gets the L2 term of a full batch (scaled by
  ``len(batch) / batch_size``): scikit-learn divides ``alpha`` by that batch's size.
* ``sample_weight``: ferronn divides a batch's weighted loss by the batch size,
  scikit-learn by the batch's weight sum; SGD's rate and Adam's ``epsilon`` are
  rescaled by the mean weight of the data to compensate, so each update equals
  scikit-learn's times (mean weight of the batch / mean weight of the data): the
  same direction, and identical when the weights are uniform or the batch is the
  whole data set. (Adam's ``epsilon`` is set when ``fit`` or the first ``partial_fit``
  builds the network, from that call's mean weight.)
* Multi-output regression: scikit-learn's reported loss averages the data term
  over the outputs while its gradient sums them; ``loss_curve_`` follows the
  report, with the L2 part estimated from the weights at the start and end of each
  epoch (exact for one output; off by < 1e-6 relative at the default ``alpha``).
* Sparse inputs are accepted and densified.
* A step whose loss or gradients are not finite is refused by the core and fit
  raises ``ferronn.NonFiniteError`` (a ValueError), as scikit-learn raises a
  ValueError for non-finite weights; the weights stay those before that step. With
  ``early_stopping`` it ends as scikit-learn's does instead (the best validation
  epoch's weights kept, a NaN validation score and loss recorded for the epoch,
  finite predictions), with a ``ConvergenceWarning``; scikit-learn trains on with
  non-finite weights until its stopping rule ends the fit, ferronn stops at once
  (so ``n_iter_`` is smaller).
* ``_optimizer.learning_rate`` reports the current rate as scikit-learn's private
  attribute does (SGD's schedule; Adam's bias-corrected step size) for code that
  reads it; there is no other part of scikit-learn's ``_optimizer``.
* With ``batch_norm`` or ``dropout``, ``coefs_`` / ``intercepts_`` hold the Dense
  layers' tensors but do not describe the whole network.
"""

from . import _base  # noqa: F401  (first: says clearly when scikit-learn is missing)
from .estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
