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


LOSSES = {"mse": _mse, "binary_cross_entropy": _bce_logits, "cross_entropy": _cross_entropy, "nll": _nll}


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
