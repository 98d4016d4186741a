"""``keras.Sequential``: ferronn's ``Sequential`` with the Keras meanings that differ
from ferronn's own: ``predict`` returns the model's outputs (probabilities after a
final softmax), ``verbose="auto"`` prints as Keras, float class labels that are whole
numbers are accepted, and a Keras ``Input`` may open the layer list."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from .. import _keras_methods as _km
from ..layers import Layer
from ..model import Sequential as _Sequential
from ._common import check_default, unsupported

__all__ = ["Sequential"]


def _rmsprop() -> Any:
    from . import optimizers
    return optimizers.RMSprop()


def _is_width(item: Any) -> bool:
    """Whether a Keras ``Input`` placeholder declares a plain width (``shape=(n,)``)."""
    shape = getattr(item, "shape", None)
    return isinstance(shape, tuple) and len(shape) == 1 and shape[0] is not None


def _input_dim(item: Any) -> Optional[int]:
    """The input width of a Keras ``Input`` placeholder (``keras.Input(shape=(n,))``)."""
    shape = getattr(item, "shape", None)
    if isinstance(shape, tuple) and len(shape) == 1 and shape[0] is not None:
        return int(shape[0])
    unsupported(f"keras.Input(shape={shape!r})", "ferronn's Sequential takes flat inputs, Input(shape=(width,))")


def _keras_split(x: Any, y: Any, sample_weight: Any, fraction: Any) -> tuple[Any, Any, Any, tuple[Any, ...]]:
    """Keras' ``validation_split``: the first ``floor(n·(1 - fraction))`` samples train, the
    rest validate (with their sample weights, when given)."""
    from .. import _validate
    from ..errors import ConfigError
    fraction = _validate.finite_float(fraction, "validation_split", 0.0, 1.0, high_open=True,
                                      expected="a number in [0, 1)")
    n = len(x)
    cut = int(math.floor(n * (1.0 - fraction)))
    if cut == 0 or cut == n:
        raise ConfigError(f"validation_split={fraction} leaves {cut} samples for training and {n - cut} for "
                          f"validation (of {n}); both need at least one")
    w = None if sample_weight is None else np.asarray(sample_weight)
    validation = (x[cut:], y[cut:]) if w is None else (x[cut:], y[cut:], w[cut:])
    return x[:cut], y[:cut], None if w is None else w[:cut], validation


class Sequential(_Sequential):
    """Keras' ``Sequential(layers=None, trainable=True, name=None)`` over ferronn's model.

    The input shape comes from a first ``keras.Input(shape=...)`` or a first layer's
    ``input_shape=``. As in Keras, ``model.input_shape`` and ``model.output_shape``
    include the batch axis (``(None, 28, 28, 1)``); ``ferronn.Sequential``'s are per
    sample."""

    _auto_verbose = 1
    _whole_float_labels = True

    def __init__(self, layers: Optional[Sequence[Any]] = None, trainable: bool = True, name: Optional[str] = None,
                 **kwargs: Any) -> None:
        check_default("Sequential", "trainable", trainable, True)
        from . import _InputPlaceholder
        items = list(layers or [])
        input_dim = kwargs.pop("input_dim", None)
        if items and isinstance(items[0], _InputPlaceholder):
            if _is_width(items[0]):
                input_dim = _input_dim(items.pop(0))
            elif kwargs.get("input_shape") is None:
                kwargs["input_shape"] = items.pop(0).shape  # keras.Input(shape=(None, 28)): sequences, images
        first_shape = getattr(items[0], "_keras_input_shape", None) if items else None
        if first_shape is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = first_shape  # Conv2D(..., input_shape=(28, 28, 1)) first, as Keras
        if kwargs.get("seed") is None:
            from .utils import next_model_seed
            kwargs["seed"] = next_model_seed()  # after keras.utils.set_random_seed, reproducible
        super().__init__(items, input_dim=input_dim, **kwargs)
        self.name = name or "sequential"

    def add(self, layer: Any) -> None:
        """Appends a layer; a Keras ``Input`` first sets the input width."""
        from . import _InputPlaceholder
        if isinstance(layer, _InputPlaceholder):
            if self.layers:
                unsupported("keras.Input after the first layer")
            if _is_width(layer):
                self.input_dim = _input_dim(layer)
            else:
                from .._model_data import declared_shape
                from ..layers import Input
                self._sample_shape, self._variable_steps = declared_shape(Input(layer.shape).shape)
                self.input_dim = math.prod(self._sample_shape)
            return
        if not self.layers and self.input_dim is None:
            shape = getattr(layer, "_keras_input_shape", None)  # Conv2D(..., input_shape=(28, 28, 1)) first
            if shape is not None:
                from .._model_data import declared_shape
                self._sample_shape, self._variable_steps = declared_shape(shape)
                self.input_dim = math.prod(self._sample_shape)
            else:
                self.input_dim = getattr(layer, "input_dim", None)  # Dense(..., input_shape=(n,)) first
        super().add(layer)

    def pop(self) -> Layer:
        """Removes and returns the last layer (before the model is built)."""
        from ..errors import ConfigError
        if self._net is not None:
            raise ConfigError("cannot remove layers from a model that is already built")
        if not self.layers:
            raise ConfigError("pop() on a Sequential model without layers")
        return self.layers.pop()

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> Layer:
        """The layer of that ``name`` (the ``name=`` it was given) or at that ``index``."""
        from ..errors import ConfigError
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if getattr(layer, "name", None) == name:
                return layer
        raise ConfigError(f"no layer named {name!r}; the layers are {self.layers!r}")

    # -- Keras builds on first use, without compile ---------------------------

    def _ensure_built(self, width: Optional[int] = None) -> None:
        """Builds an uncompiled model as Keras does when it first sees data (or knows its
        input width): with a provisional compile (RMSprop, and the loss the output layer
        implies) that a later ``compile`` replaces, keeping the weights."""
        if self._net is not None:
            return
        shape: Any = self._sample_shape if self._sample_shape is not None and len(self._sample_shape) > 1 else None
        width = shape if shape is not None else (self.input_dim if width is None else width)
        if width is None:
            return  # _require_built says what is missing
        if self.loss is None:
            final = _km._final_activation(self.layers[-1]) if self.layers else None
            loss = {"softmax": "sparse_categorical_crossentropy", "sigmoid": "binary_crossentropy"}.get(final or "", "mse")
            _Sequential.compile(self, optimizer=_rmsprop(), loss=loss)
            self._provisional = True
        self.build(width if shape is not None else int(width))

    @property
    def input_shape(self) -> Optional[tuple[Any, ...]]:  # type: ignore[override]
        """The input shape as Keras gives it, with the batch axis first (``(None, 28, 28, 1)``), once known."""
        shape = self._public_shape(self._sample_shape)
        return None if shape is None else (None, *shape)

    @property
    def output_shape(self) -> Optional[tuple[Any, ...]]:  # type: ignore[override]
        """The output shape as Keras gives it, with the batch axis first (``(None, 10)``), once the input shape is known."""
        shape = self._public_shape(self._sample_shape, output=True)
        return None if shape is None else (None, *shape)

    @property
    def built(self) -> bool:
        """Whether the weights exist; as in Keras, a model whose input width is known
        (``Input`` first, or ``input_shape`` on the first layer) always has them."""
        self._ensure_built()
        return self._net is not None

    def __call__(self, x: Any, training: Optional[bool] = None) -> np.ndarray:
        """The outputs for ``x`` (building the model on first use, as Keras)."""
        self._ensure_built(np.shape(x)[-1] if np.ndim(x) == 2 else None)
        return super().__call__(x, training)

    def summary(self, *args: Any, **kwargs: Any) -> None:
        """Keras' summary (the model is built first when its input width is known)."""
        self._ensure_built()
        super().summary(*args, **kwargs)

    def get_weights(self) -> list[np.ndarray]:
        """Every weight array (copies), building the model first when its input width is known."""
        self._ensure_built()
        return super().get_weights()

    @property
    def weights(self) -> list[np.ndarray]:
        """Every weight array (copies), as ``get_weights()``."""
        return self.get_weights()

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Any = "auto", steps: Any = None,
                callbacks: Any = None) -> np.ndarray:
        """The model's outputs for ``x``, as Keras' ``predict`` (probabilities after a final
        softmax or sigmoid; ferronn's own ``Sequential.predict`` returns class labels)."""
        check_default("predict", "steps", steps, None)
        check_default("predict", "callbacks", callbacks, None)
        shown = _km.predict_args(self, batch_size, verbose)
        out = self.predict_raw(x)
        _km.report_predict(shown, batch_size, len(out))
        return out

    def compile(self, optimizer: Any = "rmsprop", loss: Any = None, loss_weights: Any = None,  # type: ignore[override]
                metrics: Any = None, weighted_metrics: Any = None, run_eagerly: bool = False,
                steps_per_execution: int = 1, jit_compile: Any = "auto", auto_scale_loss: bool = True) -> None:
        """Keras' ``compile``: a name such as "rmsprop" gets Keras' defaults for that optimizer
        (``keras.optimizers``); ``loss`` a name or a ``keras.losses`` object."""
        from . import optimizers
        if loss is None:
            unsupported("compile() without a loss", "losses added with add_loss() do not exist in ferronn")
        for arg, value, default in (("loss_weights", loss_weights, None), ("weighted_metrics", weighted_metrics, None),
                                    ("steps_per_execution", steps_per_execution, 1)):
            check_default("compile", arg, value, default)
        # Keras' compile keeps the weights a built model has; ferronn's makes a new network.
        kept = self._tensors() if self._net is not None else None
        super().compile(optimizer=optimizers.get(optimizer), loss=loss, metrics=metrics or ())
        self._provisional = False
        if kept is not None:
            if self._net is None:
                self.build(self.input_dim)
            self._assign_tensors(kept)

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = None,  # type: ignore[override]
            epochs: int = 1, verbose: Any = "auto", callbacks: Any = None, validation_split: float = 0.0,
            validation_data: Any = None, shuffle: bool = True, class_weight: Any = None, sample_weight: Any = None,
            initial_epoch: int = 0, steps_per_epoch: Any = None, validation_steps: Any = None,
            validation_batch_size: Any = None, validation_freq: int = 1, **kwargs: Any) -> Any:
        """Keras' ``fit``, with Keras' argument order (``batch_size`` before ``epochs``) and
        defaults (batch size 32; ``epochs`` counted from ``initial_epoch=0`` on every call).
        ``validation_split`` holds out the last fraction of the arrays, as Keras (ferronn's
        own ``fit`` stratifies it by class).
        ``seed=`` (ferronn's) may be added."""
        if getattr(self, "_provisional", False):
            from ..errors import NotFittedError
            raise NotFittedError("call compile() before fit()")
        for arg, value, default in (("steps_per_epoch", steps_per_epoch, None),
                                    ("validation_steps", validation_steps, None),
                                    ("validation_batch_size", validation_batch_size, None),
                                    ("validation_freq", validation_freq, 1)):
            check_default("fit", arg, value, default)
        if validation_data is None and validation_split:
            # Keras' rule, not ferronn's stratified one: the last fraction of the arrays, before
            # shuffling, is held out (so the same script holds out the same samples).
            x, y, sample_weight, validation_data = _keras_split(x, y, sample_weight, validation_split)
            validation_split = 0.0
        return super().fit(x, y, epochs=epochs, batch_size=32 if batch_size is None else batch_size,
                           validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
                           class_weight=class_weight, sample_weight=sample_weight, initial_epoch=initial_epoch,
                           callbacks=callbacks, verbose=verbose, **kwargs)


# Documented and pickled as ``ferronn.keras.Sequential``, the name users write.
Sequential.__module__ = "ferronn.keras"
