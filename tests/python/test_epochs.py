"""The core's named results and the one epoch driver shared by Sequential.fit and ferronn.sklearn."""

from __future__ import annotations

import os
import signal
import warnings

import numpy as np
import pytest

import ferronn as fn
from ferronn import _core
from ferronn.epochs import FIRST_CHUNK, EpochDriver


def _model(seed: int = 0) -> fn.Sequential:
    m = fn.Sequential([fn.Dense(16, activation="relu"), fn.Dense(3)], input_dim=5, seed=seed)
    m.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    return m


def _data(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)


# ----------------------------------------------------------------- named results

def test_train_epoch_returns_a_named_report_whose_stats_add_up():
    m, (x, y) = _model(), _data()
    net = m._require_built("test")
    report = net.train_epoch(x, y, 32, True, 0, 0, start_batch=0, max_batches=3)
    assert isinstance(report, _core.EpochReport) and isinstance(report.stats, _core.LossStats)
    assert report.batches == 3 and report.diverged_at is None
    assert report.stats.samples == 96 and report.stats.counted == 96
    assert 0 <= report.stats.correct <= 96 and report.stats.loss_sum > 0
    rest = net.train_epoch(x, y, 32, True, 0, 0, start_batch=3, trusted=True)
    assert rest.batches == 4 and rest.stats.samples == 200 - 96
    total = report.stats + rest.stats
    assert (total.samples, total.correct) == (200, report.stats.correct + rest.stats.correct)
    assert total.loss_sum == pytest.approx(report.stats.loss_sum + rest.stats.loss_sum, rel=0, abs=0)
    assert total.mean_loss == total.loss_sum / 200 and total.accuracy == total.correct / 200


def test_loss_stats_are_frozen_and_compare_by_value():
    s = _core.LossStats(3.0, 4, 1, 4)
    assert s == _core.LossStats(loss_sum=3.0, samples=4, correct=1, counted=4) and s != _core.LossStats()
    assert _core.LossStats().mean_loss == 0.0 and _core.LossStats().accuracy == 0.0  # empty: no division by zero
    with pytest.raises(AttributeError):
        s.samples = 5  # type: ignore[misc]
    assert "samples=4" in repr(s)


def test_train_step_and_evaluate_return_loss_stats():
    m, (x, y) = _model(), _data()
    net = m._require_built("test")
    step = net.train_step(x[:32], y[:32])
    assert isinstance(step, _core.LossStats) and step.samples == 32
    ev = net.evaluate(x, y)
    assert ev.samples == 200 and m.evaluate(x, y, return_dict=True)["loss"] == pytest.approx(ev.mean_loss)


# ----------------------------------------------------------------- the driver

def test_driver_chunks_give_the_result_of_one_call_per_epoch():
    (x, y), a, b = _data(), _model(), _model()
    net_a, net_b = a._require_built("a"), b._require_built("b")
    driver = EpochDriver(net_a, x, y, batch_size=8, shuffle=True, seed=3, max_chunk=2)
    chunks: list[int] = []
    with driver:
        for epoch in range(2):
            result = driver.run_epoch(epoch, lambda done, stats: chunks.append(done) or True)
            assert result.complete and result.batches == 25 and not result.interrupted
    assert chunks[:3] == [2, 4, 6]  # capped at max_chunk batches per core call
    for epoch in range(2):
        net_b.train_epoch(x, y, 8, True, 3, epoch)
    assert all(np.array_equal(p, q) for (_, p), (_, q) in zip(net_a.params(), net_b.params()))


def test_driver_first_call_checks_data_in_full_later_ones_only_shapes():
    m, (x, y) = _model(), _data()
    seen: list[bool] = []

    class Spy:
        def __init__(self, net):
            self.net = net

        def __getattr__(self, name):
            return getattr(self.net, name)

        def __setattr__(self, name, value):
            if name == "net":
                object.__setattr__(self, name, value)
            else:
                setattr(self.net, name, value)

        def train_epoch(self, *args, trusted, **kwargs):
            seen.append(trusted)
            return self.net.train_epoch(*args, trusted=trusted, **kwargs)

    driver = EpochDriver(Spy(m._require_built("t")), x, y, batch_size=10, shuffle=False, seed=0, max_chunk=FIRST_CHUNK)
    driver.run_epoch(0)
    driver.run_epoch(1)
    assert seen[0] is False and all(seen[1:]) and len(seen) >= 10
    # Data the caller already checked (as fit does) are trusted from the first call.
    seen.clear()
    EpochDriver(Spy(m._require_built("t")), x, y, batch_size=10, shuffle=False, seed=0, checked=True).run_epoch(0)
    assert seen and all(seen)


def test_fit_checks_its_data_once_and_still_rejects_bad_data():
    m, (x, y) = _model(), _data()
    m.fit(x, y, epochs=1, batch_size=20, verbose=0)
    before = m.get_weights()
    bad = x.copy()
    bad[150, 2] = np.nan
    with pytest.raises(fn.NonFiniteError, match="X"):
        m.fit(bad, y, epochs=1, batch_size=20, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_driver_reports_a_refused_step_and_stops_the_epoch_there():
    m, (x, y) = _model(), _data()
    m.compile(optimizer=fn.optim.SGD(1e38), loss="cross_entropy")
    net = m._require_built("t")  # the first update overflows: refused
    before = [p.copy() for _, p in net.params()]
    result = EpochDriver(net, x * 1e3, y, batch_size=16, shuffle=False, seed=0).run_epoch(0)
    assert result.diverged_at == 0 and result.batches == 0 and not result.complete
    assert all(np.array_equal(p, q) for p, (_, q) in zip(before, net.params()))


def test_after_chunk_returning_false_stops_the_epoch():
    m, (x, y) = _model(), _data()
    driver = EpochDriver(m._require_built("t"), x, y, batch_size=10, shuffle=True, seed=0, max_chunk=3)
    result = driver.run_epoch(0, lambda done, stats: False)
    assert result.batches == 3 and not result.complete and not result.interrupted


def test_ctrl_c_ends_the_epoch_at_a_chunk_boundary_and_restores_the_handler():
    m, (x, y) = _model(), _data()
    driver = EpochDriver(m._require_built("t"), x, y, batch_size=10, shuffle=True, seed=0, max_chunk=2)

    pressed_at: list[int] = []

    def press_ctrl_c(done: int, stats: object) -> bool:
        # Chunks are sized by time (2 batches here, 1 after a chunk slower than
        # MAX_CHUNK_SECONDS), so the press goes at the first boundary from batch 3
        # on rather than at a fixed count that a busy machine may step over.
        if done >= 3 and not pressed_at:
            pressed_at.append(done)
            signal.raise_signal(signal.SIGINT)  # to this thread, handled at once
        return True

    with driver:
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        result = driver.run_epoch(0, press_ctrl_c)
    assert result.interrupted and not result.complete
    assert pressed_at and result.batches == pressed_at[0] < driver.steps
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_keyboard_interrupt_inside_the_epoch_ends_it_as_interrupted():
    m, (x, y) = _model(), _data()
    driver = EpochDriver(m._require_built("t"), x, y, batch_size=10, shuffle=True, seed=0, max_chunk=2)

    def raise_it(done: int, stats: object) -> bool:
        raise KeyboardInterrupt

    result = driver.run_epoch(0, raise_it)
    assert result.interrupted and result.batches == 2


def test_fit_and_the_sklearn_estimators_both_train_through_the_driver(monkeypatch):
    pytest.importorskip("sklearn")
    from ferronn.sklearn import MLPClassifier

    calls: list[str] = []
    original = EpochDriver.run_epoch

    def counting(self, epoch, after_chunk=None):
        calls.append("epoch")
        return original(self, epoch, after_chunk)

    monkeypatch.setattr(EpochDriver, "run_epoch", counting)
    (x, y), m = _data(), _model()
    m.fit(x, y, epochs=3, verbose=0)
    assert len(calls) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, random_state=0, n_iter_no_change=100).fit(x, y)
    assert len(calls) == 3 + 4


def test_sklearn_ctrl_c_keeps_the_epochs_done_and_warns_as_scikit_learn(monkeypatch):
    pytest.importorskip("sklearn")
    from ferronn.sklearn import MLPClassifier

    original = EpochDriver.run_epoch

    def interrupt_third(self, epoch, after_chunk=None):
        if epoch == 2:
            signal.raise_signal(signal.SIGINT)  # to this thread, handled at once
        return original(self, epoch, after_chunk)

    monkeypatch.setattr(EpochDriver, "run_epoch", interrupt_third)
    x, y = _data()
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0).fit(x, y)
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2
    assert est.predict(x).shape == (200,)


def test_warnings_point_at_the_users_line():
    m, (x, y) = _model(), _data()
    m.compile(optimizer=fn.optim.SGD(1e38), loss="cross_entropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(x * 1e3, y, epochs=1, verbose=0)
    mine = [w for w in caught if "non-finite" in str(w.message)]
    assert mine and os.path.abspath(mine[0].filename) == os.path.abspath(__file__)
