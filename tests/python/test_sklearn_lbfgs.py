"""ferronn.sklearn's conventions taken from scikit-learn: ``solver="lbfgs"``, the dtype of
``coefs_`` / ``intercepts_``, weights set by hand, float32 overflow, and a diverging fit
with early stopping."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn import neural_network as sknn  # noqa: E402
from sklearn.datasets import load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import ferronn as fn  # noqa: E402
from ferronn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

_iris_X, _iris_y = load_iris(return_X_y=True)
X_IRIS = StandardScaler().fit_transform(_iris_X)
Y_IRIS = _iris_y
X_REG, _y = make_regression(n_samples=80, n_features=5, noise=5.0, random_state=0)
Y_REG = _y / 100.0
TARGETS = {
    "multiclass": (MLPClassifier, sknn.MLPClassifier, X_IRIS, Y_IRIS),
    "binary": (MLPClassifier, sknn.MLPClassifier, X_IRIS, Y_IRIS == 1),
    "regression": (MLPRegressor, sknn.MLPRegressor, X_REG, Y_REG),
}


def _quiet_fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


# ----------------------------------------------------------------- lbfgs

@pytest.mark.parametrize("target", sorted(TARGETS))
def test_lbfgs_reaches_sklearns_loss(target):
    """Same initial weights, same objective, same L-BFGS-B options: a well-conditioned small
    problem ends at scikit-learn's minimum (measured: within 5e-4 relative, 3 seeds each)."""
    ours, theirs, X, y = TARGETS[target]
    for seed in range(3):
        kw = dict(solver="lbfgs", hidden_layer_sizes=(6,), activation="tanh", alpha=0.1, max_iter=1000, tol=1e-6,
                  random_state=seed)
        a, b = _quiet_fit(ours(**kw), X, y), _quiet_fit(theirs(**kw), X, y)
        assert a.loss_ == pytest.approx(b.loss_, rel=2e-3), (seed, a.loss_, b.loss_)
        assert 0 < a.n_iter_ <= 1000
        assert a.score(X, y) == pytest.approx(b.score(X, y), abs=0.02)


def _sklearn_objective(est, X, y, sample_weight=None):
    """scikit-learn's full-batch objective at ``est``'s weights, in float64, from its
    documented definition: the output activation's loss averaged over the samples (with
    their weights) plus ``alpha / (2 Σw) · Σ‖W‖²``; for squared error, half the squared
    error averaged over the samples and then over the outputs."""
    h = np.asarray(X, dtype=np.float64)
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        h = h @ W + b
        if i < len(est.coefs_) - 1:
            h = np.tanh(h)
    w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if est.out_activation_ == "exp":  # half Poisson deviance, Σ over outputs
        t = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
        per = np.exp(h) - t * h + np.where(t > 0, t * np.log(np.where(t > 0, t, 1.0)), 0.0) - t
        data = np.average(per.sum(axis=1), weights=w)
    elif est.out_activation_ == "identity":
        t = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
        data = 0.5 * np.mean(np.average((h - t) ** 2, axis=0, weights=w))
    elif est.out_activation_ == "softmax":
        logp = h - h.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        onehot = est.classes_[None, :] == np.asarray(y)[:, None]
        data = -np.average((onehot * logp).sum(axis=1), weights=w)
    else:
        t = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
        per = np.logaddexp(0.0, h) - t * h  # -[t log σ(h) + (1-t) log(1-σ(h))]
        data = np.average(per.sum(axis=1), weights=w)
    sq = sum(float(np.sum(np.square(W))) for W in est.coefs_)
    return data + 0.5 * est.alpha * sq / w.sum()


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target", ["multiclass", "binary", "multilabel", "regression", "regression-2", "poisson",
                                    "poisson-2"])
def test_lbfgs_loss_is_sklearns_objective_at_the_fitted_weights(target, weighted):
    rng = np.random.RandomState(0)
    X = X_IRIS
    y = {"multiclass": Y_IRIS, "binary": Y_IRIS == 1,
         "multilabel": np.c_[Y_IRIS == 0, X[:, 0] > 0, X[:, 1] > 0].astype(int),
         "regression": X @ rng.normal(size=4), "regression-2": X[:, :2] * 2.0 + 1.0,
         "poisson": rng.poisson(np.exp(X[:, 0])), "poisson-2": rng.poisson(np.exp(X[:, :2] / 2))}[target]
    est_type = MLPClassifier if target in ("multiclass", "binary", "multilabel") else MLPRegressor
    loss = dict(loss="poisson") if target.startswith("poisson") else {}
    sw = rng.uniform(0.2, 3.0, size=len(X)) if weighted else None
    est = _quiet_fit(est_type(solver="lbfgs", hidden_layer_sizes=(5,), activation="tanh", alpha=0.3, max_iter=40,
                              random_state=1, **loss), X, y, sample_weight=sw)
    assert est.loss_ == pytest.approx(_sklearn_objective(est, X, y, sw), rel=1e-5)


def test_lbfgs_options_attributes_and_warnings():
    kw = dict(solver="lbfgs", hidden_layer_sizes=(6,), random_state=0)
    with pytest.warns(ConvergenceWarning, match="(?s)lbfgs failed to converge.*max_iter=3"):
        est = MLPClassifier(max_iter=3, **kw).fit(X_IRIS, Y_IRIS)
    assert est.n_iter_ == 3
    # as scikit-learn: no stopping-rule attributes and no partial_fit for lbfgs
    for name in ("loss_curve_", "best_loss_", "validation_scores_", "partial_fit"):
        assert not hasattr(est, name), name
    assert hasattr(MLPClassifier(solver="adam"), "partial_fit")
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        capped = MLPClassifier(max_fun=5, max_iter=200, **kw).fit(X_IRIS, Y_IRIS)
    assert capped.n_iter_ <= 5
    # warm_start continues from the weights reached: the loss goes on falling
    warm = MLPClassifier(max_iter=10, warm_start=True, **kw)
    first = _quiet_fit(warm, X_IRIS, Y_IRIS).loss_
    assert _quiet_fit(warm, X_IRIS, Y_IRIS).loss_ < first
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        done = MLPRegressor(max_iter=2000, tol=1e-3, **kw).fit(X_REG, Y_REG)
    assert done.n_iter_ < 2000 and done.score(X_REG, Y_REG) > 0.95


def test_lbfgs_integer_weights_equal_repeated_samples():
    rng = np.random.RandomState(3)
    sw = rng.randint(0, 4, size=len(X_IRIS))
    kw = dict(solver="lbfgs", hidden_layer_sizes=(5,), activation="tanh", alpha=0.1, max_iter=15, random_state=0)
    a = _quiet_fit(MLPClassifier(**kw), X_IRIS, Y_IRIS, sample_weight=sw)
    b = _quiet_fit(MLPClassifier(**kw), np.repeat(X_IRIS, sw, axis=0), np.repeat(Y_IRIS, sw))
    assert a.loss_ == pytest.approx(b.loss_, rel=1e-4)
    np.testing.assert_allclose(a.predict_proba(X_IRIS), b.predict_proba(X_IRIS), atol=1e-3)


@pytest.mark.parametrize("settings", [dict(solver="sgd", learning_rate_init=0.01), dict(solver="adam", epsilon=1e-14)],
                         ids=["sgd", "adam"])
@pytest.mark.parametrize("outputs", [1, 2])
def test_poisson_follows_sklearn_step_for_step(outputs, settings):
    """loss="poisson": an exp output and the half Poisson deviance, as scikit-learn (the core's
    poisson_nll on log-rates, with scikit-learn's constant added to the reported loss)."""
    rng = np.random.RandomState(0)
    y = rng.poisson(np.exp(X_IRIS[:, :outputs] / 2))
    y = y.ravel() if outputs == 1 else y
    kw = dict(loss="poisson", hidden_layer_sizes=(6,), activation="tanh", shuffle=False, max_iter=10, batch_size=30,
              alpha=0.01, random_state=2, **settings)
    a, b = _quiet_fit(MLPRegressor(**kw), X_IRIS, y), _quiet_fit(sknn.MLPRegressor(**kw), X_IRIS, y)
    assert a.out_activation_ == b.out_activation_ == "exp"
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=2e-5)
    for ca, cb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(ca, cb, atol=2e-5 * max(1.0, np.abs(cb).max()))
    np.testing.assert_allclose(a.predict(X_IRIS), b.predict(X_IRIS), rtol=1e-4)
    with pytest.raises(ValueError, match="non-negative targets"):
        MLPRegressor(loss="poisson").fit(X_IRIS, -y)


# ----------------------------------------------------------------- coefs_ / intercepts_

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_coefs_and_predictions_take_the_input_dtype(dtype):
    X = X_REG.astype(dtype)
    est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0), X, Y_REG)
    assert all(a.dtype == dtype for a in est.coefs_ + est.intercepts_)
    assert est.predict(X).dtype == dtype
    net = est._net()
    # the float64 arrays hold the float32 values the core trains
    for a, (name, b) in zip(est.coefs_, [(n, a) for n, a in net.params() if n.endswith("weight")]):
        np.testing.assert_array_equal(a, b.astype(dtype))


def _forward64(coefs, intercepts, X):
    h = np.asarray(X, dtype=np.float64)
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        h = h @ W + b
        if i < len(coefs) - 1:
            h = np.tanh(h)
    return h.ravel()


def test_weights_set_by_hand_on_an_unfitted_estimator_predict_and_train():
    rng = np.random.RandomState(0)
    reg = MLPRegressor(hidden_layer_sizes=(3,), activation="tanh", solver="sgd", momentum=0.0, alpha=0.0,
                       learning_rate_init=0.05, batch_size=len(X_REG), shuffle=False)
    reg.coefs_ = [rng.normal(size=(5, 3)), rng.normal(size=(3, 1))]
    reg.intercepts_ = [rng.normal(size=3), rng.normal(size=1)]
    reg.n_outputs_ = 1
    np.testing.assert_allclose(reg.predict(X_REG), _forward64(reg.coefs_, reg.intercepts_, X_REG), rtol=1e-5,
                               atol=1e-5)
    reg.coefs_[1] *= 2.0  # changed in place: the model follows, as in scikit-learn
    np.testing.assert_allclose(reg.predict(X_REG), _forward64(reg.coefs_, reg.intercepts_, X_REG), rtol=1e-5,
                               atol=1e-5)
    # partial_fit continues from them: one full-batch SGD step of half the squared error
    start = [c.copy() for c in reg.coefs_], [b.copy() for b in reg.intercepts_]
    before = 0.5 * np.mean((_forward64(*start, X_REG) - Y_REG) ** 2)
    reg.partial_fit(X_REG, Y_REG)
    assert reg.loss_ == pytest.approx(before, rel=1e-5)
    assert 0.5 * np.mean((reg.predict(X_REG) - Y_REG) ** 2) < before
    assert reg.coefs_[0].dtype == np.float64


def test_changing_a_fitted_coef_in_place_changes_predictions():
    est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(4,), activation="tanh", max_iter=5, random_state=0),
                     X_REG, Y_REG)
    est.coefs_[0][0, 0] += 1.0
    np.testing.assert_allclose(est.predict(X_REG), _forward64(est.coefs_, est.intercepts_, X_REG), rtol=1e-5,
                               atol=1e-5)
    before = est.predict(X_REG)
    good = est.intercepts_[1]
    est.intercepts_[1] = np.zeros(2)
    with pytest.raises(ValueError, match=r"intercepts_\[1\] has shape \(2,\); this network needs \(1,\)"):
        est.predict(X_REG)
    est.intercepts_[1] = good
    np.testing.assert_array_equal(est.predict(X_REG), before)


# ----------------------------------------------------------------- float32 overflow, divergence

def test_float64_input_beyond_float32_range_says_so():
    big = X_REG * 1e300
    with pytest.raises(ValueError, match="too large for float32") as info:
        MLPRegressor(max_iter=2).fit(big, Y_REG)
    assert isinstance(info.value, fn.NonFiniteError)
    est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, random_state=0), X_REG, Y_REG)
    before = [c.copy() for c in est.coefs_]
    with pytest.raises(ValueError, match="too large for float32"):
        est.predict(big)
    for a, b in zip(est.coefs_, before):
        np.testing.assert_array_equal(a, b)
    bad = X_REG.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN|infinity"):
        MLPRegressor(max_iter=2).fit(bad, Y_REG)


def test_diverging_sgd_with_early_stopping_keeps_the_best_weights():
    est = MLPRegressor(hidden_layer_sizes=(20,), activation="identity", solver="sgd", learning_rate_init=0.5,
                       early_stopping=True, max_iter=30, random_state=0)
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        est.fit(X_REG * 10, Y_REG * 100)
    assert np.isnan(est.validation_scores_[-1]) and isinstance(est.validation_scores_[-1], float)
    assert np.isnan(est.loss_curve_[-1]) and len(est.loss_curve_) == est.n_iter_ == len(est.validation_scores_)
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict(X_REG)).all()
    if len(est.validation_scores_) > 1:
        assert est.best_validation_score_ == np.nanmax(est.validation_scores_)


def test_optimizer_learning_rate_follows_sklearns_schedule():
    est = _quiet_fit(MLPClassifier(solver="sgd", hidden_layer_sizes=(4,), learning_rate="invscaling", power_t=0.25,
                                   max_iter=2, random_state=0), X_IRIS, Y_IRIS)
    assert est._optimizer.learning_rate == est.learning_rate_init / (2 * len(X_IRIS) + 1) ** 0.25
    assert not hasattr(MLPClassifier(solver="lbfgs").fit(X_IRIS[:20], Y_IRIS[:20] == 0), "_optimizer")


def test_pickles_without_the_stored_lists_read_them_from_the_network():
    import pickle
    est = _quiet_fit(MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0), X_REG, Y_REG)
    state = est.__getstate__()
    for name in ("_coefs", "_intercepts", "_coef_dtype"):
        state.pop(name)
    old = MLPRegressor.__new__(MLPRegressor)
    old.__setstate__(state)
    for a, b in zip(old.coefs_ + old.intercepts_, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(old.predict(X_REG), est.predict(X_REG))
    again = pickle.loads(pickle.dumps(est))
    assert again.coefs_[0].dtype == np.float64
    np.testing.assert_array_equal(again.predict(X_REG), est.predict(X_REG))
