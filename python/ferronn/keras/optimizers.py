"""``keras.optimizers`` over ferronn's optimizers, with Keras' argument names and defaults.

Each returns the ferronn optimizer (``ferronn.optim``), which runs PyTorch's update
rules, except ``RMSprop``, which divides by ``sqrt(v + epsilon)`` as Keras does. In
Adam and AdamW Keras' ``epsilon`` is placed as PyTorch places it (added to the
bias-corrected root of the second moment; Keras adds it to the uncorrected one), a
difference that only shows in the first steps and when gradients are about as small
as epsilon. Keras 3's ``weight_decay`` is decoupled (as AdamW's) on
every optimizer; ferronn decouples it only in ``AdamW``, so elsewhere it raises
``NotSupportedError``. ``learning_rate`` may be a schedule from ``keras.optimizers.schedules``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .. import optim as _optim
from ..optim import Optimizer
from . import schedules
from ._common import unsupported

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "get", "schedules"]


def _shared(owner: str, weight_decay: Any, clipnorm: Any, clipvalue: Any, global_clipnorm: Any,
            rest: dict[str, Any], decoupled: bool = False) -> dict[str, Any]:
    for arg in ("use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                "gradient_accumulation_steps"):
        if arg in rest:
            value = rest.pop(arg)
            if value not in (None, False, 0.99, 0.0):
                unsupported(f"{owner}({arg}={value!r})")
    rest.pop("name", None)
    if rest:
        unsupported(f"{owner}({', '.join(f'{k}=...' for k in rest)})")
    if not decoupled and weight_decay not in (None, 0, 0.0):
        unsupported(f"{owner}(weight_decay={weight_decay!r})",
                    "Keras decouples it from the gradient; ferronn does so only in AdamW (use keras.optimizers.AdamW, "
                    "or ferronn.optim's L2 weight_decay)")
    return {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}


def SGD(learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False,  # noqa: N802
        weight_decay: Optional[float] = None, clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None, **kwargs: Any) -> Optimizer:
    """Keras' ``SGD`` (learning_rate 0.01)."""
    shared = _shared("SGD", weight_decay, clipnorm, clipvalue, global_clipnorm, kwargs)
    return _optim.SGD(learning_rate, momentum=momentum, nesterov=nesterov, **shared)


def Adam(learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,  # noqa: N802
         amsgrad: bool = False, weight_decay: Optional[float] = None, clipnorm: Optional[float] = None,
         clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None, **kwargs: Any) -> Optimizer:
    """Keras' ``Adam`` (epsilon 1e-7)."""
    shared = _shared("Adam", weight_decay, clipnorm, clipvalue, global_clipnorm, kwargs)
    return _optim.Adam(learning_rate, betas=(beta_1, beta_2), eps=epsilon, amsgrad=amsgrad, **shared)


def AdamW(learning_rate: Any = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9,  # noqa: N802
          beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, clipnorm: Optional[float] = None,
          clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None, **kwargs: Any) -> Optimizer:
    """Keras' ``AdamW`` (weight_decay 0.004, decoupled: ``w -= lr·weight_decay·w``)."""
    shared = _shared("AdamW", weight_decay, clipnorm, clipvalue, global_clipnorm, kwargs, decoupled=True)
    return _optim.AdamW(learning_rate, betas=(beta_1, beta_2), eps=epsilon, weight_decay=weight_decay,
                        amsgrad=amsgrad, **shared)


def RMSprop(learning_rate: Any = 0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,  # noqa: N802
            centered: bool = False, weight_decay: Optional[float] = None, clipnorm: Optional[float] = None,
            clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None, **kwargs: Any) -> Optimizer:
    """Keras' ``RMSprop`` (learning_rate 0.001, rho 0.9; PyTorch's ``alpha`` is ``rho``), with
    Keras' ``sqrt(v + epsilon)`` in the denominator."""
    shared = _shared("RMSprop", weight_decay, clipnorm, clipvalue, global_clipnorm, kwargs)
    return _optim.RMSprop(learning_rate, alpha=rho, eps=epsilon, momentum=momentum, centered=centered,
                          eps_inside_sqrt=True, **shared)


def Adagrad(learning_rate: Any = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,  # noqa: N802
            weight_decay: Optional[float] = None, clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
            global_clipnorm: Optional[float] = None, **kwargs: Any) -> Optimizer:
    """Keras' ``Adagrad`` (learning_rate 0.001, initial_accumulator_value 0.1)."""
    shared = _shared("Adagrad", weight_decay, clipnorm, clipvalue, global_clipnorm, kwargs)
    return _optim.Adagrad(learning_rate, initial_accumulator_value=initial_accumulator_value, eps=epsilon, **shared)


_BY_NAME: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}


def get(identifier: Any) -> Optimizer:
    """An optimizer from Keras' name ("rmsprop", "adam", ...: Keras' defaults) or an instance."""
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    return _optim.get(identifier)


def __getattr__(name: str) -> Any:
    from ._common import missing_attr
    missing_attr("optimizers", name, {n: "ferronn has SGD, Adam, AdamW, RMSprop and Adagrad" for n in
                                      ("Adadelta", "Adamax", "Nadam", "Ftrl", "Lion", "Lamb", "LossScaleOptimizer",
                                       "Muon")})
