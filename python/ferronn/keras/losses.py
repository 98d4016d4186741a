"""``keras.losses``: the losses ferronn's core computes, with Keras' names and ``from_logits``.

A loss object only names the loss for ``compile`` (the loss runs inside the Rust
training step). ``from_logits=False`` (Keras' default) expects the model to end in
a softmax (sigmoid for the binary loss): ferronn then trains it in the fused,
numerically stable logits form. ``from_logits=True`` expects logits. The string
names ("sparse_categorical_crossentropy", ...) work as well; with a string the
last layer decides (a final softmax / sigmoid is fused, otherwise the outputs are
taken as logits).
"""

from __future__ import annotations

from typing import Any, Optional

from ._common import check_default, missing_attr

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "get"]


class Loss:
    """Base of the loss objects: ``loss_name`` (the core's name) and ``from_logits``.
    Subclassing it for a custom loss is not supported (the loss runs in Rust)."""

    loss_name = ""
    from_logits: Optional[bool] = None

    def __init__(self, reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        if type(self) is Loss or not type(self).loss_name:
            from ._common import unsupported
            unsupported("a custom keras.losses.Loss subclass", "ferronn's losses run inside the Rust training step; "
                        "use one of keras.losses' classes")
        check_default(type(self).__name__, "reduction", reduction, "sum_over_batch_size")
        self.name = name or self._keras_name

    _keras_name = ""

    def get_config(self) -> dict[str, Any]:
        """Keras' ``get_config``: the name and ``from_logits``."""
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against integer class labels."""

    loss_name, _keras_name = "cross_entropy", "sparse_categorical_crossentropy"

    def __init__(self, from_logits: bool = False, ignore_class: Optional[int] = None,
                 reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        check_default("SparseCategoricalCrossentropy", "ignore_class", ignore_class, None)
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot targets (``to_categorical``)."""

    loss_name, _keras_name = "cross_entropy", "categorical_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        check_default("CategoricalCrossentropy", "label_smoothing", label_smoothing, 0.0)
        check_default("CategoricalCrossentropy", "axis", axis, -1)
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy against 0/1 targets."""

    loss_name, _keras_name = "binary_cross_entropy", "binary_crossentropy"

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        check_default("BinaryCrossentropy", "label_smoothing", label_smoothing, 0.0)
        check_default("BinaryCrossentropy", "axis", axis, -1)
        super().__init__(reduction, name)
        self.from_logits = bool(from_logits)


class MeanSquaredError(Loss):
    """Mean squared error (regression)."""

    loss_name, _keras_name = "mse", "mean_squared_error"

    def __init__(self, reduction: str = "sum_over_batch_size", name: Optional[str] = None) -> None:
        super().__init__(reduction, name)


_BY_NAME = {cls._keras_name: cls for cls in (SparseCategoricalCrossentropy, CategoricalCrossentropy,
                                               BinaryCrossentropy, MeanSquaredError)}


def get(identifier: Any) -> Any:
    """A loss object from its Keras name, or the object itself."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    from ..errors import UnknownNameError
    raise UnknownNameError(f"unknown loss {identifier!r}; expected one of: {', '.join(_BY_NAME)}")


def __getattr__(name: str) -> Any:
    missing_attr("losses", name, {n: "ferronn's core computes cross-entropy (sparse, categorical, binary), MSE "
                                     "and NLL only" for n in ("MeanAbsoluteError", "Huber", "KLDivergence",
                                                             "CosineSimilarity", "Hinge", "LogCosh", "Poisson",
                                                             "MeanAbsolutePercentageError",
                                                             "MeanSquaredLogarithmicError", "CategoricalHinge",
                                                             "SquaredHinge", "CTC", "Dice", "Tversky")})
