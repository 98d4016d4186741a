"""ferronn.metrics: values by hand and against scikit-learn, input checks, and metrics in compile/fit."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn import metrics as M
from ferronn.errors import (ConfigError, DTypeError, EmptyInputError, LabelError, NonFiniteError, ShapeError,
                            UnknownNameError)

# A small case worked out by hand.
#   y_true: 0 0 0 1 1 2
#   y_pred: 0 1 0 1 2 2
# confusion (rows: true, cols: predicted): [[2,1,0],[0,1,1],[0,0,1]]
# precision per class: 2/2, 1/2, 1/2; recall: 2/3, 1/2, 1/1
T = np.array([0, 0, 0, 1, 1, 2])
P = np.array([0, 1, 0, 1, 2, 2])
PREC = np.array([1.0, 0.5, 0.5])
REC = np.array([2 / 3, 0.5, 1.0])
F1 = 2 * PREC * REC / (PREC + REC)
SUPPORT = np.array([3, 2, 1])


def test_classification_metrics_by_hand():
    assert M.accuracy(T, P) == pytest.approx(4 / 6)
    np.testing.assert_array_equal(M.confusion_matrix(T, P), [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_array_equal(M.confusion_matrix(T, P, num_classes=4)[:3, :3], M.confusion_matrix(T, P))
    assert M.confusion_matrix(T, P, num_classes=4)[3].sum() == 0
    np.testing.assert_allclose(M.precision(T, P, average=None), PREC)
    np.testing.assert_allclose(M.recall(T, P, average=None), REC)
    np.testing.assert_allclose(M.f1_score(T, P, average=None), F1)
    assert M.precision(T, P) == pytest.approx(PREC.mean())
    assert M.recall(T, P) == pytest.approx(REC.mean())
    assert M.f1_score(T, P) == pytest.approx(F1.mean())  # mean of per-class F1, not F1 of the means
    assert M.f1(T, P, average="weighted") == pytest.approx((F1 * SUPPORT).sum() / 6)
    for f in (M.precision, M.recall, M.f1_score):
        assert f(T, P, average="micro") == pytest.approx(4 / 6)  # single-label: micro = accuracy
    # Binary: positive class 1.
    bt, bp = np.array([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1])
    assert M.precision(bt, bp, average="binary") == pytest.approx(2 / 3)
    assert M.recall(bt, bp, average="binary") == pytest.approx(2 / 3)
    # A class never predicted has precision 0 (no division by zero).
    assert M.precision([0, 1], [0, 0], average=None).tolist() == [0.5, 0.0]


def test_top_k_accuracy_by_hand():
    scores = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    y = np.array([2, 2, 0])  # ranks of the true class: 2nd, 3rd, 3rd
    assert M.top_k_accuracy(y, scores, k=1) == 0.0
    assert M.top_k_accuracy(y, scores, k=2) == pytest.approx(1 / 3)
    assert M.top_k_accuracy(y, scores, k=3) == 1.0


def test_regression_metrics_by_hand():
    t, p = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 5.0])
    assert M.mae(t, p) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert M.mse(t, p) == pytest.approx((0.25 + 0 + 1 + 1) / 4)
    assert M.r2(t, p) == pytest.approx(1 - 2.25 / 5.0)
    assert M.r2(t, t) == 1.0
    assert M.r2([3.0, 3.0], [3.0, 3.0]) == 1.0 and M.r2([3.0, 3.0], [3.0, 4.0]) == 0.0  # constant truth
    # (n,) against (n, 1) is fine; two outputs average uniformly.
    assert M.mse(t, p[:, None]) == M.mse(t, p)
    two_t, two_p = np.stack([t, 2 * t], 1), np.stack([p, 2 * t], 1)
    assert M.r2(two_t, two_p) == pytest.approx((1 - 2.25 / 5.0 + 1.0) / 2)
    assert M.mean_absolute_error is M.mae and M.mean_squared_error is M.mse and M.r2_score is M.r2


def test_against_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 6, 300), rng.integers(0, 6, 300)
    p[:3] = 7  # a class only predicted
    for avg in ("macro", "micro", "weighted", None):
        for ours, theirs in ((M.precision, sk.precision_score), (M.recall, sk.recall_score),
                             (M.f1_score, sk.f1_score)):
            np.testing.assert_allclose(ours(t, p, average=avg), theirs(t, p, average=avg, zero_division=0))
    np.testing.assert_array_equal(M.confusion_matrix(t, p), sk.confusion_matrix(t, p, labels=range(8)))
    assert M.accuracy(t, p) == sk.accuracy_score(t, p)
    scores = rng.normal(size=(300, 6))
    y = rng.integers(0, 6, 300)
    for k in (1, 2, 4):
        assert M.top_k_accuracy(y, scores, k=k) == pytest.approx(sk.top_k_accuracy_score(y, scores, k=k))
    yt, yp = rng.normal(size=(80, 3)), rng.normal(size=(80, 3))
    assert M.r2(yt, yp) == pytest.approx(sk.r2_score(yt, yp))
    assert M.mae(yt, yp) == pytest.approx(sk.mean_absolute_error(yt, yp))
    assert M.mse(yt, yp) == pytest.approx(sk.mean_squared_error(yt, yp))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: M.accuracy([0, 1, 2], [0, 1]), ShapeError, r"3 samples but y_pred has 2"),
    (lambda: M.f1_score([], []), EmptyInputError, r"no samples"),
    (lambda: M.mse(np.zeros((0, 2)), np.zeros((0, 2))), EmptyInputError, r"no samples"),
    (lambda: M.mae([1.0, 2.0], [1.0]), ShapeError, r"same number"),
    (lambda: M.r2(np.zeros((4, 2)), np.zeros((4, 3))), ShapeError, r"shape"),
    (lambda: M.accuracy(["a", "b"], ["a", "b"]), DTypeError, r"dtype"),
    (lambda: M.accuracy([0.5, 1.0], [0, 1]), DTypeError, r"integers"),
    (lambda: M.precision([-1, 0], [0, 0]), LabelError, r"negative label -1"),
    (lambda: M.mse([np.nan, 1.0], [0.0, 1.0]), NonFiniteError, r"NaN"),
    (lambda: M.precision(T, P, average="samples"), ConfigError, r"average must be"),
    (lambda: M.precision(T, P, average="binary"), ConfigError, r"two classes"),
    (lambda: M.top_k_accuracy([0, 3], np.zeros((2, 3))), LabelError, r"label 3"),
    (lambda: M.top_k_accuracy([0, 1], np.zeros((2, 3)), k=0), ConfigError, r"k must be"),
    (lambda: M.confusion_matrix([0, 5], [0, 1], num_classes=3), LabelError, r"label 5.*num_classes=3"),
    (lambda: M.accuracy(np.zeros((3, 2), int), np.zeros((3, 2), int)), ShapeError, r"1-D class labels"),
])
def test_bad_inputs_raise_named_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------ in compile / fit

def _blobs(n=240, k=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    X = (rng.normal(size=(n, d)) + 1.5 * np.eye(k, d)[y]).astype(np.float32)
    return X, y


def test_compiled_metrics_are_logged_for_training_and_validation_data():
    X, y = _blobs()
    Xv, yv = _blobs(90, seed=1)
    model = fn.Sequential([fn.Dense(8, activation="relu"), fn.Dense(3)], seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy",
                  metrics=["accuracy", "f1", "precision", "recall", "top_k_accuracy"])
    h = model.fit(X, y, epochs=3, batch_size=32, validation_data=(Xv, yv), seed=0, verbose=0)
    names = ["accuracy", "f1", "precision", "recall", "top_k_accuracy"]
    assert list(h.history) == ["loss", *names, "val_loss", *(f"val_{m}" for m in names), "lr"]
    # The last epoch's values are those of the final weights on the whole sets.
    pred, pred_v = model.predict(X), model.predict(Xv)
    assert h.history["f1"][-1] == pytest.approx(M.f1_score(y, pred))
    assert h.history["val_precision"][-1] == pytest.approx(M.precision(yv, pred_v))
    assert h.history["val_recall"][-1] == pytest.approx(M.recall(yv, pred_v))
    assert h.history["val_top_k_accuracy"][-1] == 1.0  # k=5 > 3 classes
    assert h.history["val_accuracy"][-1] == pytest.approx(M.accuracy(yv, pred_v))
    # evaluate returns [loss, *metrics] in compile order.
    res = model.evaluate(Xv, yv)
    assert len(res) == 6 and res[2] == pytest.approx(M.f1_score(yv, pred_v))
    d = model.evaluate(Xv, yv, return_dict=True)
    assert list(d) == ["loss", *names]


def test_regression_metrics_and_callables_in_compile():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 3)).astype(np.float32)
    y = X @ np.array([1.0, -1.0, 0.5], np.float32)

    def max_error(t, p):
        return float(np.max(np.abs(t - p)))

    model = fn.Sequential([fn.Dense(1)], seed=0)
    model.compile(optimizer=fn.optim.Adam(0.05), loss="mse", metrics=["mae", "mse", "r2", max_error])
    h = model.fit(X, y, epochs=5, batch_size=32, seed=0, verbose=0)
    pred = model.predict(X)
    assert pred.shape == (128,)
    assert h.history["mae"][-1] == pytest.approx(M.mae(y, pred), rel=1e-5)
    assert h.history["r2"][-1] == pytest.approx(M.r2(y, pred), rel=1e-5)
    assert h.history["max_error"][-1] == pytest.approx(max_error(y, pred), rel=1e-5)
    # The mse metric equals the loss (no regularizers) computed at the end of the epoch.
    assert h.history["mse"][-1] == pytest.approx(model.evaluate(X, y)[0], rel=1e-4)


@pytest.mark.parametrize("loss,metrics,exc,match", [
    ("cross_entropy", ["auc"], UnknownNameError, r"unknown metric 'auc'.*accuracy"),
    ("mse", ["f1"], ConfigError, r"f1 needs a classification loss"),
    ("cross_entropy", ["r2"], ConfigError, r"r2 is a regression metric"),
    ("bce", ["top_k_accuracy"], ConfigError, r"several classes"),
])
def test_metric_and_loss_mismatch_is_rejected(loss, metrics, exc, match):
    model = fn.Sequential([fn.Dense(2)])
    with pytest.raises(exc, match=match):
        model.compile(loss=loss, metrics=metrics)
