"""Schedules as the optimizer's rate: set inside the Rust step, logged, saved."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ferronn as fn

S = fn.schedules


def _model(opt, seed=0):
    model = fn.Sequential([fn.Dense(8, activation="tanh"), fn.Dense(2)])
    model.compile(optimizer=opt, loss="cross_entropy")
    model.build(4, seed=seed)
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_a_per_step_schedule_sets_the_rate_of_every_batch():
    sched = S.CosineAnnealing(0.1, T_max=20, eta_min=0.0, per="step")
    model = _model(fn.optim.SGD(sched))
    x, y = _data()
    for step in range(7):
        assert model._net.current_lr == pytest.approx(0.05 * (1 + math.cos(math.pi * step / 20)), rel=1e-6)
        model.train_step(x[:16], y[:16])
    assert model._net.optimizer_steps == 7


def test_the_scheduled_rate_is_the_one_applied():
    """SGD with a step schedule moves the weights exactly as SGD at that constant rate."""
    x, y = _data()
    sched = _model(fn.optim.SGD(S.StepDecay(0.5, step_size=2, gamma=0.1, per="step")))
    plain = _model(fn.optim.SGD(0.5))
    for step in range(4):
        if step == 2:
            plain._net.lr = 0.05
        sched.train_step(x, y)
        plain.train_step(x, y)
        for a, b in zip(sched.get_weights(), plain.get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_per_epoch_schedules_follow_fit_epochs_and_history_logs_the_rate():
    x, y = _data()
    model = _model(fn.optim.Adam(S.Exponential(1e-2, gamma=0.5)))
    hist = model.fit(x, y, epochs=4, batch_size=16, seed=0, verbose=0)
    # logged at the end of each epoch: the rate of the epoch just trained
    np.testing.assert_allclose(hist.history["lr"], [1e-2 * 0.5 ** e for e in range(4)], rtol=1e-6)


def test_schedule_and_lr_scale_survive_save_and_load(tmp_path):
    x, y = _data()
    model = _model(fn.optim.Adam(S.OneCycle(0.05, total_steps=40)))
    model.fit(x, y, epochs=2, batch_size=16, seed=0, verbose=0)
    model._net.lr_scale = 0.5
    model.save(tmp_path / "m.safetensors")
    back = fn.load(tmp_path / "m.safetensors")
    assert isinstance(back.optimizer.schedule, S.OneCycle)
    assert back._net.lr_scale == 0.5 and back._net.current_lr == model._net.current_lr
    h1 = model.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0)
    h2 = back.fit(x, y, epochs=2, batch_size=16, seed=1, verbose=0)
    assert h1.history == h2.history


def test_a_bad_rate_is_a_config_error():
    with pytest.raises(fn.ConfigError):
        fn.optim.Adam("fast")
