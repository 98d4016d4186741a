"""Rosenblatt's perceptron: learns the linearly separable gates within Novikoff's bound,
reports non-convergence on XOR, and rejects bad inputs with the named errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ferronn as fn
from ferronn.perceptron import ConvergenceWarning

X2 = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)

# Each gate's truth table, and a separating (w*, b*) written by hand.
GATES = {
    "AND": ([0, 0, 0, 1], [1.0, 1.0], -1.5),
    "OR": ([0, 1, 1, 1], [1.0, 1.0], -0.5),
    "NAND": ([1, 1, 1, 0], [-1.0, -1.0], 1.5),
}


def novikoff_bound(X: np.ndarray, y01: np.ndarray, w: list, b: float) -> float:
    """(R/γ)² for the augmented samples x̃ = (x, 1) and the unit vector u = (w, b)/‖(w, b)‖."""
    xt = np.hstack([X, np.ones((len(X), 1))])
    u = np.append(w, b)
    u = u / np.linalg.norm(u)
    signs = 2 * np.asarray(y01) - 1
    margins = signs * (xt @ u)
    assert margins.min() > 0, "w* must separate the data"
    R = np.linalg.norm(xt, axis=1).max()
    return float((R / margins.min()) ** 2)


@pytest.mark.parametrize("gate", sorted(GATES))
@pytest.mark.parametrize("lr", [1.0, 0.1])
def test_learns_gates_within_the_convergence_bound(gate, lr):
    y, w_star, b_star = GATES[gate]
    clf = fn.Perceptron(lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning
        assert clf.fit(X2, y) is clf
    assert clf.converged_
    np.testing.assert_array_equal(clf.predict(X2), y)
    assert clf.score(X2, y) == 1.0
    assert clf.mistakes_[-1] == 0 and len(clf.mistakes_) == clf.n_epochs_
    assert clf.n_updates_ == sum(clf.mistakes_)
    bound = novikoff_bound(X2, np.array(y), w_star, b_star)
    assert 0 < clf.n_updates_ <= bound, (clf.n_updates_, bound)
    # The learned unit separates the data: w·x + b > 0 exactly on the positives.
    np.testing.assert_array_equal(X2 @ clf.coef_ + clf.intercept_ > 0, np.array(y) == 1)
    np.testing.assert_allclose(clf.decision_function(X2), X2 @ clf.coef_ + clf.intercept_)


def test_lr_only_scales_the_weights():
    a = fn.Perceptron(lr=1.0).fit(X2, GATES["AND"][0])
    b = fn.Perceptron(lr=0.25).fit(X2, GATES["AND"][0])
    assert a.mistakes_ == b.mistakes_
    np.testing.assert_allclose(b.coef_, 0.25 * a.coef_)
    assert b.intercept_ == pytest.approx(0.25 * a.intercept_)


def test_hand_computed_first_epoch():
    """AND from zero weights, samples in order: only (1,1) is a mistake in epoch 1."""
    clf = fn.Perceptron(max_epochs=1)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X2, [0, 0, 0, 1])
    # (0,0),(0,1),(1,0): score 0 -> predict 0, right. (1,1): score 0 -> 0, wrong: w = (1,1), b = 1.
    assert clf.mistakes_ == [1]
    np.testing.assert_array_equal(clf.coef_, [1.0, 1.0])
    assert clf.intercept_ == 1.0


def test_random_separable_data_within_bound():
    rng = np.random.default_rng(0)
    w_star, b_star = np.array([2.0, -1.0, 0.5]), 0.3
    X = rng.uniform(-1, 1, size=(200, 3))
    score = X @ w_star + b_star
    X, score = X[np.abs(score) > 0.2], score[np.abs(score) > 0.2]  # a margin
    y = (score > 0).astype(int)
    for shuffle in (False, True):
        clf = fn.Perceptron(max_epochs=1000, shuffle=shuffle, random_state=1).fit(X, y)
        assert clf.converged_ and clf.score(X, y) == 1.0
        assert clf.n_updates_ <= novikoff_bound(X, y, list(w_star), b_star)


def test_xor_does_not_converge_and_warns():
    clf = fn.Perceptron(max_epochs=50)
    with pytest.warns(ConvergenceWarning, match="not linearly separable"):
        clf.fit(X2, [0, 1, 1, 0])
    assert issubclass(ConvergenceWarning, UserWarning)
    assert not clf.converged_
    assert clf.n_epochs_ == 50 and len(clf.mistakes_) == 50
    assert min(clf.mistakes_) > 0
    assert clf.n_updates_ == sum(clf.mistakes_)
    assert clf.score(X2, [0, 1, 1, 0]) < 1.0


def test_minus_one_plus_one_labels_map_back():
    y_pm = np.array([-1, -1, -1, 1])
    clf = fn.Perceptron().fit(X2, y_pm)
    assert clf.converged_
    np.testing.assert_array_equal(clf.classes_, [-1, 1])
    np.testing.assert_array_equal(clf.predict(X2), y_pm)
    assert clf.score(X2, y_pm) == 1.0
    # The same run as with 0/1 labels.
    assert clf.mistakes_ == fn.Perceptron().fit(X2, [0, 0, 0, 1]).mistakes_


def test_not_fitted():
    with pytest.raises(fn.NotFittedError):
        fn.Perceptron().predict(X2)
    with pytest.raises(fn.NotFittedError):
        fn.Perceptron().decision_function(X2)


def test_bad_inputs_raise_named_errors():
    clf = fn.Perceptron()
    with pytest.raises(fn.ShapeError):
        clf.fit(np.zeros(4), [0, 1, 0, 1])                  # 1-D X
    with pytest.raises(fn.ShapeError):
        clf.fit(X2, [0, 1, 0])                              # lengths differ
    with pytest.raises(fn.ShapeError):
        clf.fit(X2, [[0, 1], [0, 1], [1, 0], [1, 1]])       # 2-D y
    with pytest.raises(fn.LabelError):
        clf.fit(X2, [0, 1, 2, 1])                           # three classes
    with pytest.raises(fn.LabelError):
        clf.fit(X2, [-1, 0, 1, 1])                          # mixes the two conventions
    with pytest.raises(fn.NonFiniteError):
        clf.fit(np.array([[0, np.nan], [1, 1]]), [0, 1])
    with pytest.raises(fn.NonFiniteError):
        clf.fit(np.array([[0, 1], [1, np.inf]]), [0, 1])
    with pytest.raises(fn.EmptyInputError):
        clf.fit(np.zeros((0, 2)), [])
    with pytest.raises(fn.DTypeError):
        clf.fit([["a", "b"]], [0])
    clf.fit(X2, [0, 0, 0, 1])
    with pytest.raises(fn.ShapeError):
        clf.predict(np.zeros((2, 3)))                       # wrong number of features
    with pytest.raises(fn.ConfigError):
        fn.Perceptron(lr=0)
    with pytest.raises(fn.ConfigError):
        fn.Perceptron(max_epochs=0)
