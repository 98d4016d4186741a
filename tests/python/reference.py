"""An independent float64 NumPy reference for ferronn's numerics.

Nothing here imports ferronn: activations, softmax, losses, a dense MLP forward
pass and PyTorch's optimizer update rules, all written from their textbook /
PyTorch-documentation definitions in float64. Derivatives are deliberately not
written out (except the closed-form MSE gradient of a linear layer, used by the
optimizer tests); the gradient tests take central finite differences of these
forward functions instead.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ACTIVATIONS", "activation", "softmax", "log_softmax", "loss", "LOSSES", "mlp_forward", "mlp_loss",
    "central_diff", "numeric_grad", "rel_err", "linear_mse_grad", "SGD", "Adam", "AdamW",
]

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so that neither branch overflows exp.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    c = math.sqrt(2.0 / math.pi)
    return 0.5 * x * (1.0 + np.tanh(c * (x + 0.044715 * x**3)))


ACTIVATIONS = {
    "identity": lambda x, a: x.copy(),
    "sigmoid": lambda x, a: _sigmoid(x),
    "tanh": lambda x, a: np.tanh(x),
    "relu": lambda x, a: np.where(x > 0, x, 0.0),
    "leaky_relu": lambda x, a: np.where(x > 0, x, (0.01 if a is None else a) * x),
    "elu": lambda x, a: np.where(x > 0, x, (1.0 if a is None else a) * np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x, a: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x, a: _gelu_tanh(x),
    "silu": lambda x, a: x * _sigmoid(x),
    "swish": lambda x, a: x * _sigmoid(x),
    "softplus": lambda x, a: np.logaddexp(0.0, x),
}


def activation(name: str, x, alpha=None) -> np.ndarray:
    return ACTIVATIONS[name](np.asarray(x, dtype=np.float64), alpha)


def log_softmax(x, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(x, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _mse(o, y):
    return np.mean((o - y) ** 2)


def _bce_logits(z, y):
    # softplus(z) - y z, the stable form of -[y log σ(z) + (1-y) log(1-σ(z))].
    return np.mean(np.logaddexp(0.0, z) - y * z)


def _cross_entropy(z, labels):
    lp = log_softmax(z)
    return -np.mean(lp[np.arange(len(labels)), labels])


def _nll(lp, labels):
    return -np.mean(lp[np.arange(len(labels)), labels])


def _poisson_nll(z, y):
    # PyTorch's PoissonNLLLoss(log_input=True, full=False): exp(z) - y z, averaged.
    return np.mean(np.exp(z) - y * z)


LOSSES = {"mse": _mse, "binary_cross_entropy": _bce_logits, "cross_entropy": _cross_entropy, "nll": _nll, "poisson_nll": _poisson_nll}


def loss(name: str, output, y) -> float:
    out = np.asarray(output, dtype=np.float64)
    if name in ("cross_entropy", "nll"):
        return float(LOSSES[name](out, np.asarray(y, dtype=np.int64)))
    t = np.asarray(y, dtype=np.float64).reshape(out.shape)
    return float(LOSSES[name](out, t))


def mlp_forward(x, weights, activations, alphas=None) -> np.ndarray:
    """Dense stack: h = act_i(h @ W_i + b_i); weights = [W0, b0, W1, b1, ...]."""
    h = np.asarray(x, dtype=np.float64)
    alphas = alphas or [None] * len(activations)
    for i, (act, a) in enumerate(zip(activations, alphas)):
        w = np.asarray(weights[2 * i], dtype=np.float64)
        b = np.asarray(weights[2 * i + 1], dtype=np.float64)
        h = activation(act, h @ w + b, a)
    return h


def mlp_loss(x, y, weights, activations, loss_name: str, alphas=None) -> float:
    return loss(loss_name, mlp_forward(x, weights, activations, alphas), y)


# -- finite differences ---------------------------------------------------


def central_diff(f, x: np.ndarray, h: float) -> np.ndarray:
    """Elementwise derivative of an elementwise f at x by a central difference (step h·max(1,|x|))."""
    x = np.asarray(x, dtype=np.float64)
    step = h * np.maximum(1.0, np.abs(x))
    return (f(x + step) - f(x - step)) / (2.0 * step)


def numeric_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Gradient of the scalar f at x by central differences, one coordinate at a time."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        step = h * max(1.0, abs(old))
        flat[i] = old + step
        fp = f(x)
        flat[i] = old - step
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2.0 * step)
    return g


def rel_err(a, b, floor: float = 1e-12) -> float:
    """Norm-based relative error ||a - b|| / max(||b||, floor)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), floor))


# -- optimizers (PyTorch's documented update rules, in float64) -----------


def assert_grads_match(grads, params, loss_of, label: str, tol: float = 1e-3) -> None:
    """Each core gradient in ``grads`` ({name: array}) against central differences of
    ``loss_of`` (a float64 loss of the whole ``params`` dict), one tensor at a time."""
    for tensor, g in grads.items():
        def f(p, tensor=tensor):
            return loss_of({**params, tensor: p})
        fd = numeric_grad(f, params[tensor])
        err = rel_err(g, fd, floor=1e-6)
        assert err <= tol, f"{label} {tensor}: rel err {err:.2e}\ngot  {g}\nwant {fd}"


def linear_mse_grad(x, t, w, b):
    """Gradient of mean((x W + b - t)^2) over all B·C elements, w.r.t. W and b."""
    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    r = 2.0 * (x @ w + b - t) / t.size
    return x.T @ r, r.sum(axis=0)


class SGD:
    """torch.optim.SGD: weight decay into g, momentum buffer (first step buf = g), dampening, nesterov."""

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.nesterov, self.weight_decay = nesterov, weight_decay
        self.bufs: dict[int, np.ndarray] = {}

    def step(self, params: list, grads: list) -> None:
        for i, (p, g) in enumerate(zip(params, grads)):
            g = g + self.weight_decay * p if self.weight_decay else g.copy()
            if self.momentum:
                if i not in self.bufs:
                    self.bufs[i] = g.copy()
                else:
                    self.bufs[i] = self.momentum * self.bufs[i] + (1.0 - self.dampening) * g
                buf = self.bufs[i]
                g = g + self.momentum * buf if self.nesterov else buf
            p -= self.lr * g


class Adam:
    """torch.optim.Adam (amsgrad=False): L2 weight decay added to the gradient."""

    decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.t = 0
        self.m: dict[int, np.ndarray] = {}
        self.v: dict[int, np.ndarray] = {}

    def step(self, params: list, grads: list) -> None:
        self.t += 1
        b1, b2 = self.betas
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.decoupled:
                p *= 1.0 - self.lr * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * p
            m = self.m.setdefault(i, np.zeros_like(p))
            v = self.v.setdefault(i, np.zeros_like(p))
            m[...] = b1 * m + (1.0 - b1) * g
            v[...] = b2 * v + (1.0 - b2) * g * g
            m_hat = m / (1.0 - b1**self.t)
            v_hat = v / (1.0 - b2**self.t)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """torch.optim.AdamW: p *= 1 - lr·wd, then Adam without weight decay in the gradient."""

    decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(lr, betas, eps, weight_decay)


# -- the layer catalogue (PReLU, gated units, norms, residual blocks) ------
#
# Plain float64 forward passes written from the papers' / PyTorch's definitions.
# A network is described independently of ferronn as a list of tuples:
#   ("dense", act, alpha)          h = act(h W + b)
#   ("act", name, alpha)           elementwise activation
#   ("softmax", T) / ("log_softmax", T)
#   ("prelu",)                     slopes "alpha", shape [d] or [1]
#   ("gated", gate)                gate(h Wg + bg) * (h Wv + bv), "weight" = [Wg | Wv]
#   ("batch_norm", eps, momentum)  buffers "running_mean", "running_var"
#   ("layer_norm", eps) / ("rms_norm", eps)
#   ("dropout",)                   identity (rate 0, or inference)
#   ("residual", [inner tuples])   x + block(x), or x P + c + block(x) when
#                                  "<prefix>.projection.weight" is in params
# Tensors are looked up in a dict under ferronn's naming convention
# ("layers.{i}.weight", "layers.{i}.block.{j}.gamma", ...), which is only a
# naming scheme: nothing here calls the library.

KINKED_ACTS = {"relu", "leaky_relu", "elu"}


def prelu(x, a) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, np.asarray(a, dtype=np.float64) * x)


def gated(x, w, b, gate: str, alpha=None) -> np.ndarray:
    """gate(x Wg + bg) * (x Wv + bv) with w = [Wg | Wv] ([in, 2 units]), b = [bg | bv]."""
    z = np.asarray(x, np.float64) @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
    u = z.shape[1] // 2
    return activation(gate, z[:, :u], alpha) * z[:, u:]


def batch_stats(x):
    """Per-feature batch mean, biased variance and unbiased variance."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    n = x.shape[0]
    unbiased = var * n / (n - 1) if n > 1 else var
    return mean, var, unbiased


def batch_norm(x, gamma, beta, mean, var, eps) -> np.ndarray:
    """gamma (x - mean) / sqrt(var + eps) + beta, per feature."""
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(gamma, np.float64) * (x - mean) / np.sqrt(np.asarray(var, np.float64) + eps) + beta


def batch_norm_running(running_mean, running_var, x, momentum):
    """PyTorch's running-statistics update from one training batch (unbiased variance)."""
    mean, _, unbiased = batch_stats(x)
    m = float(momentum)
    return ((1.0 - m) * np.asarray(running_mean, np.float64) + m * mean,
            (1.0 - m) * np.asarray(running_var, np.float64) + m * unbiased)


def layer_norm(x, gamma, beta, eps) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray(gamma, np.float64) * (x - mean) / np.sqrt(var + eps) + np.asarray(beta, np.float64)


def rms_norm(x, gamma, eps) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.asarray(gamma, np.float64) * x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps)


def net_forward(x, layers, params, training=True, prefix="layers", kinks=None, updates=None) -> np.ndarray:
    """Forward pass of a network described by ``layers`` (see above).

    ``training`` picks batch statistics (True) or running statistics (False) in
    BatchNorm. ``kinks``, when a list, receives |z| of every input to a function
    with a kink at 0 (relu-like activations, PReLU, relu gates). ``updates``,
    when a dict, receives the new running statistics of every BatchNorm under
    its tensor names (training mode only).
    """
    h = np.asarray(x, dtype=np.float64)
    for i, layer in enumerate(layers):
        p = f"{prefix}.{i}" if prefix == "layers" else f"{prefix}.block.{i}"
        kind = layer[0]
        if kind == "dense":
            _, act, a = layer
            h = h @ params[p + ".weight"] + params[p + ".bias"]
            if kinks is not None and act in KINKED_ACTS:
                kinks.append(np.abs(h).ravel())
            h = activation(act, h, a)
        elif kind == "act":
            _, act, a = layer
            if kinks is not None and act in KINKED_ACTS:
                kinks.append(np.abs(h).ravel())
            h = activation(act, h, a)
        elif kind == "softmax":
            h = softmax(h, layer[1])
        elif kind == "log_softmax":
            h = log_softmax(h, layer[1])
        elif kind == "prelu":
            if kinks is not None:
                kinks.append(np.abs(h).ravel())
            h = prelu(h, params[p + ".alpha"])
        elif kind == "gated":
            gate = layer[1]
            w, b = params[p + ".weight"], params[p + ".bias"]
            if kinks is not None and gate in KINKED_ACTS:
                kinks.append(np.abs((h @ w + b)[:, : w.shape[1] // 2]).ravel())
            h = gated(h, w, b, gate)
        elif kind == "batch_norm":
            _, eps, momentum = layer
            gamma, beta = params[p + ".gamma"], params[p + ".beta"]
            if training:
                mean, var, _ = batch_stats(h)
                if updates is not None:
                    rm, rv = batch_norm_running(params[p + ".running_mean"], params[p + ".running_var"], h, momentum)
                    updates[p + ".running_mean"], updates[p + ".running_var"] = rm, rv
            else:
                mean, var = params[p + ".running_mean"], params[p + ".running_var"]
            h = batch_norm(h, gamma, beta, mean, var, eps)
        elif kind == "layer_norm":
            h = layer_norm(h, params[p + ".gamma"], params[p + ".beta"], layer[1])
        elif kind == "rms_norm":
            h = rms_norm(h, params[p + ".gamma"], layer[1])
        elif kind == "dropout":
            h = h.copy()
        elif kind == "residual":
            inner = net_forward(h, layer[1], params, training, prefix=p, kinks=kinks, updates=updates)
            if p + ".projection.weight" in params:
                skip = h @ params[p + ".projection.weight"] + params[p + ".projection.bias"]
            else:
                skip = h
            h = skip + inner
        else:
            raise ValueError(f"unknown reference layer {kind!r}")
    return h


def net_loss(x, y, layers, params, loss_name: str, training=True) -> float:
    return loss(loss_name, net_forward(x, layers, params, training), y)


# == training control: optimizers with gradient clipping, weight-decay exclusion, ==
# == AMSGrad, RMSprop and Adagrad (float64, PyTorch's documented rules)           ==
#
# Self-contained: the SGD/Adam/AdamW classes above are left as they are. Each
# optimizer here takes ferronn's keyword arguments plus ``names``, the tensor
# names in ``params`` order (for weight-decay exclusion). A step clips the
# gradients (Keras' options, applied in the order clipvalue, clipnorm per list
# entry = per tensor, global_clipnorm), then updates each tensor with the
# weight decay it gets.

BIAS_AND_NORM = ("bias", "gamma", "beta")


def clip_gradients(grads, clipvalue=None, clipnorm=None, global_clipnorm=None) -> list:
    """Keras' clipvalue, then per-tensor clipnorm (g * c / max(|g|, c)), then the global
    norm as torch.nn.utils.clip_grad_norm_ (g * min(1, c / (|G| + 1e-6)))."""
    out = [np.asarray(g, dtype=np.float64).copy() for g in grads]
    if clipvalue is not None:
        out = [np.clip(g, -clipvalue, clipvalue) for g in out]
    if clipnorm is not None:
        out = [g * clipnorm / max(float(np.sqrt(np.sum(g * g))), clipnorm) for g in out]
    if global_clipnorm is not None:
        total = math.sqrt(sum(float(np.sum(g * g)) for g in out))
        coef = min(1.0, global_clipnorm / (total + 1e-6))
        out = [g * coef for g in out]
    return out


def decay_mask(names, exclude) -> list:
    """True for each tensor that gets weight decay: its name contains none of ``exclude``."""
    return [not any(s in n for s in exclude) for n in names]


class ControlledOptimizer:
    """Clipping and per-tensor weight decay around a per-tensor update ``_update(i, p, g, wd)``."""

    def __init__(self, weight_decay=0.0, *, clipvalue=None, clipnorm=None, global_clipnorm=None,
                 exclude_from_weight_decay=(), decay_bias_and_norm=True, names=None):
        self.weight_decay = weight_decay
        self.clip = dict(clipvalue=clipvalue, clipnorm=clipnorm, global_clipnorm=global_clipnorm)
        self.exclude = list(exclude_from_weight_decay or ())
        if not decay_bias_and_norm:
            self.exclude += [s for s in BIAS_AND_NORM if s not in self.exclude]
        self.names = names
        self.t = 0
        self.state: dict[str, dict[int, np.ndarray]] = {}

    def buf(self, name: str, i: int, like, fill=0.0) -> np.ndarray:
        return self.state.setdefault(name, {}).setdefault(i, np.full_like(like, fill, dtype=np.float64))

    def step(self, params: list, grads: list) -> None:
        grads = clip_gradients(grads, **self.clip)
        names = self.names if self.names is not None else [""] * len(params)
        mask = decay_mask(names, self.exclude)
        self.t += 1
        for i, (p, g, decay) in enumerate(zip(params, grads, mask)):
            self._update(i, p, g, self.weight_decay if decay else 0.0)

    def _update(self, i, p, g, wd) -> None:
        raise NotImplementedError


class ControlledSGD(ControlledOptimizer):
    """torch.optim.SGD (as ``SGD`` above) with clipping and weight-decay exclusion."""

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0, **kw):
        super().__init__(weight_decay, **kw)
        self.lr, self.momentum, self.dampening, self.nesterov = lr, momentum, dampening, nesterov

    def _update(self, i, p, g, wd):
        g = g + wd * p if wd else g
        if self.momentum:
            bufs = self.state.setdefault("momentum_buffer", {})
            bufs[i] = g.copy() if i not in bufs else self.momentum * bufs[i] + (1.0 - self.dampening) * g
            g = g + self.momentum * bufs[i] if self.nesterov else bufs[i]
        p -= self.lr * g


class ControlledAdam(ControlledOptimizer):
    """torch.optim.Adam with ``amsgrad``: the denominator uses max_exp_avg_sq = max(max_exp_avg_sq, v),
    divided by sqrt(1 - beta2^t) like v is; plus clipping and weight-decay exclusion."""

    decoupled = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, **kw):
        super().__init__(weight_decay, **kw)
        self.lr, self.betas, self.eps, self.amsgrad = lr, betas, eps, amsgrad

    def _update(self, i, p, g, wd):
        b1, b2 = self.betas
        if self.decoupled:
            p *= 1.0 - self.lr * wd
        elif wd:
            g = g + wd * p
        m, v = self.buf("exp_avg", i, p), self.buf("exp_avg_sq", i, p)
        m[...] = b1 * m + (1.0 - b1) * g
        v[...] = b2 * v + (1.0 - b2) * g * g
        if self.amsgrad:
            vmax = self.buf("max_exp_avg_sq", i, p)
            vmax[...] = np.maximum(vmax, v)
            second = vmax
        else:
            second = v
        m_hat = m / (1.0 - b1**self.t)
        v_hat = second / (1.0 - b2**self.t)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class ControlledAdamW(ControlledAdam):
    """torch.optim.AdamW (with ``amsgrad``): p *= 1 - lr·wd, then Adam without decay in the gradient."""

    decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, **kw):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, **kw)


class RMSprop(ControlledOptimizer):
    """torch.optim.RMSprop: v = α v + (1-α) g²; centered: a = α a + (1-α) g, d = sqrt(v - a²) + eps,
    else d = sqrt(v) + eps; momentum: b = μ b + g / d, p -= lr b; else p -= lr g / d."""

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, **kw):
        super().__init__(weight_decay, **kw)
        self.lr, self.alpha, self.eps, self.momentum, self.centered = lr, alpha, eps, momentum, centered

    def _update(self, i, p, g, wd):
        a = self.alpha
        g = g + wd * p if wd else g
        v = self.buf("square_avg", i, p)
        v[...] = a * v + (1.0 - a) * g * g
        if self.centered:
            ga = self.buf("grad_avg", i, p)
            ga[...] = a * ga + (1.0 - a) * g
            d = np.sqrt(v - ga * ga) + self.eps
        else:
            d = np.sqrt(v) + self.eps
        if self.momentum > 0:
            b = self.buf("momentum_buffer", i, p)
            b[...] = self.momentum * b + g / d
            p -= self.lr * b
        else:
            p -= self.lr * g / d


class Adagrad(ControlledOptimizer):
    """torch.optim.Adagrad: clr = lr / (1 + (t-1) lr_decay); s += g² (s starting at
    initial_accumulator_value); p -= clr g / (sqrt(s) + eps)."""

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, **kw):
        super().__init__(weight_decay, **kw)
        self.lr, self.lr_decay, self.eps, self.init = lr, lr_decay, eps, initial_accumulator_value

    def _update(self, i, p, g, wd):
        g = g + wd * p if wd else g
        clr = self.lr / (1.0 + (self.t - 1) * self.lr_decay)
        s = self.buf("sum", i, p, self.init)
        s += g * g
        p -= clr * g / (np.sqrt(s) + self.eps)


__all__ += ["BIAS_AND_NORM", "clip_gradients", "decay_mask", "ControlledOptimizer", "ControlledSGD",
            "ControlledAdam", "ControlledAdamW", "RMSprop", "Adagrad"]


def _arrays(result):
    """The arrays in a (possibly nested) tuple or list, in order."""
    if isinstance(result, (list, tuple)):
        return [a for item in result for a in _arrays(item)]
    return [np.asarray(result)]


def assert_same_on_threads(train, counts=(1, 2, 3)) -> None:
    """`train(threads)` (weights, outputs, ... as arrays or nested lists of arrays) gives
    bit-identical results for every thread count in `counts`."""
    first = _arrays(train(counts[0]))
    for threads in counts[1:]:
        other = _arrays(train(threads))
        assert len(other) == len(first)
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b, err_msg=f"{threads} threads")
