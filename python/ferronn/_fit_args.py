"""The checks of ``Sequential.fit``'s arguments, all made before anything changes: the
counts, the data as the core's rows, the sample and class weights, and the validation
data (given, or held out of the training data by ``validation_split``). A rejected
``fit`` raises here and leaves the model as it was."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

import numpy as np

from . import _keras_methods as _km, _validate, names as _names, training as _training
from ._callback_core import user_callback_list
from .callbacks import Callback
from .errors import ConfigError

if TYPE_CHECKING:
    from .model import Sequential

__all__ = ["FitArgs", "Validation", "checked", "n_outputs", "with_class_weights"]

#: Validation rows, targets and sample weights (None: unweighted).
Validation = tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]


class FitArgs(NamedTuple):
    """``fit``'s arguments once checked: the training rows are those left after a
    ``validation_split``, and ``weights`` already includes the class weights."""

    epochs: int
    batch_size: int
    initial_epoch: Optional[int]
    callbacks: list[Callback]
    verbose: int
    x: np.ndarray
    y: np.ndarray
    weights: Optional[np.ndarray]
    validation: Optional[Validation]
    seed: Optional[int]


def n_outputs(model: "Sequential", input_dim: int) -> int:
    """The width of the model's output for inputs of width ``input_dim`` (the number of
    classes a ``class_weight`` may name)."""
    if model._sample_shape is not None and len(model._sample_shape) > 1:
        return math.prod(model._shape_chain(model._sample_shape)[-1])
    d = int(input_dim)
    for layer in model.layers:
        d = layer.output_dim(d)
    return d


def with_class_weights(model: Any, class_weight: Any, xa: np.ndarray, ya: np.ndarray,
                       weights: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """``weights`` (None: all ones) times each sample's ``class_weight`` (None: unchanged)."""
    if class_weight is None:
        return weights
    n_classes = 2 if _names.loss_task(model.loss) == "binary" else n_outputs(model, xa.shape[1])
    per_class = _training.class_weights(model, class_weight, ya, n_classes)
    return per_class if weights is None else weights * per_class


def checked(model: "Sequential", x: Any, y: Any, *, epochs: Any, batch_size: Any, validation_split: Any,
            validation_data: Any, class_weight: Any, sample_weight: Any, initial_epoch: Any, callbacks: Any,
            seed: Any, verbose: Any) -> FitArgs:
    """Every argument of ``fit`` (but ``shuffle``) checked, in the order ``fit`` always
    checked them, so the first bad one is the one named."""
    assert model.loss is not None  # fit checks that the model is compiled
    epochs = _validate.non_negative_int(epochs, "epochs")
    batch_size = _validate.positive_int(batch_size, "batch_size")
    if initial_epoch is not None:
        initial_epoch = _validate.non_negative_int(initial_epoch, "initial_epoch")
    split = _training.validation_fraction(validation_split)
    user_callbacks = user_callback_list(callbacks)
    verbose = _km.verbosity(verbose, 1, "fit")
    xa, ya = model._xy(x, y)
    weights = None if sample_weight is None else _training.sample_weights(sample_weight, len(xa))
    validation: Optional[Validation] = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ConfigError("validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val)")
        xv, yv = model._xy(*validation_data[:2])
        wv = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            wv = _training.sample_weights(validation_data[2], len(xv), "the validation sample_weight")
        validation = (xv, yv, wv)
    elif split > 0:
        train_idx, val_idx = _training.split_indices(_training.class_labels(model, ya), len(xa), split)
        if len(val_idx) == 0 or len(train_idx) == 0:
            raise ConfigError(f"validation_split={validation_split} leaves {len(train_idx)} samples for training "
                              f"and {len(val_idx)} for validation (of {len(xa)}); both need at least one")
        validation = (xa[val_idx], ya[val_idx], None if weights is None else weights[val_idx])
        xa, ya = xa[train_idx], ya[train_idx]
        weights = None if weights is None else weights[train_idx]
    weights = with_class_weights(model, class_weight, xa, ya, weights)
    if seed is not None:
        seed = _validate.seed(seed)
    return FitArgs(epochs, batch_size, initial_epoch, user_callbacks, verbose, xa, ya, weights, validation, seed)
