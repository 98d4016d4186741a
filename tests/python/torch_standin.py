"""A float64 NumPy stand-in for the small part of PyTorch that ferronn's
``torch_source`` writes for convolutional models, so that the generated module's
own source (its helper classes included) can be run by the tests without torch.

Each module transcribes PyTorch's documented definition: nn.Conv1d/Conv2d
(through conv_reference.conv2d), MaxPool/AvgPool without padding, BatchNorm in
eval mode on axis 1, Linear ``x @ W.T + b``, Flatten from axis 1, F.pad (last axis
first), and for sequences nn.RNN/LSTM/GRU (PyTorch's documented cell equations,
gate orders i, f, g, o and r, z, n; returning (output, final state); bidirectional too), nn.Embedding
and nn.PReLU. ``load_state_dict`` checks names and shapes strictly, as PyTorch does.
``install()`` returns a ``torch`` module object to put in ``sys.modules``.
"""

from __future__ import annotations

import math
import types

import numpy as np

import conv_reference as cref


class Tensor(np.ndarray):
    """float64 array with the few torch.Tensor methods the generated source calls."""

    def movedim(self, source: int, destination: int) -> "Tensor":
        return np.moveaxis(self, source, destination)

    def amax(self, dim) -> "Tensor":
        return np.max(np.asarray(self), axis=dim).view(Tensor)

    def mean(self, dim=None, **kwargs) -> "Tensor":  # type: ignore[override]
        return np.mean(np.asarray(self), axis=dim if dim is not None else kwargs.get("axis")).view(Tensor)

    def flip(self, dim: int) -> "Tensor":
        return np.flip(np.asarray(self), axis=dim).view(Tensor)

    def long(self) -> np.ndarray:
        return np.asarray(self).astype(np.int64)

    def chunk(self, chunks: int, dim: int) -> tuple:
        return tuple(part.view(Tensor) for part in np.split(np.asarray(self), chunks, axis=dim))

    def flatten(self, start_dim: int = 0) -> "Tensor":  # type: ignore[override]
        return np.asarray(self).reshape(*self.shape[:start_dim], -1).view(Tensor)


def tensor(a) -> Tensor:
    return np.asarray(a, dtype=np.float64).view(Tensor)


class Module:
    def __init__(self, *args, **kwargs) -> None:
        if args or kwargs:
            raise TypeError(f"unexpected arguments {args} {kwargs}")
        object.__setattr__(self, "_own", {})  # tensor name -> shape (or None for the int64 counter)
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value) -> None:
        if isinstance(value, Module):
            self._children[name] = value
        object.__setattr__(self, name, value)

    def _tensor(self, name: str, shape) -> None:
        self._own[name] = shape
        object.__setattr__(self, name, None)

    def expected(self, prefix: str = "") -> dict:
        out = {f"{prefix}{n}": s for n, s in self._own.items()}
        for name, child in self._children.items():
            if child is not None:
                out.update(child.expected(f"{prefix}{name}."))
        return out

    def load_state_dict(self, state: dict) -> None:
        want = self.expected()
        if set(want) != set(state):
            raise KeyError(f"missing {sorted(set(want) - set(state))}, unexpected {sorted(set(state) - set(want))}")
        for name, shape in want.items():
            value = np.asarray(state[name])
            if shape is not None and value.shape != tuple(shape):
                raise ValueError(f"size mismatch for {name}: {value.shape} vs {tuple(shape)}")
            owner = self
            *path, leaf = name.split(".")
            for part in path:
                owner = owner._children[part]
            object.__setattr__(owner, leaf, value if shape is None else tensor(value))

    def eval(self) -> "Module":
        object.__setattr__(self, "training", False)
        for child in self._children.values():
            child.eval()
        return self

    def __call__(self, x):
        return self.forward(x)


class Sequential(Module):
    def __init__(self, *modules) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def forward(self, x):
        for m in self._children.values():
            x = m(x)
        return x


class Linear(Module):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self._tensor("weight", (d_out, d_in))
        self._tensor("bias", (d_out,))

    def forward(self, x):
        return x @ self.weight.T + self.bias  # on the last axis


class _ConvNd(Module):
    rank = 2

    def __init__(self, cin, cout, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True) -> None:
        super().__init__()
        r = self.rank
        tup = lambda v: tuple(v) if isinstance(v, tuple) else (v,) * r  # noqa: E731
        self.k, self.s, self.p, self.d, self.groups = tup(kernel_size), tup(stride), tup(padding), tup(dilation), groups
        self._tensor("weight", (cout, cin // groups, *self.k))
        if bias:
            self._tensor("bias", (cout,))
        self.has_bias = bias

    def forward(self, x):
        one = (1,) if self.rank == 1 else ()
        x4 = x[:, :, None] if self.rank == 1 else x
        w4 = self.weight[:, :, None] if self.rank == 1 else self.weight
        pads = [0, 0] * (self.rank == 1) + [v for p in self.p for v in (p, p)]
        y = cref.conv2d(np.asarray(x4), np.asarray(w4), self.bias if self.has_bias else None, one + self.s,
                        pads, one + self.d, self.groups)
        return tensor(y[:, :, 0] if self.rank == 1 else y)


class Conv1d(_ConvNd):
    rank = 1


class Conv2d(_ConvNd):
    rank = 2


class _PoolNd(Module):
    rank, mode = 2, "max"

    def __init__(self, kernel_size, stride=None) -> None:
        super().__init__()
        r = self.rank
        tup = lambda v: tuple(v) if isinstance(v, tuple) else (v,) * r  # noqa: E731
        self.k = tup(kernel_size)
        self.s = self.k if stride is None else tup(stride)

    def forward(self, x):  # no padding: every window inside the (already padded) input
        one = (1,) if self.rank == 1 else ()
        x4 = np.asarray(x[:, :, None] if self.rank == 1 else x)
        y = cref.pool2d(x4, one + self.k, one + self.s, (0, 0, 0, 0), self.mode)
        return tensor(y[:, :, 0] if self.rank == 1 else y)


class MaxPool1d(_PoolNd):
    rank, mode = 1, "max"


class MaxPool2d(_PoolNd):
    rank, mode = 2, "max"


class AvgPool1d(_PoolNd):
    rank, mode = 1, "avg"


class AvgPool2d(_PoolNd):
    rank, mode = 2, "avg"


class _BatchNorm(Module):
    def __init__(self, c: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        for name in ("weight", "bias", "running_mean", "running_var"):
            self._tensor(name, (c,))
        self._tensor("num_batches_tracked", None)

    def forward(self, x):
        assert not self.training, "the stand-in has BatchNorm's inference form only"
        shape = (1, -1) + (1,) * (x.ndim - 2)  # per channel, axis 1
        return ((x - self.running_mean.reshape(shape)) / np.sqrt(self.running_var.reshape(shape) + self.eps)
                * self.weight.reshape(shape) + self.bias.reshape(shape))


class BatchNorm1d(_BatchNorm):
    pass


class BatchNorm2d(_BatchNorm):
    pass


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class _RNNBase(Module):
    """nn.RNN / LSTM / GRU with one layer, one or two directions: tensors ``weight_ih_l0``
    [G·hidden, input], ``weight_hh_l0`` [G·hidden, hidden], ``bias_ih_l0``, ``bias_hh_l0``
    (and the same with ``_reverse`` for ``bidirectional=True``: that direction reads the
    sequence from its end); ``forward`` returns (output of every step, the directions
    side by side in time order [.., T, directions·hidden]; final state: h_n, or (h_n,
    c_n) for the LSTM, each [directions, N, hidden]), with h_0 = c_0 = 0."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", batch_first: bool = False,
                 bidirectional: bool = False):
        super().__init__()
        self.batch_first, self.nonlinearity, self.hidden = batch_first, nonlinearity, hidden_size
        self.suffixes = ("_l0", "_l0_reverse") if bidirectional else ("_l0",)
        width = self.gates * hidden_size
        for suffix in self.suffixes:
            self._tensor(f"weight_ih{suffix}", (width, input_size))
            self._tensor(f"weight_hh{suffix}", (width, hidden_size))
            self._tensor(f"bias_ih{suffix}", (width,))
            self._tensor(f"bias_hh{suffix}", (width,))

    def _direction(self, x, suffix: str):
        """One direction over batch-first ``x``: every step's h [N, T, hidden], final h and c."""
        w_ih, w_hh = (np.asarray(getattr(self, f"{n}{suffix}")) for n in ("weight_ih", "weight_hh"))
        b_ih, b_hh = (np.asarray(getattr(self, f"{n}{suffix}")) for n in ("bias_ih", "bias_hh"))
        h = np.zeros((x.shape[0], self.hidden))
        c = np.zeros_like(h)
        outs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh, h, c)
            outs.append(h)
        return np.stack(outs, axis=1), h, c

    def forward(self, x):
        x = np.asarray(x, dtype=np.float64)
        if not self.batch_first:
            x = x.swapaxes(0, 1)
        ys, hs, cs = [], [], []
        for k, suffix in enumerate(self.suffixes):
            y, h, c = self._direction(x[:, ::-1] if k else x, suffix)
            ys.append(y[:, ::-1] if k else y)  # the reverse direction's outputs back in time order
            hs.append(h)
            cs.append(c)
        y = np.concatenate(ys, axis=-1)
        h_n = tensor(np.stack(hs))  # [directions, N, hidden]
        state = (h_n, tensor(np.stack(cs))) if self.gates == 4 else h_n  # nn.LSTM's is (h_n, c_n)
        return tensor(y if self.batch_first else y.swapaxes(0, 1)), state


class RNN(_RNNBase):
    def cell(self, gi, gh, h, c):  # h' = act(W_ih x + b_ih + W_hh h + b_hh)
        z = gi + gh
        return (np.tanh(z) if self.nonlinearity == "tanh" else np.maximum(z, 0.0)), c


class LSTM(_RNNBase):
    gates = 4

    def cell(self, gi, gh, h, c):
        i, f, g, o = np.split(gi + gh, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c


class GRU(_RNNBase):
    gates = 3

    def cell(self, gi, gh, h, c):
        ir, iz, in_ = np.split(gi, 3, axis=1)
        hr, hz, hn = np.split(gh, 3, axis=1)
        r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
        n = np.tanh(in_ + r * hn)
        return (1.0 - z) * n + z * h, c


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self._tensor("weight", (num_embeddings, embedding_dim))

    def forward(self, ids):
        assert np.asarray(ids).dtype == np.int64, "nn.Embedding takes integer (long) ids"
        return tensor(np.asarray(self.weight)[ids])


class PReLU(Module):
    """Slopes ``weight`` [num_parameters] on axis 1 (or one shared)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25) -> None:
        super().__init__()
        self._tensor("weight", (num_parameters,))

    def forward(self, x):
        x = np.asarray(x)
        w = np.asarray(self.weight)
        slope = w.reshape((1, -1) + (1,) * (x.ndim - 2)) if len(w) > 1 else w
        return tensor(np.where(x > 0, x, slope * x))


class Flatten(Module):
    def forward(self, x):
        return x.reshape(x.shape[0], -1)


def _elementwise(f):
    class Act(Module):
        def __init__(self, *args) -> None:
            super().__init__()
            self.args = args

        def forward(self, x):
            return tensor(f(np.asarray(x), *self.args))
    return Act


ReLU = _elementwise(lambda x: np.maximum(x, 0.0))
Tanh = _elementwise(np.tanh)
ELU = _elementwise(lambda x, a=1.0: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0))))
SiLU = _elementwise(lambda x: x / (1.0 + np.exp(-x)))
GELU = _elementwise(lambda x: 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))))


def pad(x, pads, value=0.0):
    """F.pad: (before, after) pairs, the last axis first."""
    widths = [(0, 0)] * x.ndim
    for i in range(0, len(pads), 2):
        widths[x.ndim - 1 - i // 2] = (pads[i], pads[i + 1])
    return tensor(np.pad(np.asarray(x), widths, constant_values=value))


def install() -> types.ModuleType:
    torch = types.ModuleType("torch")
    nn = types.ModuleType("torch.nn")
    for name in ("Module", "Sequential", "Linear", "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d",
                 "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Flatten", "ReLU", "Tanh", "ELU", "SiLU", "GELU",
                 "RNN", "LSTM", "GRU", "Embedding", "PReLU"):
        setattr(nn, name, globals()[name])
    nn.functional = types.SimpleNamespace(pad=pad)
    torch.nn = nn
    torch.ones_like = lambda x: tensor(np.ones(x.shape))
    return torch


def run_torch_source(model, x: np.ndarray, tmp_path, monkeypatch) -> np.ndarray:
    """What `torch_source(model)` prints, run on this stand-in with the tensors the model's
    torch-layout file holds (loaded with `load_state_dict`, as a PyTorch user would)."""
    import sys

    from safetensors.numpy import load_file

    import ferronn as fn

    path = tmp_path / "w.safetensors"
    model.save(path, layout="torch")
    torch = install()
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.nn", torch.nn)
    namespace: dict = {}
    exec(fn.torch_layout.torch_source(model), namespace)
    module = namespace["model"]
    module.load_state_dict(load_file(str(path)))
    module.eval()
    return np.asarray(module(tensor(x)))  # the input in the model's own layout
