"""SGD, Adam and AdamW against float64 references of PyTorch's update rules.

A single identity Dense layer (6 -> 3) with the mse loss is trained for a few
steps, each on a fresh batch; after every step ferronn's weights must equal
those of the float64 reference (reference.py) that started from the same
weights and saw the same batches.
"""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import reference as ref

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
        worst = max(worst, _assert_weights(model, params, f"{case} step {step + 1}"))
    return worst


def _assert_weights(model, params, where: str) -> float:
    """Checks the model's (W, b) against the float64 reference ``params`` (relative error
    and elementwise, with an absolute term scaled to the weights' magnitude); returns the
    worst relative error."""
    worst = 0.0
    for name, g, want in zip(("W", "b"), model.get_weights(), params):
        err = ref.rel_err(g, want)
        worst = max(worst, err)
        assert err <= TOL, f"{where} {name}: rel err {err:.2e}"
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(want).max()),
                                   err_msg=f"{where} {name}")
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


def _by_name_matches(name: str, opt) -> None:
    """A model compiled with ``optimizer=name`` follows the float64 reference ``opt``
    (the core uses the same defaults as the Python class)."""
    model = fn.Sequential([fn.Dense(OUT)])
    model.compile(optimizer=name, loss="mse")
    model.build(IN, seed=0)
    rng = np.random.default_rng(0)
    w0 = [rng.normal(0, 0.5, (IN, OUT)).astype(np.float32), rng.normal(0, 0.2, OUT).astype(np.float32)]
    model.set_weights(w0)
    params = [w.astype(np.float64) for w in w0]
    for x, t in _batches():
        model.train_step(x, t)
        opt.step(params, list(ref.linear_mse_grad(x, t, *params)))
        for g, w in zip(model.get_weights(), params):
            assert ref.rel_err(g, w) <= TOL


def test_default_adamw_by_name_matches_reference():
    """optimizer="adamw" uses the defaults above in the core as well."""
    _by_name_matches("adamw", ref.AdamW())


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


# -- training control: RMSprop, Adagrad, AMSGrad, clipping, weight-decay exclusion --
#
# References: the Controlled*/RMSprop/Adagrad classes of reference.py, which clip
# the float64 gradients and skip weight decay on excluded tensors by name.

NAMES = ["layers.0.weight", "layers.0.bias"]

CONTROL_CASES = {
    "rmsprop": (dict(lr=0.01), ref.RMSprop, fn.optim.RMSprop),
    "rmsprop_defaults": (dict(), ref.RMSprop, fn.optim.RMSprop),
    "rmsprop_momentum": (dict(lr=0.005, momentum=0.9), ref.RMSprop, fn.optim.RMSprop),
    "rmsprop_centered": (dict(lr=0.01, alpha=0.9, centered=True), ref.RMSprop, fn.optim.RMSprop),
    "rmsprop_centered_momentum": (dict(lr=0.005, alpha=0.9, momentum=0.8, centered=True), ref.RMSprop,
                                  fn.optim.RMSprop),
    "rmsprop_weight_decay": (dict(lr=0.01, weight_decay=0.1), ref.RMSprop, fn.optim.RMSprop),
    "adagrad": (dict(lr=0.1), ref.Adagrad, fn.optim.Adagrad),
    "adagrad_lr_decay": (dict(lr=0.1, lr_decay=0.5), ref.Adagrad, fn.optim.Adagrad),
    "adagrad_weight_decay": (dict(lr=0.1, weight_decay=0.2), ref.Adagrad, fn.optim.Adagrad),
    "adagrad_accumulator": (dict(lr=0.1, initial_accumulator_value=0.4), ref.Adagrad, fn.optim.Adagrad),
    "adagrad_all": (dict(lr=0.1, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.3), ref.Adagrad,
                    fn.optim.Adagrad),
    # a short second-moment memory, so exp_avg_sq falls below its running maximum
    "adam_amsgrad": (dict(lr=0.05, betas=(0.9, 0.5), amsgrad=True), ref.ControlledAdam, fn.optim.Adam),
    "adam_amsgrad_weight_decay": (dict(lr=0.05, betas=(0.9, 0.6), weight_decay=0.1, amsgrad=True),
                                  ref.ControlledAdam, fn.optim.Adam),
    "adamw_amsgrad": (dict(lr=0.05, betas=(0.8, 0.7), weight_decay=0.3, amsgrad=True), ref.ControlledAdamW,
                      fn.optim.AdamW),
    "sgd_clipvalue": (dict(lr=0.1, clipvalue=0.5), ref.ControlledSGD, fn.optim.SGD),
    # W's gradient norm is always above 1, b's sometimes below: clipped per tensor
    "sgd_clipnorm": (dict(lr=0.1, momentum=0.9, clipnorm=1.0), ref.ControlledSGD, fn.optim.SGD),
    "adam_clipnorm": (dict(lr=0.05, clipnorm=0.8), ref.ControlledAdam, fn.optim.Adam),
    "sgd_global_clipnorm": (dict(lr=0.1, global_clipnorm=2.0), ref.ControlledSGD, fn.optim.SGD),
    "adamw_global_clipnorm": (dict(lr=0.05, global_clipnorm=1.0), ref.ControlledAdamW, fn.optim.AdamW),
    "rmsprop_all_clipping": (dict(lr=0.01, momentum=0.5, clipvalue=0.9, clipnorm=1.5, global_clipnorm=1.2),
                             ref.RMSprop, fn.optim.RMSprop),
    "adagrad_clip_value_and_global": (dict(lr=0.1, clipvalue=0.4, global_clipnorm=1.0), ref.Adagrad,
                                      fn.optim.Adagrad),
    "sgd_exclude_bias": (dict(lr=0.1, momentum=0.9, weight_decay=0.5, exclude_from_weight_decay=["bias"]),
                         ref.ControlledSGD, fn.optim.SGD),
    "adam_exclude_weight": (dict(lr=0.05, weight_decay=0.5, exclude_from_weight_decay=["weight"]),
                            ref.ControlledAdam, fn.optim.Adam),
    "adamw_decay_bias_and_norm": (dict(lr=0.05, weight_decay=0.5, decay_bias_and_norm=False),
                                  ref.ControlledAdamW, fn.optim.AdamW),
    "rmsprop_exclude": (dict(lr=0.01, weight_decay=0.3, exclude_from_weight_decay=["layers.0.b"]),
                        ref.RMSprop, fn.optim.RMSprop),
    "adagrad_exclude_clipnorm": (dict(lr=0.1, weight_decay=0.3, clipnorm=1.0, exclude_from_weight_decay=["bias"]),
                                 ref.Adagrad, fn.optim.Adagrad),
}


def _run_control(case, seed=0):
    """As _run, for CONTROL_CASES (the reference needs the tensor names)."""
    kwargs, ref_cls, fn_cls = CONTROL_CASES[case]
    model, params = _model(fn_cls(**kwargs), seed)
    opt = ref_cls(names=NAMES, **kwargs)
    for step, (x, t) in enumerate(_batches(seed)):
        x64, t64 = x.astype(np.float64), t.astype(np.float64)
        loss = model.train_step(x, t)
        ref_loss = float(np.mean((x64 @ params[0] + params[1] - t64) ** 2))
        assert abs(loss - ref_loss) <= 1e-5 * ref_loss + 1e-7, (case, step, loss, ref_loss)
        opt.step(params, list(ref.linear_mse_grad(x64, t64, *params)))
        _assert_weights(model, params, f"{case} step {step + 1}")
    return model


@pytest.mark.parametrize("case", list(CONTROL_CASES))
def test_control_matches_reference(case):
    _run_control(case)


@pytest.mark.parametrize("case", ["rmsprop_centered_momentum", "adagrad_all", "adamw_amsgrad", "sgd_clipnorm",
                                  "rmsprop_all_clipping", "adamw_decay_bias_and_norm"])
@pytest.mark.parametrize("seed", [1, 2])
def test_control_matches_reference_other_seeds(case, seed):
    _run_control(case, seed)


def _final(opt, seed=0):
    model, _ = _model(opt, seed)
    for x, t in _batches(seed):
        model.train_step(x, t)
    return model.get_weights()


@pytest.mark.parametrize("case", list(CONTROL_CASES))
def test_control_options_are_exercised(case):
    """Each case's distinguishing option really changes the trajectory (so the comparison above tests it)."""
    kwargs, _, fn_cls = CONTROL_CASES[case]
    variants = []
    for key in ("clipvalue", "clipnorm", "global_clipnorm", "exclude_from_weight_decay", "decay_bias_and_norm",
                "amsgrad", "momentum", "centered", "lr_decay", "initial_accumulator_value", "weight_decay"):
        if key in kwargs:
            variants.append((key, {k: v for k, v in kwargs.items() if k != key}))
    with_all = _final(fn_cls(**kwargs))
    for key, without in variants:
        other = _final(fn_cls(**without))
        diff = max(ref.rel_err(a, b) for a, b in zip(with_all, other))
        assert diff > 1e-5, f"{case}: {key} changes nothing"


def test_clipnorm_is_per_tensor_not_global():
    """Keras' clipnorm rescales W's and b's gradients separately: not one norm over both."""
    per_tensor = _final(fn.optim.SGD(lr=0.1, clipnorm=1.0))
    _, params = _model(fn.optim.SGD(lr=0.1))
    one_norm = ref.ControlledSGD(lr=0.1, global_clipnorm=1.0)
    for x, t in _batches():
        one_norm.step(params, list(ref.linear_mse_grad(x, t, *params)))
    assert ref.rel_err(per_tensor[1], params[1]) > 1e-3


def _deep_model(opt):
    model = fn.Sequential([fn.Dense(5, activation="tanh"), fn.LayerNorm(), fn.PReLU(), fn.Dense(3)])
    model.compile(optimizer=opt, loss="mse")
    model.build(IN, seed=0)
    rng = np.random.default_rng(3)
    # move gamma/beta/alpha off their initial constants so every tensor is generic
    model.set_weights([(w + rng.normal(0, 0.3, w.shape)).astype(np.float32) for w in model.get_weights()])
    return model


DEEP_CASES = [
    (fn.optim.AdamW, ref.ControlledAdamW, dict(lr=0.02, weight_decay=0.5, decay_bias_and_norm=False)),
    (fn.optim.SGD, ref.ControlledSGD, dict(lr=0.05, momentum=0.9, weight_decay=0.3,
                                           exclude_from_weight_decay=["bias", "gamma", "alpha"])),
    (fn.optim.Adam, ref.ControlledAdam, dict(lr=0.02, weight_decay=0.2, amsgrad=True,
                                             exclude_from_weight_decay=["layers.3"], clipnorm=0.3)),
    (fn.optim.RMSprop, ref.RMSprop, dict(lr=0.005, weight_decay=0.2, centered=True, momentum=0.5,
                                         decay_bias_and_norm=False, global_clipnorm=0.5)),
    (fn.optim.Adagrad, ref.Adagrad, dict(lr=0.05, weight_decay=0.2, lr_decay=0.1, clipvalue=0.05,
                                         exclude_from_weight_decay=["beta", "weight"])),
]


@pytest.mark.parametrize("opt_cls, ref_cls, kwargs", DEEP_CASES, ids=[c[0].__name__ for c in DEEP_CASES])
def test_exclusion_and_clipnorm_by_name_in_a_deeper_model(opt_cls, ref_cls, kwargs):
    """Seven named tensors (Dense, LayerNorm, PReLU, Dense): the reference, fed the model's own
    gradients (``_net.grads()``), decays and clips each tensor by its name and must match throughout."""
    model = _deep_model(opt_cls(**kwargs))
    names = [n for n, _ in model._net.grads()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.gamma", "layers.1.beta", "layers.2.alpha",
                     "layers.3.weight", "layers.3.bias"]
    params = [w.astype(np.float64) for w in model.get_weights()]
    opt = ref_cls(names=names, **kwargs)
    for step, (x, t) in enumerate(_batches(seed=4)):
        model.train_step(x, t)
        opt.step(params, [g.astype(np.float64) for _, g in model._net.grads()])
        for name, got, want in zip(names, model.get_weights(), params):
            err = ref.rel_err(got, want)
            assert err <= TOL, f"{opt_cls.__name__} step {step + 1} {name}: rel err {err:.2e}"
    # the exclusion matters here: without it the run ends elsewhere
    without = {k: v for k, v in kwargs.items() if k not in ("exclude_from_weight_decay", "decay_bias_and_norm")}
    other = _deep_model(opt_cls(**without))
    for x, t in _batches(seed=4):
        other.train_step(x, t)
    assert max(ref.rel_err(a, b) for a, b in zip(model.get_weights(), other.get_weights())) > 1e-5


def test_weight_decay_exclusion_only_spares_named_tensors():
    """With zero gradients (lr=0 in the loss sense: targets equal outputs), only the decay moves weights."""
    model = fn.Sequential([fn.Dense(4), fn.LayerNorm(), fn.Dense(2)])
    model.compile(optimizer=fn.optim.AdamW(lr=0.1, weight_decay=0.5, decay_bias_and_norm=False), loss="mse")
    model.build(3, seed=0)
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    before = model.get_weights()
    model.train_step(x, model.predict(x))  # zero loss, zero gradients: AdamW only shrinks
    after = model.get_weights()
    names = [n for n, _ in model._net.grads()]
    for name, b, a in zip(names, before, after):
        if any(s in name for s in ("bias", "gamma", "beta")):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b * np.float32(1 - 0.1 * 0.5), rtol=1e-6, err_msg=name)


def test_global_clipnorm_thread_count_independent():
    """Norms are summed in a fixed order: 1 and 2 threads give the same bits on a large model."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 300)).astype(np.float32)
    t = rng.normal(size=(64, 200)).astype(np.float32)
    old = fn.threads.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fn.threads.set_num_threads(threads)
            for opt in (fn.optim.Adam(1e-2, global_clipnorm=0.5),
                        fn.optim.SGD(0.1, momentum=0.9, clipnorm=0.1, clipvalue=1e-3, global_clipnorm=0.05),
                        fn.optim.RMSprop(1e-3, centered=True, global_clipnorm=0.5, decay_bias_and_norm=False,
                                         weight_decay=0.1)):
                model = fn.Sequential([fn.Dense(256, activation="relu"), fn.Dense(200)])  # > 100k parameters
                model.compile(optimizer=opt, loss="mse")
                model.build(300, seed=1)
                for _ in range(3):
                    model.train_step(x, t)
                results.append(model.get_weights())
    finally:
        fn.threads.set_num_threads(old)
    per = len(results) // 2
    for a, b in zip(results[:per], results[per:]):
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("opt", [
    lambda: fn.optim.RMSprop(0.01, momentum=0.9, centered=True, weight_decay=0.01, clipnorm=1.0),
    lambda: fn.optim.RMSprop(0.01),
    lambda: fn.optim.Adagrad(0.05, lr_decay=0.01, initial_accumulator_value=0.1, global_clipnorm=1.0),
    lambda: fn.optim.AdamW(0.01, amsgrad=True, decay_bias_and_norm=False, clipvalue=0.5),
    lambda: fn.optim.Adam(0.01, amsgrad=True),
], ids=["rmsprop-all", "rmsprop", "adagrad", "adamw-amsgrad", "adam-amsgrad"])
def test_save_load_continues_identically(tmp_path, opt):
    model = fn.Sequential([fn.Dense(5, activation="tanh"), fn.LayerNorm(), fn.Dense(OUT)])
    model.compile(optimizer=opt(), loss="mse")
    model.build(IN, seed=0)
    batches = list(_batches(seed=2, steps=6))
    for x, t in batches[:3]:
        model.train_step(x, t)
    model.save(tmp_path / "m.fnn")
    loaded = fn.load(tmp_path / "m.fnn")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.config() == model.optimizer.config()
    assert loaded._net.optimizer_steps == 3
    for x, t in batches[3:]:
        assert loaded.train_step(x, t) == model.train_step(x, t)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- configs, defaults and validation of the new options ------------------------


def test_new_defaults_are_pytorchs():
    r = fn.optim.RMSprop()
    assert (r.lr, r.alpha, r.eps, r.weight_decay, r.momentum, r.centered) == (1e-2, 0.99, 1e-8, 0.0, 0.0, False)
    a = fn.optim.Adagrad()
    assert (a.lr, a.lr_decay, a.weight_decay, a.initial_accumulator_value, a.eps) == (1e-2, 0.0, 0.0, 0.0, 1e-10)
    assert fn.optim.Adam().amsgrad is False and fn.optim.AdamW().amsgrad is False
    for cls in (fn.optim.SGD, fn.optim.Adam, fn.optim.AdamW, fn.optim.RMSprop, fn.optim.Adagrad):
        o = cls()
        assert (o.clipnorm, o.clipvalue, o.global_clipnorm, o.exclude_from_weight_decay) == (None, None, None, [])
    assert isinstance(fn.optim.get("rmsprop"), fn.optim.RMSprop)
    assert isinstance(fn.optim.get("Adagrad"), fn.optim.Adagrad)


@pytest.mark.parametrize("name", ["rmsprop", "adagrad"])
def test_new_optimizers_by_name_match_reference(name):
    """optimizer="rmsprop"/"adagrad" use PyTorch's defaults in the core as well."""
    _by_name_matches(name, {"rmsprop": ref.RMSprop, "adagrad": ref.Adagrad}[name]())


ROUND_TRIP = [
    fn.optim.SGD(0.1, momentum=0.9, clipnorm=1.0, exclude_from_weight_decay=["bias"]),
    fn.optim.Adam(amsgrad=True, clipvalue=0.5, global_clipnorm=2.0),
    fn.optim.AdamW(3e-4, weight_decay=0.05, amsgrad=True, decay_bias_and_norm=False),
    fn.optim.RMSprop(0.001, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.5, centered=True, clipnorm=0.5,
                     clipvalue=1.0, global_clipnorm=3.0, exclude_from_weight_decay=("gamma", "beta")),
    fn.optim.Adagrad(0.05, lr_decay=0.01, weight_decay=0.02, initial_accumulator_value=0.1, eps=1e-8),
    fn.optim.RMSprop(),
    fn.optim.Adagrad(),
]


@pytest.mark.parametrize("opt", ROUND_TRIP, ids=lambda o: repr(o)[:40])
def test_from_config_round_trips(opt, tmp_path):
    back = fn.optim.from_config(opt.config())
    assert type(back) is type(opt) and back.config() == opt.config()
    # ...and through the core's JSON (a saved model), where unset options are left out
    model = fn.Sequential([fn.Dense(OUT)])
    model.compile(optimizer=opt, loss="mse")
    model.build(IN, seed=0)
    model.save(tmp_path / "m.fnn")
    loaded = fn.load(tmp_path / "m.fnn")
    assert type(loaded.optimizer) is type(opt) and loaded.optimizer.config() == opt.config()


def test_decay_bias_and_norm_shorthand():
    a = fn.optim.AdamW(decay_bias_and_norm=False)
    assert a.exclude_from_weight_decay == ["bias", "gamma", "beta"]
    assert a.config()["exclude_from_weight_decay"] == ["bias", "gamma", "beta"]
    b = fn.optim.SGD(exclude_from_weight_decay=["alpha", "bias"], decay_bias_and_norm=False)
    assert b.exclude_from_weight_decay == ["alpha", "bias", "gamma", "beta"]
    assert fn.optim.AdamW(exclude_from_weight_decay="bias").exclude_from_weight_decay == ["bias"]
    assert "exclude_from_weight_decay" not in fn.optim.AdamW().config()
    assert "clipnorm" not in fn.optim.AdamW().config()
    assert "amsgrad" not in fn.optim.Adam().config() and fn.optim.Adam(amsgrad=True).config()["amsgrad"] is True
    assert "global_clipnorm=1.0" in repr(fn.optim.SGD(global_clipnorm=1))


NEW_BAD = [
    ("negative clipnorm", lambda: fn.optim.Adam(clipnorm=-1.0), "clipnorm"),
    ("zero clipvalue", lambda: fn.optim.SGD(clipvalue=0.0), "clipvalue"),
    ("negative global_clipnorm", lambda: fn.optim.AdamW(global_clipnorm=-0.5), "global_clipnorm"),
    ("nan clipnorm", lambda: fn.optim.RMSprop(clipnorm=float("nan")), "clipnorm"),
    ("inf clipvalue", lambda: fn.optim.Adagrad(clipvalue=float("inf")), "clipvalue"),
    ("rmsprop negative lr", lambda: fn.optim.RMSprop(lr=-0.01), "lr"),
    ("rmsprop alpha > 1", lambda: fn.optim.RMSprop(alpha=1.5), "alpha"),
    ("rmsprop negative alpha", lambda: fn.optim.RMSprop(alpha=-0.1), "alpha"),
    ("rmsprop eps = 0", lambda: fn.optim.RMSprop(eps=0.0), "eps"),
    ("rmsprop negative momentum", lambda: fn.optim.RMSprop(momentum=-0.9), "momentum"),
    ("rmsprop negative weight decay", lambda: fn.optim.RMSprop(weight_decay=-0.1), "weight_decay"),
    ("adagrad negative lr", lambda: fn.optim.Adagrad(lr=-0.01), "lr"),
    ("adagrad negative lr_decay", lambda: fn.optim.Adagrad(lr_decay=-0.1), "lr_decay"),
    ("adagrad negative accumulator", lambda: fn.optim.Adagrad(initial_accumulator_value=-1.0),
     "initial_accumulator_value"),
    ("adagrad eps = 0", lambda: fn.optim.Adagrad(eps=0.0), "eps"),
    ("adagrad negative weight decay", lambda: fn.optim.Adagrad(weight_decay=-1.0), "weight_decay"),
]


@pytest.mark.parametrize("make, field", [(m, f) for _, m, f in NEW_BAD], ids=[n for n, _, _ in NEW_BAD])
def test_bad_new_hyperparameters_raise_config_error(make, field):
    with pytest.raises(fn.ConfigError, match=field):
        model = fn.Sequential([fn.Dense(OUT)])
        model.compile(optimizer=make(), loss="mse")
        model.build(IN, seed=0)
    with pytest.raises(fn.ConfigError, match=field):
        fn.Sequential([fn.Dense(OUT)], input_dim=IN).compile(optimizer=make(), loss="mse")


@pytest.mark.parametrize("make, match", [
    (lambda: fn.optim.SGD(clipnorm="1"), "clipnorm"),
    (lambda: fn.optim.Adam(global_clipnorm=True), "global_clipnorm"),
    (lambda: fn.optim.AdamW(exclude_from_weight_decay=[""]), "empty string"),
    (lambda: fn.optim.AdamW(exclude_from_weight_decay=["bias", 3]), "strings"),
    (lambda: fn.optim.RMSprop(exclude_from_weight_decay=5), "list of strings"),
])
def test_bad_option_types_raise_at_once(make, match):
    with pytest.raises(fn.ConfigError, match=match):
        make()


def test_all_clip_modes_together_are_accepted():
    """Unlike Keras, clipnorm and global_clipnorm (and clipvalue) may be combined."""
    opt = fn.optim.Adam(clipvalue=1.0, clipnorm=1.0, global_clipnorm=1.0)
    model = fn.Sequential([fn.Dense(OUT)])
    model.compile(optimizer=opt, loss="mse")
    model.build(IN, seed=0)
    x, t = next(_batches())
    assert np.isfinite(model.train_step(x, t))


def test_unknown_name_lists_new_optimizers():
    with pytest.raises(fn.UnknownNameError, match="rmsprop, adagrad"):
        fn.optim.get("lion")
