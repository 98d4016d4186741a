"""``Bidirectional``: a recurrent layer run over the sequence in both directions
(Keras' ``Bidirectional`` wrapper, PyTorch's ``bidirectional=True``).

The forward direction is a copy of the given layer, the backward direction the
same layer with ``go_backwards`` flipped (or the ``backward_layer`` given). With
``return_sequences`` the backward direction's outputs, which come in its reading
order, are put back in time order before merging, so step ``t`` of the output
holds what each direction computed after reading input step ``t``. The two are
merged by ``merge_mode``: ``"concat"`` (Keras' default, ``[N, 2·units]`` or
``[N, T, 2·units]``), ``"sum"``, ``"mul"`` or ``"ave"`` (``[N, units]``).

Sequences of any length (``input_shape=(None, F)``) run as for the wrapped layer.
Masks (``Embedding(mask_zero=True)``, ``Masking``) reach both directions, which
skip the padded steps and carry their state over them. As Keras 3 (which sets
``zero_output_for_mask = return_sequences`` on the wrapped layers), with
``return_sequences`` a padded step's output is zero in both directions, so zero
after any merge (a plain recurrent layer repeats its state there instead), and the
mask passes on to the next layer; without it the output is the last states and the
mask ends.

Tensors: ``forward.weight_ih``, ``forward.weight_hh``, ``forward.bias_ih``,
``forward.bias_hh`` and the same under ``backward.``; in PyTorch's bidirectional
``nn.LSTM``/``nn.GRU``/``nn.RNN`` they are ``weight_ih_l0`` ... and
``weight_ih_l0_reverse`` ..., with the same layouts.

Interchange (when both directions are the same cell with the same units and, for
SimpleRNN, activation: what PyTorch's and ONNX's bidirectional operators run):
``save(layout="torch")`` / ``torch_source`` give ``SequenceLSTM(..., bidirectional=True)``
(the merge other than concat done by that module on the two halves of PyTorch's
output), and ONNX export gives one ``RNN``/``LSTM``/``GRU`` operator with
``direction="bidirectional"`` followed by the merge. Directions that differ raise
``ExportError``.
"""

from __future__ import annotations

import copy
from typing import Any, Optional

import numpy as np

from .. import _torch_modules as _tm
from ..errors import ConfigError, ExportError
from . import _recurrent_export as _export
from .base import Layer, NumpyStep, TorchEntry, TorchPart, register
from .recurrent import _TENSORS, _Recurrent

__all__ = ["Bidirectional"]

MERGE_MODES = ("concat", "sum", "mul", "ave")


def _fresh_copy(layer: _Recurrent, go_backwards: bool) -> _Recurrent:
    """An unbound copy of ``layer`` reading the sequence as ``go_backwards`` says."""
    out = copy.copy(layer)
    for attr in ("_owner", "_prefix", "_input_shape"):
        out.__dict__.pop(attr, None)  # back to the class defaults: unbound, not built
    out.go_backwards = go_backwards
    return out


def _check_recurrent(layer: Any, what: str) -> _Recurrent:
    if not isinstance(layer, _Recurrent):
        raise ConfigError(f"Bidirectional's {what} must be a recurrent layer (SimpleRNN, LSTM or GRU), got {layer!r}")
    return layer


@register("bidirectional")
class Bidirectional(Layer):
    """Runs a recurrent layer over the sequence forwards and backwards and merges
    the two outputs (Keras' ``Bidirectional(layer, merge_mode="concat",
    backward_layer=None)``).

    ``layer`` is a ``SimpleRNN``, ``LSTM`` or ``GRU``; the wrapper keeps a copy as
    ``forward_layer`` and builds ``backward_layer`` from it with ``go_backwards``
    flipped, unless one is given (it must then read the other way and agree on
    ``return_sequences``). ``merge_mode`` is ``"concat"``, ``"sum"``, ``"mul"`` or
    ``"ave"``; Keras' ``None`` (two separate outputs) has no place in a
    single-output ``Sequential`` and raises ``ConfigError``. Each direction has its
    own tensors, so the layer has twice the wrapped layer's parameters, as
    PyTorch's bidirectional modules.

    >>> import ferronn as fn
    >>> m = fn.Sequential([fn.Bidirectional(fn.LSTM(4, return_sequences=True)), fn.Dense(1)],
    ...                   input_shape=(6, 3))
    >>> m.compile(loss="mse")
    >>> m.layers[0].output_shape((6, 3)), sorted(m.layers[0].get_params())[:2]
    ((6, 8), ['backward.bias_hh', 'backward.bias_ih'])
    >>> m.layers[0].backward_layer.go_backwards, m.layers[0].forward_layer.weight_ih.shape
    (True, (16, 3))

    Padded sequences: both directions skip the padded steps, which output zeros with
    ``return_sequences`` (Keras 3), and any length runs:

    >>> tagger = fn.Sequential([fn.Embedding(9, 4, mask_zero=True),
    ...                         fn.Bidirectional(fn.GRU(3, return_sequences=True))], input_shape=(None,))
    >>> tagger.compile(loss="mse")
    >>> padded = tagger.predict(np.array([[5, 2, 7, 0, 0]]))
    >>> bool(np.allclose(padded[0, :3], tagger.predict(np.array([[5, 2, 7]]))[0], atol=1e-6))
    True
    >>> padded[0, 3:].tolist() == [[0.0] * 6] * 2
    True
    """

    #: Both directions read this layer's input (they run side by side, not in sequence).
    parallel_sublayers = True
    #: It may come first in a model of sequences of any length.
    takes_sequences = True

    def __init__(self, layer: Any, merge_mode: Optional[str] = "concat", backward_layer: Any = None) -> None:
        _check_recurrent(layer, "layer")
        if merge_mode is None:
            raise ConfigError("Bidirectional(merge_mode=None) returns the two directions as separate outputs, which a "
                              "Sequential model cannot carry; use merge_mode='concat' (or 'sum', 'mul', 'ave')")
        if merge_mode not in MERGE_MODES:
            raise ConfigError(f"Bidirectional merge_mode must be one of {', '.join(map(repr, MERGE_MODES))}, "
                              f"got {merge_mode!r}")
        forward = _fresh_copy(layer, layer.go_backwards)
        if backward_layer is None:
            backward = _fresh_copy(layer, not layer.go_backwards)
        else:
            backward = _check_recurrent(backward_layer, "backward_layer")
            if backward.go_backwards == forward.go_backwards:
                raise ConfigError("Bidirectional's layer and backward_layer must read the sequence in opposite "
                                  f"directions, but both have go_backwards={forward.go_backwards}")
            if backward.return_sequences != forward.return_sequences:
                raise ConfigError("Bidirectional's layer and backward_layer must agree on return_sequences, got "
                                  f"{forward.return_sequences} and {backward.return_sequences}")
        if merge_mode != "concat" and forward.units != backward.units:
            raise ConfigError(f"Bidirectional merge_mode={merge_mode!r} combines the directions unit by unit, so they "
                              f"need the same units, got {forward.units} and {backward.units}")
        self.forward_layer, self.backward_layer = forward, backward
        self.merge_mode = merge_mode
        self.return_sequences = forward.return_sequences

    def passes_mask(self) -> bool:
        return self.return_sequences  # Keras' compute_mask: the mask stays with the time axis

    def consumes_mask(self) -> bool:
        return True  # padded steps carry the state over

    def named_sublayers(self, prefix: str) -> list[tuple[str, Layer]]:
        return [(f"{prefix}.forward", self.forward_layer), (f"{prefix}.backward", self.backward_layer)]

    # -- shapes -------------------------------------------------------------

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = self.forward_layer.output_shape(input_shape)
        self.backward_layer.output_shape(input_shape)  # checks the shape for it too
        if self.merge_mode == "concat":
            return out[:-1] + (out[-1] + self.backward_layer.units,)
        return out

    def output_dim(self, input_dim: int) -> int:
        if self._input_shape is None:
            raise ConfigError("Bidirectional needs its input shape: give the model input_shape=(timesteps, features) "
                              "or fn.Input(shape=...), or fit it first")
        return int(np.prod(self.output_shape(self._input_shape)))

    def _built_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out = self.output_shape(input_shape)  # checks first, then records
        self._input_shape = tuple(int(d) for d in input_shape)
        self.forward_layer._built_for(self._input_shape)
        self.backward_layer._built_for(self._input_shape)
        return out

    # -- spec -----------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        if self._input_shape is None:
            self.output_dim(0)  # raises the ConfigError naming what is missing
        # The directions' specs without their "type": the core reads them as recurrent specs.
        inner = [{k: v for k, v in layer.spec().items() if k != "type"}
                 for layer in (self.forward_layer, self.backward_layer)]
        return {"type": "bidirectional", "forward": inner[0], "backward": inner[1], "merge_mode": self.merge_mode}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Bidirectional":
        parts = []
        for key in ("forward", "backward"):
            sub = spec.get(key)
            if not isinstance(sub, dict):
                raise ConfigError(f"bidirectional layer spec needs its {key} recurrent layer's spec, got {sub!r}")
            parts.append(_Recurrent.from_spec({**sub, "type": "recurrent"}))
        layer = cls(parts[0], spec.get("merge_mode", "concat"), backward_layer=parts[1])
        layer._built_for(parts[0]._input_shape or ())
        return layer

    # -- tools ----------------------------------------------------------------

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        n = h.shape[0]
        keep = ref.mask  # the step mask reaching this layer: both directions read it from ref
        fw, bw = ref.run_parallel(self.named_sublayers(where), h)
        # [N, steps, units], steps = T with return_sequences, else 1 (read from the pass, not the build).
        fw = fw.reshape(n, -1, self.forward_layer.units)
        bw = bw.reshape(n, -1, self.backward_layer.units)[:, ::-1]  # back in time order
        if keep is not None and self.return_sequences:  # Keras' zero_output_for_mask in both directions
            fw, bw = fw * keep[:, :, None], bw * keep[:, :, None]
            self._zero_padded_records(ref, where, keep)
        merged = {"concat": lambda: np.concatenate([fw, bw], axis=-1), "sum": lambda: fw + bw,
                  "mul": lambda: fw * bw, "ave": lambda: 0.5 * (fw + bw)}[self.merge_mode]()
        return NumpyStep(merged.reshape(n, -1))

    def _zero_padded_records(self, ref: Any, where: str, keep: np.ndarray) -> None:
        """The two directions' records (``layer_outputs(nested=True)``) with zeros at the
        padded steps, in each direction's reading order, as Keras' inner layers give them
        (a padded step carries the state over, but outputs 0 with ``zero_output_for_mask``)."""
        names = {f"{where}.forward": self.forward_layer, f"{where}.backward": self.backward_layer}
        for record in ref.records:
            layer = names.get(record.name)
            if layer is not None:
                order = keep[:, ::-1] if layer.go_backwards else keep
                n = record.output.shape[0]
                record.output = (record.output.reshape(n, order.shape[1], -1) * order[:, :, None]).reshape(n, -1)

    # -- interchange ----------------------------------------------------------

    def _twin_directions(self, where: str, target: str) -> _Recurrent:
        """The forward layer, once checked that the backward one is the same cell of
        the same size (what one bidirectional PyTorch module or ONNX operator runs)."""
        fw, bw = self.forward_layer, self.backward_layer
        same = (type(fw) is type(bw) and fw.units == bw.units
                and (getattr(fw, "activation", None), getattr(fw, "alpha", None))
                == (getattr(bw, "activation", None), getattr(bw, "alpha", None)))
        if not same:
            raise ExportError(f"layer {where} ({self!r}) has no {target} form: a bidirectional {target} recurrent "
                              f"layer runs the same cell, units and activation in both directions, but here they "
                              f"are {fw!r} and {bw!r}")
        return fw

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        fw = self._twin_directions(where, "ONNX")
        acts, attrs = fw._onnx_activation(where)  # may raise: before the dry walk returns
        if g.dry:
            return x
        t, f = fw._sequence(self._input_shape or ())
        return _export.onnx_bidirectional(g, x, (t, f), fw.cell, [f"{where}.forward", f"{where}.backward"],
                                          fw.units, self.return_sequences, self.merge_mode, fw.go_backwards, where,
                                          acts, **attrs)

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        fw = self._twin_directions(f, "PyTorch")
        name, extra = fw._torch_module(f)
        _, features = fw._sequence(self._input_shape or ())
        merge = "" if self.merge_mode == "concat" else f", merge_mode={self.merge_mode!r}"
        # A wrapped go_backwards layer: flipping the input makes PyTorch's forward
        # direction that layer and its reverse direction the other, outputs in ferronn's order.
        module = (f"Sequence{name}({features}, {fw.units}{extra}, bidirectional=True, "
                  f"return_sequences={self.return_sequences}, go_backwards={fw.go_backwards}{merge})")
        entries = [TorchEntry(f"{t}.{n}_l0{suffix}", f"{f}.{direction}.{n}")
                   for direction, suffix in (("forward", ""), ("backward", "_reverse")) for n in _TENSORS]
        return TorchPart([module], entries, (_tm.SEQUENCE,))

    def __repr__(self) -> str:
        extra = "" if self.merge_mode == "concat" else f", merge_mode={self.merge_mode!r}"
        flipped = _fresh_copy(self.forward_layer, not self.forward_layer.go_backwards)
        if repr(self.backward_layer) != repr(flipped):
            extra += f", backward_layer={self.backward_layer!r}"
        return f"Bidirectional({self.forward_layer!r}{extra})"
