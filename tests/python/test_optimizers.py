"""SGD, Adam and AdamW against float64 references of PyTorch's update rules.

A single identity Dense layer (6 -> 3) with the mse loss is trained for a few
steps, each on a fresh batch; after every step ferronn's weights must equal
those of the float64 reference (reference.py) that started from the same
weights and saw the same batches.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import ferronn as fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

IN, OUT, BATCH, STEPS = 6, 3, 8, 5
TOL = 1e-5

CASES = {
    "sgd": (dict(lr=0.1), ref.SGD, fn.optim.SGD),
    "sgd_momentum": (dict(lr=0.05, momentum=0.9), ref.SGD, fn.optim.SGD),
    "sgd_momentum_dampening": (dict(lr=0.05, momentum=0.9, dampening=0.5), ref.SGD, fn.optim.SGD),
    "sgd_nesterov": (dict(lr=0.05, momentum=0.9, nesterov=True), ref.SGD, fn.optim.SGD),
    "sgd_weight_decay": (dict(lr=0.1, weight_decay=1e-2), ref.SGD, fn.optim.SGD),
    "sgd_all": (dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1), ref.SGD, fn.optim.SGD),
    "adam": (dict(lr=1e-3), ref.Adam, fn.optim.Adam),
    "adam_lr": (dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6), ref.Adam, fn.optim.Adam),
    "adam_weight_decay": (dict(lr=0.01, weight_decay=0.1), ref.Adam, fn.optim.Adam),
    "adamw": (dict(lr=1e-3), ref.AdamW, fn.optim.AdamW),
    "adamw_strong": (dict(lr=0.05, weight_decay=0.5), ref.AdamW, fn.optim.AdamW),
    "adamw_no_decay": (dict(lr=0.01, weight_decay=0.0), ref.AdamW, fn.optim.AdamW),
}


def _model(opt, seed=0):
    model = fn.Sequential([fn.Dense(OUT)])
    model.compile(optimizer=opt, loss="mse")
    model.build(IN, seed=0)
    rng = np.random.default_rng(seed)
    w0 = [rng.normal(0, 0.5, (IN, OUT)).astype(np.float32), rng.normal(0, 0.2, OUT).astype(np.float32)]
    model.set_weights(w0)
    return model, [w.astype(np.float64) for w in w0]


def _batches(seed=0, steps=STEPS, batch=BATCH):
    rng = np.random.default_rng(seed + 1)
    true_w = rng.normal(size=(IN, OUT))
    for _ in range(steps):
        x = rng.normal(size=(batch, IN)).astype(np.float32)
        t = (x @ true_w + 0.3 * rng.normal(size=(batch, OUT))).astype(np.float32)
        yield x, t


def _run(case, seed=0):
    """Trains ferronn and the reference side by side; returns the max relative weight error seen."""
    kwargs, ref_cls, fn_cls = CASES[case]
    model, params = _model(fn_cls(**kwargs), seed)
    opt = ref_cls(**kwargs)
    worst = 0.0
    for step, (x, t) in enumerate(_batches(seed)):
        x64, t64 = x.astype(np.float64), t.astype(np.float64)
        w, b = params
        loss = model.train_step(x, t)
        ref_loss = float(np.mean((x64 @ w + b - t64) ** 2))
        assert abs(loss - ref_loss) <= 1e-5 * ref_loss + 1e-7, (case, step, loss, ref_loss)
        opt.step(params, list(ref.linear_mse_grad(x64, t64, w, b)))
        got = model.get_weights()
        for name, g, want in zip(("W", "b"), got, params):
            err = ref.rel_err(g, want)
            worst = max(worst, err)
            assert err <= TOL, f"{case} step {step + 1} {name}: rel err {err:.2e}"
            # elementwise too, with an absolute term scaled to the weights' magnitude
            np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(want).max()),
                                       err_msg=f"{case} step {step + 1} {name}")
    return worst


@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference_update_rule(case):
    _run(case)


@pytest.mark.parametrize("case", ["sgd_momentum", "adam", "adamw_strong"])
@pytest.mark.parametrize("seed", [1, 2])
def test_matches_reference_other_seeds(case, seed):
    _run(case, seed)


@pytest.mark.parametrize("case", list(CASES))
def test_weights_actually_move(case):
    """Guards the comparison above: every configuration changes the weights at every step."""
    kwargs, _, fn_cls = CASES[case]
    model, _ = _model(fn_cls(**kwargs))
    prev = model.get_weights()
    for x, t in _batches():
        model.train_step(x, t)
        cur = model.get_weights()
        assert ref.rel_err(cur[0], prev[0]) > 1e-6, case
        prev = cur


def test_rules_differ_from_each_other():
    """Momentum, dampening, nesterov and decoupling each change the trajectory (so each is really exercised)."""
    def final(case):
        kwargs, _, fn_cls = CASES[case]
        model, _ = _model(fn_cls(**kwargs))
        for x, t in _batches():
            model.train_step(x, t)
        return model.get_weights()[0]

    pairs = [("sgd_momentum", "sgd_momentum_dampening"), ("sgd_momentum", "sgd_nesterov")]
    for a, b in pairs:
        assert ref.rel_err(final(a), final(b)) > 1e-3, (a, b)
    # Adam's L2 and AdamW's decoupled decay differ for the same weight_decay
    adam = fn.optim.Adam(lr=0.05, weight_decay=0.5)
    adamw = fn.optim.AdamW(lr=0.05, weight_decay=0.5)
    ws = []
    for opt in (adam, adamw):
        model, _ = _model(opt)
        for x, t in _batches():
            model.train_step(x, t)
        ws.append(model.get_weights()[0])
    assert ref.rel_err(ws[0], ws[1]) > 1e-3


def test_sgd_first_momentum_step_is_plain_sgd():
    """PyTorch initialises the momentum buffer with the first gradient (no dampening on step one)."""
    x, t = next(_batches())
    plain, _ = _model(fn.optim.SGD(lr=0.1))
    damped, _ = _model(fn.optim.SGD(lr=0.1, momentum=0.9, dampening=0.5))
    plain.train_step(x, t)
    damped.train_step(x, t)
    for a, b in zip(plain.get_weights(), damped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_adam_lr_zero_keeps_weights():
    model, params = _model(fn.optim.Adam(lr=0.0))
    for x, t in _batches():
        model.train_step(x, t)
    for g, w in zip(model.get_weights(), params):
        np.testing.assert_array_equal(g, w.astype(np.float32))


def test_longer_adam_run_tracks_reference():
    kwargs = dict(lr=0.02, weight_decay=0.05)
    model, params = _model(fn.optim.AdamW(**kwargs), seed=5)
    opt = ref.AdamW(**kwargs)
    for x, t in _batches(seed=5, steps=40, batch=16):
        model.train_step(x, t)
        opt.step(params, list(ref.linear_mse_grad(x, t, *params)))
    for g, w in zip(model.get_weights(), params):
        assert ref.rel_err(g, w) <= 1e-4


# -- defaults and validation ------------------------------------------------


def test_defaults_are_pytorchs():
    sgd = fn.optim.SGD()
    assert sgd.lr == pytest.approx(1e-3)
    assert (sgd.momentum, sgd.dampening, sgd.nesterov, sgd.weight_decay) == (0.0, 0.0, False, 0.0)
    adam = fn.optim.Adam()
    assert adam.lr == pytest.approx(1e-3)
    assert adam.betas == (0.9, 0.999)
    assert adam.eps == 1e-8
    assert adam.weight_decay == 0.0
    adamw = fn.optim.AdamW()
    assert adamw.lr == pytest.approx(1e-3)
    assert adamw.betas == (0.9, 0.999) and adamw.eps == 1e-8
    assert adamw.weight_decay == 0.01
    assert isinstance(fn.optim.get("adamw"), fn.optim.AdamW)
    assert fn.optim.get("adam").config()["beta2"] == 0.999


def test_default_adamw_by_name_matches_reference():
    """optimizer="adamw" uses the defaults above in the core as well."""
    model = fn.Sequential([fn.Dense(OUT)])
    model.compile(optimizer="adamw", loss="mse")
    model.build(IN, seed=0)
    rng = np.random.default_rng(0)
    w0 = [rng.normal(0, 0.5, (IN, OUT)).astype(np.float32), rng.normal(0, 0.2, OUT).astype(np.float32)]
    model.set_weights(w0)
    params = [w.astype(np.float64) for w in w0]
    opt = ref.AdamW()
    for x, t in _batches():
        model.train_step(x, t)
        opt.step(params, list(ref.linear_mse_grad(x, t, *params)))
        for g, w in zip(model.get_weights(), params):
            assert ref.rel_err(g, w) <= TOL


BAD = [
    ("negative lr", fn.optim.SGD(lr=-0.1)),
    ("negative lr adam", fn.optim.Adam(lr=-1e-3)),
    ("nan lr", fn.optim.SGD(lr=float("nan"))),
    ("beta1 = 1", fn.optim.Adam(betas=(1.0, 0.999))),
    ("beta2 = 1", fn.optim.AdamW(betas=(0.9, 1.0))),
    ("negative beta", fn.optim.Adam(betas=(-0.1, 0.999))),
    ("eps = 0", fn.optim.Adam(eps=0.0)),
    ("nesterov without momentum", fn.optim.SGD(lr=0.1, nesterov=True)),
    ("nesterov with dampening", fn.optim.SGD(lr=0.1, momentum=0.9, dampening=0.5, nesterov=True)),
    ("negative momentum", fn.optim.SGD(momentum=-0.5)),
    ("negative weight decay", fn.optim.AdamW(weight_decay=-0.01)),
    ("negative weight decay sgd", fn.optim.SGD(weight_decay=-1.0)),
]


@pytest.mark.parametrize("opt", [o for _, o in BAD], ids=[n for n, _ in BAD])
def test_bad_hyperparameters_raise_config_error(opt):
    model = fn.Sequential([fn.Dense(OUT)])
    with pytest.raises(fn.ConfigError):
        model.compile(optimizer=opt, loss="mse")
        model.build(IN, seed=0)
    # with input_dim known up front, compile() builds and must raise at once
    with pytest.raises(fn.ConfigError):
        fn.Sequential([fn.Dense(OUT)], input_dim=IN).compile(optimizer=opt, loss="mse")


@pytest.mark.parametrize("opt", [fn.optim.SGD(lr=0.0), fn.optim.Adam(betas=(0.0, 0.0)),
                                 fn.optim.SGD(momentum=0.9, dampening=1.0)])
def test_edge_hyperparameters_are_accepted(opt):
    model = fn.Sequential([fn.Dense(OUT)])
    model.compile(optimizer=opt, loss="mse")
    model.build(IN, seed=0)
    x, t = next(_batches())
    assert np.isfinite(model.train_step(x, t))
