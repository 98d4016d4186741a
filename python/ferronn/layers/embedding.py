"""``Embedding``: integer token ids to learned vectors (Keras' Embedding)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _torch_modules as _tm
from ..errors import ConfigError, ExportError, LabelError
from .._validate import boolean, positive_int
from .base import Layer, NumpyStep, TorchEntry, TorchPart, register

__all__ = ["Embedding"]


@register("embedding")
class Embedding(Layer):
    """Maps each token id of ``[N, T]`` integer inputs to its row of a learned
    table ``weight`` [input_dim, output_dim] (PyTorch's ``nn.Embedding.weight``,
    Keras' ``embeddings``): the output is ``[N, T, output_dim]``.

    Ids must be whole numbers in ``[0, input_dim)``: any other value raises
    ``LabelError`` before the model changes. The table starts uniform on
    [-0.05, 0.05] (Keras' ``embeddings_initializer="uniform"``). Ids travel to the
    core as float32, so ``input_dim`` is at most 2**24.

    ``mask_zero=True`` makes id 0 padding (Keras' semantics): the layer produces the
    step mask ``id != 0``, and the recurrent layers after it skip the padded steps
    (their state carries over), so a padded sequence gives what it gives unpadded.
    The mask flows through layers that keep the time axis (Dense, activations,
    Dropout, recurrent layers with ``return_sequences``); a per-step loss leaves the
    padded steps out. Id 0 then never stands for a real token.

    >>> import numpy as np, ferronn as fn
    >>> m = fn.Sequential([fn.Embedding(10, 4), fn.LSTM(3)], input_shape=(6,))
    >>> m.compile(loss="mse")
    >>> m.predict(np.array([[1, 2, 3, 0, 0, 9]])).shape
    (1, 3)
    """

    param_names = ("weight",)
    _aliases = {"embeddings": "weight"}
    takes_sequences = True

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 mask_zero: bool = False) -> None:
        self.input_dim = positive_int(input_dim, "Embedding input_dim")
        self.output_dim_ = positive_int(output_dim, "Embedding output_dim")
        if self.input_dim > 1 << 24:
            raise ConfigError(f"Embedding input_dim may be at most 2**24 (ids travel as float32), got {self.input_dim}")
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = boolean(mask_zero, "Embedding mask_zero")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 1:
            raise ConfigError(f"Embedding takes token ids [batch, timesteps], but its input has the per-sample "
                              f"shape {shape}")
        return (shape[0], self.output_dim_)

    def output_dim(self, input_dim: int) -> int:
        return int(input_dim) * self.output_dim_

    def spec(self) -> dict[str, Any]:
        if self._input_shape is None:
            raise ConfigError("Embedding needs its input length: give the model input_shape=(timesteps,) "
                              "or fn.Input(shape=(timesteps,)), or fit it first")
        out = {"type": "embedding", "input_dim": self.input_dim, "output_dim": self.output_dim_,
               "length": self._input_shape[0]}
        if self.embeddings_initializer is not None:
            out["embeddings_initializer"] = self.embeddings_initializer
        if self.mask_zero:
            out["mask_zero"] = True
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Embedding":
        layer = cls(spec.get("input_dim"), spec.get("output_dim"),  # type: ignore[arg-type]
                    embeddings_initializer=spec.get("embeddings_initializer"),
                    mask_zero=spec.get("mask_zero", False))
        length = spec.get("length")
        layer._built_for((positive_int(length, "Embedding length"),))
        return layer

    def produces_mask(self) -> bool:
        return self.mask_zero

    def step_mask_of(self, h: np.ndarray) -> np.ndarray:
        return np.asarray(h) != 0  # id 0 is padding

    def numpy_forward(self, h: np.ndarray, p: Any, ref: Any, where: str) -> NumpyStep:
        ids = np.asarray(h)
        if not (np.all(ids == np.round(ids)) and ids.min(initial=0) >= 0 and ids.max(initial=0) < self.input_dim):
            raise LabelError(f"Embedding token ids must be whole numbers in [0, {self.input_dim}) ({where})")
        out = p["weight"][ids.astype(np.int64)].reshape(ids.shape[0], -1)
        return NumpyStep(out, mask=self.step_mask_of(ids) if self.mask_zero else None)

    def _no_mask(self, what: str, where: str) -> None:
        if getattr(self, "mask_zero", False):
            raise ExportError(f"layer {where} (Embedding(mask_zero=True)) has no {what} form: masking is not "
                              "exported")

    def onnx_nodes(self, g: Any, x: str, where: str) -> str:
        self._no_mask("ONNX", where)
        if g.dry:
            return x
        # The float ids [N, T] as int64 rows of the table: [N, T, output_dim].
        ids = g.node("Cast", [x], where, to=int(g.onnx.TensorProto.INT64))
        z = g.node("Gather", [g.weight(f"{where}.weight"), ids], where, axis=0)
        return g.flat_nd(z, (int(self._input_shape[0]), self.output_dim_), where)  # type: ignore[index]

    def torch_layout(self, layout: Any, d: int, f: str, t: str) -> TorchPart:
        self._no_mask("PyTorch-layout", f)
        return TorchPart([f"TokenEmbedding({self.input_dim}, {self.output_dim_})"],
                         [TorchEntry(f"{t}.weight", f"{f}.weight")], (_tm.TOKEN_EMBEDDING,))

    def __repr__(self) -> str:
        extra = ", mask_zero=True" if self.mask_zero else ""
        return f"Embedding({self.input_dim}, {self.output_dim_}{extra})"
