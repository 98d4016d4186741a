"""Optimizers, with PyTorch's update rules and defaults.

Each class only records hyperparameters; the update itself runs in Rust over
all parameters at once, inside the training step.

Every optimizer also takes these options (Keras' names), keyword-only:

``clipvalue``
    Clamp every gradient element to ``[-clipvalue, clipvalue]``.
``clipnorm``
    Rescale each weight tensor's gradient, independently, to L2 norm at most
    ``clipnorm`` (Keras' semantics).
``global_clipnorm``
    Rescale all gradients together so that their global L2 norm is at most
    ``global_clipnorm``, as ``torch.nn.utils.clip_grad_norm_`` does (factor
    ``global_clipnorm / (norm + 1e-6)`` when below 1).
``exclude_from_weight_decay``
    Weight tensors whose name (``"layers.0.weight"``, ``"layers.2.bias"``,
    ``"layers.3.gamma"``, ... as ``model.get_weights`` orders them) contains any
    of these strings get no weight decay: neither the L2 term (SGD, Adam,
    RMSprop, Adagrad) nor AdamW's decoupled shrink.
``decay_bias_and_norm``
    ``False`` is shorthand for ``exclude_from_weight_decay=["bias", "gamma",
    "beta"]``: no decay on biases or on normalisation scales and shifts, the
    usual practice with AdamW. (Add ``"alpha"`` to the list to spare PReLU's
    slopes as well.)

Unlike Keras, several clipping options may be combined; they apply in the order
clipvalue, clipnorm, global_clipnorm. Clipping acts on the gradients before the
optimizer's update (and before its L2 weight decay is added).

>>> import ferronn as fn
>>> opt = fn.optim.AdamW(1e-3, global_clipnorm=1.0, decay_bias_and_norm=False)
>>> opt.config()["exclude_from_weight_decay"]
['bias', 'gamma', 'beta']
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, TypedDict, Union

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

from . import _validate, schedules as _schedules
from .errors import ConfigError, UnknownNameError

__all__ = ["Optimizer", "SharedOptions", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "get", "from_config",
           "BIAS_AND_NORM"]

#: What ``decay_bias_and_norm=False`` excludes from weight decay: biases and the
#: scales and shifts of BatchNorm, LayerNorm and RMSNorm.
BIAS_AND_NORM = ("bias", "gamma", "beta")

_CLIP_KEYS = ("clipvalue", "clipnorm", "global_clipnorm")


def _clip_value(owner: str, key: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{owner} {key} must be a number or None, got {value!r}")
    return float(value)


def _exclude_list(owner: str, names: Union[None, str, Iterable[str]], decay_bias_and_norm: bool) -> list[str]:
    if names is None:
        out: list[str] = []
    elif isinstance(names, str):
        out = [names]
    else:
        try:
            out = list(names)
        except TypeError:
            raise ConfigError(f"{owner} exclude_from_weight_decay must be a list of strings, got {names!r}") from None
    for s in out:
        if not isinstance(s, str):
            raise ConfigError(f"{owner} exclude_from_weight_decay must hold strings, got {s!r} in {out!r}")
        if not s:
            raise ConfigError(f"{owner} exclude_from_weight_decay must not contain an empty string "
                              "(it would match every tensor)")
    if not decay_bias_and_norm:
        out += [s for s in BIAS_AND_NORM if s not in out]
    return out


class SharedOptions(TypedDict, total=False):
    """The keyword-only options every optimizer takes (see the module docs);
    subclasses pass them through to ``Optimizer.__init__`` unchanged."""

    clipnorm: Optional[float]
    clipvalue: Optional[float]
    global_clipnorm: Optional[float]
    exclude_from_weight_decay: Union[None, str, Iterable[str]]
    decay_bias_and_norm: bool


class Optimizer:
    """Base class: holds the learning rate and the options every optimizer shares,
    and turns settings into a config.

    A subclass takes its own hyperparameters and ``**options`` (the shared
    keyword-only options, handled here), and lists its hyperparameters in
    ``_hyperparameters``; ``config()`` puts them between the name and rate and
    the shared options.
    """

    name = ""

    def __init__(self, lr: "float | _schedules.Schedule", *, clipnorm: Optional[float] = None,
                 clipvalue: Optional[float] = None, global_clipnorm: Optional[float] = None,
                 exclude_from_weight_decay: Union[None, str, Iterable[str]] = None,
                 decay_bias_and_norm: bool = True) -> None:
        owner = type(self).__name__
        # A schedule as the rate (Keras' learning_rate=schedule): the Rust step sets
        # the rate from it every batch (or epoch); `lr` is then its first value.
        self.schedule: Optional[_schedules.Schedule] = lr if isinstance(lr, _schedules.Schedule) else None
        try:
            self.lr = self.schedule.initial_lr if self.schedule is not None else float(lr)
        except (TypeError, ValueError):
            raise ConfigError(f"{owner} lr must be a number or a schedule from fn.schedules, got {lr!r}") from None
        self.clipnorm = _clip_value(owner, "clipnorm", clipnorm)
        self.clipvalue = _clip_value(owner, "clipvalue", clipvalue)
        self.global_clipnorm = _clip_value(owner, "global_clipnorm", global_clipnorm)
        self.exclude_from_weight_decay = _exclude_list(owner, exclude_from_weight_decay, bool(decay_bias_and_norm))

    def _bind_model(self, model: Any) -> None:
        """Called by ``compile``: a later ``learning_rate = ...`` reaches this model's network."""
        import weakref
        if "_models" not in self.__dict__:
            self._models: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._models.add(model)

    @property
    def learning_rate(self) -> float:
        """Keras' name for the base learning rate ``lr``. Setting it changes the rate of
        the models compiled with this optimizer from their next step on (their
        ReduceLROnPlateau factor still applies); refused when a schedule sets the rate."""
        return self.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self.schedule is not None:
            raise ConfigError(f"{type(self).__name__} takes its rate from the schedule {self.schedule!r}; "
                              "the learning rate cannot be set (as in Keras)")
        lr = _validate.finite_float(value, f"{type(self).__name__} learning_rate", 0.0, low_open=True)
        for model in list(self.__dict__.get("_models", ())):
            if model._net is not None:
                model._net.lr = lr
        self.lr = lr

    def get_config(self) -> dict[str, Any]:
        """Keras' name for ``config()`` (with ``"learning_rate"`` for ``"lr"``); ``from_config``
        rebuilds an equal optimizer (a schedule is kept as the object)."""
        c = self.config()
        c["learning_rate"] = self.schedule if self.schedule is not None else c.pop("lr")
        c.pop("lr", None)
        return c

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Optimizer":
        """The optimizer ``get_config`` described."""
        c = dict(config)
        if "learning_rate" in c:
            c["lr"] = c.pop("learning_rate")
        opt = from_config(c)
        if cls is not Optimizer and not isinstance(opt, cls):
            raise ConfigError(f"{cls.__name__}.from_config got the config of {type(opt).__name__}")
        return opt

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_models", None)  # weak references cannot be copied; a copy binds on compile
        return state

    def check(self) -> None:
        """Raises ConfigError for NaN/inf settings and non-positive clipping bounds (``compile`` calls this)."""
        # Other ranges are checked by the core when the model is built; NaN/inf
        # must be caught here because JSON cannot carry them to the core.
        owner = type(self).__name__
        for key, value in self.config().items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{owner} {key} must be finite, got {value}")
        for key in _CLIP_KEYS:
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"{owner} {key} must be > 0 (or None for no clipping), got {value}")

    def _options(self) -> dict[str, Any]:
        """The shared options that are set (unset ones stay out of the config)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in _CLIP_KEYS if getattr(self, k) is not None}
        if self.exclude_from_weight_decay:
            out["exclude_from_weight_decay"] = list(self.exclude_from_weight_decay)
        return out

    def _hyperparameters(self) -> dict[str, Any]:
        """The algorithm's own settings, in the order the config lists them."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """The settings as the core reads them: name, lr, the algorithm's own
        hyperparameters, then the shared options that are set."""
        return {"name": self.name, "lr": self.lr, **self._hyperparameters(), **self._options()}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={self.schedule if k == 'lr' and self.schedule else v!r}"
                           for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({fields})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum (Sutskever et al. 2013).

    Also takes the shared keyword-only options (see the module docs).
    """

    name = "sgd"

    def __init__(self, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, **options: Unpack[SharedOptions]) -> None:
        super().__init__(lr, **options)
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov, self.weight_decay = bool(nesterov), float(weight_decay)

    def _hyperparameters(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "dampening": self.dampening, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015). ``weight_decay`` adds an L2 term to the gradient, as in PyTorch.

    ``amsgrad=True`` normalises by the running maximum of the second moment
    (Reddi et al. 2018), as PyTorch's ``amsgrad`` does. Also takes the shared
    keyword-only options (see the module docs).
    """

    name = "adam"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, **options: Unpack[SharedOptions]) -> None:
        super().__init__(lr, **options)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay = float(eps), float(weight_decay)
        self.amsgrad = bool(amsgrad)

    def _hyperparameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"beta1": self.betas[0], "beta2": self.betas[1], "eps": self.eps,
                               "weight_decay": self.weight_decay}
        if self.amsgrad:
            out["amsgrad"] = True
        return out


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): weight decay shrinks the weights directly, decoupled from the gradient.

    ``decay_bias_and_norm=False`` spares biases and normalisation parameters
    from the decay (see the module docs, also for the other shared options).
    """

    name = "adamw"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, **options: Unpack[SharedOptions]) -> None:
        super().__init__(lr, betas, eps, weight_decay, amsgrad, **options)


class RMSprop(Optimizer):
    """RMSprop (Hinton 2012) with PyTorch's rule and defaults.

    ``eps_inside_sqrt=True`` divides by ``sqrt(v + eps)`` as Keras does, instead of
    PyTorch's ``sqrt(v) + eps`` (``ferronn.keras.optimizers.RMSprop`` sets it).
    ``centered=True`` normalises by the estimated variance of the gradient
    (Graves 2013) instead of its second moment; ``momentum > 0`` adds a
    momentum buffer over the normalised steps. Also takes the shared
    keyword-only options (see the module docs).
    """

    name = "rmsprop"

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, eps_inside_sqrt: bool = False,
                 **options: Unpack[SharedOptions]) -> None:
        super().__init__(lr, **options)
        self.alpha, self.eps = float(alpha), float(eps)
        self.weight_decay, self.momentum = float(weight_decay), float(momentum)
        self.centered = bool(centered)
        self.eps_inside_sqrt = bool(eps_inside_sqrt)

    def _hyperparameters(self) -> dict[str, Any]:
        h = {"alpha": self.alpha, "eps": self.eps, "weight_decay": self.weight_decay,
             "momentum": self.momentum, "centered": self.centered}
        if self.eps_inside_sqrt:  # only when set: specs of PyTorch's rule stay as they were
            h["eps_inside_sqrt"] = True
        return h


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011) with PyTorch's rule and defaults.

    The step size at step ``t`` is ``lr / (1 + (t - 1) * lr_decay)``; the sum of
    squared gradients starts at ``initial_accumulator_value``. Also takes the
    shared keyword-only options (see the module docs).
    """

    name = "adagrad"

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 **options: Unpack[SharedOptions]) -> None:
        super().__init__(lr, **options)
        self.lr_decay, self.weight_decay = float(lr_decay), float(weight_decay)
        self.initial_accumulator_value, self.eps = float(initial_accumulator_value), float(eps)

    def _hyperparameters(self) -> dict[str, Any]:
        return {"lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value, "eps": self.eps}


_BY_NAME: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop,
                                                 "adagrad": Adagrad}


def get(spec: "str | Optimizer") -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "adamw", "rmsprop", "adagrad") or an instance."""
    if isinstance(spec, Optimizer):
        spec.check()
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]()
    raise UnknownNameError(f"unknown optimizer {spec!r}; expected one of {', '.join(_BY_NAME)} or an Optimizer")


def from_config(config: dict[str, Any], schedule: Optional[dict[str, Any]] = None) -> Optimizer:
    """Rebuilds an optimizer from ``Optimizer.config()`` and, when it had one, its
    schedule's spec (used when loading models)."""
    c = dict(config)
    if schedule is not None:
        c["lr"] = _schedules.from_spec(schedule)
    name = c.pop("name")
    if name not in _BY_NAME:
        raise UnknownNameError(f"unknown optimizer {name!r}; expected one of {', '.join(_BY_NAME)}")
    if name in ("adam", "adamw"):
        c["betas"] = (c.pop("beta1"), c.pop("beta2"))
    return _BY_NAME[name](**c)
