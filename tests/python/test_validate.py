"""The scalar validators of ferronn._validate, and the callers that use them: every
rejected value is a ConfigError naming the argument, huge Python ints included."""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn
from ferronn import _validate as V
from ferronn.__main__ import main as cli_main
from ferronn.errors import ConfigError, ExportError

BIG = 2**70  # past every 64-bit type: int() of it into the core would be a bare OverflowError


# ----------------------------------------------------------------- integers


@pytest.mark.parametrize("value", [0, 7, -3, np.int64(5), np.uint8(200), 2**63 - 1])
def test_integer_accepts_python_and_numpy_integers_and_returns_int(value):
    out = V.integer(value, "n")
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 1.0, 2.5, "3", None, [1], np.float32(1)])
def test_integer_rejects_non_integers(value):
    with pytest.raises(ConfigError, match=r"^n must be an integer, got "):
        V.integer(value, "n")


@pytest.mark.parametrize("low, high, value, phrase", [
    (1, None, 0, "a positive integer"),
    (0, None, -1, "a non-negative integer"),
    (2, None, 1, "an integer >= 2"),
    (None, 5, 6, "an integer <= 5"),
    (17, 21, 22, "an integer from 17 to 21"),
    (17, 21, 16, "an integer from 17 to 21"),
])
def test_integer_bounds_and_their_phrases(low, high, value, phrase):
    with pytest.raises(ConfigError, match=rf"^n must be {phrase}, got {value}$"):
        V.integer(value, "n", low, high)
    assert V.integer(low if low is not None else high, "n", low, high) == (low if low is not None else high)


@pytest.mark.parametrize("value", [2**63, BIG, np.uint64(2**64 - 1)])
def test_integers_past_int64_are_a_config_error_naming_the_argument(value):
    with pytest.raises(ConfigError, match=r"^epochs must be a non-negative integer, at most 2\*\*63 - 1, got "):
        V.non_negative_int(value, "epochs")


def test_integers_below_int64_are_rejected_without_a_lower_bound():
    assert V.integer(-(2**63), "offset") == -(2**63)
    with pytest.raises(ConfigError, match=r"offset must be an integer, at least -2\*\*63"):
        V.integer(-(2**63) - 1, "offset")


def test_an_explicit_high_replaces_the_int64_bound():
    assert V.integer(2**64 - 1, "seed", 0, 2**64 - 1) == 2**64 - 1


def test_expected_replaces_the_phrase_and_error_the_exception():
    with pytest.raises(ConfigError, match=r"^verbose must be 0 \(silent\) or 1 \(progress bar\), got -1$"):
        V.integer(-1, "verbose", 0, expected="0 (silent) or 1 (progress bar)")
    with pytest.raises(ExportError, match=r"^opset must be an integer from 17 to 21, got 99$"):
        V.integer(99, "opset", 17, 21, error=ExportError)


def test_positive_and_non_negative_int_messages_match_the_ones_tests_match():
    with pytest.raises(ConfigError, match=r"^batch_size must be a positive integer, got 0$"):
        V.positive_int(0, "batch_size")
    with pytest.raises(ConfigError, match=r"^Dense units must be a positive integer, got 2.0$"):
        V.positive_int(2.0, "Dense units")
    with pytest.raises(ConfigError, match=r"^epochs must be a non-negative integer, got -1$"):
        V.non_negative_int(-1, "epochs")
    assert V.positive_int(np.int32(3), "k") == 3 and V.non_negative_int(0, "epochs") == 0


def test_is_integer():
    assert V.is_integer(3) and V.is_integer(np.int16(3)) and V.is_integer(BIG)
    assert not any(V.is_integer(v) for v in (True, np.bool_(False), 3.0, "3", None))


def test_seed_range():
    assert V.seed(0) == 0 and V.seed(2**64 - 1) == 2**64 - 1
    for bad in (-1, 2**64, 1.0, True):
        with pytest.raises(ConfigError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
            V.seed(bad)


# ----------------------------------------------------------------- floats and flags


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.25), np.int64(2), -1e300])
def test_finite_float_accepts_numbers_and_returns_float(value):
    out = V.finite_float(value, "rate")
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.1", b"1", None, [0.1], object(), 10**400])
def test_finite_float_rejects_what_is_not_a_number(value):
    with pytest.raises(ConfigError, match=r"^rate must be a number, got "):
        V.finite_float(value, "rate")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -np.inf])
def test_finite_float_rejects_nan_and_infinity(value):
    with pytest.raises(ConfigError, match=r"^rate must be a finite number, got "):
        V.finite_float(value, "rate")


@pytest.mark.parametrize("kwargs, value, message", [
    (dict(low=0.0), -0.5, "rate must be >= 0.0, got -0.5"),
    (dict(low=0.0, low_open=True), 0.0, "rate must be > 0.0, got 0.0"),
    (dict(high=1.0), 1.5, "rate must be <= 1.0, got 1.5"),
    (dict(high=1.0, high_open=True), 1, "rate must be < 1.0, got 1.0"),
])
def test_finite_float_bounds(kwargs, value, message):
    with pytest.raises(ConfigError, match=f"^{message.replace('.', '[.]')}$"):
        V.finite_float(value, "rate", **kwargs)
    assert V.finite_float(0.5, "rate", **kwargs) == 0.5


def test_finite_float_expected_words_every_failure():
    for bad in ("x", float("nan"), 0.0, 1.0):
        with pytest.raises(ConfigError, match=r"^factor must be in \(0, 1\), got "):
            V.finite_float(bad, "factor", 0.0, 1.0, low_open=True, high_open=True, expected="in (0, 1)")


def test_boolean():
    assert V.boolean(True, "shuffle") is True and V.boolean(np.bool_(False), "shuffle") is False
    for bad in (1, 0, "yes", None):
        with pytest.raises(ConfigError, match=r"^shuffle must be True or False, got "):
            V.boolean(bad, "shuffle")


# ----------------------------------------------------------------- the callers


def _compiled() -> fn.Sequential:
    model = fn.Sequential([fn.Dense(2)])
    model.compile(optimizer=fn.optim.SGD(0.1), loss="mse")
    return model


@pytest.mark.parametrize("call, needle", [
    (lambda: fn.set_num_threads(BIG), "num_threads must be at least 1"),
    (lambda: fn.set_num_threads(True), "num_threads must be at least 1"),
    (lambda: fn.schedules.StepDecay(0.1, step_size=BIG), "StepDecay step_size must be a non-negative integer"),
    (lambda: fn.schedules.MultiStep(0.1, milestones=[2, BIG]), r"milestones\[1\] must be a non-negative integer"),
    (lambda: fn.schedules.Constant(10**400), "Constant lr must be a number"),
    (lambda: fn.metrics.top_k_accuracy([0], [[1.0, 0.0]], k=BIG), "k must be a positive integer"),
    (lambda: fn.metrics.confusion_matrix([0], [0], num_classes=BIG), "num_classes must be a positive integer"),
    (lambda: fn.datasets.spirals(n=BIG), "n must be a positive integer"),
    (lambda: fn.datasets.spirals(n=10, noise=True), "noise must be a number"),
    (lambda: fn.datasets.moons(n=10, noise=-0.1), "noise must be >= 0"),
    (lambda: fn.Perceptron(max_epochs=BIG), "max_epochs must be a positive integer"),
    (lambda: fn.Perceptron(lr=0), "lr must be > 0"),
    (lambda: fn.regularizers.l2(float("nan")), "l2 must be a finite number"),
    (lambda: fn.callbacks.EarlyStopping(patience=BIG), "EarlyStopping patience must be a non-negative integer"),
    (lambda: fn.callbacks.LambdaCallback(batch_every=0), "batch_every must be a positive integer"),
    (lambda: fn.callbacks.ReduceLROnPlateau(factor=1.0), r"ReduceLROnPlateau factor must be in \(0, 1\)"),
    (lambda: fn.callbacks.ReduceLROnPlateau(min_lr=-1), "ReduceLROnPlateau min_lr must be >= 0"),
    (lambda: _compiled().build(3, seed=2**64), r"seed must be an integer in \[0, 2\*\*64\)"),
])
def test_callers_reject_with_a_config_error_naming_the_argument(call, needle):
    with pytest.raises(ConfigError, match=needle):
        call()


def test_plot_sizes(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ConfigError, match="ncols must be a positive integer"):
        fn.plot.image_grid(np.zeros((2, 4)), image_shape=(2, 2), ncols=BIG)
    with pytest.raises(ConfigError, match="dpi must be a positive integer"):
        fn.plot.save(fn.plot.activation_gallery("relu"), tmp_path / "unused.png", dpi=0)


def test_cli_rejects_bad_hidden_widths_with_a_message(capsys):
    assert cli_main(["train", "--hidden", "64,x", "--epochs", "1"]) == 2
    assert "--hidden must be comma-separated positive integers" in capsys.readouterr().err
    assert cli_main(["train", "--hidden", "64,0", "--epochs", "1"]) == 2
    assert "--hidden width must be a positive integer, got 0" in capsys.readouterr().err
