"""PyTorch-readable weight files: ``model.save(path, layout="torch")`` and ``load_torch_weights``.

``model.save(path, layout="torch")`` writes a plain safetensors file (no JSON
architecture, no optimizer state) whose tensor names, shapes and dtypes are the
``state_dict()`` of an equivalent ``torch.nn.Sequential``, so that

>>> torch_model.load_state_dict(safetensors.torch.load_file(path))

works, and ``fn.load_torch_weights(model, path)`` reads such a file (written by
ferronn, by PyTorch, or by any other tool) into a built ferronn model of the same
architecture. ``torch_source(model)`` returns the Python source of that
equivalent PyTorch model.

The equivalent model
--------------------
Each ferronn layer becomes the module(s) below, numbered ``k = 0, 1, ...`` as
``nn.Sequential`` numbers its children. Layers without tensors (activations,
Dropout, Softmax) still take an index, as they do in PyTorch. A ``Dense`` with a
fused activation (``Dense(64, activation="relu")``) is *two* modules, the Linear
at ``k`` and the activation at ``k + 1``: so ``[Dense(64, "relu"), Dense(10)]``
is ``nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 10))`` with
tensors ``0.weight, 0.bias, 2.weight, 2.bias``. A ``Dense`` without activation
is one module.

==========================  =========================================  ==============================================
ferronn layer               PyTorch module(s)                          tensors (PyTorch name ← ferronn tensor)
==========================  =========================================  ==============================================
Dense(u), width d → u       ``nn.Linear(d, u)`` (+ activation, k+1)    ``k.weight`` [u, d] ← weight [d, u]
                                                                       transposed; ``k.bias`` [u] ← bias
Activation layers           ``nn.ReLU()``, ``nn.LeakyReLU(alpha)``,    none
                            ``nn.ELU(alpha)``, ``nn.GELU()``,
                            ``nn.GELU(approximate="tanh")``,
                            ``nn.SiLU()``, ``nn.Sigmoid()``,
                            ``nn.Tanh()``, ``nn.Softplus()``,
                            ``nn.Identity()``
Softmax(T) / LogSoftmax(T)  ``nn.Softmax(dim=-1)`` /                   none
                            ``nn.LogSoftmax(dim=-1)``; for T != 1 a
                            module computing ``softmax(x / T)``
Dropout(p)                  ``nn.Dropout(p)``                          none
PReLU                       ``nn.PReLU(d)`` (``nn.PReLU(1)`` shared;   ``k.weight`` [d] or [1] ← alpha
                            N-D samples: ``FlatPReLU(d)``)
PReLU per channel           ``nn.PReLU(C)`` (channels_first);          ``k.weight`` [C] ← alpha
                            ``LayoutPReLU(C, channels_last=True)``
BatchNorm(momentum, eps)    ``nn.BatchNorm1d(d, eps, momentum)``       ``k.weight`` ← gamma, ``k.bias`` ← beta,
                                                                       ``k.running_mean``, ``k.running_var``,
                                                                       ``k.num_batches_tracked`` (int64 scalar)
LayerNorm(eps)              ``nn.LayerNorm(d, eps)``                   ``k.weight`` ← gamma, ``k.bias`` ← beta
RMSNorm(eps)                ``nn.RMSNorm(d, eps)`` (PyTorch >= 2.4)    ``k.weight`` ← gamma
Gated(u, gate) (GLU, ...)   ``Gated``: ``proj = nn.Linear(d, 2u)``;    ``k.proj.weight`` [2u, d] ← weight [d, 2u]
                            ``g, v = proj(x).chunk(2, -1)``;           transposed (gate rows first);
                            ``y = gate(g) * v``                        ``k.proj.bias`` [2u] ← bias
Residual([...])             ``Residual``: ``block = nn.Sequential``    ``k.block.{j}.…`` (the block numbered by
                            of the layers, ``projection =              these same rules, so j can differ from
                            nn.Linear(d, d')`` when the width          ferronn's index); ``k.projection.weight``
                            changes (else none);                       [d', d] (transposed), ``k.projection.bias``
                            ``y = skip(x) + block(x)``; on images      on images ``k.projection.0.weight``
                            ``projection = nn.Sequential(conv 1x1      [c', c, 1, 1] (``.0.bias``, or the
                            strided[, BatchNorm])``                    BatchNorm's ``k.projection.1.*``)
Conv2D / Conv1D             ``nn.Conv2d`` / ``nn.Conv1d`` (in,         ``k.weight`` [out, in/groups, kh, kw] ←
                            filters, kernel_size, stride, dilation,    weight [kh, kw, in/groups, out] with axes
                            groups, bias, padding), then the           (3, 2, 0, 1) (Conv1D's [k, in/g, out]:
                            activation (k+1); see below                (2, 1, 0)); ``k.bias`` [out] ← bias
MaxPool / AvgPool 1D/2D     ``nn.MaxPool2d`` / ``nn.AvgPool2d`` (or    none
                            1d) (kernel_size, stride)
GlobalMax/AvgPool 1D/2D     ``GlobalPool(mode, dims)``: max or mean    none
                            over the spatial axes
Flatten / Reshape           ``nn.Flatten()`` / ``Reshape(*shape)``     none
BatchNorm, N-D inputs       ``LayoutBatchNorm2d``: ``nn.BatchNorm2d``  as BatchNorm above (per channel, [C])
                            on the last axis moved to axis 1
                            (``LayoutBatchNorm1d`` for sequences)
BatchNorm(axis=1), N-D      ``nn.BatchNorm2d`` / ``nn.BatchNorm1d``    as BatchNorm above (per channel, [C])
                            on channels_first samples
Dense, N-D inputs           ``nn.Linear(last axis, u)`` (it acts on    as Dense above
                            the last axis, as ferronn's)
SimpleRNN / LSTM / GRU      ``SequenceRNN(f, u, nonlinearity)`` /      ``k.weight_ih_l0``, ``k.weight_hh_l0``,
                            ``SequenceLSTM`` / ``SequenceGRU``:        ``k.bias_ih_l0``, ``k.bias_hh_l0`` ←
                            ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``      weight_ih, weight_hh, bias_ih, bias_hh
                            (batch_first) returning every step or      (same layout and gate order)
                            the last; go_backwards flips time first
Bidirectional(l, merge)     ``SequenceLSTM(..., bidirectional=True,    ``k.weight_ih_l0`` ... ← forward.weight_ih
                            merge_mode=...)`` (or RNN, GRU): concat    ...; ``k.weight_ih_l0_reverse`` ... ←
                            is PyTorch's output, sum/mul/ave merge     backward.weight_ih ... (same cell, units
                            its two halves; both directions the same   and activation both ways, else
                            cell and size, else ExportError            ExportError)
Embedding(n, d)             ``TokenEmbedding(n, d)``:                  ``k.weight`` [n, d] ← weight
                            ``nn.Embedding`` on the float ids as
                            ``.long()``
==========================  =========================================  ==============================================

Images and sequences
--------------------
The generated model takes its input in the ferronn model's own layout
(``[N, *input_shape]``: NHWC for channels_last) and keeps every tensor between
its modules in that layout (see ``ferronn._torch_modules``). A channels_first
conv or pooling layer with symmetric (or no) padding is the plain ``nn`` module;
any other is a subclass of it (``LayoutConv2d(nn.Conv2d)``, ``LayoutMaxPool2d``,
...) that moves the channels to axis 1 and back around the operation and applies
asymmetric padding (TensorFlow's "same") itself (max pooling pads with -inf,
average pooling averages only the cells inside the input). Their ``state_dict``
is exactly the ``nn`` module's, so a file loads into either. A ``Flatten`` after
channels_last feature maps therefore flattens in ferronn's (H, W, C) order and
the next ``nn.Linear`` takes ferronn's Dense weights with no row permutation.
(A PyTorch model written natively in NCHW that flattens in (C, H, W) order
corresponds to a channels_first ferronn model.)

``num_batches_tracked`` is written as the model's optimizer step count (0 for a
model never trained); PyTorch uses it only for ``momentum=None`` (a cumulative
average), which ferronn does not have. On loading it is ignored and may be
absent. Float tensors are written as float32; on loading, float16 and float64
are accepted and converted to float32 (as ``load_state_dict`` copies into
float32 parameters). The file's metadata is ``{"format": "pt"}``, as Hugging Face's
tools write it for PyTorch weights.

The numerics match: PyTorch's LeakyReLU ``negative_slope``, ELU ``alpha``, BatchNorm
``momentum`` (same convention) and ``eps``, and RMSNorm's
``y = weight·x / sqrt(mean(x²) + eps)`` are ferronn's.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Union

import numpy as np

from ._files import atomic_write
from ._optional import require
from .errors import ConfigError, InternalError, ModelFileError, ShapeError
from .layers.base import TorchEntry as _Entry, TorchPart

__all__ = ["save_torch", "load_torch_weights", "torch_names", "torch_source"]

PathArg = Union[str, "os.PathLike[str]"]


def _safetensors_numpy() -> Any:
    return require("safetensors.numpy", "the torch layout", "safetensors")


class _Layout:
    """Walks layers into the equivalent ``nn.Sequential``: each layer says what it
    becomes (``Layer.torch_layout``); this numbers the modules as PyTorch does."""

    def __init__(self, core: set[str]) -> None:
        self.core = core

    def has(self, name: str) -> bool:
        """Whether ferronn's tensor ``name`` exists (a Residual's projection)."""
        return name in self.core

    def walk(self, layer_list: list, d: int, fprefix: str, tprefix: str) -> TorchPart:
        """``layer_list`` on inputs of width ``d``: ferronn tensors ``{fprefix}.{i}.name``,
        PyTorch ones ``{tprefix}.{k}.name`` (``{k}.name`` at the top, ``tprefix=""``)."""
        modules: list[str] = []
        entries: list[_Entry] = []
        helpers: tuple[str, ...] = ()
        for i, layer in enumerate(layer_list):
            t = f"{tprefix}.{len(modules)}" if tprefix else str(len(modules))
            part = layer.torch_layout(self, d, f"{fprefix}.{i}", t)
            modules += part.modules  # each module takes one index: k counts them
            entries += part.entries
            helpers += tuple(h for h in part.helpers if h not in helpers)
            # The flat width after it (a Dense on N-D inputs keeps their positions).
            d = math.prod(layer.output_shape(layer._input_shape or (d,)))
        return TorchPart(modules, entries, helpers)


def _plan(model: Any) -> tuple[list[_Entry], dict[str, np.ndarray]]:
    """The torch layout of a built model, and its core tensors by name."""
    tensors = dict(model._tensors())
    entries = _Layout(set(tensors)).walk(model.layers, int(model.input_dim), "layers", "").entries
    covered = {e.ferronn for e in entries if e.ferronn is not None}
    if covered != set(tensors):  # a layer kind whose tensors this module does not know
        raise InternalError(f"the torch layout does not cover the tensors {sorted(set(tensors) ^ covered)}")
    return entries, tensors


def torch_names(model: Any) -> dict[str, Optional[str]]:
    """``{PyTorch name: ferronn tensor name}`` of a built model, in state_dict order
    (``None`` for BatchNorm's ``num_batches_tracked``, which ferronn does not keep)."""
    model._require_built("torch_names")
    return {e.torch: e.ferronn for e in _plan(model)[0]}


def save_torch(model: Any, path: PathArg) -> None:
    """Writes the model's tensors in the torch layout (see the module docstring), atomically.
    ``model.save(path, layout="torch")`` calls this."""
    net = model._require_built("save")
    entries, tensors = _plan(model)
    steps = int(getattr(net, "optimizer_steps", 0))
    out: dict[str, np.ndarray] = {}
    for e in entries:
        if e.ferronn is None:
            out[e.torch] = np.array(steps, dtype=np.int64)
        else:
            a, perm = tensors[e.ferronn], e.perm()
            out[e.torch] = np.ascontiguousarray(a if perm is None else np.transpose(a, perm), dtype=np.float32)
    atomic_write(path, _safetensors_numpy().save(out, metadata={"format": "pt"}))


def _list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_torch_weights(model: Any, path: PathArg) -> None:
    """Reads a torch-layout safetensors file (see the module docstring) into ``model``.

    ``model`` must be built with the same architecture as the file's PyTorch model.
    Every tensor is checked before anything is set: a missing or unexpected tensor,
    or one of another dtype, raises ``ModelFileError``; a tensor of the wrong shape
    ``ShapeError`` (naming the tensor and both shapes). On any error the model is
    unchanged. BatchNorm's ``num_batches_tracked`` is ignored and may be absent.
    Optimizer state is not in the file and is kept as it is.
    """
    net = model._require_built("load_torch_weights")
    entries, tensors = _plan(model)
    st = _safetensors_numpy()
    path = os.fspath(path)
    try:
        data = st.load_file(path)
    except OSError:
        raise
    except Exception as err:
        raise ModelFileError(f"{path} is not a readable safetensors file: {err}") from err

    expected = {e.torch: e for e in entries}
    missing = [n for n, e in expected.items() if n not in data and e.ferronn is not None]
    extra = [n for n in data if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {_list(missing)}")
        if extra:
            parts.append(f"unexpected {_list(sorted(extra))}")
        hint = ""
        if extra and all(n.startswith("layers.") for n in data):
            hint = " (this looks like a ferronn model file: read it with fn.load)"
        raise ModelFileError(f"{path} does not hold the torch-layout tensors of this model: "
                             f"{'; '.join(parts)}{hint}")

    staged: list[tuple[str, np.ndarray]] = []
    bad_shapes: list[str] = []
    for name, e in expected.items():
        if name not in data:
            continue  # an absent num_batches_tracked
        a = data[name]
        if e.ferronn is None:
            if a.dtype.kind not in "iu":
                raise ModelFileError(f"tensor {name!r} in {path} has dtype {a.dtype}; expected an integer")
            if a.shape != ():
                bad_shapes.append(f"{name!r} has shape {list(a.shape)}, expected [] (a scalar)")
            continue
        if a.dtype.kind != "f":
            raise ModelFileError(f"tensor {name!r} in {path} has dtype {a.dtype}; expected a float "
                                 "(float32, or float16/float64, converted)")
        core_shape, perm = tensors[e.ferronn].shape, e.perm()
        want = core_shape if perm is None else tuple(core_shape[i] for i in perm)
        if a.shape != want:
            how = "" if perm is None else (", stored transposed" if perm == (1, 0) else f", stored with axes {perm}")
            bad_shapes.append(f"{name!r} has shape {list(a.shape)}, expected {list(want)} (ferronn's {e.ferronn} "
                              f"is {list(core_shape)}{how})")
            continue
        back = a if perm is None else np.transpose(a, np.argsort(perm))
        staged.append((e.ferronn, np.ascontiguousarray(back, dtype=np.float32)))
    if bad_shapes:
        raise ShapeError(f"{path} does not match this model's shapes: {'; '.join(bad_shapes)}")

    copy = net.copy()
    for fname, value in staged:
        copy.set_param(fname, value)
    model._net = copy  # all or nothing: the model is unchanged if any tensor is rejected


# -- the equivalent PyTorch source ---------------------------------------------

_TORCH_HEADER = 'import torch\nfrom torch import nn\n'


def torch_source(model: Any) -> str:
    """Python source that builds the PyTorch model equivalent to ``model`` (bound to the
    name ``model``), whose ``state_dict`` a torch-layout file of ``model`` matches::

        namespace = {}
        exec(fn.torch_layout.torch_source(model), namespace)
        torch_model = namespace["model"]
        torch_model.load_state_dict(safetensors.torch.load_file("model_torch.safetensors"))
        torch_model.eval()
    """
    model._require_built("torch_source")
    part = _Layout({n for n, _ in model._tensors()}).walk(model.layers, int(model.input_dim), "layers", "")
    helpers = "".join(f"\n\n{h}" for h in part.helpers)
    body = "".join(f"    {m},\n" for m in part.modules)
    return f"{_TORCH_HEADER}{helpers}\n\nmodel = nn.Sequential(\n{body})\n"


def check_layout(layout: Any) -> str:
    """The layout name for ``Sequential.save`` ("ferronn" or "torch"); ConfigError otherwise."""
    if layout not in ("ferronn", "torch"):
        raise ConfigError(f"layout must be 'ferronn' (the default: architecture, weights and optimizer state) "
                          f"or 'torch' (weights named as a PyTorch state_dict), got {layout!r}")
    return str(layout)
