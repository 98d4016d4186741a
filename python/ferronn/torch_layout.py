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
PReLU                       ``nn.PReLU(d)`` (``nn.PReLU(1)`` shared)   ``k.weight`` [d] or [1] ← alpha
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
                            ``y = skip(x) + block(x)``
==========================  =========================================  ==============================================

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

import os
from typing import Any, NamedTuple, Optional, Union

import numpy as np

from . import layers as _layers
from .errors import ConfigError, ExportError, InternalError, ModelFileError, ShapeError
from .layers.activations import _DEFAULT_ALPHA

__all__ = ["save_torch", "load_torch_weights", "torch_names", "torch_source"]

PathArg = Union[str, "os.PathLike[str]"]


class _Entry(NamedTuple):
    """One tensor of the torch layout: its PyTorch name, the core tensor it comes
    from (None for ``num_batches_tracked``) and whether it is stored transposed."""
    torch: str
    ferronn: Optional[str]
    transpose: bool = False


def _safetensors_numpy() -> Any:
    try:
        import safetensors.numpy as st
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the torch layout needs the safetensors package: pip install safetensors") from e
    return st


def _modules_of(layer: _layers.Layer) -> int:
    """How many ``nn.Sequential`` entries a ferronn layer becomes (Dense + activation: two)."""
    if isinstance(layer, _layers.Dense) and layer.activation != "identity":
        return 2
    return 1


def _unsupported(layer: Any, where: str) -> ExportError:
    return ExportError(f"layer {where} ({layer!r}, {type(layer).__name__}) has no PyTorch equivalent in "
                       "ferronn's torch layout; supported: Dense, activation layers, Softmax, LogSoftmax, "
                       "Dropout, PReLU, BatchNorm, LayerNorm, RMSNorm, Gated (GLU, SwiGLU, ...), Residual")


def _walk(layer_list: list, fprefix: str, tprefix: str, core: set[str]) -> list[_Entry]:
    """The entries of ``layer_list``: ferronn tensors ``{fprefix}{i}.name``, PyTorch
    ones ``{tprefix}{k}.name``."""
    out: list[_Entry] = []
    k = 0
    for i, layer in enumerate(layer_list):
        f, t = f"{fprefix}{i}", f"{tprefix}{k}"
        if isinstance(layer, _layers.Dense):
            out += [_Entry(f"{t}.weight", f"{f}.weight", True), _Entry(f"{t}.bias", f"{f}.bias")]
        elif isinstance(layer, _layers.Gated):
            out += [_Entry(f"{t}.proj.weight", f"{f}.weight", True), _Entry(f"{t}.proj.bias", f"{f}.bias")]
        elif isinstance(layer, _layers.BatchNorm):
            out += [_Entry(f"{t}.weight", f"{f}.gamma"), _Entry(f"{t}.bias", f"{f}.beta"),
                    _Entry(f"{t}.running_mean", f"{f}.running_mean"), _Entry(f"{t}.running_var", f"{f}.running_var"),
                    _Entry(f"{t}.num_batches_tracked", None)]
        elif isinstance(layer, _layers.LayerNorm):
            out += [_Entry(f"{t}.weight", f"{f}.gamma"), _Entry(f"{t}.bias", f"{f}.beta")]
        elif isinstance(layer, _layers.RMSNorm):
            out += [_Entry(f"{t}.weight", f"{f}.gamma")]
        elif isinstance(layer, _layers.PReLU):
            out += [_Entry(f"{t}.weight", f"{f}.alpha")]
        elif isinstance(layer, _layers.Residual):
            out += _walk(layer.layers, f"{f}.block.", f"{t}.block.", core)
            if f"{f}.projection.weight" in core:
                out += [_Entry(f"{t}.projection.weight", f"{f}.projection.weight", True),
                        _Entry(f"{t}.projection.bias", f"{f}.projection.bias")]
        elif not isinstance(layer, (_layers.Activation, _layers.Softmax, _layers.LogSoftmax, _layers.Dropout)):
            raise _unsupported(layer, f)
        k += _modules_of(layer)
    return out


def _plan(model: Any) -> tuple[list[_Entry], dict[str, np.ndarray]]:
    """The torch layout of a built model, and its core tensors by name."""
    tensors = dict(model._tensors())
    entries = _walk(model.layers, "layers.", "", set(tensors))
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
            a = tensors[e.ferronn]
            out[e.torch] = np.ascontiguousarray(a.T if e.transpose else a, dtype=np.float32)
    st = _safetensors_numpy()
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    try:
        st.save_file(out, tmp, metadata={"format": "pt"})
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
        core_shape = tensors[e.ferronn].shape
        want = tuple(reversed(core_shape)) if e.transpose else core_shape
        if a.shape != want:
            bad_shapes.append(f"{name!r} has shape {list(a.shape)}, expected {list(want)} (ferronn's {e.ferronn} "
                              f"is {list(core_shape)}{', stored transposed' if e.transpose else ''})")
            continue
        staged.append((e.ferronn, np.ascontiguousarray(a.T if e.transpose else a, dtype=np.float32)))
    if bad_shapes:
        raise ShapeError(f"{path} does not match this model's shapes: {'; '.join(bad_shapes)}")

    copy = net.copy()
    for fname, value in staged:
        copy.set_param(fname, value)
    model._net = copy  # all or nothing: the model is unchanged if any tensor is rejected


# -- the equivalent PyTorch source ---------------------------------------------

_TORCH_HEADER = '''import torch
from torch import nn


class Gated(nn.Module):
    """ferronn's Gated: y = gate(x·Wg + bg) * (x·Wv + bv), one Linear to 2·units, gate half first."""

    def __init__(self, in_features, units, gate):
        super().__init__()
        self.proj = nn.Linear(in_features, 2 * units)
        self.gate = gate

    def forward(self, x):
        g, v = self.proj(x).chunk(2, dim=-1)
        return self.gate(g) * v


class Residual(nn.Module):
    """ferronn's Residual: y = x + block(x), or projection(x) + block(x) when the width changes."""

    def __init__(self, block, projection=None):
        super().__init__()
        self.block = block
        self.projection = projection

    def forward(self, x):
        skip = x if self.projection is None else self.projection(x)
        return skip + self.block(x)


class Softmax(nn.Module):
    """Softmax (or log-softmax) over the last axis with a temperature: softmax(x / T)."""

    def __init__(self, temperature=1.0, log=False):
        super().__init__()
        self.temperature, self.log = temperature, log

    def forward(self, x):
        f = torch.log_softmax if self.log else torch.softmax
        return f(x / self.temperature, dim=-1)

'''

_TORCH_ACTIVATIONS = {
    "relu": "nn.ReLU()", "gelu": "nn.GELU()", "gelu_tanh": "nn.GELU(approximate='tanh')", "silu": "nn.SiLU()",
    "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()", "softplus": "nn.Softplus()", "identity": "nn.Identity()",
}


def _torch_activation(name: str, alpha: Optional[float]) -> str:
    if name in ("leaky_relu", "elu"):
        a = _DEFAULT_ALPHA[name] if alpha is None else alpha
        return f"nn.LeakyReLU({a!r})" if name == "leaky_relu" else f"nn.ELU({a!r})"
    if name not in _TORCH_ACTIVATIONS:
        raise ExportError(f"activation {name!r} has no PyTorch module in ferronn's torch layout")
    return _TORCH_ACTIVATIONS[name]


def _torch_modules(layer_list: list, d: int, prefix: str, core: set[str]) -> tuple[list[str], int]:
    """PyTorch module expressions for ``layer_list`` on inputs of width ``d``, and the output width."""
    mods: list[str] = []
    for i, layer in enumerate(layer_list):
        f = f"{prefix}{i}"
        out = layer.output_dim(d)
        if isinstance(layer, _layers.Dense):
            mods.append(f"nn.Linear({d}, {out})")
            if layer.activation != "identity":
                mods.append(_torch_activation(layer.activation, layer.alpha))
        elif isinstance(layer, _layers.Gated):
            mods.append(f"Gated({d}, {layer.units}, {_torch_activation(layer.gate, layer.gate_alpha)})")
        elif isinstance(layer, _layers.Activation):
            mods.append(_torch_activation(layer.name, layer.alpha))
        elif isinstance(layer, (_layers.Softmax, _layers.LogSoftmax)):
            log = isinstance(layer, _layers.LogSoftmax)
            if layer.temperature == 1.0:
                mods.append("nn.LogSoftmax(dim=-1)" if log else "nn.Softmax(dim=-1)")
            else:
                mods.append(f"Softmax(temperature={layer.temperature!r}{', log=True' if log else ''})")
        elif isinstance(layer, _layers.Dropout):
            mods.append(f"nn.Dropout({layer.rate!r})")
        elif isinstance(layer, _layers.PReLU):
            mods.append(f"nn.PReLU({1 if layer.shared else d}, init={layer.init!r})")
        elif isinstance(layer, _layers.BatchNorm):
            mods.append(f"nn.BatchNorm1d({d}, eps={layer.eps!r}, momentum={layer.momentum!r})")
        elif isinstance(layer, _layers.LayerNorm):
            mods.append(f"nn.LayerNorm({d}, eps={layer.eps!r})")
        elif isinstance(layer, _layers.RMSNorm):
            mods.append(f"nn.RMSNorm({d}, eps={layer.eps!r})")
        elif isinstance(layer, _layers.Residual):
            inner, _ = _torch_modules(layer.layers, d, f"{f}.block.", core)
            proj = f", projection=nn.Linear({d}, {out})" if f"{f}.projection.weight" in core else ""
            mods.append(f"Residual(nn.Sequential({', '.join(inner)}){proj})")
        else:
            raise _unsupported(layer, f)
        d = out
    return mods, d


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
    core = {n for n, _ in model._tensors()}
    mods, _ = _torch_modules(model.layers, int(model.input_dim), "layers.", core)
    body = "".join(f"    {m},\n" for m in mods)
    return f"{_TORCH_HEADER}\nmodel = nn.Sequential(\n{body})\n"


def check_layout(layout: Any) -> str:
    """The layout name for ``Sequential.save`` ("ferronn" or "torch"); ConfigError otherwise."""
    if layout not in ("ferronn", "torch"):
        raise ConfigError(f"layout must be 'ferronn' (the default: architecture, weights and optimizer state) "
                          f"or 'torch' (weights named as a PyTorch state_dict), got {layout!r}")
    return str(layout)
