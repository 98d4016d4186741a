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


# ---------------------------------------------------------------- the textbook's convention

def _textbook_listing(X, y, lr=0.1, epochs=100):
    """The listing's loop, written out: zero weights, predict 1 if w·x + b >= 0 else -1,
    and on a mistake w += lr·y·x, b += lr·y; stop after an epoch without a mistake.
    Returns (w, b, epochs run)."""
    w, b = [0.0] * len(X[0]), 0.0
    for epoch in range(1, epochs + 1):
        mistakes = 0
        for xi, yi in zip(X, y):
            prediction = 1 if sum(wj * xj for wj, xj in zip(w, xi)) + b >= 0 else -1
            if prediction != yi:
                w = [wj + lr * yi * xj for wj, xj in zip(w, xi)]
                b += lr * yi
                mistakes += 1
        if mistakes == 0:
            return w, b, epoch
    return w, b, epochs


@pytest.mark.parametrize("gate", ["AND", "OR", "NAND"])
def test_threshold_inclusive_reproduces_the_textbook_listing(gate):
    X = [[0, 0], [0, 1], [1, 0], [1, 1]]
    y01 = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "NAND": [1, 1, 1, 0]}[gate]
    y = [1 if v else -1 for v in y01]
    w, b, epochs = _textbook_listing(X, y)
    clf = fn.Perceptron(lr=0.1, threshold_inclusive=True).fit(X, y)
    np.testing.assert_allclose(clf.coef_, w, atol=1e-12)
    assert clf.intercept_ == pytest.approx(b, abs=1e-12)
    assert clf.n_epochs_ == epochs
    assert clf.predict(X).tolist() == y


def test_and_reaches_the_listings_numbers():
    """The listing's printed result: AND in 4 epochs, w = (0.2, 0.1), b = -0.2; the strict
    default reaches the same weights in 6."""
    X, y = [[0, 0], [0, 1], [1, 0], [1, 1]], [-1, -1, -1, 1]
    textbook = fn.Perceptron(lr=0.1, threshold_inclusive=True).fit(X, y)
    assert textbook.n_epochs_ == 4
    np.testing.assert_allclose(textbook.coef_, [0.2, 0.1], atol=1e-12)
    assert textbook.intercept_ == pytest.approx(-0.2, abs=1e-12)
    strict = fn.Perceptron(lr=0.1).fit(X, y)
    assert strict.n_epochs_ == 6
    np.testing.assert_allclose(strict.coef_, [0.2, 0.1], atol=1e-12)


def test_threshold_inclusive_decides_ties_in_predict():
    X, y = [[0, 0], [1, 1]], [-1, 1]
    clf = fn.Perceptron(threshold_inclusive=True).fit(X, y)
    clf.coef_, clf.intercept_ = np.zeros(2), 0.0  # every score is 0: a tie
    assert clf.predict([[3, 4]]).tolist() == [1]
    clf.threshold_inclusive = False
    assert clf.predict([[3, 4]]).tolist() == [-1]


def test_threshold_inclusive_must_be_a_bool():
    with pytest.raises(fn.ConfigError):
        fn.Perceptron(threshold_inclusive="yes")
