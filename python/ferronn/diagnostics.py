"""Looking inside a network: per-layer outputs, dead ReLUs, saturation, gradient
norms during training, and a finite-difference check of the gradients.

>>> outs = fn.diagnostics.layer_outputs(model, X)      # {"layers.0": array, ...}
>>> fn.diagnostics.dead_units(model, X)                # {"layers.0": 0.03, ...}
>>> fn.diagnostics.activation_stats(model, X)["layers.1"]["saturated"]
>>> monitor = fn.diagnostics.GradientMonitor(every=10)
>>> model.fit(X, y, epochs=5, callbacks=[monitor]); monitor.history["layers.0/grad_norm"]
>>> report = fn.diagnostics.check_gradients(model, X[:16], y[:16]); report.passed

Everything here runs a plain NumPy forward pass from the model's tensors
(``model._net.tensors()``), written from each layer's definition, next to the
Rust core rather than through it. Layers are named as their tensors are:
``"layers.3"`` for the model's fourth layer, ``"layers.3.block.0"`` for the
first layer inside a ``Residual`` there.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from . import _validate, functional as _functional
from .callbacks import Callback, Logs
from .errors import ConfigError
from .layers import (
    Activation, BatchNorm, Dense, Dropout, Gated, LayerNorm, Layer, LogSoftmax, PReLU, Residual, RMSNorm, Softmax,
)

__all__ = [
    "layer_outputs", "dead_units", "activation_stats", "GradientMonitor", "check_gradients", "GradientCheckReport",
    "RELU_FAMILY", "TANH_SATURATION", "SIGMOID_SATURATION",
]

#: Activations with a flat or near-flat region for inputs <= 0, where a unit can "die".
RELU_FAMILY = ("relu", "leaky_relu", "elu", "prelu")
#: A tanh output is counted as saturated when ``|y| > TANH_SATURATION`` (tanh' < 0.06 there).
TANH_SATURATION = 0.97
#: A sigmoid output is counted as saturated when ``y < 1 − s`` or ``y > s`` with
#: ``s = SIGMOID_SATURATION`` (i.e. below 0.03 or above 0.97; sigmoid' < 0.03 there).
SIGMOID_SATURATION = 0.97

# In check_gradients, entries below this fraction of their tensor's largest gradient are
# compared in absolute terms (float32 back-propagation resolves them no more finely).
_SCALE_FLOOR = 1e-2
# Functions with a kink at 0 (their derivative jumps there); finite differences across one are wrong.
_KINKED = ("relu", "leaky_relu", "elu", "prelu")
_ALIASES = {"swish": "silu", "linear": "identity"}


# ----------------------------------------------------------------- float64 math

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid64(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _gelu_tanh64(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


#: The activations in float64, ``f(x, alpha)``, written from their definitions.
ACTIVATIONS_64 = {
    "identity": lambda x, a: x,
    "sigmoid": lambda x, a: _sigmoid64(x),
    "tanh": lambda x, a: np.tanh(x),
    "relu": lambda x, a: np.where(x > 0, x, 0.0),
    "leaky_relu": lambda x, a: np.where(x > 0, x, (0.01 if a is None else a) * x),
    "elu": lambda x, a: np.where(x > 0, x, (1.0 if a is None else a) * np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x, a: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x, a: _gelu_tanh64(x),
    "silu": lambda x, a: x * _sigmoid64(x),
    "softplus": lambda x, a: np.logaddexp(0.0, x),
}


def _log_softmax64(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


#: The losses in float64, ``loss(output, target) -> mean``, as the core defines them:
#: mse and binary cross-entropy (on logits) average over every element,
#: cross-entropy (on logits) and nll (on log-probabilities) over the samples.
LOSSES_64 = {
    "mse": lambda o, t: float(np.mean((o - t) ** 2)),
    "binary_cross_entropy": lambda o, t: float(np.mean(np.logaddexp(0.0, o) - t * o)),
    "cross_entropy": lambda o, t: float(-np.mean(_log_softmax64(o)[np.arange(len(t)), t])),
    "nll": lambda o, t: float(-np.mean(o[np.arange(len(t)), t])),
}


class _Ops:
    """The elementwise and row-wise functions of a forward pass in one precision."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)
        self.f64 = self.dtype == np.float64

    def act(self, name: str, x: np.ndarray, alpha: Optional[float]) -> np.ndarray:
        name = _ALIASES.get(name, name)
        if self.f64:
            return ACTIVATIONS_64[name](x, alpha)
        return _functional.activation(name, x, alpha)  # the core's own kernels

    def softmax(self, x: np.ndarray, temperature: float, log: bool) -> np.ndarray:
        if self.f64:
            lp = _log_softmax64(x / temperature)
            return lp if log else np.exp(lp)
        return (_functional.log_softmax if log else _functional.softmax)(x, temperature)


# ----------------------------------------------------------------- the forward pass

class _Record:
    """One layer's output, plus what the diagnostics need: the activation it applies
    (``act``), that activation's input (``pre``, per unit) and output (``post``)."""

    __slots__ = ("name", "layer", "output", "act", "pre", "post")

    def __init__(self, name: str, layer: Layer, output: np.ndarray, act: Optional[str] = None,
                 pre: Optional[np.ndarray] = None, post: Optional[np.ndarray] = None) -> None:
        self.name, self.layer, self.output = name, layer, output
        self.act, self.pre, self.post = act, pre, post


def _forward(layers: list[Layer], params: dict[str, np.ndarray], h: np.ndarray, ops: _Ops, training: bool,
             records: list[_Record], prefix: str = "layers") -> np.ndarray:
    """Runs ``layers`` on ``h``, appending a record per layer (inner layers of a
    Residual before the Residual itself)."""
    for i, layer in enumerate(layers):
        name = f"{prefix}.{i}"

        def p(key: str) -> np.ndarray:
            return params[f"{name}.{key}"]

        act = pre = post = None
        if isinstance(layer, Dense):
            pre = h @ p("weight") + p("bias")
            act = _ALIASES.get(layer.activation, layer.activation)
            h = post = ops.act(act, pre, layer.alpha)
        elif isinstance(layer, Activation):
            act, pre = _ALIASES.get(layer.name, layer.name), h
            h = post = ops.act(act, pre, layer.alpha)
        elif isinstance(layer, PReLU):
            act, pre = "prelu", h
            h = post = np.where(h > 0, h, p("alpha") * h)
        elif isinstance(layer, Gated):
            z = h @ p("weight") + p("bias")
            act, pre = _ALIASES.get(layer.gate, layer.gate), z[:, :layer.units]
            post = ops.act(act, pre, layer.gate_alpha)
            h = post * z[:, layer.units:]
        elif isinstance(layer, (Softmax, LogSoftmax)):
            h = ops.softmax(h, layer.temperature, log=isinstance(layer, LogSoftmax))
        elif isinstance(layer, BatchNorm):
            if training:
                mean, var = h.mean(axis=0), h.var(axis=0)  # the batch's (biased) statistics
            else:
                mean, var = p("running_mean"), p("running_var")
            h = p("gamma") * (h - mean) / np.sqrt(var + layer.eps) + p("beta")
        elif isinstance(layer, LayerNorm):
            mean = h.mean(axis=1, keepdims=True)
            var = ((h - mean) ** 2).mean(axis=1, keepdims=True)
            h = p("gamma") * (h - mean) / np.sqrt(var + layer.eps) + p("beta")
        elif isinstance(layer, RMSNorm):
            h = p("gamma") * h / np.sqrt((h * h).mean(axis=1, keepdims=True) + layer.eps)
        elif isinstance(layer, Dropout):
            if training and layer.rate > 0:
                raise ConfigError(f"{name} is Dropout({layer.rate}), which is random in training mode; "
                                  "use training=False (or a rate of 0) for this check")
        elif isinstance(layer, Residual):
            inner = _forward(layer.layers, params, h, ops, training, records, prefix=f"{name}.block")
            if f"{name}.projection.weight" in params:
                h = h @ p("projection.weight") + p("projection.bias") + inner
            else:
                h = h + inner
        else:
            raise ConfigError(f"the diagnostics do not know the layer {layer!r} ({name})")
        h = np.asarray(h, dtype=ops.dtype)
        records.append(_Record(name, layer, h, act, pre, post))
    return h


def _tensors(model: Any, dtype: Any) -> dict[str, np.ndarray]:
    net = model._require_built("the diagnostics")
    return {n: np.asarray(a, dtype=dtype) for n, a, _ in net.tensors()}


def _records(model: Any, X: Any, dtype: Any = np.float32, training: bool = False,
             params: Optional[dict[str, np.ndarray]] = None) -> list[_Record]:
    params = _tensors(model, dtype) if params is None else params
    x = _validate.features(X).astype(dtype)
    if x.shape[1] != model.input_dim:
        raise _validate.ShapeError(f"X has {x.shape[1]} features but the model takes {model.input_dim}")
    records: list[_Record] = []
    _forward(model.layers, params, x, _Ops(dtype), training, records)
    return records


def layer_outputs(model: Any, X: Any, nested: bool = False, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Each layer's output for ``X`` in inference mode, ``{"layers.0": array, ...}``, in order.

    Computed in NumPy from the model's tensors (dropout is the identity, BatchNorm
    uses its running statistics), so the last value equals ``model.predict_raw(X)``
    up to rounding. ``nested=True`` adds the layers inside ``Residual`` blocks
    (``"layers.2.block.0"``, ..., listed before their Residual). ``dtype=np.float64``
    computes in double precision.
    """
    return {r.name: r.output for r in _records(model, X, dtype) if nested or r.name.count(".") == 1}


def dead_units(model: Any, X: Any) -> dict[str, float]:
    """The fraction of "dead" units in each layer with a ReLU-family activation.

    A unit is dead on ``X`` when the input of its activation is <= 0 for every
    sample (for ReLU: its output is 0 for every sample, so no gradient reaches
    its weights). Counted for Dense layers with a relu / leaky_relu / elu
    activation, activation layers of those kinds, PReLU, and the gate units of
    gated layers with such a gate (ReGLU); layers inside Residual blocks included.
    """
    out: dict[str, float] = {}
    for r in _records(model, X):
        if r.act in RELU_FAMILY and r.pre is not None:
            out[r.name] = float(np.mean(np.all(r.pre <= 0, axis=0)))
    return out


def activation_stats(model: Any, X: Any) -> dict[str, dict[str, Any]]:
    """Per layer (inner layers of Residual blocks included): ``layer`` (its class name),
    ``activation`` (the function it applies, or None), ``mean`` and ``std`` of its
    outputs on ``X`` (inference mode), and ``saturated``: for sigmoid and tanh
    activations (a gated layer's sigmoid/tanh gate included) the fraction of
    activation outputs in the flat tails, ``|tanh| > 0.97`` or ``sigmoid < 0.03``
    / ``> 0.97`` (see ``TANH_SATURATION``, ``SIGMOID_SATURATION``); None for
    other layers. Saturated units pass almost no gradient."""
    stats: dict[str, dict[str, Any]] = {}
    for r in _records(model, X):
        saturated: Optional[float] = None
        if r.act == "tanh" and r.post is not None:
            saturated = float(np.mean(np.abs(r.post) > TANH_SATURATION))
        elif r.act == "sigmoid" and r.post is not None:
            s = SIGMOID_SATURATION
            saturated = float(np.mean((r.post < 1.0 - s) | (r.post > s)))
        stats[r.name] = {"layer": type(r.layer).__name__, "activation": r.act, "mean": float(np.mean(r.output)),
                         "std": float(np.std(r.output)), "saturated": saturated}
    return stats


# ----------------------------------------------------------------- gradient monitor

def _layer_of(tensor: str) -> str:
    return tensor.rsplit(".", 1)[0]


class GradientMonitor(Callback):
    """Records gradient and weight L2 norms during ``fit``.

    At ``on_batch_end`` (which ``fit`` calls after each chunk of batches, at most
    about every 0.2 s; this callback does not ask for more calls, so ``fit``
    batches and trains exactly as without it), once at least ``every`` batches
    have been trained since the last record (and at the first call), it reads
    the gradients of the last training step (``model._net.grads()``) and the
    weights, and appends to ``history``:

    - ``"epoch"``, ``"batch"`` (index within the epoch of the last batch trained),
      ``"step"`` (batches trained since this monitor first ran);
    - ``"<layer>/grad_norm"`` and ``"<layer>/weight_norm"`` for each layer with
      trainable tensors (``per="layer"``: all its tensors together, e.g.
      ``"layers.0"``; ``per="tensor"``: one entry per tensor, ``"layers.0.weight"``);
    - ``"grad_norm"``: the norm of all the gradients together.

    A record costs one pass over the gradients and the weights, in Rust.
    """

    def __init__(self, every: int = 10, per: str = "layer") -> None:
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ConfigError(f"GradientMonitor every must be a positive integer, got {every!r}")
        if per not in ("layer", "tensor"):
            raise ConfigError(f"GradientMonitor per must be 'layer' or 'tensor', got {per!r}")
        self.every = int(every)
        self.per = per
        self.history: dict[str, list[Any]] = {}
        self._epoch = 0
        self._in_epoch = 0      # batches trained in the current epoch, as of the last call
        self._step = 0          # batches trained in all
        self._last: Optional[int] = None

    def on_train_begin(self, logs: Optional[Logs] = None) -> None:
        # The core then keeps the weights of each step, so the L2 part of the
        # gradient read below is exact after a chunk of many batches.
        self.model._require_built("GradientMonitor").record_grads = True

    def on_epoch_begin(self, epoch: int, logs: Optional[Logs] = None) -> None:
        self._epoch, self._in_epoch = int(epoch), 0

    def on_batch_end(self, batch: int, logs: Optional[Logs] = None) -> None:
        logs = logs or {}
        if logs.get("diverged"):
            return  # a refused step: its gradients are not finite
        done = int(logs.get("batches", batch + 1))
        self._step += max(done - self._in_epoch, 0)
        self._in_epoch = done
        if self._last is not None and self._step - self._last < self.every:
            return
        self._last = self._step
        net = self.model._require_built("GradientMonitor")
        # Sums of squares computed in Rust: no copy of the arrays per record.
        sq = net.sq_norms()
        row: dict[str, Any] = {"epoch": self._epoch, "batch": int(batch), "step": self._step,
                               "grad_norm": math.sqrt(sum(g for _, g, _ in sq))}
        for suffix, pick in (("grad_norm", 1), ("weight_norm", 2)):
            sums: dict[str, float] = {}
            for entry in sq:
                key = _layer_of(entry[0]) if self.per == "layer" else entry[0]
                sums[key] = sums.get(key, 0.0) + entry[pick]
            for key, value in sums.items():
                row[f"{key}/{suffix}"] = math.sqrt(value)
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)


# ----------------------------------------------------------------- gradient check

class GradientCheckReport:
    """The result of ``check_gradients``.

    ``errors``: ``{tensor: max relative error}`` over the coordinates checked;
    ``passed``: every error <= ``tol``; ``loss``: ``(core, reference)`` losses of
    the probe batch; ``checked`` / ``skipped_kinks``: coordinates compared, and
    those left out because the finite difference straddled a kink (relu & co.);
    ``backprop`` / ``numeric``: the compared values per tensor.
    """

    def __init__(self, errors: dict[str, float], tol: float, loss: tuple[float, float], checked: dict[str, int],
                 skipped_kinks: dict[str, int], backprop: dict[str, np.ndarray],
                 numeric: dict[str, np.ndarray]) -> None:
        self.errors, self.tol, self.loss = errors, tol, loss
        self.checked, self.skipped_kinks = checked, skipped_kinks
        self.backprop, self.numeric = backprop, numeric

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    @property
    def passed(self) -> bool:
        return all(e <= self.tol for e in self.errors.values())

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"gradient check {'passed' if self.passed else 'FAILED'} (tol {self.tol:g}); "
                 f"loss core {self.loss[0]:.6g}, reference {self.loss[1]:.6g}"]
        for name, err in self.errors.items():
            mark = "" if err <= self.tol else "   <-- too large"
            skip = f", {self.skipped_kinks[name]} at kinks skipped" if self.skipped_kinks.get(name) else ""
            lines.append(f"  {name:<32} max rel err {err:.2e} ({self.checked[name]} checked{skip}){mark}")
        return "\n".join(lines)

    __repr__ = __str__


def _penalty(layers: list[Layer], params: dict[str, np.ndarray], prefix: str = "layers") -> float:
    """The L1/L2 penalties of the kernel / bias regularizers, in float64."""
    total = 0.0
    for i, layer in enumerate(layers):
        name = f"{prefix}.{i}"
        if isinstance(layer, Residual):
            total += _penalty(layer.layers, params, f"{name}.block")
            continue
        for key, reg in (("weight", getattr(layer, "kernel_regularizer", None)),
                         ("bias", getattr(layer, "bias_regularizer", None))):
            if reg is not None:
                w = params[f"{name}.{key}"]
                total += reg.l1 * float(np.abs(w).sum()) + reg.l2 * float((w * w).sum())
    return total


def _l1_tensors(layers: list[Layer], prefix: str = "layers") -> list[str]:
    """Names of the tensors with an L1 penalty (|w| has a kink at 0)."""
    names: list[str] = []
    for i, layer in enumerate(layers):
        name = f"{prefix}.{i}"
        if isinstance(layer, Residual):
            names += _l1_tensors(layer.layers, f"{name}.block")
            continue
        for key, reg in (("weight", getattr(layer, "kernel_regularizer", None)),
                         ("bias", getattr(layer, "bias_regularizer", None))):
            if reg is not None and reg.l1 > 0:
                names.append(f"{name}.{key}")
    return names


def _backprop_grads(model: Any, x: np.ndarray, y: np.ndarray, training: bool) -> tuple[float, dict[str, np.ndarray]]:
    """The core's loss and gradients for one step on ``(x, y)``, taken on a copy of the
    network with the learning rate at 0: the model (weights, optimizer state,
    BatchNorm statistics) is left exactly as it was."""
    probe = model._require_built("check_gradients").copy()
    lr = probe.lr
    probe.lr = 0.0
    probe.training = training
    try:
        loss_sum, samples, _, _ = probe.train_step(x, y)
        grads = {n: np.asarray(g, dtype=np.float64) for n, g in probe.grads()}
    finally:
        probe.lr = lr
    return loss_sum / samples, grads


def check_gradients(model: Any, X: Any, y: Any, eps: float = 1e-5, n_checks: Optional[int] = 20,
                    tol: float = 1e-2, training: bool = True, seed: int = 0) -> GradientCheckReport:
    """Compares the core's back-propagated gradients with central finite differences.

    The gradients are those of one training step on the whole of ``(X, y)`` as
    one batch, taken on a copy of the network (learning rate 0), so the model is
    not changed (weights, optimizer state, BatchNorm statistics). The reference
    is ``(L(θ + eps) − L(θ − eps)) / (2·eps)`` of the loss (plus the regularizers'
    penalties) computed by an independent float64 NumPy forward pass, for
    ``n_checks`` coordinates of each trainable tensor chosen at random (``seed``;
    None: all of them). ``eps`` is small (1e-5) because the reference is float64:
    a step of 1e-3 leaves a truncation error of order ``eps²`` times the third
    derivative, which reaches 1e-2 in deep networks.

    ``training=True`` checks training mode (BatchNorm on batch statistics; any
    Dropout must have rate 0, as its masks are random); ``training=False``
    inference mode. A coordinate whose finite difference moves some input of a
    kinked function (relu, leaky_relu, elu, PReLU, or an L1-penalised weight)
    across 0 is skipped and counted in ``skipped_kinks``: pick inputs away from
    the kinks.

    The error of a coordinate is ``|g − n| / max(|g|, |n|, 0.01·s, δ)``: ``s`` is
    the largest ``|n|`` of its tensor (entries far smaller than the tensor's
    scale are judged against that scale, as float32 back-propagation cannot
    resolve them more finely) and ``δ = 1000·ε₆₄·max(|L|, 1)/eps`` the resolution
    of the finite difference itself (ε₆₄ the float64 machine epsilon, L the
    loss). Correct float32 gradients give errors of about 1e-5 to 1e-3; wrong
    ones, errors of order 1. Returns a ``GradientCheckReport``: per-tensor
    maxima, and ``passed`` when all are <= ``tol``.
    """
    eps = float(eps)
    if not np.isfinite(eps) or eps <= 0:
        raise ConfigError(f"eps must be a finite number > 0, got {eps!r}")
    if n_checks is not None and (isinstance(n_checks, bool) or not isinstance(n_checks, (int, np.integer))
                                 or n_checks < 1):
        raise ConfigError(f"n_checks must be a positive integer or None, got {n_checks!r}")
    xa, ya = model._xy(X, y)
    core_loss, grads = _backprop_grads(model, xa, ya, bool(training))

    params = _tensors(model, np.float64)
    x64 = xa.astype(np.float64)
    t64 = ya if ya.dtype.kind == "i" else ya.astype(np.float64)
    loss_fn = LOSSES_64[model.loss]
    l1_names = _l1_tensors(model.layers)

    def evaluate(ps: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        records: list[_Record] = []
        out = _forward(model.layers, ps, x64, _Ops(np.float64), bool(training), records)
        kinks = [r.pre.ravel() > 0 for r in records if r.act in _KINKED and r.pre is not None]
        kinks += [ps[n].ravel() > 0 for n in l1_names]
        pattern = np.concatenate(kinks) if kinks else np.zeros(0, dtype=bool)
        return loss_fn(out, t64) + _penalty(model.layers, ps), pattern

    ref_loss, base_pattern = evaluate(params)
    # Rounding error of a float64 central difference is about ulp(L) / eps; differences
    # within 1000 times that are not resolved (so they stay below tol's usual scale).
    noise = 1e3 * np.finfo(np.float64).eps * max(abs(ref_loss), 1.0) / eps
    rng = np.random.default_rng(seed)
    errors, checked, skipped, bp_vals, fd_vals = {}, {}, {}, {}, {}
    for name, g in grads.items():
        size = g.size
        idx = np.arange(size) if n_checks is None or n_checks >= size else np.sort(rng.choice(size, n_checks, False))
        theta = params[name].ravel()
        got, want = [], []
        skips = 0
        for k in idx:
            values = []
            straddles = False
            for sign in (1.0, -1.0):
                moved = theta.copy()
                moved[k] += sign * eps
                ps = dict(params)
                ps[name] = moved.reshape(params[name].shape)
                value, pattern = evaluate(ps)
                straddles = straddles or not np.array_equal(pattern, base_pattern)
                values.append(value)
            if straddles:
                skips += 1
                continue
            got.append(g.ravel()[k])
            want.append((values[0] - values[1]) / (2.0 * eps))
        got_a, want_a = np.array(got), np.array(want)
        if len(got_a):
            floor = max(_SCALE_FLOOR * float(np.abs(want_a).max()), noise)
            denom = np.maximum(np.maximum(np.abs(got_a), np.abs(want_a)), floor)
            errors[name] = float(np.max(np.abs(got_a - want_a) / denom))
        else:
            errors[name] = 0.0
        checked[name], skipped[name] = len(got_a), skips
        bp_vals[name], fd_vals[name] = got_a, want_a
    return GradientCheckReport(errors, float(tol), (float(core_loss), float(ref_loss)), checked, skipped,
                               bp_vals, fd_vals)
