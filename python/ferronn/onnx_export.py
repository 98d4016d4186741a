"""ONNX export: ``model.export_onnx(path, opset=17)``.

Writes an inference graph of a built ``Sequential`` in ONNX, default opset 17
(the default domain; any opset from 17 up to the installed ``onnx`` package's
newest may be asked for, though a runtime may support fewer). The graph has one input ``"input"`` and one output
``"output"``, both float32 of shape ``["batch", width]`` with a dynamic batch
dimension. Built with the ``onnx`` package's helper API (``pip install onnx``).

It computes what ``model.predict_raw`` computes (inference mode): Dropout is
removed and BatchNorm uses its running statistics. For a model of N-D samples
(images, sequences) the input is ``["batch", *input_shape]`` in the model's own
layout (and the output ``["batch", *output_shape]`` when that is N-D); it is
flattened once (``Flatten``) and the layers pass flat rows between them, as the
core stores them.

Sequences of any length (``input_shape=(None, F)``, or a model shaped by its first fit
whose first layer reads sequences): when every layer the time axis passes through works
step by step (recurrent layers, ``Bidirectional``, ``Embedding``, ``Dense`` on the last
axis, activations, ``Dropout``, channels_last ``GlobalAvgPool1D`` / ``GlobalMaxPool1D``), the
time axis is the dynamic dimension ``"steps"`` of the input (``["batch", "steps", F]``, or
``["batch", "steps"]`` of token ids) and of an output that keeps it, and the reshapes
between layers infer it (``Reshape`` to ``[0, -1, F]``: the batch kept, the steps
inferred), so one file takes any length. A model whose weights fix the length (``Flatten``
or ``Reshape`` and then ``Dense``; the model itself refuses other lengths) is exported at
the length it was built for (one step for a model declared with ``None``).

Each layer becomes:

- ``Dense``: ``Gemm(x, W, b)`` (W stored [in, out], as ferronn keeps it), then its
  activation, if any.
- Activations: ``Relu``, ``LeakyRelu(alpha)``, ``Elu(alpha)``, ``Sigmoid``, ``Tanh``,
  ``Softplus``, identity (no node); ``silu`` as ``x * Sigmoid(x)``; ``gelu`` as
  ``0.5·x·(1 + Erf(x/√2))`` and ``gelu_tanh`` as ``0.5·x·(1 + Tanh(√(2/π)·(x + 0.044715·x³)))``
  (the ``Gelu`` operator only exists from opset 20; from opset 20 on it is used).
- ``Softmax(T)`` / ``LogSoftmax(T)``: ``Div(x, T)`` (when T != 1), then
  ``Softmax`` / ``LogSoftmax`` with ``axis=-1``.
- ``PReLU``: ``PRelu(x, alpha)`` (slope [d] or [1]); per channel of images and sequences
  (``shared_axes``) on ONNX's [N, C, ...] value (as for Conv below) with the slopes as [C, 1, ...].
- Gated units: ``Gemm(x, W, b)`` into [batch, 2·units], ``Split`` into the gate
  half (first) and the value half, ``Mul(gate(g), v)``.
- ``BatchNorm``: ``BatchNormalization`` (inference form: running mean and variance, ``epsilon``).
- ``LayerNorm``: ``LayerNormalization(axis=-1, epsilon)``.
- ``RMSNorm``: ``x / Sqrt(ReduceMean(x·x, axes=[-1]) + eps) · gamma``.
- ``Dropout``: nothing (the identity at inference).
- ``Conv1D`` / ``Conv2D``: ``Reshape`` to the sample shape, for channels_last a
  ``Transpose`` to ONNX's [N, C, ...], ``Conv`` (``pads``, ``strides``,
  ``dilations``, ``group``; the kernel converted from Keras' [k..., in/groups, out] to
  ONNX's [out, in/groups, k...], same initializer name), ``Transpose`` back to
  channels_last and ``Flatten``, so a following Flatten and Dense see the values
  in ferronn's (NHWC) order; then the activation.
  Consecutive conv and pooling layers of one layout pass ONNX's [N, C, ...] value
  along (the reshapes and transposes between them are left out), so a channels_last
  CNN has one ``Transpose`` after the input and one before its ``Flatten``.
- Pooling: likewise around ``MaxPool`` / ``AveragePool`` (``count_include_pad=0``:
  Keras' "same" averages only the cells inside the input); global pooling as
  ``GlobalMaxPool`` / ``GlobalAveragePool`` then ``Flatten`` (output [N, C]).
- ``Flatten`` / ``Reshape``: nothing (the rows are flat already, in row-major order).
- ``BatchNorm(axis=1)`` on channels_first samples: ``BatchNormalization`` on [N, C, ...] as it is.
- ``Dense`` on N-D inputs (the last axis): ``MatMul`` of the N-D value [N, ..., features]
  by W (broadcast over the positions), ``Add`` of the bias, then its activation
  (``Softmax(axis=-1)`` per position) and ``Flatten``.
- ``BatchNorm`` on N-D inputs (the last axis): ``Reshape`` to rows [N·positions, features],
  the flat form above, ``Reshape`` back.
- ``Residual``: the block's nodes, then ``Add(x, block(x))``, with ``Gemm(x, P, p)`` in
  place of ``x`` when the block changes the width; on images and sequences the projection's
  1x1 strided ``Conv`` (and its ``BatchNormalization``) instead.

- ``SimpleRNN`` / ``LSTM`` / ``GRU``: ``Reshape`` to [N, T, F], ``Transpose`` to time-major
  [T, N, F], ONNX's ``RNN`` (the activation: ``Tanh``, ``Relu``, ``Sigmoid``, ``LeakyRelu``,
  ``Elu``, ``Softplus``) / ``LSTM`` / ``GRU`` (``linear_before_reset=1``: PyTorch's equations)
  with ``W``, ``R``, ``B`` in ONNX's gate order (see ``layers._recurrent_export``); for
  ``go_backwards`` ``direction="reverse"``, and with ``return_sequences`` a ``Slice`` reversing
  ``Y`` along time (ONNX keeps the input's time order, ferronn the reading order); then
  ``Transpose`` to [N, T, ...] and ``Flatten`` (or the last state ``Y_h`` as rows).
- ``Bidirectional``: the same with one operator, ``direction="bidirectional"`` (``W``, ``R``,
  ``B`` stacked: forward layer first), then the merge: concat as above (``Y`` keeps both
  directions in the input's time order), else ``Gather`` of each direction and ``Add`` /
  ``Mul`` / ``Add`` and ``Mul`` by 0.5. A wrapped ``go_backwards`` layer reverses the input
  first (``Slice``). Directions that differ in cell, units or activation raise ``ExportError``.
- ``Embedding``: ``Cast`` of the float ids to int64, ``Gather`` on the table ([N, T, d]).
  A masking Embedding (``mask_zero``) raises ``ExportError``.

Initializers are named after ferronn's tensors (``layers.0.weight``, ...). A layer
with no ONNX form raises ``ferronn.errors.ExportError`` naming the layer.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import numpy as np

from . import _core, _validate
from ._files import atomic_write
from ._optional import require
from .errors import ExportError, FerronnError

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "to_onnx", "export_onnx"]

#: The opset written unless another is asked for.
DEFAULT_OPSET = 17
#: The oldest opset supported (LayerNormalization appears in 17).
MIN_OPSET = 17


def _onnx() -> Any:
    return require("onnx", "ONNX export", "onnx")


class _Graph:
    """Collects nodes and initializers; every value gets a fresh name. Each layer
    adds its own nodes (``Layer.onnx_nodes``) through the methods below.

    Without ``onnx`` (``dry=True``) nothing is built and no tensor is read: the
    walk only finds the first layer or activation with no ONNX form, so that
    ``ExportError`` comes before the model's state is looked at."""

    def __init__(self, onnx: Any, tensors: dict[str, np.ndarray], opset: int, dry: bool = False) -> None:
        self.onnx, self.tensors, self.opset, self.dry = onnx, tensors, opset, dry
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._init_names: set[str] = set()
        self._n = 0
        # flat value -> its [N, C, ...] form and (per-sample shape, rank, layout) (see to_channels_first)
        self._nchw: dict[str, str] = {}
        self._spatial: dict[str, tuple[tuple[int, ...], int, str]] = {}
        self._nd: dict[str, tuple[str, tuple[int, ...]]] = {}  # flat value -> (its N-D form, that shape)
        #: The layer being added reads sequences of any length: the first axis of the N-D
        #: shapes it reshapes to is the time axis, sized by the data (see ``reshape``).
        self.dynamic_steps = False

    def has(self, name: str) -> bool:
        """Whether ferronn's tensor ``name`` exists (a Residual's projection)."""
        return name in self.tensors

    def init(self, name: str, value: np.ndarray) -> str:
        if name not in self._init_names and not self.dry:
            self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
            self._init_names.add(name)
        return name

    def weight(self, name: str) -> str:
        """An initializer holding ferronn's tensor ``name``."""
        if self.dry:
            return name
        return self.init(name, self.tensors[name].astype(np.float32, copy=False))

    def scalar(self, value: float) -> str:
        return self.init(f"const.{float(np.float32(value))!r}", np.array(value, dtype=np.float32))

    def node(self, op: str, inputs: list[str], scope: str, n_out: int = 1, **attrs: Any) -> Any:
        self._n += 1
        outs = [f"{scope}/{op}_{self._n}" + (f":{j}" if n_out > 1 else "") for j in range(n_out)]
        if not self.dry:
            self.nodes.append(self.onnx.helper.make_node(op, inputs, outs, name=f"{scope}/{op}_{self._n}", **attrs))
        return outs[0] if n_out == 1 else outs

    def gemm(self, x: str, prefix: str, scope: str) -> str:
        return self.node("Gemm", [x, self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")], scope)

    def weight_t(self, name: str, axes: tuple[int, ...]) -> str:
        """An initializer holding ferronn's tensor ``name`` with its axes permuted (conv kernels)."""
        if self.dry:
            return name
        return self.init(name, np.transpose(self.tensors[name].astype(np.float32, copy=False), axes))

    def reshape(self, x: str, shape: tuple[int, ...], scope: str) -> str:
        """``x`` reshaped to ``[batch, *shape]`` (the batch inferred). With ``dynamic_steps``
        an N-D ``shape``'s first (time) axis is inferred instead and the batch kept from
        ``x`` (``[0, -1, *shape[1:]]``), so the graph takes sequences of any length."""
        if self.dynamic_steps and len(shape) > 1:
            dims = self.init("const.shape.batch_steps." + "x".join(str(int(d)) for d in shape[1:]),
                             np.array([0, -1, *shape[1:]], dtype=np.int64))
        else:
            dims = self.init("const.shape." + "x".join(str(int(d)) for d in shape),
                             np.array([-1, *shape], dtype=np.int64))
        return self.node("Reshape", [x, dims], scope)

    def flatten(self, x: str, scope: str) -> str:
        """``x`` as ``[batch, everything else]`` (ONNX's Flatten, axis 1)."""
        return self.node("Flatten", [x], scope, axis=1)

    def to_channels_first(self, x: str, shape: tuple[int, ...], rank: int, fmt: str, scope: str) -> str:
        """Flat rows of per-sample ``shape`` as ONNX's [N, C, spatial...] for Conv and pooling:
        a Reshape, then for channels_last a Transpose moving the channels to axis 1. When ``x``
        came out of ``from_channels_first`` with the same shape and layout (a conv or pool
        right before), its [N, C, ...] value is reused: no Transpose/Reshape pair in between."""
        if self._spatial.get(x) == (tuple(shape), rank, fmt):
            return self._nchw[x]
        y = self.nd(x, shape, scope)
        if fmt == "channels_last":
            y = self.node("Transpose", [y], scope, perm=[0, rank + 1, *range(1, rank + 1)])
        return y

    def from_channels_first(self, y: str, shape: tuple[int, ...], rank: int, fmt: str, scope: str) -> str:
        """The inverse of ``to_channels_first`` (``shape``: the per-sample output shape in the
        layout): back to the layout (Transpose for channels_last), then flat rows, so that a
        following Flatten and Dense see ferronn's value order."""
        z = y
        if fmt == "channels_last":
            z = self.node("Transpose", [z], scope, perm=[0, *range(2, rank + 2), 1])
        flat = self.flatten(z, scope)
        self._nchw[flat], self._spatial[flat] = y, (tuple(shape), rank, fmt)
        self._nd[flat] = (z, tuple(shape))
        return flat

    def flat_input(self, x: str, shape: tuple[int, ...]) -> str:
        """The graph input ``x`` of per-sample ``shape`` as flat rows (its N-D form kept for reuse)."""
        return self.flat_nd(x, shape, "input")

    def flat_nd(self, z: str, shape: tuple[int, ...], scope: str) -> str:
        """``z`` (``[batch, *shape]``) as flat rows, its N-D form kept for the next ``nd``."""
        flat = self.flatten(z, scope)
        self._nd[flat] = (z, tuple(shape))
        return flat

    def nd(self, x: str, shape: tuple[int, ...], scope: str) -> str:
        """Flat rows ``x`` as ``[batch, *shape]``: the N-D value they came from when
        ``flat_nd`` made them with that shape, else a Reshape."""
        nd, nd_shape = self._nd.get(x, ("", ()))
        return nd if nd_shape == tuple(shape) else self.reshape(x, shape, scope)

    def live_nodes(self, output: str) -> list[Any]:
        """The nodes ``output`` depends on, in order: forms built and then reused in another
        one (a Flatten whose [N, C, ...] value the next conv took instead) are dropped."""
        needed, live = {output}, []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.output):
                live.append(node)
                needed.update(node.input)
        return live[::-1]

    def reduce_mean_last(self, x: str, scope: str) -> str:
        if self.opset >= 18:  # axes became an input in opset 18
            axes = self.init("const.axes_last", np.array([-1], dtype=np.int64))
            return self.node("ReduceMean", [x, axes], scope, keepdims=1)
        return self.node("ReduceMean", [x], scope, axes=[-1], keepdims=1)

    def layers(self, layer_list: list, x: str, prefix: str) -> str:
        """Adds ``layer_list`` (named ``{prefix}.0``, ...) on value ``x``; returns the output value."""
        for i, layer in enumerate(layer_list):
            x = layer.onnx_nodes(self, x, f"{prefix}.{i}")
        return x


def _time_axes(model: Any) -> Optional[list[bool]]:
    """For a model of sequences of any length whose time axis passes only through
    layers that work step by step (``Layer.follows_steps``): whether each layer's input,
    then the model's output, carries the time axis (found by comparing the shapes at two
    lengths). None for any other model, which is exported at its built length."""
    if not getattr(model, "_variable_steps", False) or model._sample_shape is None:
        return None
    rest = tuple(model._sample_shape[1:])
    try:
        a, b = ([(t, *rest)] + model._shape_chain((t, *rest)) for t in (2, 3))
    except FerronnError:  # a layer that cannot take another length (Reshape)
        return None
    varies = [u != v for u, v in zip(a, b)]
    if any(v and not layer.follows_steps() for layer, v in zip(model.layers, varies)):
        return None  # e.g. Flatten then Dense: the weights fix the length
    return varies


def to_onnx(model: Any, opset: int = DEFAULT_OPSET) -> Any:
    """The ``onnx.ModelProto`` of a built model (see the module docstring); checked with
    ``onnx.checker.check_model``."""
    _Graph(None, {}, DEFAULT_OPSET, dry=True).layers(model.layers, "input", "layers")
    onnx = _onnx()
    newest = int(onnx.defs.onnx_opset_version())
    opset = _validate.integer(opset, "opset", MIN_OPSET, newest, error=ExportError,
                              expected=f"an integer from {MIN_OPSET} to {newest} (the installed onnx package's newest)")
    net = model._require_built("export_onnx")
    g = _Graph(onnx, dict(model._tensors()), opset)
    in_shape = tuple(int(d) for d in (model._sample_shape or (net.input_dim,)))
    out_shape = tuple(int(d) for d in model._output_shapes(in_shape)[-1])
    x = g.flat_input("input", in_shape) if len(in_shape) > 1 else "input"  # layers work on flat rows
    steps = _time_axes(model)
    out = x
    for i, layer in enumerate(model.layers):
        g.dynamic_steps = steps is not None and steps[i]
        out = layer.onnx_nodes(g, out, f"layers.{i}")
    g.dynamic_steps = steps is not None and steps[-1]
    if len(out_shape) > 1:
        out = g.reshape(out, out_shape, "output")
    g.nodes.append(onnx.helper.make_node("Identity", [out], ["output"], name="output"))

    def dims(shape: tuple[int, ...], dynamic: bool) -> list[Any]:
        return ["batch", "steps", *shape[1:]] if dynamic else ["batch", *shape]
    h = onnx.helper
    nodes = g.live_nodes("output")
    used = {i for node in nodes for i in node.input}
    graph = h.make_graph(
        nodes, "ferronn_sequential",
        [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, dims(in_shape, steps is not None))],
        [h.make_tensor_value_info("output", onnx.TensorProto.FLOAT, dims(out_shape, bool(steps and steps[-1])))],
        initializer=[i for i in g.inits if i.name in used])
    opsets = [h.make_opsetid("", opset)]
    proto = h.make_model(graph, opset_imports=opsets, producer_name="ferronn", producer_version=_core.__version__,
                         ir_version=h.find_min_ir_version_for(opsets))
    proto.doc_string = f"ferronn Sequential: {model!r}"
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model: Any, path: Union[str, "os.PathLike[str]"], opset: int = DEFAULT_OPSET) -> None:
    """Writes ``to_onnx(model, opset)`` to ``path`` (atomically). ``model.export_onnx`` calls this."""
    atomic_write(path, to_onnx(model, opset).SerializeToString())
