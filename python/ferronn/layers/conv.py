"""``Conv1D`` and ``Conv2D``: convolutions over sequences and images (Keras' arguments)."""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import numpy as np

from ..errors import ConfigError
from . import _grid
from . import elementwise as _elementwise
from .activations import Activation, activation_arg, activation_spec, activation_step, parse_activation
from .._validate import positive_int, boolean
from .. import _torch_modules as _tm, names as _names
from .base import Layer, NumpyStep, TorchEntry, TorchPart, register
from .weights import InitArg, RegArg, WeightOptions

__all__ = ["Conv1D", "Conv2D", "Convolution1D", "Convolution2D"]


class _Conv(WeightOptions, Layer):
    """What Conv1D and Conv2D share; ``rank`` is the number of spatial axes."""

    rank = 2
    param_names = ("weight", "bias")

    def __init__(self, filters: int, kernel_size: Any, strides: Any = 1, padding: Any = "valid",
                 data_format: Optional[str] = None, dilation_rate: Any = 1, groups: int = 1,
                 activation: Union[None, str, Activation] = None, use_bias: bool = True, *,
                 alpha: Optional[float] = None, kernel_initializer: InitArg = "glorot_uniform",
                 bias_initializer: InitArg = "zeros", kernel_regularizer: RegArg = None,
                 bias_regularizer: RegArg = None) -> None:
        kind = type(self).__name__
        self.filters = positive_int(filters, f"{kind} filters")
        self.kernel_size = _grid.ints(kernel_size, self.rank, f"{kind} kernel_size")
        self.strides = _grid.ints(strides, self.rank, f"{kind} strides")
        self.dilation_rate = _grid.ints(dilation_rate, self.rank, f"{kind} dilation_rate")
        self.padding = _grid.padding_arg(padding, self.rank, kind, causal=self.rank == 1)
        self.data_format = _grid.data_format(data_format)
        self.groups = positive_int(groups, f"{kind} groups")
        if self.filters % self.groups:
            raise ConfigError(f"{kind} groups={self.groups} must divide filters={self.filters}")
        self.activation, self.alpha = activation_arg(activation, alpha, f"{kind} activation")
        self.use_bias = boolean(use_bias, f"{kind} use_bias")
        self._set_weight_options(kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer)

    # -- shapes -------------------------------------------------------------

    def _geometry(self, input_shape: tuple[int, ...]) -> tuple[tuple[int, ...], int, list[int], tuple[int, ...]]:
        """(spatial sizes, channels, pads, output sizes), checked."""
        kind = type(self).__name__
        sizes, channels = _grid.split(tuple(input_shape), self.rank, self.data_format, kind)
        if channels % self.groups:
            raise ConfigError(f"{kind} groups={self.groups} must divide the input channels ({channels})")
        pads = _grid.resolve_pads(self.padding, sizes, self.kernel_size, self.strides, self.dilation_rate)
        out = _grid.out_size(sizes, self.kernel_size, self.strides, self.dilation_rate, pads, kind)
        return sizes, channels, pads, out

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, _, _, out = self._geometry(input_shape)
        return _grid.join(out, self.filters, self.data_format)

    def output_dim(self, input_dim: int) -> int:
        return math.prod(self.output_shape(self._shape("output_dim")))

    def _shape(self, what: str) -> tuple[int, ...]:
        if self._input_shape is None:
            raise ConfigError(f"{type(self).__name__} needs its input shape for {what}: give the model "
                              "input_shape=(...) or fn.Input(shape=...), or fit it first")
        return self._input_shape

    # -- spec -----------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        shape = self._shape("its spec")
        _, _, pads, _ = self._geometry(shape)
        return self._weight_spec({
            "type": "conv", "input": list(shape), "filters": self.filters, "kernel": list(self.kernel_size),
            "strides": list(self.strides), "pads": pads, "dilation": list(self.dilation_rate), "groups": self.groups,
            "data_format": self.data_format, "activation": activation_spec(self.activation, self.alpha),
            "use_bias": self.use_bias})

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "_Conv":
        kernel = spec.get("kernel")
        if not isinstance(kernel, list) or len(kernel) not in (1, 2):
            raise ConfigError(f"conv layer spec needs a kernel of 1 or 2 sizes, got {kernel!r}")
        kind = Conv1D if len(kernel) == 1 else Conv2D
        pads = spec.get("pads")
        if not isinstance(pads, list) or len(pads) != 2 * len(kernel):
            raise ConfigError(f"conv layer spec needs {2 * len(kernel)} pads, got {pads!r}")
        name, alpha = parse_activation(spec.get("activation", "identity"), f"{kind.__name__} activation")
        layer = kind(spec.get("filters"), kernel, strides=spec.get("strides"),  # type: ignore[arg-type]
                     padding=[pads[i:i + 2] for i in range(0, len(pads), 2)], data_format=spec.get("data_format"),
                     dilation_rate=spec.get("dilation"), groups=spec.get("groups", 1), activation=name,
                     use_bias=spec.get("use_bias", True), alpha=alpha, **cls._weight_kwargs(spec))
        shape = spec.get("input")
        if not isinstance(shape, list):
            raise ConfigError(f"conv layer spec needs its input shape, got {shape!r}")
        layer._built_for(tuple(shape))
        for name in ("valid", "same", "causal")[:3 if layer.rank == 1 else 2]:
            # Show the padding by name when one gives these pads for this input.
            if _grid.resolve_pads(name, layer._geometry(tuple(shape))[0], layer.kernel_size, layer.strides,
                                  layer.dilation_rate) == pads:
                layer.padding = name
                break
        return layer

    # -- tools ----------------------------------------------------------------

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        shape = self._shape("the diagnostics")
        _, channels, pads, out = self._geometry(shape)
        x = _grid.to_last(h, shape, self.rank, self.data_format)
        w = p["weight"]
        w = w[None] if self.rank == 1 else w  # [kh, kw, c/groups, filters]
        cg, fg = channels // self.groups, self.filters // self.groups
        z = np.zeros((x.shape[0], *((1,) if self.rank == 1 else ()), *out, self.filters), dtype=h.dtype)
        for (ky, kx), view in _grid.windows(x, pads, 0.0, self.kernel_size, self.strides, self.dilation_rate,
                                            out, self.rank):
            for g in range(self.groups):
                z[..., g * fg:(g + 1) * fg] += view[..., g * cg:(g + 1) * cg] @ w[ky, kx, :, g * fg:(g + 1) * fg]
        if self.use_bias:
            z = z + p["bias"]
        return activation_step(self.activation, self.alpha, _grid.from_last(z, self.rank, self.data_format), ref)

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        if g.dry:  # every configuration has an ONNX form
            return x
        shape = self._shape("ONNX export")
        _, _, pads, _ = self._geometry(shape)
        # Keras' [k..., in/groups, filters] to ONNX's [filters, in/groups, k...].
        axes = (2, 1, 0) if self.rank == 1 else (3, 2, 0, 1)
        ins = [g.to_channels_first(x, shape, self.rank, self.data_format, where), g.weight_t(f"{where}.weight", axes)]
        if self.use_bias:
            ins.append(g.weight(f"{where}.bias"))
        y = g.node("Conv", ins, where, kernel_shape=list(self.kernel_size), strides=list(self.strides),
                   dilations=list(self.dilation_rate), group=self.groups,
                   pads=pads[0::2] + pads[1::2])  # ONNX: all the begins, then all the ends
        y = _elementwise.onnx_nodes(g, self.activation, self.alpha, y, where)  # elementwise: any layout
        return g.from_channels_first(y, self.output_shape(shape), self.rank, self.data_format, where)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        shape = self._shape("the torch layout")
        _, channels, pads, _ = self._geometry(shape)
        n = f"{self.rank}d"
        args = (f"{channels}, {self.filters}, kernel_size={_tm.tuple_src(self.kernel_size)}, "
                f"stride={_tm.tuple_src(self.strides)}, dilation={_tm.tuple_src(self.dilation_rate)}, "
                f"groups={self.groups}, bias={self.use_bias}")
        helpers: tuple[str, ...] = ()
        if self.data_format == "channels_first" and _tm.symmetric(pads):
            module = f"nn.Conv{n}({args}, padding={_tm.tuple_src(pads[0::2])})"
        else:
            module = (f"LayoutConv{n}({args}, pad={_tm.tuple_src(_tm.torch_pad(pads))}, "
                      f"channels_last={self.data_format == 'channels_last'})")
            helpers = (_tm.LAYOUT,)
        modules = [module]
        if _names.activation(self.activation).name != "identity":
            modules.append(_elementwise.torch_module(self.activation, self.alpha))
        # Keras' [k..., in/groups, out] taken in this axis order is PyTorch's [out, in/groups, k...].
        entries = [TorchEntry(f"{t}.weight", f"{f}.weight", axes=(2, 1, 0) if self.rank == 1 else (3, 2, 0, 1))]
        if self.use_bias:
            entries.append(TorchEntry(f"{t}.bias", f"{f}.bias"))
        return TorchPart(modules, entries, helpers)

    def __repr__(self) -> str:
        args = [str(self.filters), repr(self.kernel_size if self.rank == 2 else self.kernel_size[0])]
        defaults = {"strides": (1,) * self.rank, "padding": "valid", "dilation_rate": (1,) * self.rank,
                    "groups": 1, "data_format": "channels_last", "activation": "identity", "use_bias": True}
        for key, default in defaults.items():
            if getattr(self, key) != default:
                args.append(f"{key}={getattr(self, key)!r}")
        return f"{type(self).__name__}({', '.join(args)})"


@register("conv")
class Conv2D(_Conv):
    """2-D convolution (Keras' Conv2D): ``filters`` learned kernels of size
    ``kernel_size`` slide over the image; each output value is a window's weighted
    sum plus a bias, then ``activation``. Sharing the kernel across positions lets
    the layer find a local feature wherever it appears.

    Samples are (height, width, channels) (``data_format="channels_last"``, Keras'
    default) or (channels, height, width) ("channels_first", PyTorch's). ``padding``:
    "valid" (none), "same" (as TensorFlow: ceil(size/stride) outputs, an odd pad's
    extra cell at the end), an int or one per axis (both sides), or ((top, bottom),
    (left, right)). ``groups`` splits the channels into groups convolved separately;
    ``groups`` = input channels is a depthwise convolution. ``weight`` has shape
    [kh, kw, in_channels/groups, filters] (Keras' layout; PyTorch's is its
    ``transpose(3, 2, 0, 1)``), ``bias`` [filters]. The kernel initializer defaults
    to Keras' glorot_uniform (fans: kh·kw·in/groups and kh·kw·filters).
    """

    rank = 2


class Conv1D(_Conv):
    """1-D convolution over sequences (Keras' Conv1D): as ``Conv2D`` with one spatial
    axis (its spec is the same "conv" kind). Samples are (length, channels), or (channels, length) with
    ``data_format="channels_first"``; ``padding`` also accepts "causal" (all padding
    before the sequence, so no output sees the future). ``weight`` is
    [kernel_size, in_channels/groups, filters]."""

    rank = 1


Convolution2D = Conv2D
Convolution1D = Conv1D
