"""Python integers beyond 64 bits are refused in Python with a ConfigError naming the
argument and its range, before they reach the core (never a bare OverflowError)."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn.errors import ConfigError

HUGE = [2**64, 2**70 + 1, -(2**70)]


@pytest.fixture(scope="module")
def data():
    X, y = fn.datasets.digits()
    return X[:64], y[:64]


def _model() -> fn.Sequential:
    m = fn.Sequential([fn.Dense(8, activation="relu"), fn.Dense(10)], seed=0)
    m.compile()
    return m


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("argument", ["batch_size", "epochs", "initial_epoch", "verbose", "seed"])
def test_fit_arguments(data, argument, value):
    m = _model()
    kwargs = {"epochs": 1, "verbose": 0, argument: value}
    with pytest.raises(ConfigError, match=argument):
        m.fit(*data, **kwargs)
    assert not m.built  # nothing changed


def test_resuming_idiom_with_huge_epochs(data):
    with pytest.raises(ConfigError, match="epochs"):
        _model().fit(*data, epochs=2**70 + 1, initial_epoch=2**70, verbose=0)


@pytest.mark.parametrize("value", HUGE)
def test_set_num_threads(value, restore_threads):
    before = fn.get_num_threads()
    with pytest.raises(ConfigError, match="num_threads"):
        fn.set_num_threads(value)
    assert fn.get_num_threads() == before


@pytest.mark.parametrize("make", [
    lambda v: fn.Dense(v), lambda v: fn.SwiGLU(v), lambda v: fn.Sequential([fn.Dense(3)], input_dim=v).compile(),
    lambda v: fn.callbacks.EarlyStopping(patience=v), lambda v: fn.diagnostics.GradientMonitor(every=v),
], ids=["Dense", "SwiGLU", "input_dim", "EarlyStopping", "GradientMonitor"])
def test_layer_and_callback_sizes(make):
    with pytest.raises(ConfigError, match="2\\*\\*63|integer"):
        make(2**64)


def test_sklearn_n_threads(data):
    pytest.importorskip("sklearn")
    from ferronn.sklearn import MLPClassifier

    with pytest.raises(ConfigError, match="num_threads"):
        MLPClassifier(hidden_layer_sizes=(4,), n_threads=2**64, max_iter=1).fit(*data)


def test_predict_on_a_model_after_a_refused_huge_argument_still_works(data):
    m = _model()
    m.fit(*data, epochs=1, verbose=0)
    before = m.predict_raw(data[0])
    with pytest.raises(ConfigError):
        m.fit(*data, batch_size=2**64, verbose=0)
    np.testing.assert_array_equal(m.predict_raw(data[0]), before)
