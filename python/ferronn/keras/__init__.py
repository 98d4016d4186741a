"""Keras 3's namespaces over ferronn's own objects, so that Keras code runs with only
its imports changed::

    from ferronn import keras
    from ferronn.keras import layers

    model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

``Sequential``, ``Input``, ``layers``, ``optimizers``, ``losses``, ``metrics``,
``callbacks``, ``models`` (``load_model``), ``utils`` (``to_categorical``),
``datasets`` (``fashion_mnist``, ``cifar10`` from local files) and ``regularizers``
take Keras' names, argument names and defaults. Everything runs on ferronn's Rust
core: a Keras feature ferronn has no counterpart for raises ``NotSupportedError``
(``ferronn.NotSupportedError``) naming it, never a silent difference.

>>> from ferronn import keras
>>> keras.utils.to_categorical([1, 0], num_classes=2).tolist()
[[0.0, 1.0], [1.0, 0.0]]
"""

from __future__ import annotations

from typing import Any, Optional

import ferronn as _ferronn

from .. import regularizers
from . import callbacks, datasets, layers, losses, metrics, models, optimizers, utils
from ._common import missing_attr
from ._sequential import Sequential

__all__ = ["Sequential", "Input", "layers", "optimizers", "losses", "metrics", "callbacks", "models", "utils",
           "datasets", "regularizers"]


class _InputPlaceholder:
    """What ``keras.Input(shape=...)`` gives until ferronn has its own ``Input``: the
    input shape, read by ``keras.Sequential`` (first item of the list, or ``add``)."""

    def __init__(self, shape: Any = None, batch_size: Any = None, dtype: Any = None, sparse: Any = None,
                 batch_shape: Any = None, name: Optional[str] = None, tensor: Any = None) -> None:
        from ._common import check_default
        for arg, value in (("batch_size", batch_size), ("sparse", sparse), ("batch_shape", batch_shape),
                           ("tensor", tensor)):
            check_default("Input", arg, value, None)
        if dtype not in (None, "float32"):
            check_default("Input", "dtype", dtype, "float32")
        self.shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        self.name = name

    def __repr__(self) -> str:
        return f"Input(shape={self.shape!r})"


def Input(shape: Any = None, batch_size: Any = None, dtype: Any = None, sparse: Any = None,  # noqa: N802
          batch_shape: Any = None, name: Optional[str] = None, tensor: Any = None) -> Any:
    """Keras' ``Input(shape=...)``: ferronn's ``fn.Input`` where it exists, otherwise a
    placeholder that ``keras.Sequential`` reads the input width from."""
    native = getattr(_ferronn, "Input", None)
    if native is not None:
        return native(shape=shape, name=name) if name is not None else native(shape=shape)
    return _InputPlaceholder(shape, batch_size, dtype, sparse, batch_shape, name, tensor)


def __getattr__(name: str) -> Any:
    missing_attr("", name, {"Model": "the Functional API and subclassed models have no ferronn counterpart; "
                                     "use keras.Sequential", "ops": "ferronn has no tensor ops",
                            "backend": "ferronn's one backend is its Rust core", "applications": "",
                            "mixed_precision": "ferronn computes in float32", "distribution": "",
                            "preprocessing": "", "saving": "use model.save and keras.models.load_model",
                            "random": "", "tree": "", "export": "use model.export_onnx",
                            "initializers": "give initializers by name (kernel_initializer='he_normal')",
                            "activations": "give activations by name (activation='relu')",
                            "constraints": "", "quantizers": "", "visualization": "", "dtype_policies": ""})
