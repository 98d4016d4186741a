"""Learning-rate schedules, with PyTorch's formulas where PyTorch has the schedule.

A schedule only records its settings as a JSON spec; every rate is computed by
the Rust core (``ferronn._core.schedule_lr``), the same code the training step
runs per batch, so calling a schedule here shows exactly what training will use.

``per`` says what drives the schedule: ``"step"`` (optimizer steps already taken,
so the rate changes every batch) or ``"epoch"`` (the 0-based epoch index).

>>> import ferronn as fn
>>> sched = fn.schedules.CosineAnnealing(0.1, T_max=10)
>>> sched(epoch=10)
0.0
>>> sched.spec()
{'name': 'cosine', 'lr': 0.1, 't_max': 10, 'eta_min': 0.0, 'per': 'epoch'}
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar, Sequence, Union

from . import _core, _validate
from .errors import ConfigError, UnknownNameError

__all__ = [
    "Schedule",
    "Constant",
    "StepDecay",
    "StepLR",
    "MultiStep",
    "MultiStepLR",
    "Exponential",
    "ExponentialLR",
    "CosineAnnealing",
    "CosineAnnealingLR",
    "CosineRestarts",
    "CosineAnnealingWarmRestarts",
    "WarmupCosine",
    "OneCycle",
    "OneCycleLR",
    "Polynomial",
    "PolynomialLR",
    "from_spec",
]

# How each constructor argument is checked before it goes into the JSON spec.
# Ranges are checked once, by the core (``_core.schedule_check``).
_FLOAT, _INT, _INTS, _STR, _BOOL = "float", "int", "ints", "str", "bool"


def _convert(owner: str, arg: str, kind: str, value: Any) -> Any:
    if kind == _FLOAT:
        return _validate.finite_float(value, f"{owner} {arg}")
    if kind == _INT:
        return _validate.non_negative_int(value, f"{owner} {arg}")
    if kind == _INTS:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{owner} {arg} must be a list of non-negative integers, got {value!r}")
        return [_convert(owner, f"{arg}[{i}]", _INT, v) for i, v in enumerate(value)]
    if kind == _STR:
        if not isinstance(value, str):
            raise ConfigError(f"{owner} {arg} must be a string, got {value!r}")
        return value
    return _validate.boolean(value, f"{owner} {arg}")  # _BOOL


class Schedule:
    """Base class: a learning-rate schedule held as a validated JSON spec.

    Subclasses list their constructor arguments in ``_args`` as
    ``(python_name, spec_key, kind)``.
    """

    name: ClassVar[str] = ""
    _args: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    _spec: dict[str, Any]

    def _init(self, values: dict[str, Any]) -> None:
        owner = type(self).__name__
        spec: dict[str, Any] = {"name": self.name}
        for arg, key, kind in self._args:
            spec[key] = _convert(owner, arg, kind, values[arg])
        spec["per"] = _convert(owner, "per", _STR, values["per"])
        self._spec = _check(spec)

    def spec(self) -> dict[str, Any]:
        """The JSON spec (a new dict), with every default filled in."""
        return json.loads(json.dumps(self._spec))

    @property
    def per(self) -> str:
        """``"step"`` or ``"epoch"``: the counter that drives the schedule."""
        return str(self._spec["per"])

    @property
    def initial_lr(self) -> float:
        """The rate for the very first batch (step 0 of epoch 0)."""
        return self(0, 0)

    def __call__(self, step: int = 0, epoch: int = 0) -> float:
        """The rate for the next batch after ``step`` optimizer steps, in the 0-based ``epoch``.

        Only the counter named by ``per`` matters.
        """
        owner = type(self).__name__
        step = _convert(owner, "step", _INT, step)
        epoch = _convert(owner, "epoch", _INT, epoch)
        return _core.schedule_lr(json.dumps(self._spec), step, epoch)

    @classmethod
    def from_spec(cls, spec: Union[dict[str, Any], str]) -> "Schedule":
        """Rebuilds a schedule from ``spec()`` (a dict or its JSON string)."""
        sched = from_spec(spec)
        if not isinstance(sched, cls):
            raise ConfigError(f"spec describes a {type(sched).__name__} schedule, not a {cls.__name__}")
        return sched

    def __getattr__(self, item: str) -> Any:
        # Constructor arguments read back under their own names (e.g. ``T_max``).
        spec = self.__dict__.get("_spec")
        if spec is not None:
            for arg, key, _ in type(self)._args:
                if arg == item:
                    return spec[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {item!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return self._spec == other._spec

    def __hash__(self) -> int:
        return hash(json.dumps(self._spec, sort_keys=True))

    def __repr__(self) -> str:
        fields = [f"{arg}={self._spec[key]!r}" for arg, key, _ in self._args]
        fields.append(f"per={self.per!r}")
        return f"{type(self).__name__}({', '.join(fields)})"


def _check(spec: dict[str, Any]) -> dict[str, Any]:
    """Validates ``spec`` in the core; returns it with defaults filled in."""
    return json.loads(_core.schedule_check(json.dumps(spec)))


class Constant(Schedule):
    """``lr`` throughout."""

    name = "constant"
    _args = (("lr", "lr", _FLOAT),)

    def __init__(self, lr: float, per: str = "epoch") -> None:
        self._init(locals())


class StepDecay(Schedule):
    """``lr * gamma ** (t // step_size)``: PyTorch ``StepLR``."""

    name = "step"
    _args = (("lr", "lr", _FLOAT), ("step_size", "step_size", _INT), ("gamma", "gamma", _FLOAT))

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1, per: str = "epoch") -> None:
        self._init(locals())


class MultiStep(Schedule):
    """``lr * gamma ** (number of milestones <= t)``: PyTorch ``MultiStepLR``.

    Milestones must be strictly increasing.
    """

    name = "multistep"
    _args = (("lr", "lr", _FLOAT), ("milestones", "milestones", _INTS), ("gamma", "gamma", _FLOAT))

    def __init__(self, lr: float, milestones: Sequence[int], gamma: float = 0.1, per: str = "epoch") -> None:
        self._init(locals())


class Exponential(Schedule):
    """``lr * gamma ** t``: PyTorch ``ExponentialLR``."""

    name = "exponential"
    _args = (("lr", "lr", _FLOAT), ("gamma", "gamma", _FLOAT))

    def __init__(self, lr: float, gamma: float, per: str = "epoch") -> None:
        self._init(locals())


class CosineAnnealing(Schedule):
    """``eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2`` up to ``T_max``, then ``eta_min``.

    PyTorch ``CosineAnnealingLR``'s closed form; unlike PyTorch's recursive
    form, which rises again after ``T_max``, the rate stays at ``eta_min``.
    """

    name = "cosine"
    _args = (("lr", "lr", _FLOAT), ("T_max", "t_max", _INT), ("eta_min", "eta_min", _FLOAT))

    def __init__(self, lr: float, T_max: int, eta_min: float = 0.0, per: str = "epoch") -> None:  # noqa: N803
        self._init(locals())


class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR): PyTorch ``CosineAnnealingWarmRestarts``.

    The first cycle lasts ``T_0``, each later one ``T_mult`` times longer; each
    starts at ``lr`` and anneals towards ``eta_min``.
    """

    name = "cosine_restarts"
    _args = (("lr", "lr", _FLOAT), ("T_0", "t_0", _INT), ("T_mult", "t_mult", _INT),
             ("eta_min", "eta_min", _FLOAT))

    def __init__(self, lr: float, T_0: int, T_mult: int = 1, eta_min: float = 0.0,  # noqa: N803
                 per: str = "epoch") -> None:
        self._init(locals())


class WarmupCosine(Schedule):
    """Linear warm-up, then cosine decay to ``eta_min`` at ``total``; per step by default.

    ``lr * (t + 1) / warmup`` for ``t < warmup`` (so the first step is not 0 and
    step ``warmup - 1`` reaches ``lr``); then
    ``eta_min + (lr - eta_min) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2``
    up to ``total``; ``eta_min`` after.
    """

    name = "warmup_cosine"
    _args = (("lr", "lr", _FLOAT), ("warmup", "warmup", _INT), ("total", "total", _INT),
             ("eta_min", "eta_min", _FLOAT))

    def __init__(self, lr: float, warmup: int, total: int, eta_min: float = 0.0, per: str = "step") -> None:
        self._init(locals())


class OneCycle(Schedule):
    """The 1cycle policy: PyTorch ``OneCycleLR`` (learning rate only), per step by default.

    Rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of ``total_steps``, then falls to
    ``max_lr / div_factor / final_div_factor`` at step ``total_steps - 1`` and
    stays there. With ``three_phase=True`` it first falls back to
    ``max_lr / div_factor`` (symmetric to the rise), then decays.
    ``pct_start * total_steps`` must exceed 1.
    """

    name = "one_cycle"
    _args = (("max_lr", "max_lr", _FLOAT), ("total_steps", "total_steps", _INT),
             ("pct_start", "pct_start", _FLOAT), ("anneal_strategy", "anneal", _STR),
             ("div_factor", "div_factor", _FLOAT), ("final_div_factor", "final_div_factor", _FLOAT),
             ("three_phase", "three_phase", _BOOL))

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 per: str = "step") -> None:
        self._init(locals())


class Polynomial(Schedule):
    """``lr * (1 - min(t, total_iters) / total_iters) ** power``: PyTorch ``PolynomialLR``."""

    name = "polynomial"
    _args = (("lr", "lr", _FLOAT), ("total_iters", "total_iters", _INT), ("power", "power", _FLOAT))

    def __init__(self, lr: float, total_iters: int, power: float = 1.0, per: str = "epoch") -> None:
        self._init(locals())


# PyTorch's names.
StepLR = StepDecay
MultiStepLR = MultiStep
ExponentialLR = Exponential
CosineAnnealingLR = CosineAnnealing
CosineAnnealingWarmRestarts = CosineRestarts
OneCycleLR = OneCycle
PolynomialLR = Polynomial

_BY_NAME: dict[str, type[Schedule]] = {
    cls.name: cls
    for cls in (Constant, StepDecay, MultiStep, Exponential, CosineAnnealing, CosineRestarts, WarmupCosine,
                OneCycle, Polynomial)
}


def from_spec(spec: Union[dict[str, Any], str]) -> Schedule:
    """The schedule a ``spec()`` dict (or its JSON string) describes.

    Raises UnknownNameError for an unknown ``name`` and ConfigError for a spec
    the core rejects (missing, unknown or out-of-range fields).
    """
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except ValueError as e:
            raise ConfigError(f"schedule spec is not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"schedule spec must be a dict, got {type(spec).__name__}")
    if "name" not in spec:
        raise ConfigError(f"schedule spec has no 'name'; expected one of {', '.join(_BY_NAME)}")
    name = spec["name"]
    if name not in _BY_NAME:
        raise UnknownNameError(f"unknown schedule {name!r}; expected one of {', '.join(_BY_NAME)}")
    cls = _BY_NAME[name]
    for key, value in spec.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{cls.__name__} {key} must be finite, got {value}")
    sched = cls.__new__(cls)
    sched._spec = _check(spec)
    return sched
