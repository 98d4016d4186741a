"""The predict fast path (``Sequential._fast_logits``): a float32 ndarray of a flat model
goes straight to the core, which checks it. Every bad input still raises its named
exception, every layout still gives the bits of the C-contiguous float32 rows, and the
cached network follows every change of the model (rebuild, load, set_weights)."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn import _keras_methods as _km
from ferronn.errors import EmptyInputError, NonFiniteError, ShapeError

D = 5
_rng = np.random.default_rng(7)
X = _rng.normal(size=(16, D)).astype(np.float32)
Y = np.arange(16) % 3


def model(softmax: bool = False, seed: int = 0) -> fn.Sequential:
    last = fn.Dense(3, activation="softmax") if softmax else fn.Dense(3)
    m = fn.Sequential([fn.Dense(8, activation="relu"), last], seed=seed)
    m.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy")
    m.build(D)
    return m


@pytest.mark.parametrize("softmax", [False, True])
def test_fast_path_gives_the_full_paths_outputs(softmax):
    m = model(softmax)
    for rows in (1, 2, 16):
        x = X[:rows].copy()
        want = _km.apply_output(m._fused_output, m._net.predict(x))
        np.testing.assert_array_equal(m.predict_raw(x), want)
        np.testing.assert_array_equal(m.predict(x), m.predict(x.astype(np.float64)))
    if softmax:
        np.testing.assert_allclose(m.predict_raw(X).sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("bad, error, words", [
    (np.full((2, D), np.nan, dtype=np.float32), NonFiniteError, "finite"),
    (np.ones((2, D + 1), dtype=np.float32), ShapeError, str(D)),
    (np.ones((0, D), dtype=np.float32), EmptyInputError, "sample"),
    (np.ones((2, 1, D), dtype=np.float32), ShapeError, "2-D"),
    (np.ones(D, dtype=np.float32), ShapeError, "reshape"),
])
def test_bad_float32_inputs_still_raise_named_errors(bad, error, words):
    m = model()
    before = m.predict_raw(X)
    for call in (m.predict_raw, m.predict, m.predict_proba):
        with pytest.raises(error, match=words):
            call(bad)
    np.testing.assert_array_equal(m.predict_raw(X), before)


def test_fortran_and_strided_float32_are_read_in_row_order():
    m = model()
    want = m.predict_raw(X)
    np.testing.assert_array_equal(m.predict_raw(np.asfortranarray(X)), want)
    np.testing.assert_array_equal(m.predict_raw(np.repeat(X, 2, axis=0)[::2]), want)
    # The core itself refuses a Fortran-ordered array rather than reading it column by column.
    with pytest.raises(ShapeError, match="C-contiguous"):
        m._net.predict(np.asfortranarray(X))


def test_the_cached_network_follows_rebuilds_loads_and_weight_changes(tmp_path):
    m = model(seed=0)
    first = m.predict_raw(X)
    m.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    trained = m.predict_raw(X)
    assert not np.array_equal(first, trained)
    np.testing.assert_array_equal(trained, m._net.predict(X))
    m.set_weights([np.zeros_like(w) for w in m.get_weights()])
    np.testing.assert_array_equal(m.predict_raw(X), np.zeros((16, 3), np.float32))
    # A rebuild for another width: the fast path must not reuse the old network.
    m.build(D + 2, seed=1)
    x2 = _rng.normal(size=(3, D + 2)).astype(np.float32)
    np.testing.assert_array_equal(m.predict_raw(x2), m._net.predict(x2))
    with pytest.raises(ShapeError):
        m.predict_raw(X)
    path = tmp_path / "m.ferronn"
    m.save(path)
    loaded = fn.load(path)
    np.testing.assert_array_equal(loaded.predict_raw(x2), m.predict_raw(x2))
    # The cache (it holds a bound method of the network) is not part of the state.
    assert "_fast_predict" in m.__dict__ and "_fast_predict" not in m.__getstate__()


def test_n_d_models_keep_their_shape_checks():
    m = fn.Sequential([fn.layers.Input((2, 3)), fn.layers.Flatten(), fn.Dense(4)])
    m.compile(optimizer="adam", loss="mse")
    m.build((2, 3))
    x = _rng.normal(size=(4, 2, 3)).astype(np.float32)
    assert m.predict_raw(x).shape == (4, 4)
    with pytest.raises(ShapeError, match="per-sample shape"):
        m.predict_raw(x.reshape(4, 6))


def test_calling_the_model_on_float32_rows_checks_like_the_full_path():
    m = model(softmax=True)
    np.testing.assert_array_equal(m(X), m.predict_raw(X))
    np.testing.assert_array_equal(m(np.asfortranarray(X)), m.predict_raw(X))
    np.testing.assert_array_equal(m(X.astype(np.float64)), m(X))
    for bad, error in ((np.full((2, D), np.inf, dtype=np.float32), NonFiniteError),
                       (np.ones((2, D + 1), dtype=np.float32), ShapeError),
                       (np.ones((0, D), dtype=np.float32), EmptyInputError)):
        with pytest.raises(error):
            m(bad)
        with pytest.raises(error):
            m(bad, training=True)


def test_core_predict_writes_small_and_large_outputs_alike():
    """Small outputs are written straight into a numpy array, large ones (over 2**20
    values) through the core's own allocation: the same values either way."""
    m = fn.Sequential([fn.Dense(2048, activation="tanh")], input_dim=3, seed=0)
    m.compile(optimizer="sgd", loss="mse")
    x = _rng.normal(size=(600, 3)).astype(np.float32)
    big = m._net.predict(x)  # 600 x 2048 > 2**20 values
    assert big.shape == (600, 2048) and big.dtype == np.float32 and big.flags.c_contiguous
    np.testing.assert_array_equal(big, m._net.forward(x, False))
    for rows in (1, 7, 500):  # at most 2**20 values
        small = m._net.predict(x[:rows])
        assert small.flags.c_contiguous and small.flags.writeable
        np.testing.assert_array_equal(small, big[:rows])
