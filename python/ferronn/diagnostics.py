"""Looking inside a network: per-layer outputs, dead ReLUs, saturation, gradient
norms during training, and a finite-difference check of the gradients.

>>> outs = fn.diagnostics.layer_outputs(model, X)      # {"layers.0": array, ...}
>>> fn.diagnostics.dead_units(model, X)                # {"layers.0": 0.03, ...}
>>> fn.diagnostics.activation_stats(model, X)["layers.1"]["saturated"]
>>> monitor = fn.diagnostics.GradientMonitor(every=10)
>>> model.fit(X, y, epochs=5, callbacks=[monitor]); monitor.history["layers.0/grad_norm"]
>>> report = fn.diagnostics.check_gradients(model, X[:16], y[:16]); report.passed

``time_step_gradients(model, X, y)`` gives, for each recurrent layer, the norm of
the loss gradient reaching its hidden state at every time step.

The forward-pass diagnostics run a plain NumPy forward pass from the model's
tensors (``model._net.tensors()``), written from each layer's definition, next
to the Rust core rather than through it; the gradient ones read the core's
backward pass. Layers are named as their tensors are:
``"layers.3"`` for the model's fourth layer, ``"layers.3.block.0"`` for the
first layer inside a ``Residual`` there.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Optional

import numpy as np

from . import _validate, functional as _functional, names as _names
from .callbacks import Callback, Logs
from .errors import ConfigError
from .layers import Layer
from .layers.elementwise import FLOAT64, float64 as _float64

__all__ = [
    "layer_outputs", "dead_units", "activation_stats", "GradientMonitor", "check_gradients", "time_step_gradients", "GradientCheckReport",
    "RELU_FAMILY", "TANH_SATURATION", "SIGMOID_SATURATION",
]

#: Activations with a flat or near-flat region for inputs <= 0, where a unit can "die":
#: the ones with the ReLU kink at 0 (the core's table), and the PReLU layer.
RELU_FAMILY = tuple(a.name for a in _names.activations() if a.kinked) + ("prelu",)
#: A tanh output is counted as saturated when ``|y| > TANH_SATURATION`` (tanh' < 0.06 there).
TANH_SATURATION = 0.97
#: A sigmoid output is counted as saturated when ``y < 1 − s`` or ``y > s`` with
#: ``s = SIGMOID_SATURATION`` (i.e. below 0.03 or above 0.97; sigmoid' < 0.03 there).
SIGMOID_SATURATION = 0.97

# In check_gradients, entries below this fraction of their tensor's largest gradient are
# compared in absolute terms (float32 back-propagation resolves them no more finely).
_SCALE_FLOOR = 1e-2


# ----------------------------------------------------------------- float64 math

#: The activations in float64, ``f(x, alpha)``, written from their definitions
#: (``fn.layers.elementwise.FLOAT64``; patching an entry changes the reference).
ACTIVATIONS_64 = FLOAT64


def _log_softmax64(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


#: The losses in float64, ``loss(output, target) -> mean``, as the core defines them:
#: mse, binary cross-entropy (on logits) and Poisson NLL (on log-rates) average over every element,
#: cross-entropy (on logits) and nll (on log-probabilities) over the samples.
LOSSES_64 = {
    "mse": lambda o, t: float(np.mean((o - t) ** 2)),
    "binary_cross_entropy": lambda o, t: float(np.mean(np.logaddexp(0.0, o) - t * o)),
    "cross_entropy": lambda o, t: float(-np.mean(_log_softmax64(o)[np.arange(len(t)), t])),
    "nll": lambda o, t: float(-np.mean(o[np.arange(len(t)), t])),
    "poisson_nll": lambda o, t: float(np.mean(np.exp(o) - t * o)),
}


# ----------------------------------------------------------------- the forward pass

class _Record:
    """One layer's output, plus what the diagnostics need: the activation it applies
    (``act``), that activation's input (``pre``, per unit) and output (``post``),
    and whether the function is kinked at 0."""

    __slots__ = ("name", "layer", "output", "act", "pre", "post", "kinked")

    def __init__(self, name: str, layer: Layer, output: np.ndarray, act: Optional[str] = None,
                 pre: Optional[np.ndarray] = None, post: Optional[np.ndarray] = None, kinked: bool = False) -> None:
        self.name, self.layer, self.output = name, layer, output
        self.act, self.pre, self.post, self.kinked = act, pre, post, kinked


class _Scoped:
    """One layer's tensors: ``p["weight"]`` is ``params["layers.3.weight"]``."""

    def __init__(self, params: dict[str, np.ndarray], prefix: str) -> None:
        self._params, self._prefix = params, prefix

    def __getitem__(self, key: str) -> np.ndarray:
        return self._params[f"{self._prefix}.{key}"]

    def __contains__(self, key: str) -> bool:
        return f"{self._prefix}.{key}" in self._params


class _Reference:
    """One NumPy forward pass in one precision: what ``Layer.numpy_forward`` calls
    (``act``, ``softmax``, ``training``, ``run`` / ``run_parallel`` for nested layers),
    and the records."""

    def __init__(self, params: dict[str, np.ndarray], dtype: Any, training: bool) -> None:
        self.params, self.dtype, self.training = params, np.dtype(dtype), training
        self.records: list[_Record] = []
        #: The step mask of padded sequences reaching the layer being run ([N, T] bool), or None.
        self.mask: Optional[np.ndarray] = None

    def act(self, name: str, x: np.ndarray, alpha: Optional[float]) -> np.ndarray:
        if self.dtype == np.float64:
            return _float64(name, x, alpha)
        return _functional.activation(name, x, alpha)  # the core's own kernels

    def softmax(self, x: np.ndarray, temperature: float, log: bool) -> np.ndarray:
        if self.dtype == np.float64:
            lp = _log_softmax64(x / temperature)
            return lp if log else np.exp(lp)
        return (_functional.log_softmax if log else _functional.softmax)(x, temperature)

    def run(self, layers: list[Layer], h: np.ndarray, prefix: str = "layers") -> np.ndarray:
        """Runs ``layers`` on ``h``, appending a record per layer (a layer's nested
        layers before the layer itself)."""
        mask = None  # masks flow as in the core: from a producer while the time axis stays
        for i, layer in enumerate(layers):
            name = f"{prefix}.{i}"
            self.mask = mask
            step = layer.numpy_forward(h, _Scoped(self.params, name), self, name)
            mask = step.mask if step.mask is not None else (mask if layer.passes_mask() else None)
            h = np.asarray(step.output, dtype=self.dtype)
            self.records.append(_Record(name, layer, h, step.act, step.pre, step.post, step.kinked))
        return h

    def run_parallel(self, named: list[tuple[str, Layer]], h: np.ndarray) -> list[np.ndarray]:
        """Runs each ``(tensor prefix, layer)`` of ``named`` on the same input ``h``
        (Bidirectional's directions), recording each; returns their outputs."""
        outs = []
        for name, layer in named:
            step = layer.numpy_forward(h, _Scoped(self.params, name), self, name)
            outs.append(np.asarray(step.output, dtype=self.dtype))
            self.records.append(_Record(name, layer, outs[-1], step.act, step.pre, step.post, step.kinked))
        return outs


def _tensors(model: Any, dtype: Any) -> dict[str, np.ndarray]:
    net = model._require_built("the diagnostics")
    return {n: np.asarray(a, dtype=dtype) for n, a, _ in net.tensors()}


def _records(model: Any, X: Any, dtype: Any = np.float32, training: bool = False,
             params: Optional[dict[str, np.ndarray]] = None) -> list[_Record]:
    params = _tensors(model, dtype) if params is None else params
    # N-D samples (images, sequences) are checked against the model's input shape and flattened.
    x = getattr(model, "_features", _validate.features)(X).astype(dtype)
    if x.shape[1] != model.input_dim and not getattr(model, "_variable_steps", False):
        raise _validate.ShapeError(f"X has {x.shape[1]} features but the model takes {model.input_dim}")
    ref = _Reference(params, dtype, training)
    ref.run(model.layers, x)
    return ref.records


def layer_outputs(model: Any, X: Any, nested: bool = False, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """Each layer's output for ``X`` in inference mode, ``{"layers.0": array, ...}``, in order.

    Computed in NumPy from the model's tensors (dropout is the identity, BatchNorm
    uses its running statistics), so the last value equals ``model.predict_raw(X)``
    up to rounding. ``nested=True`` adds the layers inside ``Residual`` blocks
    (``"layers.2.block.0"``, ..., listed before their Residual) and a ``Bidirectional``'s
    two directions (``"layers.1.forward"``, ``"layers.1.backward"``, each in its own
    reading order; given a step mask with ``return_sequences``, their padded steps are 0
    as Keras' wrapped layers give them, not the carried-over state). ``dtype=np.float64``
    computes in double precision.
    """
    return {r.name: r.output for r in _records(model, X, dtype) if nested or r.name.count(".") == 1}


def _sample_shape(r: _Record) -> Optional[tuple[int, ...]]:
    """The per-sample shape of a record's output when it is an image or a sequence
    (the layer was built for an N-D input or gives an N-D output), else None."""
    shape = r.layer._input_shape
    if shape is None:
        return None
    try:
        out = tuple(r.layer.output_shape(shape))
    except ConfigError:  # a shape the layer cannot take: treated as flat
        return None
    return out if len(out) > 1 and math.prod(out) == r.output.shape[1] else None


def _by_channel(values: np.ndarray, shape: tuple[int, ...], fmt: str) -> np.ndarray:
    """``values`` ([N, prod(shape)], one row per sample) as [N * positions, channels]."""
    x = values.reshape((values.shape[0], *shape))
    if fmt == "channels_first":
        x = np.moveaxis(x, 1, -1)
    return x.reshape(-1, x.shape[-1])


def _channel_records(model: Any, X: Any) -> Iterator[tuple[_Record, Optional[tuple[int, ...]], str]]:
    """Each record with its N-D per-sample output shape (or None) and the data format
    its channels follow: the layer's own, else the nearest earlier layer's (an
    activation layer after a channels_first convolution is channels_first too)."""
    fmt = "channels_last"
    for r in _records(model, X):
        own = getattr(r.layer, "data_format", None)
        # Layers that keep the shape (activations, dropout) keep the layout; others (Dense on
        # the last axis) give channels_last outputs.
        fmt = own if own is not None else (fmt if r.layer.keeps_shape else "channels_last")
        yield r, _sample_shape(r), fmt


def dead_units(model: Any, X: Any) -> dict[str, float]:
    """The fraction of "dead" units in each layer with a ReLU-family activation.

    A unit is dead on ``X`` when the input of its activation is <= 0 for every
    sample (for ReLU: its output is 0 for every sample, so no gradient reaches
    its weights). Counted for Dense layers with a relu / leaky_relu / elu
    activation, activation layers of those kinds, PReLU, and the gate units of
    gated layers with such a gate (ReGLU); layers inside Residual blocks included.

    On images and sequences (convolutions, and activation layers after them) a unit
    is a channel: a filter is dead when its activation input is <= 0 at every
    position of every sample, since it shares one set of weights across positions.
    """
    out: dict[str, float] = {}
    for r, shape, fmt in _channel_records(model, X):
        if r.kinked and r.pre is not None:  # the RELU_FAMILY
            pre = r.pre
            if shape is not None and pre.shape == r.output.shape:
                pre = _by_channel(pre, shape, fmt)
            out[r.name] = float(np.mean(np.all(pre <= 0, axis=0)))
    return out


def activation_stats(model: Any, X: Any) -> dict[str, dict[str, Any]]:
    """Per layer (inner layers of Residual blocks included): ``layer`` (its class name),
    ``activation`` (the function it applies, or None), ``mean`` and ``std`` of its
    outputs on ``X`` (inference mode), and ``saturated``: for sigmoid and tanh
    activations (a gated layer's sigmoid/tanh gate included) the fraction of
    activation outputs in the flat tails, ``|tanh| > 0.97`` or ``sigmoid < 0.03``
    / ``> 0.97`` (see ``TANH_SATURATION``, ``SIGMOID_SATURATION``); None for
    other layers. Saturated units pass almost no gradient.

    ``shape`` is the per-sample output shape (``(26, 26, 32)`` after a convolution,
    ``(width,)`` otherwise); for images and sequences ``channel_mean`` and
    ``channel_std`` give each channel's statistics over samples and positions
    (None for flat outputs)."""
    stats: dict[str, dict[str, Any]] = {}
    for r, shape, fmt in _channel_records(model, X):
        saturated: Optional[float] = None
        if r.act == "tanh" and r.post is not None:
            saturated = float(np.mean(np.abs(r.post) > TANH_SATURATION))
        elif r.act == "sigmoid" and r.post is not None:
            s = SIGMOID_SATURATION
            saturated = float(np.mean((r.post < 1.0 - s) | (r.post > s)))
        per_channel = None if shape is None else _by_channel(r.output, shape, fmt)
        stats[r.name] = {"layer": type(r.layer).__name__, "activation": r.act, "mean": float(np.mean(r.output)),
                         "std": float(np.std(r.output)), "saturated": saturated,
                         "shape": shape if shape is not None else (int(r.output.shape[1]),),
                         "channel_mean": None if per_channel is None else per_channel.mean(axis=0),
                         "channel_std": None if per_channel is None else per_channel.std(axis=0)}
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
        every = _validate.positive_int(every, "GradientMonitor every")
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


# ----------------------------------------------------------------- through time

def time_step_gradients(model: Any, X: Any, y: Any, training: bool = True) -> dict[str, np.ndarray]:
    """How much gradient reaches each time step of every recurrent layer.

    For each SimpleRNN, LSTM and GRU layer (named like its tensors,
    ``"layers.1"``; a Bidirectional layer's two directions ``"layers.1.forward"``
    and ``"layers.1.backward"``), an array of ``T`` floats: entry ``t`` is ``‖∂L/∂h_t‖``,
    the Frobenius norm over the whole batch (``[N, units]``) of the gradient
    of the loss ``L`` with respect to the hidden state ``h_t`` the layer
    computes from input step ``t``. ``t`` counts in input order (0 = the
    first step of ``X``), also with ``go_backwards``. It is the whole
    backpropagation-through-time gradient arriving at ``h_t``: from the
    loss at that step (``return_sequences=True``) and, through the
    recurrence, from every step the layer processes after it (the later
    steps; the earlier ones with ``go_backwards``). ``L`` is what a training step on
    ``(X, y)`` as one batch minimises (the mean loss over the samples plus
    any regularizer penalties, which do not depend on ``h_t``), so the norms
    scale as ``1/N`` with the batch. The LSTM's cell state is not included.
    With masked (padded) sequences a padded step computes no state (it carries
    the last one over), so entry ``t`` is over the samples whose step ``t`` is
    real, and a step padded in every sample reads 0; this holds for plain and
    bidirectional layers alike.

    The core records the norms inside its backward pass, on a copy of the
    network: the model (weights, optimizer state, statistics) is unchanged.
    ``training=True`` runs in training mode (dropout active), ``False`` in
    inference mode. ``ConfigError`` when the model has no recurrent layer.

    A plain RNN multiplies the gradient by the same recurrent Jacobian at
    every step back, so on a long sequence these norms typically fall
    geometrically toward ``t = 0``; an LSTM's or GRU's gates can keep them up
    (examples/13_vanishing_gradients_through_time.py plots both).

    >>> rnn = fn.Sequential([fn.Input((8, 8)), fn.GRU(16), fn.Dense(10)], seed=0)
    >>> rnn.compile(optimizer="adam", loss="cross_entropy")
    >>> X_seq = X.reshape(-1, 8, 8) / 16.0   # each digit read row by row
    >>> norms = fn.diagnostics.time_step_gradients(rnn, X_seq, y)
    >>> sorted(norms), norms["layers.0"].shape
    (['layers.0'], (8,))
    """
    net = model._require_built("time_step_gradients")
    xa, ya = model._xy(X, y)
    probe = net.copy()
    probe.training = bool(training)
    norms = probe.time_step_grad_norms(xa, ya)
    if not norms:
        raise ConfigError("time_step_gradients needs a model with a recurrent layer (SimpleRNN, LSTM or GRU)")
    return {name: np.asarray(values, dtype=np.float64) for name, values in norms}


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
        """The largest relative error over the checked tensors (0 when none was checked)."""
        return max(self.errors.values(), default=0.0)

    @property
    def passed(self) -> bool:
        """Whether every checked tensor's error is within ``tol``."""
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


def _all_layers(named: Iterable[tuple[str, Layer]]) -> Iterator[tuple[str, Layer]]:
    """Each ``(tensor prefix, layer)`` of ``named`` followed by its nested layers, recursively."""
    for name, layer in named:
        yield name, layer
        yield from _all_layers(layer.named_sublayers(name))


def _regularized(layers: list[Layer]) -> Iterator[tuple[str, Any]]:
    """``(tensor name, regularizer)`` of every kernel / bias regularizer, nested layers included."""
    for name, layer in _all_layers((f"layers.{i}", layer) for i, layer in enumerate(layers)):
        for key, reg in layer.regularized_tensors():
            yield f"{name}.{key}", reg


def _penalty(layers: list[Layer], params: dict[str, np.ndarray]) -> float:
    """The L1/L2 penalties of the kernel / bias regularizers, in float64."""
    total = 0.0
    for name, reg in _regularized(layers):
        w = params[name]
        total += reg.l1 * float(np.abs(w).sum()) + reg.l2 * float((w * w).sum())
    return total


def _l1_tensors(layers: list[Layer]) -> list[str]:
    """Names of the tensors with an L1 penalty (|w| has a kink at 0)."""
    return [name for name, reg in _regularized(layers) if reg.l1 > 0]


def _backprop_grads(model: Any, x: np.ndarray, y: np.ndarray, training: bool) -> tuple[float, dict[str, np.ndarray]]:
    """The core's loss and gradients for one step on ``(x, y)``, taken on a copy of the
    network with the learning rate at 0: the model (weights, optimizer state,
    BatchNorm statistics) is left exactly as it was."""
    probe = model._require_built("check_gradients").copy()
    lr = probe.lr
    probe.lr = 0.0
    probe.training = training
    try:
        stats = probe.train_step(x, y)
        grads = {n: np.asarray(g, dtype=np.float64) for n, g in probe.grads()}
    finally:
        probe.lr = lr
    return stats.loss_sum / stats.samples, grads


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
    eps = _validate.finite_float(eps, "eps", 0.0, low_open=True, expected="a finite number > 0")
    if n_checks is not None:
        n_checks = _validate.positive_int(n_checks, "n_checks", expected="a positive integer or None")
    xa, ya = model._xy(X, y)
    core_loss, grads = _backprop_grads(model, xa, ya, bool(training))

    params = _tensors(model, np.float64)
    x64 = xa.astype(np.float64)
    t64 = ya if ya.dtype.kind == "i" else ya.astype(np.float64)
    loss_fn = LOSSES_64[_names.loss(model.loss).name]
    l1_names = _l1_tensors(model.layers)

    def evaluate(ps: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
        ref = _Reference(ps, np.float64, bool(training))
        out = ref.run(model._logit_layers(), x64)  # the core's loss takes the logits
        kinks = [r.pre.ravel() > 0 for r in ref.records if r.kinked and r.pre is not None]
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
