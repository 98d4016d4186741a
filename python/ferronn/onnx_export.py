"""ONNX export: ``model.export_onnx(path, opset=17)``.

Writes an inference graph of a built ``Sequential`` in ONNX, default opset 17
(the default domain; any opset from 17 up to the installed ``onnx`` package's
newest may be asked for, though a runtime may support fewer). The graph has one input ``"input"`` and one output
``"output"``, both float32 of shape ``["batch", width]`` with a dynamic batch
dimension. Built with the ``onnx`` package's helper API (``pip install onnx``).

It computes what ``model.predict_raw`` computes (inference mode): Dropout is
removed and BatchNorm uses its running statistics. Each layer becomes:

- ``Dense``: ``Gemm(x, W, b)`` (W stored [in, out], as ferronn keeps it), then its
  activation, if any.
- Activations: ``Relu``, ``LeakyRelu(alpha)``, ``Elu(alpha)``, ``Sigmoid``, ``Tanh``,
  ``Softplus``, identity (no node); ``silu`` as ``x * Sigmoid(x)``; ``gelu`` as
  ``0.5·x·(1 + Erf(x/√2))`` and ``gelu_tanh`` as ``0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³)))``
  (the ``Gelu`` operator only exists from opset 20; from opset 20 on it is used).
- ``Softmax(T)`` / ``LogSoftmax(T)``: ``Div(x, T)`` (when T != 1), then
  ``Softmax`` / ``LogSoftmax`` with ``axis=-1``.
- ``PReLU``: ``PRelu(x, alpha)`` (slope [d] or [1]).
- Gated units: ``Gemm(x, W, b)`` into [batch, 2·units], ``Split`` into the gate
  half (first) and the value half, ``Mul(gate(g), v)``.
- ``BatchNorm``: ``BatchNormalization`` (inference form: running mean and variance, ``epsilon``).
- ``LayerNorm``: ``LayerNormalization(axis=-1, epsilon)``.
- ``RMSNorm``: ``x / Sqrt(ReduceMean(x·x, axes=[-1]) + eps) · gamma``.
- ``Dropout``: nothing (the identity at inference).
- ``Residual``: the block's nodes, then ``Add(x, block(x))``, with ``Gemm(x, P, p)`` in
  place of ``x`` when the block changes the width.

Initializers are named after ferronn's tensors (``layers.0.weight``, ...). A layer
with no ONNX form raises ``ferronn.errors.ExportError`` naming the layer.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Union

import numpy as np

from . import _core, layers as _layers
from .errors import ExportError
from .layers.activations import _DEFAULT_ALPHA

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "to_onnx", "export_onnx"]

#: The opset written unless another is asked for.
DEFAULT_OPSET = 17
#: The oldest opset supported (LayerNormalization appears in 17).
MIN_OPSET = 17

_SUPPORTED = (_layers.Dense, _layers.Gated, _layers.Activation, _layers.Softmax, _layers.LogSoftmax,
              _layers.PReLU, _layers.BatchNorm, _layers.LayerNorm, _layers.RMSNorm, _layers.Dropout,
              _layers.Residual)
_ELEMENTWISE = {"identity", "relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "softplus"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("ONNX export needs the onnx package: pip install onnx") from e
    return onnx


def _check_layers(layer_list: list, prefix: str) -> None:
    """ExportError for the first layer (or activation) with no ONNX form, before anything is built."""
    for i, layer in enumerate(layer_list):
        where = f"{prefix}{i}"
        if not isinstance(layer, _SUPPORTED):
            raise ExportError(f"layer {where} ({layer!r}, {type(layer).__name__}) cannot be exported to ONNX; "
                              "supported: Dense, activation layers, Softmax, LogSoftmax, PReLU, gated units, "
                              "BatchNorm, LayerNorm, RMSNorm, Dropout, Residual")
        act = (layer.activation if isinstance(layer, _layers.Dense) else layer.gate if isinstance(layer, _layers.Gated)
               else layer.name if isinstance(layer, _layers.Activation) else None)
        if act is not None and act not in _ELEMENTWISE:
            raise ExportError(f"layer {where} ({layer!r}) uses the activation {act!r}, which has no ONNX form here")
        if isinstance(layer, _layers.Residual):
            _check_layers(layer.layers, f"{where}.block.")


class _Graph:
    """Collects nodes and initializers; every value gets a fresh name."""

    def __init__(self, onnx: Any, tensors: dict[str, np.ndarray], opset: int) -> None:
        self.onnx, self.tensors, self.opset = onnx, tensors, opset
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._init_names: set[str] = set()
        self._n = 0

    def init(self, name: str, value: np.ndarray) -> str:
        if name not in self._init_names:
            self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
            self._init_names.add(name)
        return name

    def weight(self, name: str) -> str:
        """An initializer holding ferronn's tensor ``name``."""
        return self.init(name, self.tensors[name].astype(np.float32, copy=False))

    def scalar(self, value: float) -> str:
        return self.init(f"const.{float(np.float32(value))!r}", np.array(value, dtype=np.float32))

    def node(self, op: str, inputs: list[str], scope: str, n_out: int = 1, **attrs: Any) -> Any:
        self._n += 1
        outs = [f"{scope}/{op}_{self._n}" + (f":{j}" if n_out > 1 else "") for j in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outs, name=f"{scope}/{op}_{self._n}", **attrs))
        return outs[0] if n_out == 1 else outs

    # -- pieces ------------------------------------------------------------

    def activation(self, name: str, alpha: Optional[float], x: str, scope: str) -> str:
        if name == "identity":
            return x
        if name in ("relu", "sigmoid", "tanh", "softplus"):
            return self.node({"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}[name],
                             [x], scope)
        if name in ("leaky_relu", "elu"):
            a = float(_DEFAULT_ALPHA[name] if alpha is None else alpha)
            return self.node("LeakyRelu" if name == "leaky_relu" else "Elu", [x], scope, alpha=a)
        if name == "silu":
            return self.node("Mul", [x, self.node("Sigmoid", [x], scope)], scope)
        if name in ("gelu", "gelu_tanh"):
            if self.opset >= 20:
                return self.node("Gelu", [x], scope, approximate="none" if name == "gelu" else "tanh")
            if name == "gelu":
                inner = self.node("Erf", [self.node("Div", [x, self.scalar(math.sqrt(2.0))], scope)], scope)
            else:
                cube = self.node("Mul", [self.node("Mul", [x, x], scope), x], scope)
                poly = self.node("Add", [x, self.node("Mul", [cube, self.scalar(0.044715)], scope)], scope)
                inner = self.node("Tanh", [self.node("Mul", [poly, self.scalar(math.sqrt(2.0 / math.pi))], scope)],
                                  scope)
            half_x = self.node("Mul", [x, self.scalar(0.5)], scope)
            return self.node("Mul", [half_x, self.node("Add", [inner, self.scalar(1.0)], scope)], scope)
        raise ExportError(f"{scope}: the activation {name!r} has no ONNX form here")  # screened by _check_layers

    def gemm(self, x: str, prefix: str, scope: str) -> str:
        return self.node("Gemm", [x, self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")], scope)

    def reduce_mean_last(self, x: str, scope: str) -> str:
        if self.opset >= 18:  # axes became an input in opset 18
            axes = self.init("const.axes_last", np.array([-1], dtype=np.int64))
            return self.node("ReduceMean", [x, axes], scope, keepdims=1)
        return self.node("ReduceMean", [x], scope, axes=[-1], keepdims=1)

    def layers(self, layer_list: list, x: str, prefix: str) -> str:
        for i, layer in enumerate(layer_list):
            x = self.layer(layer, x, f"{prefix}{i}")
        return x

    def layer(self, layer: _layers.Layer, x: str, p: str) -> str:
        if isinstance(layer, _layers.Dense):
            return self.activation(layer.activation, layer.alpha, self.gemm(x, p, p), p)
        if isinstance(layer, _layers.Activation):
            return self.activation(layer.name, layer.alpha, x, p)
        if isinstance(layer, (_layers.Softmax, _layers.LogSoftmax)):
            if layer.temperature != 1.0:
                x = self.node("Div", [x, self.scalar(layer.temperature)], p)
            return self.node("LogSoftmax" if isinstance(layer, _layers.LogSoftmax) else "Softmax", [x], p, axis=-1)
        if isinstance(layer, _layers.Dropout):
            return x
        if isinstance(layer, _layers.PReLU):
            return self.node("PRelu", [x, self.weight(f"{p}.alpha")], p)
        if isinstance(layer, _layers.Gated):
            u = layer.units
            split = self.init(f"const.split_{u}_{u}", np.array([u, u], dtype=np.int64))
            g, v = self.node("Split", [self.gemm(x, p, p), split], p, n_out=2, axis=1)
            return self.node("Mul", [self.activation(layer.gate, layer.gate_alpha, g, p), v], p)
        if isinstance(layer, _layers.BatchNorm):
            ins = [x] + [self.weight(f"{p}.{n}") for n in ("gamma", "beta", "running_mean", "running_var")]
            return self.node("BatchNormalization", ins, p, epsilon=float(layer.eps), momentum=1.0 - layer.momentum)
        if isinstance(layer, _layers.LayerNorm):
            return self.node("LayerNormalization", [x, self.weight(f"{p}.gamma"), self.weight(f"{p}.beta")], p,
                             axis=-1, epsilon=float(layer.eps))
        if isinstance(layer, _layers.RMSNorm):
            ms = self.reduce_mean_last(self.node("Mul", [x, x], p), p)
            rms = self.node("Sqrt", [self.node("Add", [ms, self.scalar(layer.eps)], p)], p)
            return self.node("Mul", [self.node("Div", [x, rms], p), self.weight(f"{p}.gamma")], p)
        if isinstance(layer, _layers.Residual):
            out = self.layers(layer.layers, x, f"{p}.block.")
            skip = self.gemm(x, f"{p}.projection", f"{p}.projection") if f"{p}.projection.weight" in self.tensors \
                else x
            return self.node("Add", [skip, out], p)
        raise ExportError(f"layer {p} ({layer!r}) cannot be exported to ONNX")  # screened by _check_layers


def to_onnx(model: Any, opset: int = DEFAULT_OPSET) -> Any:
    """The ``onnx.ModelProto`` of a built model (see the module docstring); checked with
    ``onnx.checker.check_model``."""
    _check_layers(model.layers, "layers.")
    onnx = _onnx()
    newest = int(onnx.defs.onnx_opset_version())
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ExportError(f"opset must be an integer from {MIN_OPSET} to {newest} (the installed onnx package's "
                          f"newest), got {opset!r}")
    net = model._require_built("export_onnx")
    opset = int(opset)
    g = _Graph(onnx, dict(model._tensors()), opset)
    out = g.layers(model.layers, "input", "layers.")
    g.nodes.append(onnx.helper.make_node("Identity", [out], ["output"], name="output"))
    h = onnx.helper
    graph = h.make_graph(
        g.nodes, "ferronn_sequential",
        [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", int(net.input_dim)])],
        [h.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["batch", int(net.output_dim)])],
        initializer=g.inits)
    opsets = [h.make_opsetid("", opset)]
    proto = h.make_model(graph, opset_imports=opsets, producer_name="ferronn", producer_version=_core.__version__,
                         ir_version=h.find_min_ir_version_for(opsets))
    proto.doc_string = f"ferronn Sequential: {model!r}"
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: Any, path: Union[str, "os.PathLike[str]"], opset: int = DEFAULT_OPSET) -> None:
    """Writes ``to_onnx(model, opset)`` to ``path`` (atomically). ``model.export_onnx`` calls this."""
    data = to_onnx(model, opset).SerializeToString()
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
