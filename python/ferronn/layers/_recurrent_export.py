"""The recurrent layers outside the core: as ONNX ``RNN`` / ``LSTM`` / ``GRU``
operators and as PyTorch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``.

ferronn keeps PyTorch's tensors (``weight_ih`` [G·units, F], ``weight_hh``,
``bias_ih``, ``bias_hh``; gates i, f, g, o and r, z, n), so the torch layout maps
them one to one. ONNX orders the gate blocks otherwise (LSTM i, o, f, c; GRU z,
r, h), stacks one block of tensors per direction (``[num_directions, G·units,
F]``) and joins the two biases (``B = [Wb, Rb]``). ``onnx_weights`` is the one
place that reorders a cell's tensors; ``onnx_recurrent`` takes one tensor prefix
per direction, so a bidirectional layer reuses it with
``direction="bidirectional"`` (forward tensors first, as ONNX stacks them).

ONNX's recurrent operators read ``X`` time-major ([T, N, F]) and give ``Y``
[T, num_directions, N, units] and ``Y_h`` [num_directions, N, units]. For
``direction="reverse"`` ``Y[t]`` is the state after reading the steps t..T−1
(the output stays in the input's time order), while ferronn (as Keras'
``go_backwards``) gives the outputs in reading order, so a backwards layer that
returns sequences reverses ``Y`` along time.
"""

from __future__ import annotations

from typing import Any, Sequence, cast

import numpy as np

from .. import names as _names
from ..errors import ExportError

__all__ = ["ONNX_OP", "onnx_weights", "onnx_layer", "onnx_bidirectional", "onnx_recurrent", "onnx_reverse_time",
           "onnx_rnn_activation", "torch_nonlinearity"]

#: The ONNX operator of each of the core's cells.
ONNX_OP = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}

# PyTorch's gate blocks taken in this order are ONNX's: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
_ONNX_GATE_ORDER = {"simple_rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}

# SimpleRNN activations ONNX's RNN operator has (the float argument: activation_alpha).
_ONNX_RNN_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid", "leaky_relu": "LeakyRelu",
                         "elu": "Elu", "softplus": "Softplus"}


def onnx_weights(cell: str, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray,
                 b_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One direction's ``(W, R, B)`` for ONNX from PyTorch's four tensors: the gate
    blocks reordered, and ``B`` = the input bias then the recurrent bias."""
    order = _ONNX_GATE_ORDER[cell]

    def blocks(a: np.ndarray) -> np.ndarray:
        parts = np.split(np.asarray(a, dtype=np.float32), len(order), axis=0)
        return np.concatenate([parts[i] for i in order], axis=0)

    return blocks(w_ih), blocks(w_hh), np.concatenate([blocks(b_ih), blocks(b_hh)])


def onnx_rnn_activation(name: str, alpha: Any, where: str) -> tuple[str, dict[str, Any]]:
    """The ONNX RNN operator's activation name and extra attributes for a SimpleRNN's
    ``activation``; ``ExportError`` for one the operator lacks."""
    info = _names.activation(name)
    op = _ONNX_RNN_ACTIVATIONS.get(info.name)
    if op is None:
        raise ExportError(f"layer {where} (SimpleRNN(activation={info.name!r})) cannot be exported to ONNX: its "
                          f"RNN operator takes the activations {', '.join(_ONNX_RNN_ACTIVATIONS)}")
    if info.name in ("leaky_relu", "elu"):
        return op, {"activation_alpha": [float(cast(float, info.default_alpha if alpha is None else alpha))]}
    return op, {}


def onnx_recurrent(g: Any, x_tnf: str, cell: str, prefixes: Sequence[str], direction: str, units: int,
                   scope: str, activations: Sequence[str] = (), **attrs: Any) -> tuple[str, str]:
    """Adds one ONNX recurrent operator on the time-major input ``x_tnf`` [T, N, F]:
    ``prefixes`` holds one ferronn tensor prefix per direction (forward first). Returns
    ``(Y, Y_h)``: [T, directions, N, units] and [directions, N, units]."""
    stacked: list[list[np.ndarray]] = [[], [], []]  # W, R, B of each direction
    for prefix in prefixes:
        w = onnx_weights(cell, *(g.tensors[f"{prefix}.{n}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        for acc, a in zip(stacked, w):
            acc.append(a)
    names = [g.init(f"{scope}.onnx_{n}", np.stack(acc)) for n, acc in zip("WRB", stacked)]
    if cell == "gru":
        attrs["linear_before_reset"] = 1  # PyTorch's n gate: r·(h·W_hnᵀ + b_hn)
    if activations:
        attrs["activations"] = list(activations) * len(prefixes)
        alpha = attrs.pop("activation_alpha", None)
        if alpha is not None:
            attrs["activation_alpha"] = list(alpha) * len(prefixes)
    y, y_h = g.node(ONNX_OP[cell], [x_tnf, *names], scope, n_out=2, hidden_size=int(units), direction=direction,
                    **attrs)
    return y, y_h


def onnx_layer(g: Any, x: str, shape: tuple[int, int], cell: str, prefixes: Sequence[str], direction: str,
               units: int, return_sequences: bool, scope: str, activations: Sequence[str] = (),
               **attrs: Any) -> str:
    """A recurrent layer from flat rows ``x`` (samples of ``shape`` = (T, F)) to flat rows:
    every step's output, the directions' outputs side by side ([N, T·directions·units]),
    or the final states side by side ([N, directions·units]). A ``"reverse"`` layer
    returning sequences gives them in its reading order (ferronn's and Keras' go_backwards);
    ``"bidirectional"`` keeps the input's time order for both (Keras' Bidirectional)."""
    seq = g.node("Transpose", [g.nd(x, tuple(shape), scope)], scope, perm=[1, 0, 2])  # [T, N, F]
    y, y_h = onnx_recurrent(g, seq, cell, prefixes, direction, units, scope, activations, **attrs)
    if not return_sequences:  # [directions, N, units] -> rows [N, directions·units]
        return g.flatten(g.node("Transpose", [y_h], scope, perm=[1, 0, 2]), scope)
    if direction == "reverse":  # ONNX keeps the input's time order; go_backwards gives the reading order
        y = onnx_reverse_time(g, y, scope)
    # [T, directions, N, units] -> [N, T, directions, units] -> rows [N, T·directions·units]
    return g.flatten(g.node("Transpose", [y], scope, perm=[2, 0, 1, 3]), scope)


def onnx_bidirectional(g: Any, x: str, shape: tuple[int, int], cell: str, prefixes: Sequence[str], units: int,
                       return_sequences: bool, merge_mode: str, flip: bool, scope: str,
                       activations: Sequence[str] = (), **attrs: Any) -> str:
    """A Bidirectional layer from flat rows ``x`` to flat rows: one operator with
    ``direction="bidirectional"`` (``prefixes``: the forward then the backward layer's
    tensors), then the merge of the two directions (concat along the features, ``Add``,
    ``Mul``, or ``Add`` then ``Mul`` by 0.5 for ``"ave"``).

    ``flip``: the forward layer itself reads backwards (a wrapped ``go_backwards``
    layer). Reversing the input first makes ONNX's forward direction that layer and its
    reverse direction the other one; both ``Y`` (in the reversed input's order, which
    is then the forward layer's reading order, as ferronn gives it) and ``Y_h`` come
    out as ferronn's."""
    seq = g.node("Transpose", [g.nd(x, tuple(shape), scope)], scope, perm=[1, 0, 2])  # [T, N, F]
    if flip:
        seq = onnx_reverse_time(g, seq, scope)
    y, y_h = onnx_recurrent(g, seq, cell, prefixes, "bidirectional", units, scope, activations, **attrs)
    # Y [T, 2, N, units] / Y_h [2, N, units]: the direction axis, and the order putting the batch first.
    value, axis, perm = (y, 1, [2, 0, 1, 3]) if return_sequences else (y_h, 0, [1, 0, 2])
    if merge_mode != "concat":  # each direction's slice keeps its axis (of size 1), then merged unit by unit
        halves = [g.node("Gather", [value, g.init(f"const.index1.{i}", np.array([i], dtype=np.int64))], scope,
                         axis=axis) for i in (0, 1)]
        value = g.node("Mul" if merge_mode == "mul" else "Add", halves, scope)
        if merge_mode == "ave":
            value = g.node("Mul", [value, g.scalar(0.5)], scope)
    # -> [N, T, directions (or 1), units] / [N, directions (or 1), units] -> flat rows
    return g.flatten(g.node("Transpose", [value], scope, perm=perm), scope)


def onnx_reverse_time(g: Any, y: str, scope: str) -> str:
    """``y`` with its first (time) axis reversed: a Slice from the end backwards."""
    def ints(name: str, value: int) -> str:
        return g.init(f"const.slice.{name}", np.array([value], dtype=np.int64))

    lowest = int(np.iinfo(np.int64).min)  # "past the start" for a negative step
    return g.node("Slice", [y, ints("last", -1), ints("before_first", lowest), ints("axis0", 0), ints("back", -1)],
                  scope)


def torch_nonlinearity(name: str, where: str) -> str:
    """``nn.RNN``'s ``nonlinearity`` for a SimpleRNN's activation; ``ExportError`` for
    one it lacks."""
    info = _names.activation(name)
    if info.name not in ("tanh", "relu"):
        raise ExportError(f"layer {where} (SimpleRNN(activation={info.name!r})) has no PyTorch equivalent: "
                          "nn.RNN's nonlinearity is 'tanh' or 'relu'")
    return info.name
