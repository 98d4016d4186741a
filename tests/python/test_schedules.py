"""Learning-rate schedules (ferronn.schedules) against their closed forms and PyTorch.

Every rate comes from the Rust core in f64 and is rounded to float32, so values
are compared with a relative tolerance of 1e-6.
"""

from __future__ import annotations

import json
import math
import pickle

import pytest

import ferronn as fn

S = fn.schedules


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def rates(sched, ts):
    """The schedule at each counter value, driving whichever counter it uses."""
    return [sched(step=t, epoch=t) for t in ts]


def assert_rates(sched, want: dict):
    for t, w in want.items():
        got = sched(step=t, epoch=t)
        assert close(got, w), f"{sched!r} at t={t}: got {got}, want {w}"


def cos_anneal(lr, eta_min, t, t_max):
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2


# ---------------------------------------------------------------- closed forms


def test_constant():
    assert_rates(S.Constant(0.3), {0: 0.3, 1: 0.3, 10_000: 0.3})


def test_step_decay():
    s = S.StepDecay(0.1, step_size=3, gamma=0.5)
    assert_rates(s, {t: 0.1 * 0.5 ** (t // 3) for t in [0, 1, 2, 3, 5, 6, 9, 30]})
    assert_rates(S.StepDecay(1.0, step_size=2), {1: 1.0, 2: 0.1, 4: 0.01})  # gamma defaults to 0.1


def test_multistep():
    s = S.MultiStep(0.1, milestones=[2, 5, 9], gamma=0.3)
    # lr * gamma ** (number of milestones <= t): the drop happens AT each milestone
    assert_rates(s, {0: 0.1, 1: 0.1, 2: 0.03, 4: 0.03, 5: 0.009, 8: 0.009, 9: 0.1 * 0.3 ** 3, 100: 0.1 * 0.3 ** 3})
    assert_rates(S.MultiStep(0.1, milestones=[]), {0: 0.1, 50: 0.1})


def test_exponential():
    s = S.Exponential(0.1, gamma=0.9)
    assert_rates(s, {t: 0.1 * 0.9 ** t for t in [0, 1, 2, 7, 50]})


def test_cosine_annealing_holds_at_eta_min_after_t_max():
    s = S.CosineAnnealing(0.1, T_max=6, eta_min=0.01)
    assert_rates(s, {t: cos_anneal(0.1, 0.01, t, 6) for t in range(7)})
    assert_rates(s, {0: 0.1, 3: 0.055, 6: 0.01})
    # PyTorch's recursive form would climb back to 0.1 at t = 12; ours stays at eta_min.
    assert_rates(s, {7: 0.01, 9: 0.01, 12: 0.01, 1000: 0.01})


def test_cosine_restarts():
    s = S.CosineRestarts(0.1, T_0=3, eta_min=0.001)
    assert_rates(s, {t: cos_anneal(0.1, 0.001, t % 3, 3) for t in range(12)})
    assert_rates(s, {0: 0.1, 3: 0.1, 6: 0.1})  # every restart returns to lr


def test_cosine_restarts_t_mult():
    s = S.CosineRestarts(0.1, T_0=2, T_mult=2, eta_min=0.001)

    def t_cur_t_i(t, t_0=2, t_mult=2):  # PyTorch's step() bookkeeping, one call at a time
        t_cur, t_i = t, t_0
        while t_cur >= t_i:
            t_cur, t_i = t_cur - t_i, t_i * t_mult
        return t_cur, t_i

    assert_rates(s, {t: cos_anneal(0.1, 0.001, *t_cur_t_i(t)) for t in range(40)})
    # cycles [0, 2), [2, 6), [6, 14), [14, 30): each restart is back at lr
    assert_rates(s, {0: 0.1, 2: 0.1, 6: 0.1, 14: 0.1, 30: 0.1, 4: cos_anneal(0.1, 0.001, 2, 4)})


def test_warmup_cosine():
    lr, warmup, total, eta_min = 0.2, 4, 10, 0.002
    s = S.WarmupCosine(lr, warmup=warmup, total=total, eta_min=eta_min)
    assert s.per == "step"

    def want(t):
        if t < warmup:
            return lr * (t + 1) / warmup
        if t <= total:
            return cos_anneal(lr, eta_min, t - warmup, total - warmup)
        return eta_min

    assert_rates(s, {t: want(t) for t in range(15)})
    # boundaries: step 0 is lr/warmup (not 0), the warm-up ends at lr, then cosine from lr
    assert_rates(s, {0: 0.05, 3: lr, 4: lr, 7: (lr + eta_min) / 2, 10: eta_min, 11: eta_min, 10_000: eta_min})
    # no warm-up: plain cosine over total
    assert_rates(S.WarmupCosine(1.0, warmup=0, total=4), {0: 1.0, 2: 0.5, 4: 0.0, 5: 0.0})


def one_cycle_ref(t, max_lr, total_steps, pct_start=0.3, anneal="cos", div_factor=25.0, final_div_factor=1e4,
                  three_phase=False):
    """PyTorch OneCycleLR.get_lr() for the learning rate, with t clamped to total_steps - 1."""
    initial = max_lr / div_factor
    min_lr = initial / final_div_factor
    if three_phase:
        phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
                  (float(2 * pct_start * total_steps) - 2, max_lr, initial),
                  (total_steps - 1, initial, min_lr)]
    else:
        phases = [(float(pct_start * total_steps) - 1, initial, max_lr), (total_steps - 1, max_lr, min_lr)]
    t = min(t, total_steps - 1)
    start = 0.0
    for i, (end, a, b) in enumerate(phases):
        if t <= end or i == len(phases) - 1:
            pct = (t - start) / (end - start)
            if anneal == "cos":
                return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
            return (b - a) * pct + a
        start = end
    raise AssertionError


@pytest.mark.parametrize("kwargs", [
    dict(max_lr=0.1, total_steps=20),
    dict(max_lr=0.1, total_steps=7),
    dict(max_lr=1.0, total_steps=100, pct_start=0.25, anneal="linear", div_factor=10.0, final_div_factor=100.0),
    dict(max_lr=0.1, total_steps=20, pct_start=0.25, anneal="linear", div_factor=10.0, final_div_factor=100.0,
         three_phase=True),
    dict(max_lr=0.5, total_steps=33, pct_start=0.4, three_phase=True),
])
def test_one_cycle_closed_form(kwargs):
    args = dict(kwargs)
    anneal = args.pop("anneal", "cos")
    s = S.OneCycle(anneal_strategy=anneal, **args)
    total = kwargs["total_steps"]
    assert_rates(s, {t: one_cycle_ref(t, **kwargs) for t in range(total + 5)})
    max_lr, div = kwargs["max_lr"], kwargs.get("div_factor", 25.0)
    min_lr = max_lr / div / kwargs.get("final_div_factor", 1e4)
    assert close(s(0), max_lr / div)  # starts at max_lr / div_factor
    assert close(s.initial_lr, max_lr / div)
    assert close(s(total - 1), min_lr)  # ends at min_lr ...
    assert close(s(total), min_lr) and close(s(10 * total), min_lr)  # ... and holds there


def test_one_cycle_peak_at_phase_boundary():
    s = S.OneCycle(0.1, total_steps=20)  # warm-up ends at 0.3 * 20 - 1 = 5
    assert close(s(5), 0.1)
    assert s(4) < s(5) and s(6) < s(5)


def test_polynomial():
    s = S.Polynomial(0.1, total_iters=5, power=2.0)
    assert_rates(s, {t: 0.1 * (1 - min(t, 5) / 5) ** 2.0 for t in range(9)})
    assert_rates(s, {5: 0.0, 100: 0.0})
    assert_rates(S.Polynomial(1.0, total_iters=4), {0: 1.0, 1: 0.75, 3: 0.25, 4: 0.0})


# ---------------------------------------------------------------- PyTorch values
#
# Generated with torch 2.15.0 on a dummy optimizer, by this code:
#
#     import torch
#     from torch.optim import lr_scheduler as S
#
#     def run(make, lr, n):
#         opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
#         sched = make(opt)
#         out = []
#         for _ in range(n):
#             out.append(sched.get_last_lr()[0])  # rate after len(out) scheduler.step() calls
#             opt.step()
#             sched.step()
#         return out
#
#     CASES = {
#         "step": (lambda o: S.StepLR(o, step_size=3, gamma=0.5), 0.1, 11),
#         "multistep": (lambda o: S.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3), 0.1, 12),
#         "exponential": (lambda o: S.ExponentialLR(o, gamma=0.9), 0.1, 9),
#         "cosine": (lambda o: S.CosineAnnealingLR(o, T_max=6, eta_min=0.01), 0.1, 7),
#         "cosine_restarts": (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=0.001), 0.1, 10),
#         "cosine_restarts_mult": (lambda o: S.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.001),
#                                  0.1, 16),
#         "one_cycle": (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=20, cycle_momentum=False), 0.1, 20),
#         "one_cycle_odd": (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=7, cycle_momentum=False), 0.1, 7),
#         "one_cycle_three_linear": (lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=20, pct_start=0.25,
#                                                            anneal_strategy="linear", div_factor=10.0,
#                                                            final_div_factor=100.0, three_phase=True,
#                                                            cycle_momentum=False), 0.1, 20),
#         "polynomial": (lambda o: S.PolynomialLR(o, total_iters=5, power=2.0), 0.1, 8),
#     }
#     for name, (make, lr, n) in CASES.items():
#         print(f'    "{name}": {run(make, lr, n)!r},')
#
# Entry t is the rate PyTorch uses for the batch/epoch after t scheduler.step()
# calls, i.e. ferronn's schedule at step (or epoch) t. The cosine case stops at
# T_max because PyTorch's recursive form goes periodic after it (ferronn holds
# at eta_min); "one_cycle_odd" has a warm-up that ends at 0.3 * 7 - 1 = 1.1, so
# PyTorch's step 1 lies in the decay phase at a slightly negative pct.
TORCH = {
    "step": [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125],
    "multistep": [0.1, 0.1, 0.03, 0.03, 0.03, 0.009, 0.009, 0.009, 0.009, 0.0026999999999999997,
                  0.0026999999999999997, 0.0026999999999999997],
    "exponential": [0.1, 0.09000000000000001, 0.08100000000000002, 0.07290000000000002, 0.06561000000000002,
                    0.05904900000000002, 0.05314410000000002, 0.04782969000000002, 0.043046721000000024],
    "cosine": [0.1, 0.09397114317029975, 0.07750000000000001, 0.055000000000000014, 0.032500000000000015,
               0.01602885682970026, 0.01],
    "cosine_restarts": [0.1, 0.07525000000000001, 0.025750000000000012, 0.1, 0.07525000000000001,
                        0.025750000000000012, 0.1, 0.07525000000000001, 0.025750000000000012, 0.1],
    "cosine_restarts_mult": [0.1, 0.0505, 0.1, 0.0855017856687341, 0.0505, 0.0154982143312659, 0.1,
                             0.0962320368593087, 0.0855017856687341, 0.06944282990207196, 0.0505,
                             0.03155717009792806, 0.0154982143312659, 0.004767963140691307, 0.1,
                             0.09904887137995991],
    "one_cycle": [0.0040000000000000036, 0.013167184270002533, 0.037167184270002526, 0.06683281572999747,
                  0.09083281572999748, 0.1, 0.09874640062350874, 0.09504846320134738, 0.089091617757105,
                  0.0811745653949763, 0.07169430017913009, 0.06112620219362893, 0.0500002, 0.03887419780637107,
                  0.028306099820869922, 0.0188258346050237, 0.010908782242895003, 0.004951936798652629,
                  0.0012539993764912555, 4e-07],
    "one_cycle_odd": [0.0040000000000000036, 0.09805566273349588, 0.09190443762697106, 0.06726838364805451,
                      0.035773877573965704, 0.00992967918932656, 4e-07],
    "one_cycle_three_linear": [0.01, 0.0325, 0.05500000000000001, 0.0775, 0.1, 0.0775, 0.055, 0.0325,
                               0.009999999999999995, 0.0091, 0.0082, 0.0073, 0.0063999999999999994, 0.0055,
                               0.0046, 0.0037, 0.0027999999999999995, 0.001899999999999999,
                               0.0009999999999999992, 9.99999999999994e-05],
    "polynomial": [0.1, 0.06400000000000002, 0.036000000000000004, 0.016000000000000004, 0.003999999999999999,
                   0.0, 0.0, 0.0],
}

OURS = {
    "step": lambda: S.StepLR(0.1, step_size=3, gamma=0.5),
    "multistep": lambda: S.MultiStepLR(0.1, milestones=[2, 5, 9], gamma=0.3),
    "exponential": lambda: S.ExponentialLR(0.1, gamma=0.9),
    "cosine": lambda: S.CosineAnnealingLR(0.1, T_max=6, eta_min=0.01),
    "cosine_restarts": lambda: S.CosineAnnealingWarmRestarts(0.1, T_0=3, eta_min=0.001),
    "cosine_restarts_mult": lambda: S.CosineAnnealingWarmRestarts(0.1, T_0=2, T_mult=2, eta_min=0.001),
    "one_cycle": lambda: S.OneCycleLR(0.1, total_steps=20),
    "one_cycle_odd": lambda: S.OneCycleLR(0.1, total_steps=7),
    "one_cycle_three_linear": lambda: S.OneCycleLR(0.1, total_steps=20, pct_start=0.25, anneal_strategy="linear",
                                                   div_factor=10.0, final_div_factor=100.0, three_phase=True),
    "polynomial": lambda: S.PolynomialLR(0.1, total_iters=5, power=2.0),
}


@pytest.mark.parametrize("case", sorted(TORCH))
def test_matches_pytorch(case):
    sched = OURS[case]()
    want = TORCH[case]
    got = rates(sched, range(len(want)))
    bad = [(t, g, w) for t, (g, w) in enumerate(zip(got, want)) if not close(g, w)]
    assert not bad, f"{case}: (t, ferronn, torch) differ: {bad}"


# ---------------------------------------------------------------- counters


def test_per_selects_the_counter():
    by_epoch = S.StepDecay(1.0, step_size=1, gamma=0.5)
    assert by_epoch.per == "epoch"
    assert by_epoch(step=5, epoch=0) == 1.0 and by_epoch(step=0, epoch=2) == 0.25
    by_step = S.StepDecay(1.0, step_size=1, gamma=0.5, per="step")
    assert by_step(step=2, epoch=0) == 0.25 and by_step(step=0, epoch=5) == 1.0
    assert S.OneCycle(0.1, 20).per == "step" and S.WarmupCosine(0.1, 2, 10).per == "step"
    assert S.OneCycle(0.1, 20, per="epoch")(step=99, epoch=5) == pytest.approx(0.1)
    for cls, args in [(S.Constant, (0.1,)), (S.MultiStep, (0.1, [1])), (S.Exponential, (0.1, 0.9)),
                      (S.CosineAnnealing, (0.1, 5)), (S.CosineRestarts, (0.1, 5)), (S.Polynomial, (0.1, 5))]:
        assert cls(*args).per == "epoch"


def test_call_defaults_and_initial_lr():
    s = S.WarmupCosine(0.4, warmup=4, total=10)
    assert s() == s(0, 0) == s.initial_lr
    assert close(s.initial_lr, 0.1)
    assert isinstance(s(3), float)


def test_pytorch_aliases():
    assert S.StepLR is S.StepDecay and S.MultiStepLR is S.MultiStep and S.ExponentialLR is S.Exponential
    assert S.CosineAnnealingLR is S.CosineAnnealing and S.CosineAnnealingWarmRestarts is S.CosineRestarts
    assert S.OneCycleLR is S.OneCycle and S.PolynomialLR is S.Polynomial
    assert "schedules" in fn.__all__ and fn.schedules is S


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("make, needle", [
    (lambda: S.Constant(-0.1), "lr must be finite and >= 0"),
    (lambda: S.Constant(float("nan")), "finite"),
    (lambda: S.Constant(float("inf")), "finite"),
    (lambda: S.Constant("0.1"), "must be a number"),
    (lambda: S.Constant(0.1, per="batch"), "unknown variant `batch`"),
    (lambda: S.StepDecay(0.1, step_size=0), "step_size must be >= 1"),
    (lambda: S.StepDecay(0.1, step_size=2.5), "step_size must be a non-negative integer"),
    (lambda: S.StepDecay(0.1, step_size=-1), "step_size must be a non-negative integer"),
    (lambda: S.StepDecay(0.1, step_size=3, gamma=0.0), "gamma must be finite and > 0"),
    (lambda: S.StepDecay(0.1, step_size=3, gamma=-0.5), "gamma must be finite and > 0"),
    (lambda: S.MultiStep(0.1, milestones=[5, 2]), "strictly increasing"),
    (lambda: S.MultiStep(0.1, milestones=[2, 2]), "strictly increasing"),
    (lambda: S.MultiStep(0.1, milestones=[2, -1]), "non-negative integer"),
    (lambda: S.MultiStep(0.1, milestones=3), "list of non-negative integers"),
    (lambda: S.Exponential(0.1, gamma=0.0), "gamma must be finite and > 0"),
    (lambda: S.CosineAnnealing(0.1, T_max=0), "t_max must be >= 1"),
    (lambda: S.CosineAnnealing(0.1, T_max=10, eta_min=-1e-3), "eta_min must be finite and >= 0"),
    (lambda: S.CosineRestarts(0.1, T_0=0), "t_0 must be >= 1"),
    (lambda: S.CosineRestarts(0.1, T_0=5, T_mult=0), "t_mult must be >= 1"),
    (lambda: S.WarmupCosine(0.1, warmup=10, total=10), "total must be > warmup"),
    (lambda: S.WarmupCosine(0.1, warmup=20, total=10), "total must be > warmup"),
    (lambda: S.OneCycle(0.1, total_steps=0), "total_steps must be >= 1"),
    (lambda: S.OneCycle(0.1, total_steps=100, pct_start=0.0), "pct_start must be in (0, 1)"),
    (lambda: S.OneCycle(0.1, total_steps=100, pct_start=1.0), "pct_start must be in (0, 1)"),
    (lambda: S.OneCycle(0.1, total_steps=100, pct_start=1.5), "pct_start must be in (0, 1)"),
    (lambda: S.OneCycle(0.1, total_steps=3), "pct_start * total_steps must be > 1"),
    (lambda: S.OneCycle(0.1, total_steps=100, pct_start=0.6, three_phase=True), "pct_start <= 0.5"),
    (lambda: S.OneCycle(0.1, total_steps=100, div_factor=0.0), "div_factor must be finite and > 0"),
    (lambda: S.OneCycle(0.1, total_steps=100, final_div_factor=-1.0), "final_div_factor must be finite and > 0"),
    (lambda: S.OneCycle(0.1, total_steps=100, anneal_strategy="exp"), "unknown variant `exp`"),
    (lambda: S.OneCycle(0.1, total_steps=100, three_phase="yes"), "True or False"),
    (lambda: S.Polynomial(0.1, total_iters=0), "total_iters must be >= 1"),
    (lambda: S.Polynomial(0.1, total_iters=5, power=-1.0), "power must be finite and >= 0"),
])
def test_bad_arguments_raise_config_error(make, needle):
    with pytest.raises(fn.ConfigError, match=None) as info:
        make()
    assert needle in str(info.value), str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_counters_raise_config_error():
    s = S.Constant(0.1)
    with pytest.raises(fn.ConfigError):
        s(step=-1)
    with pytest.raises(fn.ConfigError):
        s(epoch=1.5)


def test_bad_specs():
    with pytest.raises(fn.UnknownNameError, match="unknown schedule 'linear'"):
        S.from_spec({"name": "linear", "lr": 0.1})
    with pytest.raises(fn.ConfigError, match="no 'name'"):
        S.from_spec({"lr": 0.1})
    with pytest.raises(fn.ConfigError, match="unknown field `tmax`"):
        S.from_spec({"name": "cosine", "lr": 0.1, "t_max": 5, "tmax": 5})
    with pytest.raises(fn.ConfigError, match="missing field `t_max`"):
        S.from_spec({"name": "cosine", "lr": 0.1})
    with pytest.raises(fn.ConfigError, match="not valid JSON"):
        S.from_spec('{"name": ')
    with pytest.raises(fn.ConfigError):
        S.from_spec({"name": "constant", "lr": float("nan")})
    with pytest.raises(fn.ConfigError, match="not a CosineAnnealing"):
        S.CosineAnnealing.from_spec({"name": "constant", "lr": 0.1})
    # the core entry points reject the same things
    with pytest.raises(fn.ConfigError, match="t_max must be >= 1"):
        fn._core.schedule_lr('{"name": "cosine", "lr": 0.1, "t_max": 0}', 0, 0)
    with pytest.raises(fn.UnknownNameError):
        fn._core.schedule_check('{"name": "nope"}')


# ---------------------------------------------------------------- specs


ALL = [
    S.Constant(0.1),
    S.StepDecay(0.1, step_size=3, gamma=0.5, per="step"),
    S.MultiStep(0.1, milestones=[2, 5, 9], gamma=0.3),
    S.Exponential(0.1, gamma=0.9),
    S.CosineAnnealing(0.1, T_max=100, eta_min=1e-4),
    S.CosineRestarts(0.1, T_0=10, T_mult=2, eta_min=1e-5),
    S.WarmupCosine(1e-3, warmup=500, total=10_000),
    S.OneCycle(0.1, total_steps=1000, pct_start=0.25, anneal_strategy="linear", three_phase=True),
    S.Polynomial(0.1, total_iters=100, power=0.5),
]


@pytest.mark.parametrize("sched", ALL, ids=lambda s: type(s).__name__)
def test_spec_round_trip(sched):
    spec = sched.spec()
    assert spec["name"] == sched.name and spec["per"] == sched.per
    back = S.from_spec(spec)
    assert type(back) is type(sched) and back == sched and back.spec() == spec
    assert S.from_spec(json.dumps(spec)) == sched
    assert type(sched).from_spec(spec) == sched
    assert json.loads(fn._core.schedule_check(json.dumps(spec))) == spec
    assert repr(back) == repr(sched)
    assert pickle.loads(pickle.dumps(sched)) == sched
    ts = [0, 1, 7, 99, 500, 10_000, 10**12]
    assert rates(back, ts) == rates(sched, ts)
    spec["name"] = "changed"  # spec() hands out a copy
    assert sched.spec()["name"] == sched.name


def test_spec_contents_and_defaults():
    assert S.CosineAnnealing(0.1, T_max=100).spec() == {
        "name": "cosine", "lr": 0.1, "t_max": 100, "eta_min": 0.0, "per": "epoch"}
    assert S.OneCycle(0.1, total_steps=1000).spec() == {
        "name": "one_cycle", "max_lr": 0.1, "total_steps": 1000, "pct_start": 0.3, "div_factor": 25.0,
        "final_div_factor": 10000.0, "anneal": "cos", "three_phase": False, "per": "step"}
    # from_spec fills in defaults the same way the constructors do
    assert S.from_spec({"name": "cosine_restarts", "lr": 0.1, "t_0": 4}) == S.CosineRestarts(0.1, T_0=4)
    assert S.from_spec({"name": "warmup_cosine", "lr": 0.1, "warmup": 1, "total": 9}).per == "step"


def test_repr_and_attributes():
    s = S.CosineAnnealing(0.1, T_max=100)
    assert repr(s) == "CosineAnnealing(lr=0.1, T_max=100, eta_min=0.0, per='epoch')"
    assert s.T_max == 100 and s.lr == 0.1 and s.eta_min == 0.0
    o = S.OneCycle(0.1, total_steps=50)
    assert o.anneal_strategy == "cos" and o.max_lr == 0.1
    assert "anneal_strategy='cos'" in repr(o)
    with pytest.raises(AttributeError):
        s.t_max  # the spec key is not an attribute; the constructor's name is
