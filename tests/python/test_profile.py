"""The core's opt-in profile through Python (`_core.profile_enable` / `profile_take`), as
benches/profile_step.py reads it: a fit's products by shape and its steps' phases."""

import numpy as np

import ferronn as fn
from ferronn import _core


def _model() -> fn.Sequential:
    model = fn.Sequential([fn.Dense(32, activation="relu"), fn.Dense(3)], input_dim=20, seed=0)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    return model


def test_a_fit_is_profiled_by_product_shape_and_phase_only_while_on():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 20), dtype=np.float32)
    y = rng.integers(0, 3, 100)
    model = _model()
    model.fit(X, y, epochs=1, batch_size=24, verbose=0)
    try:
        _core.profile_enable(True)
        model.fit(X, y, epochs=2, batch_size=24, verbose=0)
        products, phases = _core.profile_take()
    finally:
        _core.profile_enable(False)
    calls = {}
    for m, n, k, threads, count, wall_ns, busy_ns in products:
        assert threads >= 1 and wall_ns > 0 and busy_ns > 0
        calls[(m, n, k)] = calls.get((m, n, k), 0) + count
    # Two epochs of 100 samples in batches of 24: 4 full batches and one of 4 each.
    assert calls[(24, 32, 20)] == 8 and calls[(4, 32, 20)] == 2  # first layer forward
    assert calls[(20, 32, 24)] == 8  # its weight gradient
    assert calls[(24, 32, 3)] == 8  # the second layer's input gradient
    assert (24, 20, 32) not in calls  # no input gradient for the first layer
    assert [name for name, _, _ in phases] == ["gather", "forward", "loss", "backward", "update"]
    assert all(count == 10 and ns > 0 for _, count, ns in phases)

    # Off: a fit records nothing.
    model.fit(X, y, epochs=1, batch_size=24, verbose=0)
    products, phases = _core.profile_take()
    assert products == [] and all(count == 0 for _, count, _ in phases)
