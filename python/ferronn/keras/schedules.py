"""``keras.optimizers.schedules``: Keras' per-step learning-rate schedules as ferronn
schedules (``ferronn.schedules``, computed by the Rust core every optimizer step)."""

from __future__ import annotations

from typing import Any

from .. import schedules as _fs
from ..schedules import Schedule
from ._common import check_default, missing_attr

__all__ = ["LearningRateSchedule", "ExponentialDecay", "CosineDecay", "PolynomialDecay"]

LearningRateSchedule = Schedule


def ExponentialDecay(initial_learning_rate: float, decay_steps: int, decay_rate: float,  # noqa: N802
                     staircase: bool = False, name: Any = None) -> Schedule:
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (the exponent floored
    with ``staircase=True``), per optimizer step."""
    if staircase:
        return _fs.StepDecay(initial_learning_rate, step_size=decay_steps, gamma=decay_rate, per="step")
    return _fs.Exponential(initial_learning_rate, gamma=float(decay_rate) ** (1.0 / float(decay_steps)), per="step")


def CosineDecay(initial_learning_rate: float, decay_steps: int, alpha: float = 0.0, name: Any = None,  # noqa: N802
                warmup_target: Any = None, warmup_steps: int = 0) -> Schedule:
    """Cosine decay from ``initial_learning_rate`` to ``alpha * initial_learning_rate`` over
    ``decay_steps`` optimizer steps (no warmup)."""
    check_default("CosineDecay", "warmup_target", warmup_target, None)
    check_default("CosineDecay", "warmup_steps", warmup_steps, 0)
    return _fs.CosineAnnealing(initial_learning_rate, T_max=decay_steps, eta_min=alpha * initial_learning_rate,
                               per="step")


def PolynomialDecay(initial_learning_rate: float, decay_steps: int, end_learning_rate: float = 0.0001,  # noqa: N802
                    power: float = 1.0, cycle: bool = False, name: Any = None) -> Schedule:
    """Polynomial decay to 0 over ``decay_steps`` optimizer steps: only
    ``end_learning_rate=0`` has a ferronn counterpart."""
    check_default("PolynomialDecay", "end_learning_rate", end_learning_rate, 0.0,
                  "ferronn's Polynomial schedule decays to 0")
    check_default("PolynomialDecay", "cycle", cycle, False)
    return _fs.Polynomial(initial_learning_rate, total_iters=decay_steps, power=power, per="step")


def __getattr__(name: str) -> Any:
    missing_attr("optimizers.schedules", name, {n: "" for n in ("PiecewiseConstantDecay", "InverseTimeDecay",
                                                                "CosineDecayRestarts")})
