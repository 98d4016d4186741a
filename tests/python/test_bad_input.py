"""Bad inputs: each raises its named exception with a message that says what was
wrong and what was expected, and a rejected call leaves the model exactly as it was
(weights, predictions, optimizer step count, epoch count)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ferronn as fn
from ferronn.errors import (ConfigError, DTypeError, EmptyInputError, LabelError, NonFiniteError,
                            NotFittedError, ShapeError, UnknownNameError)

D, K, N = 6, 10, 32  # features, classes, samples
_rng = np.random.default_rng(1234)
X = _rng.normal(size=(N, D)).astype(np.float32)
Y = np.arange(N) % K
Y_REG = _rng.normal(size=(N, 2)).astype(np.float32)
Y_BCE = (_rng.random(size=(N, 1)) > 0.5).astype(np.float32)
PROBE = _rng.normal(size=(7, D)).astype(np.float32)


def model(loss: str = "cross_entropy", fitted: bool = True, optimizer=None) -> fn.Sequential:
    out = {"cross_entropy": K, "nll": K, "mse": 2, "bce": 1}[loss]
    m = fn.Sequential([fn.Dense(8, activation="relu"), fn.Dense(out)], seed=0)
    metrics = [] if loss == "mse" else ["accuracy"]
    m.compile(optimizer=optimizer or fn.optim.Adam(1e-2), loss=loss, metrics=metrics)
    if fitted:
        y = {"mse": Y_REG, "bce": Y_BCE}.get(loss, Y)
        m.fit(X, y, epochs=1, batch_size=8, seed=0, verbose=0)
    return m


def snapshot(m: fn.Sequential):
    if not m.built:
        return None
    return ([w.copy() for w in m.get_weights()], m.predict_raw(PROBE), m._net.optimizer_steps, m._epochs_trained)


def assert_same(m: fn.Sequential, before) -> None:
    after = snapshot(m)
    assert (after is None) == (before is None), "a rejected call built the model"
    if before is not None:
        (ws0, p0, *counts0), (ws1, p1, *counts1) = before, after
        assert len(ws0) == len(ws1) and counts0 == counts1  # optimizer steps, epochs trained
        for a, b in zip(ws0 + [p0], ws1 + [p1]):
            np.testing.assert_array_equal(a, b)


@contextmanager
def rejected(m: fn.Sequential, exc: type, match: str):
    """The body must raise `exc` matching `match`, and leave `m` unchanged."""
    before = snapshot(m)
    with pytest.raises(exc, match=match):
        yield
    assert_same(m, before)


def nan_at(a: np.ndarray, value: float = np.nan, at=(3, 2)) -> np.ndarray:
    b = a.copy()
    b[at] = value
    return b


# Each case: (id, loss, call, exception, message regex).
CASES = [
    # --- shapes
    ("fit-X-1d", "cross_entropy", lambda m: m.fit(X[:, 0], Y, verbose=0), ShapeError, r"2-D.*got 1-D.*reshape\(1, -1\)"),
    ("fit-X-3d", "cross_entropy", lambda m: m.fit(X[None], Y, verbose=0), ShapeError, r"2-D \(samples, features\), got 3-D"),
    ("fit-width", "cross_entropy", lambda m: m.fit(X[:, :4], Y, verbose=0), ShapeError, r"4 features per sample.*expects 6"),
    ("fit-y-len", "cross_entropy", lambda m: m.fit(X, Y[:5], verbose=0), ShapeError, r"32 samples but y has 5.*same number"),
    ("fit-y-2d", "cross_entropy", lambda m: m.fit(X, np.stack([Y, Y], 1), verbose=0), ShapeError, r"1-D class labels.*\(32, 2\)"),
    ("eval-y-len", "cross_entropy", lambda m: m.evaluate(X, Y[:-1]), ShapeError, r"32 samples but y has 31"),
    ("step-y-len", "cross_entropy", lambda m: m.train_step(X, Y[:3]), ShapeError, r"32 samples but y has 3"),
    ("step-width", "cross_entropy", lambda m: m.train_step(X[:, :5], Y), ShapeError, r"5 features.*expects 6"),
    ("step-X-3d-f32", "cross_entropy", lambda m: m.train_step(np.zeros((2, 3, D), np.float32), Y[:2]), ShapeError, r"2-D"),
    ("step-X-1d-f32", "cross_entropy", lambda m: m.train_step(np.zeros(D, np.float32), Y[:1]), ShapeError, r"2-D"),
    ("predict-width", "cross_entropy", lambda m: m.predict(X[:, :5]), ShapeError, r"5 features per sample.*expects 6"),
    ("predict-raw-width", "cross_entropy", lambda m: m.predict_raw(np.ones((2, 9))), ShapeError, r"9 features.*expects 6"),
    ("proba-width", "cross_entropy", lambda m: m.predict_proba(X[:, :1]), ShapeError, r"1 features.*expects 6"),
    ("eval-width", "cross_entropy", lambda m: m.evaluate(X[:, :3], Y), ShapeError, r"3 features.*expects 6"),
    ("predict-0-cols", "cross_entropy", lambda m: m.predict(np.zeros((4, 0))), ShapeError, r"0 features.*expects 6"),
    ("predict-None", "cross_entropy", lambda m: m.predict(None), ShapeError, r"None; expected an array"),
    ("predict-scalar", "cross_entropy", lambda m: m.predict(3.0), ShapeError, r"2-D.*0-D"),
    ("mse-3-cols", "mse", lambda m: m.fit(X, np.ones((N, 3)), verbose=0), ShapeError, r"3 columns.*2 outputs"),
    ("mse-1-col", "mse", lambda m: m.evaluate(X, Y_REG[:, :1]), ShapeError, r"1 columns.*2 outputs"),
    ("mse-1d", "mse", lambda m: m.fit(X, Y_REG[:, 0], verbose=0), ShapeError, r"1-D but the model has 2 outputs.*\(n, 2\)"),
    ("mse-3d", "mse", lambda m: m.train_step(X, Y_REG[:, :, None]), ShapeError, r"1-D or 2-D.*\(32, 2, 1\)"),
    ("mse-y-len", "mse", lambda m: m.fit(X, Y_REG[:10], verbose=0), ShapeError, r"32 samples but y has 10"),
    ("ragged-list", "cross_entropy", lambda m: m.predict([[1.0] * D, [1.0]]), ShapeError, r"X"),
    # --- dtypes
    ("X-str", "cross_entropy", lambda m: m.fit(X.astype(str), Y, verbose=0), DTypeError, r"X has dtype <U.*real numeric"),
    ("X-object", "cross_entropy", lambda m: m.fit(X.astype(object), Y, verbose=0), DTypeError, r"dtype object.*real numeric"),
    ("X-complex", "cross_entropy", lambda m: m.predict(X.astype(complex)), DTypeError, r"complex128.*real numeric"),
    ("X-str-eval", "cross_entropy", lambda m: m.evaluate(X.astype(str), Y), DTypeError, r"X has dtype"),
    ("y-float", "cross_entropy", lambda m: m.fit(X, Y.astype(float), verbose=0), DTypeError, r"float64.*labels must be integers"),
    ("y-float-step", "cross_entropy", lambda m: m.train_step(X, Y.astype(np.float32)), DTypeError, r"labels must be integers"),
    ("y-str", "cross_entropy", lambda m: m.evaluate(X, Y.astype(str)), DTypeError, r"y has dtype <U"),
    ("mse-y-complex", "mse", lambda m: m.fit(X, Y_REG.astype(complex), verbose=0), DTypeError, r"y has dtype complex"),
    # --- non-finite values
    ("fit-nan", "cross_entropy", lambda m: m.fit(nan_at(X), Y, verbose=0), NonFiniteError, r"X contains NaN or infinity.*finite"),
    ("fit-inf", "cross_entropy", lambda m: m.fit(nan_at(X, np.inf), Y, verbose=0), NonFiniteError, r"NaN or infinity"),
    ("predict-nan", "cross_entropy", lambda m: m.predict(nan_at(PROBE)), NonFiniteError, r"X contains NaN"),
    ("predict-neg-inf", "cross_entropy", lambda m: m.predict_proba(nan_at(PROBE, -np.inf, (0, 0))), NonFiniteError, r"infinity"),
    ("eval-nan", "cross_entropy", lambda m: m.evaluate(nan_at(X), Y), NonFiniteError, r"X contains NaN"),
    ("step-nan", "cross_entropy", lambda m: m.train_step(nan_at(X), Y), NonFiniteError, r"X contains NaN"),
    ("step-inf", "cross_entropy", lambda m: m.train_step(nan_at(X, np.inf, (31, 5)), Y), NonFiniteError, r"infinity"),
    ("val-nan", "cross_entropy", lambda m: m.fit(X, Y, validation_data=(nan_at(X), Y), verbose=0), NonFiniteError, r"NaN"),
    ("mse-y-nan", "mse", lambda m: m.fit(X, nan_at(Y_REG, at=(5, 1)), verbose=0), NonFiniteError, r"y contains NaN.*targets must be finite"),
    ("mse-y-nan-eval", "mse", lambda m: m.evaluate(X, nan_at(Y_REG, at=(3, 1))), NonFiniteError, r"y contains NaN"),
    ("mse-y-inf-step", "mse", lambda m: m.train_step(X, nan_at(Y_REG, np.inf, (0, 0))), NonFiniteError, r"y contains NaN or infinity"),
    ("bce-y-nan", "bce", lambda m: m.fit(X, nan_at(Y_BCE, at=(2, 0)), verbose=0), NonFiniteError, r"y contains NaN"),
    # --- labels
    ("label-neg", "cross_entropy", lambda m: m.fit(X, np.where(Y == 4, -1, Y), verbose=0), LabelError, r"label -1 at index 4.*0\.\.9"),
    ("label-10", "cross_entropy", lambda m: m.fit(X, np.where(Y == 7, 10, Y), verbose=0), LabelError, r"label 10 at index 7.*out of range.*0\.\.9"),
    ("label-eval", "cross_entropy", lambda m: m.evaluate(X, Y + 1), LabelError, r"label 10.*out of range"),
    ("label-step", "cross_entropy", lambda m: m.train_step(X, -Y - 1), LabelError, r"label -1.*out of range"),
    ("label-val", "cross_entropy", lambda m: m.fit(X, Y, validation_data=(X, Y + 5), verbose=0), LabelError, r"out of range"),
    ("label-nll", "nll", lambda m: m.fit(X, np.full(N, 12), verbose=0), LabelError, r"label 12.*nll.*0\.\.9"),
    ("bce-1.5", "bce", lambda m: m.fit(X, np.full((N, 1), 1.5), verbose=0), LabelError, r"\[0, 1\].*1\.5"),
    ("bce-neg", "bce", lambda m: m.evaluate(X, np.full((N, 1), -0.5)), LabelError, r"\[0, 1\].*-0\.5"),
    ("bce-2-step", "bce", lambda m: m.train_step(X, Y[:, None] % 3), LabelError, r"binary_cross_entropy.*\[0, 1\].*2"),
    # --- empty
    ("fit-empty", "cross_entropy", lambda m: m.fit(X[:0], Y[:0], verbose=0), EmptyInputError, r"no samples.*\(0, 6\).*at least one"),
    ("predict-empty", "cross_entropy", lambda m: m.predict(X[:0]), EmptyInputError, r"no samples.*at least one row"),
    ("eval-empty", "cross_entropy", lambda m: m.evaluate(X[:0], Y[:0]), EmptyInputError, r"no samples"),
    ("step-empty", "cross_entropy", lambda m: m.train_step(X[:0], Y[:0]), EmptyInputError, r"no samples.*at least one row"),
    ("mse-empty", "mse", lambda m: m.fit(np.empty((0, D)), np.empty((0, 2)), verbose=0), EmptyInputError, r"no samples"),
    # --- hyperparameters and names on a built model
    ("epochs-neg", "cross_entropy", lambda m: m.fit(X, Y, epochs=-1, verbose=0), ConfigError, r"epochs must be a non-negative integer.*-1"),
    ("epochs-float", "cross_entropy", lambda m: m.fit(X, Y, epochs=1.5, verbose=0), ConfigError, r"epochs.*integer.*1\.5"),
    ("batch-0", "cross_entropy", lambda m: m.fit(X, Y, batch_size=0, verbose=0), ConfigError, r"batch_size must be a positive integer.*0"),
    ("batch-neg", "cross_entropy", lambda m: m.fit(X, Y, batch_size=-5, verbose=0), ConfigError, r"batch_size.*-5"),
    ("seed-neg", "cross_entropy", lambda m: m.fit(X, Y, seed=-1, verbose=0), ConfigError, r"seed|-1"),
    ("val-not-pair", "cross_entropy", lambda m: m.fit(X, Y, validation_data=X, verbose=0), ConfigError, r"validation_data must be a tuple"),
    ("loss-hinge", "cross_entropy", lambda m: m.compile(loss="hinge"), UnknownNameError, r"unknown loss 'hinge'.*cross_entropy.*mse"),
    ("opt-unknown", "cross_entropy", lambda m: m.compile(optimizer="rmsprop_x"), UnknownNameError, r"unknown optimizer 'rmsprop_x'.*sgd, adam, adamw"),
    ("metric-auc", "cross_entropy", lambda m: m.compile(metrics=["auc"]), UnknownNameError, r"unknown metric 'auc'.*accuracy"),
    ("mse-accuracy", "mse", lambda m: m.compile(loss="mse", metrics=["accuracy"]), ConfigError, r"accuracy is not defined for the mse"),
    ("proba-mse", "mse", lambda m: m.predict_proba(X), ConfigError, r"classification loss.*mse"),
    ("add-built", "cross_entropy", lambda m: m.add(fn.Dense(3)), ConfigError, r"already built"),
]


@pytest.mark.parametrize("loss,call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_and_model_unchanged(loss, call, exc, match):
    m = model(loss)
    with rejected(m, exc, match):
        call(m)


def test_exception_hierarchy():
    assert issubclass(ShapeError, ValueError) and issubclass(DTypeError, TypeError)
    assert issubclass(NotFittedError, AttributeError) and issubclass(NotFittedError, ValueError)
    named = (ShapeError, DTypeError, NonFiniteError, LabelError, EmptyInputError, UnknownNameError, ConfigError)
    assert all(issubclass(cls, fn.FerronnError) for cls in named + (NotFittedError,))


# ------------------------------------------------------------------ not built

@pytest.mark.parametrize("call", [
    lambda m: m.predict(X), lambda m: m.predict_raw(X), lambda m: m.predict_proba(X),
    lambda m: m.evaluate(X, Y), lambda m: m.train_step(X, Y), lambda m: m.get_weights(),
    lambda m: m.set_weights([]), lambda m: m.n_params,
], ids=["predict", "predict_raw", "predict_proba", "evaluate", "train_step", "get_weights", "set_weights", "n_params"])
def test_use_before_build_raises_not_fitted(call):
    m = model(fitted=False)
    with rejected(m, NotFittedError, r"needs a built model.*compile\(\) and fit\(\)"):
        call(m)


def test_save_before_build_raises_and_writes_nothing(tmp_path):
    m = model(fitted=False)
    with pytest.raises(NotFittedError, match=r"save needs a built model"):
        m.save(tmp_path / "m.fnn")
    assert list(tmp_path.iterdir()) == []


def test_fit_and_build_before_compile_raise_not_fitted():
    m = fn.Sequential([fn.Dense(3)])
    with rejected(m, NotFittedError, r"call compile\(\) before fit\(\)"):
        m.fit(X, Y, verbose=0)
    with rejected(m, NotFittedError, r"compile\(\) before build\(\)"):
        m.build(D)
    with rejected(m, NotFittedError, r"needs a built model"):
        fn.Sequential([fn.Dense(3)]).predict(X)


@pytest.mark.parametrize("call,exc,match", [
    (lambda m: m.fit(nan_at(X), Y, seed=1, verbose=0), NonFiniteError, r"X contains NaN"),
    (lambda m: m.fit(X, Y + K, seed=1, verbose=0), LabelError, r"label 10.*out of range"),
], ids=["nan", "label"])
def test_rejected_first_fit_leaves_model_unbuilt(call, exc, match):
    m = model(fitted=False)
    with rejected(m, exc, match):
        call(m)


# ------------------------------------------------------------ names and config

def test_unknown_activation_lists_known_names():
    with pytest.raises(UnknownNameError, match=r"unknown activation 'relu6'; expected one of:") as info:
        fn.Dense(4, activation="relu6")
    for known in ("relu", "tanh", "sigmoid", "gelu", "silu", "leaky_relu"):
        assert known in str(info.value)


@pytest.mark.parametrize("where", ["kernel_initializer", "bias_initializer"])
def test_unknown_initializer_raises_at_fit_and_model_stays_unbuilt(where):
    m = fn.Sequential([fn.Dense(4, **{where: "orthogonal"}), fn.Dense(K)], seed=0)
    m.compile(loss="cross_entropy")
    with rejected(m, UnknownNameError, r"unknown initializer 'orthogonal'; expected one of:.*glorot_uniform.*he_normal"):
        m.fit(X, Y, verbose=0)
    with pytest.raises(UnknownNameError, match="orthogonal"):  # eager build when input_dim is known
        fn.Sequential([fn.Dense(4, kernel_initializer="orthogonal")], input_dim=D).compile()


@pytest.mark.parametrize("units", [0, -1, 2.5, True, "8"])
def test_dense_bad_units(units):
    with pytest.raises(ConfigError, match=r"Dense units must be a positive integer"):
        fn.Dense(units)


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "relu", "alpha": 0.1}, r"'relu' takes no alpha"),
    ({"activation": "leaky_relu", "alpha": float("nan")}, r"alpha.*finite"),
    ({"input_dim": 0}, r"input_dim must be a positive integer"),
])
def test_dense_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        fn.Dense(4, **kwargs)


def test_bad_model_structure():
    with pytest.raises(ConfigError, match=r"layer objects.*'dense'"):
        fn.Sequential(["dense"])
    with pytest.raises(ConfigError, match=r"no layers"):
        fn.Sequential().compile()


def test_nan_hyperparameter_is_rejected_at_compile():
    m = fn.Sequential([fn.Dense(3)])
    with pytest.raises(ConfigError, match=r"AdamW lr must be finite, got nan"):
        m.compile(optimizer=fn.optim.AdamW(lr=float("nan")))
    assert m.optimizer is None and not m.built


@pytest.mark.parametrize("opt", [fn.optim.Adam(-0.5), fn.optim.SGD(lr=-1.0),
                                 fn.optim.Adam(betas=(1.5, 0.9))], ids=["adam", "sgd", "beta1"])
def test_bad_optimizer_hyperparameters_raise_config_error(opt):
    m = model(fitted=False, optimizer=opt)
    with rejected(m, ConfigError, r"(learning rate \(lr\) must be finite and >= 0)|(beta1 must be in \[0, 1\))"):
        m.fit(X, Y, verbose=0)


@pytest.mark.parametrize("n", [0, -1])
def test_set_num_threads_bad(n):
    before = fn.get_num_threads()
    with pytest.raises(ConfigError, match=r"num_threads must be at least 1"):
        fn.set_num_threads(n)
    assert fn.get_num_threads() == before


# ------------------------------------------------------------------ set_weights

def _nan_last(w: list) -> list:
    w[-1][0] = np.nan  # earlier tensors are valid: all-or-nothing must hold
    return w


def _inf(w: list) -> list:
    w[2][1, 1] = np.inf
    return w


_BAD_WEIGHTS = {
    "too-few": lambda w: w[:-1], "too-many": lambda w: w + [w[-1]], "kernel-T": lambda w: [w[0].T] + w[1:],
    "bias-2d": lambda w: w[:-1] + [w[-1][None, :]], "nan-last": _nan_last, "inf": _inf,
    "str": lambda w: [w[0].astype(str)] + w[1:],
}


@pytest.mark.parametrize("kind,exc,match", [
    ("too-few", ConfigError, r"expected 4 arrays.*got 3"),
    ("too-many", ConfigError, r"expected 4 arrays.*got 5"),
    ("kernel-T", ShapeError, r"shape \[6, 8\].*shape \[8, 6\]"),
    ("bias-2d", ShapeError, r"has shape \[10\].*\[1, 10\]"),
    ("nan-last", NonFiniteError, r"NaN or infinity"),
    ("inf", NonFiniteError, r"NaN or infinity"),
    ("str", DTypeError, r"dtype <U.*float"),
])
def test_set_weights_rejects_and_model_unchanged(kind, exc, match):
    m = model()
    # Perturb every tensor so a partial write would show up.
    bad = _BAD_WEIGHTS[kind]([a + 1.0 for a in m.get_weights()])
    with rejected(m, exc, match):
        m.set_weights(bad)


# ------------------------------------------------------------------- hypothesis

_H_CLF = model()
_CALLS = {"predict": lambda m, x, y: m.predict(x), "fit": lambda m, x, y: m.fit(x, y, verbose=0),
          "evaluate": lambda m, x, y: m.evaluate(x, y), "train_step": lambda m, x, y: m.train_step(x, y)}
_finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)


def _any_call_rejects(data, x, y, error, match) -> None:
    """One of fit / predict / evaluate / train_step (drawn) raises ``error`` on ``(x, y)``,
    leaving the model unchanged."""
    call = data.draw(st.sampled_from(list(_CALLS)))
    with rejected(_H_CLF, error, match):
        _CALLS[call](_H_CLF, x, y)


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(1, 20), cols=st.integers(1, 20).filter(lambda c: c != D), data=st.data())
def test_hypothesis_wrong_width_always_shape_error(rows, cols, data):
    x = np.asarray(data.draw(st.lists(_finite, min_size=rows * cols, max_size=rows * cols)),
                   dtype=np.float32).reshape(rows, cols)
    y = np.zeros(rows, dtype=np.int64)
    _any_call_rejects(data, x, y, ShapeError, r"features per sample but the model expects 6")


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(1, 20), data=st.data())
def test_hypothesis_non_finite_always_non_finite_error(rows, data):
    x = np.asarray(data.draw(st.lists(_finite, min_size=rows * D, max_size=rows * D)), dtype=np.float32).reshape(rows, D)
    cells = data.draw(st.lists(st.tuples(st.integers(0, rows - 1), st.integers(0, D - 1)), min_size=1, max_size=5))
    for i, j in cells:
        x[i, j] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    x = x.astype(data.draw(st.sampled_from([np.float32, np.float64])))
    y = np.asarray(data.draw(st.lists(st.integers(0, K - 1), min_size=rows, max_size=rows)))
    _any_call_rejects(data, x, y, NonFiniteError, r"X contains NaN or infinity")


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(1, 20), data=st.data())
def test_hypothesis_out_of_range_labels_always_label_error(rows, data):
    y = np.asarray(data.draw(st.lists(st.integers(0, K - 1), min_size=rows, max_size=rows)))
    bad = data.draw(st.one_of(st.integers(-(2**40), -1), st.integers(K, 2**40)))
    y[data.draw(st.integers(0, rows - 1))] = bad
    with rejected(_H_CLF, LabelError, rf"label {bad} at index \d+ is out of range"):
        _H_CLF.fit(X[:rows], y, verbose=0)


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(1, 20), data=st.data())
def test_hypothesis_valid_finite_inputs_never_raise(rows, data):
    x = np.asarray(data.draw(st.lists(_finite, min_size=rows * D, max_size=rows * D)), dtype=np.float32).reshape(rows, D)
    y = np.asarray(data.draw(st.lists(st.integers(0, K - 1), min_size=rows, max_size=rows)))
    m = model()
    assert m.predict(x).shape == (rows,)
    assert np.isfinite(m.predict_raw(x)).all()
    np.testing.assert_allclose(m.predict_proba(x).sum(axis=1), 1.0, rtol=1e-5)
    loss, acc = m.evaluate(x, y)
    assert np.isfinite(loss) and 0.0 <= acc <= 1.0
    assert np.isfinite(m.train_step(x, y))
    assert len(m.fit(x, y, epochs=1, batch_size=data.draw(st.integers(1, 25)), verbose=0).epoch) == 1
    assert m._net.optimizer_steps >= 3


# ----------------------------------------------------- dtypes and memory layouts

def _layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), dtype=np.float32)
    wide[:, ::2] = x
    doubled = np.repeat(x, 2, axis=0)
    return {
        "float64": x.astype(np.float64),
        "fortran": np.asfortranarray(x),
        "fortran-f64": np.asfortranarray(x.astype(np.float64)),
        "col-strided": wide[:, ::2],
        "row-strided": doubled[::2],
        "transposed": np.ascontiguousarray(x.T).T,
        "list": x.tolist(),
    }


@pytest.mark.parametrize("layout", list(_layouts(PROBE)))
def test_non_contiguous_and_float64_give_identical_predictions(layout):
    m = model()
    xs = _layouts(PROBE)[layout]
    assert not (isinstance(xs, np.ndarray) and xs.dtype == np.float32 and xs.flags.c_contiguous)
    np.testing.assert_array_equal(m.predict_raw(xs), m.predict_raw(PROBE))
    np.testing.assert_array_equal(m.predict(xs), m.predict(PROBE))
    assert m.evaluate(_layouts(X)[layout], Y) == m.evaluate(X, Y)


@pytest.mark.parametrize("layout", ["float64", "fortran", "col-strided", "transposed"])
def test_non_contiguous_training_matches_c_contiguous(layout):
    a, b = model(fitted=False), model(fitted=False)
    a.fit(X, Y, epochs=2, batch_size=8, seed=3, verbose=0)
    b.fit(_layouts(X)[layout], (np.repeat(Y, 2)[::2]).astype(np.int32), epochs=2, batch_size=8, seed=3, verbose=0)
    a.train_step(X[:8], Y[:8])
    b.train_step(_layouts(X[:8])[layout], Y[:8])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_integer_and_bool_inputs_are_accepted():
    m = model()
    xi = np.rint(PROBE * 3).astype(np.int64)
    np.testing.assert_array_equal(m.predict_raw(xi), m.predict_raw(xi.astype(np.float32)))
    mb = model("bce")
    yb = Y_BCE[:, 0].astype(bool)
    assert mb.evaluate(X, yb[:, None]) == mb.evaluate(X, Y_BCE)
