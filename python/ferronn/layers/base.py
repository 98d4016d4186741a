"""The ``Layer`` base class: a description of what to build, and (once its model
is built) a window onto the layer's parameter arrays in the Rust core.

A layer kind also describes itself to the tools that work outside the core, so
that none of them tests which kind a layer is. Each method has a default that
raises the tool's named error naming the layer; a kind overrides those it
supports (``where`` is the layer's tensor prefix, e.g. ``"layers.3"``):

- ``numpy_forward(h, p, ref, where) -> NumpyStep``: the layer's forward pass in
  NumPy, for ``fn.diagnostics`` (its reference for ``check_gradients``). ``h`` is
  the input batch; ``p["weight"]`` the layer's tensors (``"name" in p`` asks if
  one exists); ``ref`` the pass (``ref.act(name, x, alpha)``,
  ``ref.softmax(x, temperature, log)``, ``ref.training``, ``ref.dtype``, and
  ``ref.run(layers, h, prefix)`` for nested layers in sequence,
  ``ref.run_parallel([(prefix, layer), ...], h)`` for nested layers that each read
  ``h``). Default: ``ConfigError``.
- ``onnx_nodes(g, x, where) -> str``: adds the layer's ONNX nodes to the graph
  ``g`` (``g.node``, ``g.init``, ``g.weight``, ``g.scalar``, ``g.gemm``,
  ``g.reduce_mean_last``, ``g.opset``, ``g.has``, ``g.layers`` for nested layers;
  for conv-like kinds ``g.weight_t`` (a tensor with permuted axes), ``g.reshape``,
  ``g.flatten``, ``g.to_channels_first`` / ``g.from_channels_first``; values between
  layers are flat rows ``[N, features]``) on input value ``x`` and returns the output
  value's name; activations go
  through ``layers.elementwise.onnx_nodes``. The exporter first runs the same
  walk on a dry graph (no tensors), so raise only from the layer's own
  configuration. Default: ``ExportError``.
- ``torch_layout(layout, d, f, t) -> TorchPart``: the ``nn.Sequential`` modules
  the layer becomes (source expressions; each takes one index), the tensors of
  its PyTorch ``state_dict`` (``TorchEntry``: PyTorch name under prefix ``t``,
  ferronn name under prefix ``f``, transposed or with ``axes`` permuted) and any helper
  ``nn.Module`` class sources they need. ``d`` is the input width; ``layout``
  offers ``has(tensor)`` and ``walk(layers, d, f, t)`` for nested layers.
  Default: ``ExportError``.
- ``named_sublayers(prefix)``: nested layers with their tensor prefixes (binding,
  summaries and regularizer walks use it); ``parallel_sublayers = True`` when each of
  them reads the layer's input (Bidirectional's directions) instead of the previous one's
  output.
- ``output_shape(input_shape)``: the per-sample output shape (no batch axis).
  The default follows ``output_dim`` on 1-D inputs; on N-D inputs (images,
  sequences) a kind with ``keeps_shape`` keeps the shape, any other raises
  ``ConfigError`` asking for a ``Flatten``. Kinds whose spec depends on the input
  shape (convolutions, pooling) read it from ``self._input_shape``, which the
  model records through ``_built_for`` when it builds.

Adding a kind: its class file (with these methods), ``@register("type")`` on the
class, and its name in ``layers/__init__.py``. The Rust side builds it from its spec.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from ..errors import ConfigError, ExportError, NotFittedError

__all__ = ["Layer", "NumpyStep", "TorchEntry", "TorchPart", "register", "from_spec"]

_REGISTRY: dict[str, Callable[[dict[str, Any]], "Layer"]] = {}
_KINDS: list[type] = []  # the registered classes, in registration order


def register(type_name: str):
    """Class decorator: ``from_spec`` rebuilds specs of ``type_name`` with ``cls.from_spec``."""
    def wrap(cls):
        _REGISTRY[type_name] = cls.from_spec
        _KINDS.append(cls)
        return cls
    return wrap


def _kinds_with(method: str) -> str:
    """The registered kinds that override ``method`` (for "supported: ..." in errors)."""
    return ", ".join(k.__name__ for k in _KINDS if getattr(k, method) is not getattr(Layer, method))


class NumpyStep(NamedTuple):
    """One layer's NumPy forward (``Layer.numpy_forward``): its ``output``, and for a
    layer that applies an activation, what the diagnostics read: the function's
    canonical name ``act``, its input ``pre`` and output ``post`` (per unit), and
    whether it is ``kinked`` at 0 (dead units are counted, and gradient checks
    skip finite differences across the kink, only for kinked functions)."""

    output: np.ndarray
    act: Optional[str] = None
    pre: Optional[np.ndarray] = None
    post: Optional[np.ndarray] = None
    kinked: bool = False
    #: A mask producer's step mask of padded sequences, ``[N, T]`` bool (True: a real step).
    mask: Optional[np.ndarray] = None


class TorchEntry(NamedTuple):
    """One tensor of the torch layout: its PyTorch name, the core tensor it comes
    from (None for ``num_batches_tracked``), whether it is stored transposed, and
    for other axis orders (conv kernels) ``axes``: PyTorch's tensor is
    ``np.transpose(ferronn's, axes)``."""

    torch: str
    ferronn: Optional[str]
    transpose: bool = False
    axes: Optional[tuple[int, ...]] = None

    def perm(self) -> Optional[tuple[int, ...]]:
        """The axis order from ferronn's tensor to PyTorch's (None: as it is)."""
        return self.axes if self.axes is not None else ((1, 0) if self.transpose else None)


class TorchPart(NamedTuple):
    """What a layer becomes in the equivalent ``torch.nn.Sequential``
    (``Layer.torch_layout``): module source expressions (one index each), its
    state_dict entries, and the sources of helper ``nn.Module`` classes used."""

    modules: list[str]
    entries: list[TorchEntry]
    helpers: tuple[str, ...] = ()


def from_spec(spec: dict[str, Any]) -> "Layer":
    """Rebuilds a layer description from its stored spec."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown layer type {kind!r} in model file")
    return _REGISTRY[kind](spec)


class Layer:
    """Base class of layers.

    A layer is a description (``spec()``) until its model is built; then the
    model binds it (``_bind``) and its parameters are readable and settable as
    numpy arrays: ``layer.weights``, ``layer.bias``, ``layer.gamma`` ... (see
    ``param_names``), or all at once with ``layer.get_params()``.
    """

    #: Names of the layer's tensors in the core, in order (trainable first, then buffers).
    param_names: tuple[str, ...] = ()
    #: Attribute names that differ from the tensor names (Keras' ``weights`` for ``weight``).
    _aliases = {"weights": "weight", "kernel": "weight"}
    #: The layer turns scores into (log-)probabilities, so a loss that takes logits
    #: must not follow it (``compile`` refuses that combination).
    normalises_scores = False
    #: Keras' flag, always True here (every layer of a ferronn model is trained; setting False is refused).
    trainable = True
    #: The layer acts on each value alone (activations, Dropout), so it keeps any
    #: input shape, images and sequences included.
    keeps_shape = False
    #: The nested layers (``named_sublayers``) each read this layer's input, side by
    #: side (Bidirectional's two directions), instead of running one after another.
    parallel_sublayers = False

    _owner: Any = None
    _prefix: Optional[str] = None
    #: The per-sample input shape the layer was last built for (see ``_built_for``).
    _input_shape: Optional[tuple[int, ...]] = None

    def spec(self) -> dict[str, Any]:
        """The layer's description as stored in model files: a JSON-ready dict with its
        ``"type"`` and arguments (the Rust core builds the layer from it)."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Layer":
        """The layer described by ``spec`` (what ``spec()`` wrote), checked as the
        constructor checks its arguments."""
        raise NotImplementedError

    def output_dim(self, input_dim: int) -> int:
        """Width of the output for inputs of width ``input_dim``."""
        return input_dim

    def passes_mask(self) -> bool:
        """Whether the step mask of padded sequences carries on past this layer (its
        output keeps the time axis step for step), as the core's ``MaskFlow::Keeps``:
        Dense on the last axis, activations, Dropout, recurrent layers with
        ``return_sequences``. Producers (``Masking``, ``Embedding(mask_zero=True)``)
        return their mask from ``numpy_forward`` instead."""
        return False

    def follows_steps(self) -> bool:
        """Whether the layer works step by step along the time axis of sequences, so
        that it takes any number of steps (the core's ``LayerKind::step_width``):
        recurrent layers, Bidirectional, Embedding, Masking (``takes_sequences``), Dense
        on the last axis, activations, Dropout, channels_last global 1-D pools. The ONNX
        export gives the time axis a dynamic size only through such layers."""
        return bool(getattr(self, "takes_sequences", False))

    def produces_mask(self) -> bool:
        """Whether this layer makes a new step mask (``Masking``, ``Embedding(mask_zero=True)``)."""
        return False

    def step_mask_of(self, h: np.ndarray) -> np.ndarray:
        """A producer's step mask ``[N, T]`` (True: a real step) of its input rows ``h``,
        as its ``numpy_forward`` returns it (the compiled metrics read it to leave the padded
        steps out). Only producers have one."""
        raise ConfigError(f"{type(self).__name__} makes no step mask")

    def consumes_mask(self) -> bool:
        """Whether this layer uses the step mask reaching it (the recurrent kinds,
        Bidirectional, GlobalAvgPool1D); ``passes_mask`` says whether it goes on."""
        return False

    def check_mask_use(self, where: str, made: str) -> None:
        """For a consumer reached by the mask ``made`` by a producer: ``ConfigError``
        when its configuration cannot use it."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample shape of the output (no batch axis) for inputs of per-sample
        shape ``input_shape``; ``ConfigError`` when the layer cannot take it."""
        shape = tuple(int(d) for d in input_shape)
        if len(shape) == 1:
            return (self.output_dim(shape[0]),)
        if self.keeps_shape:
            return shape
        raise ConfigError(f"{type(self).__name__} takes [batch, features] inputs, but its input has the per-sample "
                          f"shape {shape}; add fn.Flatten() before it")

    def _built_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Records ``input_shape`` as the shape this layer is built for (its spec may
        depend on it) and returns its output shape. Called by the model, in order."""
        out = self.output_shape(input_shape)
        self._input_shape = tuple(int(d) for d in input_shape)
        return out

    def sublayers(self) -> list["Layer"]:
        """Layers nested inside this one (``Residual``'s block); empty for plain layers."""
        return [layer for _, layer in self.named_sublayers("")]

    def named_sublayers(self, prefix: str) -> list[tuple[str, "Layer"]]:
        """``(tensor prefix, layer)`` of each layer nested in this one, whose own
        prefix is ``prefix`` (``Residual``: ``prefix.block.0``, ...)."""
        return []

    def regularized_tensors(self) -> list[tuple[str, Any]]:
        """``(tensor name, regularizer)`` of each penalised tensor of this layer: by
        default ``kernel_regularizer`` on ``weight`` and ``bias_regularizer`` on
        ``bias``; a kind with other tensor names (the recurrent ones) overrides it."""
        pairs = [("weight", getattr(self, "kernel_regularizer", None)), ("bias", getattr(self, "bias_regularizer", None))]
        return [(name, reg) for name, reg in pairs if reg is not None]

    # -- describing itself to the tools (see the module docstring) -------------

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        """This layer's forward pass in NumPy (for ``fn.diagnostics``)."""
        raise ConfigError(f"the diagnostics do not know the layer {self!r} ({where})")

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        """Adds this layer's ONNX nodes on input ``x`` to ``g``; returns the output's name."""
        raise ExportError(f"layer {where} ({self!r}, {type(self).__name__}) cannot be exported to ONNX; "
                          f"supported: {_kinds_with('onnx_nodes')}")

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        """This layer in the equivalent PyTorch model, on inputs of width ``d``."""
        raise ExportError(f"layer {f} ({self!r}, {type(self).__name__}) has no PyTorch equivalent in "
                          f"ferronn's torch layout; supported: {_kinds_with('torch_layout')}")

    # -- binding to a built model --------------------------------------------

    def _bind(self, owner: Any, prefix: Optional[str]) -> None:
        """Called by the model: tensors of this layer are ``{prefix}.{name}`` in ``owner``."""
        self._owner, self._prefix = owner, prefix
        for sub_prefix, layer in self.named_sublayers(prefix or ""):
            layer._bind(owner, None if prefix is None else sub_prefix)

    def _tensor_name(self, name: str) -> str:
        if self._owner is None or self._prefix is None or not self._owner.built:
            raise NotFittedError(f"{type(self).__name__} has no weights yet: build or fit its model first")
        return f"{self._prefix}.{name}"

    def get_params(self) -> dict[str, np.ndarray]:
        """Copies of this layer's tensors (nested layers' too, as ``block.0.weight``)."""
        if self._owner is None or self._prefix is None or not self._owner.built:
            raise NotFittedError(f"{type(self).__name__} has no weights yet: build or fit its model first")
        start = self._prefix + "."
        return {n[len(start):]: a for n, a in self._owner._tensors() if n.startswith(start)}

    def get_param(self, name: str) -> np.ndarray:
        """A copy of tensor ``name`` (e.g. "weight", "bias", "gamma", "running_mean")."""
        tensor = self._tensor_name(name)  # first: raises NotFittedError when unbound
        return self._owner._get_tensor(tensor)

    def set_param(self, name: str, value: Any) -> None:
        """Overwrites tensor ``name``; the shape must match (ShapeError otherwise)."""
        tensor = self._tensor_name(name)  # first: raises NotFittedError when unbound
        self._owner._set_tensor(tensor, value)

    # -- Keras' layer methods --------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        """The layer's settings as a JSON-ready dict (its ``spec()``); ``from_config``
        rebuilds an equivalent layer from it."""
        return self.spec()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Layer":
        """The layer ``get_config`` described (checked as the constructor checks)."""
        return from_spec(config)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the layer's tensors in Keras' order (Dense: kernel [in, out], bias;
        BatchNorm: gamma, beta, running mean, running variance; nested layers' after
        them); ``NotFittedError`` before its model is built."""
        return list(self.get_params().values())

    def set_weights(self, weights: Any) -> None:
        """Sets all the layer's tensors from a list shaped like ``get_weights()``, all or
        nothing: a wrong count raises ``ConfigError``, a wrong shape ``ShapeError``
        (naming the tensor), and the model is then unchanged."""
        names = list(self.get_params())
        try:
            given = list(weights)
        except TypeError:
            raise ConfigError(f"{type(self).__name__}.set_weights takes a list of arrays, got {weights!r}") from None
        if len(given) != len(names):
            raise ConfigError(f"{type(self).__name__}.set_weights expected {len(names)} arrays ({', '.join(names)}), "
                              f"got {len(given)}")
        from .._validate import weights as _weights
        prefix = self._prefix
        self._owner._assign_tensors((f"{prefix}.{n}", _weights(w, f"{prefix}.{n}")) for n, w in zip(names, given))

    def __getattr__(self, attr: str) -> Any:
        # Only reached for attributes not found normally: parameter names.
        if attr.startswith("_"):
            raise AttributeError(attr)
        name = self._aliases.get(attr, attr)
        if name in type(self).param_names:
            return self.get_param(name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {attr!r}")

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr == "trainable" and value is not True:
            from ..errors import NotSupportedError
            raise NotSupportedError("layer.trainable = False (freezing a layer) has no ferronn counterpart: every "
                                    "layer of a model is trained")
        name = self._aliases.get(attr, attr)
        if not attr.startswith("_") and name in type(self).param_names:
            self.set_param(name, value)
        else:
            object.__setattr__(self, attr, value)
