"""Keras' conventions on ``Sequential``: the methods Keras models have, and a final
softmax / sigmoid trained in the fused logits form.

``Sequential`` inherits ``KerasMethods``; ``model.py`` calls the helpers below at a
few fixed points (compile, building the core spec, turning core outputs into the
model's outputs, reading targets, saving and loading).

The fused output. Keras models usually end with ``Dense(10, activation="softmax")``
(or ``"sigmoid"``, or a ``Softmax`` layer) followed by a cross-entropy loss with
``from_logits=False``. Computing ``log(softmax(z))`` from the probabilities loses
precision where they round to 0 or 1; the fused form ``log_softmax(z)`` does not.
So the core network is built *without* that last softmax / sigmoid: it trains the
logits with its fused loss (log-softmax + NLL, or BCE with logits) and is, to the
core, an ordinary logits model. The model applies the activation to the core's
outputs where outputs leave it (``predict_raw``, ``model(x)``, Keras' ``predict``).
The layer list keeps what the user wrote, so ``summary``, ONNX export and the torch
layout describe the probability-outputting model; the model file stores the core
spec plus this layer list (see ``model_file.Metadata.layers``).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _core, _validate
from .errors import ConfigError, DTypeError, ShapeError

__all__ = ["KerasMethods", "loss_arg", "fused_output", "core_layer_specs", "apply_output", "class_targets",
           "verbosity", "SOFTMAX_ACTIVATION"]

#: The activation name ``Dense`` accepts for a softmax over its units (only as the
#: model's output layer before a cross-entropy loss: the core has no softmax activation).
SOFTMAX_ACTIVATION = "softmax"


def loss_arg(loss: Any) -> tuple[str, Optional[bool]]:
    """``(loss name, from_logits)`` of ``compile``'s ``loss=``: a name (from_logits None:
    decided by the last layer) or a loss object of ``ferronn.keras.losses`` (its
    ``name`` and ``from_logits``)."""
    if isinstance(loss, str):
        return loss, None
    name = getattr(loss, "loss_name", None)
    if isinstance(name, str):
        from_logits = getattr(loss, "from_logits", None)
        return name, None if from_logits is None else bool(from_logits)
    if callable(loss):
        from .errors import NotSupportedError
        raise NotSupportedError(f"a custom loss function ({getattr(loss, '__name__', loss)!r}) has no ferronn "
                                "counterpart: the loss runs inside the Rust training step; use a loss name such as "
                                "'sparse_categorical_crossentropy' or 'mse'")
    raise ConfigError(f"loss must be a loss name such as 'sparse_categorical_crossentropy' or a loss object of "
                      f"ferronn.keras.losses, got {loss!r}; custom loss functions have no ferronn counterpart "
                      "(the loss runs inside the Rust training step)")


def _final_activation(layer: Any) -> Optional[str]:
    """"softmax" / "sigmoid" when ``layer`` ends in that function (a Dense with that
    activation, or the Softmax / Sigmoid layer itself with default settings)."""
    from .layers import Activation, Dense, Softmax
    if isinstance(layer, Dense) and layer.activation in (SOFTMAX_ACTIVATION, "sigmoid"):
        return str(layer.activation)
    if type(layer) is Softmax or (isinstance(layer, Softmax) and layer.temperature == 1.0):
        return "softmax" if layer.temperature == 1.0 else None
    if isinstance(layer, Activation) and layer.name == "sigmoid":
        return "sigmoid"
    return None


def fused_output(layers: Sequence[Any], info: Any, from_logits: Optional[bool]) -> Optional[str]:
    """The activation the model applies outside the core ("softmax", "sigmoid") or None.

    ``info`` is the loss's table row. A final softmax before the (sparse) categorical
    cross-entropy, or a final sigmoid before the binary one, is fused unless
    ``from_logits=True`` says the outputs are logits (then a final softmax is refused).
    ``from_logits=False`` without such a final layer is refused: the outputs would be
    probabilities, which ferronn's losses do not take. A Dense softmax anywhere else
    is refused (the core has softmax only as a layer)."""
    last = layers[-1]
    for layer in layers[:-1]:
        if getattr(layer, "activation", None) == SOFTMAX_ACTIVATION:
            raise ConfigError(f"{layer!r}: activation='softmax' on a Dense layer is supported only on the output "
                              "layer before a cross-entropy loss; elsewhere put a Softmax() layer after the Dense")
    final = _final_activation(last)
    wanted = info.proba if info.takes_logits else None
    if final is not None and final == wanted and not from_logits:
        return final
    if getattr(last, "activation", None) == SOFTMAX_ACTIVATION:
        raise ConfigError(f"the last layer {last!r} ends with a softmax, which ferronn trains only fused with the "
                          f"(sparse_)categorical_crossentropy loss with from_logits=False; got loss {info.name!r}"
                          f"{' with from_logits=True' if from_logits else ''}")
    if info.takes_logits and last.normalises_scores:
        raise ConfigError(f"the {info.name} loss takes logits (from_logits=True), but the last layer is "
                          f"{type(last).__name__}: remove it (predict_proba applies the softmax), or end with "
                          "LogSoftmax and use loss='nll'")
    if from_logits is False and info.takes_logits:
        raise ConfigError(f"from_logits=False means the model outputs probabilities, but the last layer "
                          f"{last!r} does not end with a {wanted}: add activation={wanted!r} to it (ferronn then "
                          "trains the fused logits form), or pass from_logits=True")
    return None


def core_layer_specs(layers: Sequence[Any], fused: Optional[str]) -> list[dict[str, Any]]:
    """The layer specs the core network is built from: the user's, less the fused
    final activation (a Dense's activation becomes the identity; a final
    Softmax / Sigmoid layer is left out, so the other layers keep their indices)."""
    specs = [layer.spec() for layer in layers]
    if fused is not None:
        if specs[-1]["type"] == "dense":
            specs[-1] = {**specs[-1], "activation": "identity"}
        else:
            specs.pop()
    return specs


def apply_output(fused: Optional[str], out: np.ndarray) -> np.ndarray:
    """The model's outputs from the core's (logits when an activation is fused); on
    N-D outputs the softmax runs over the last axis."""
    if fused == "softmax" and out.ndim > 2:
        return _core.softmax_rows(np.ascontiguousarray(out.reshape(-1, out.shape[-1])), 1.0).reshape(out.shape)
    if fused == "softmax":
        return _core.softmax_rows(out, 1.0)
    if fused == "sigmoid":
        return _core.activation_forward("sigmoid", out, None)
    return out


def class_targets(y: Any, name: str = "y", whole_floats: bool = False) -> np.ndarray:
    """Class labels: integers, or one-hot rows (``categorical_crossentropy``'s targets,
    e.g. from ``to_categorical``), checked; with ``whole_floats`` (``ferronn.keras``,
    whose guides cast labels to float32) also whole-valued floats; then
    ``_validate.labels``."""
    arr = _validate.numeric_array(y, name)
    if arr.ndim == 2 and arr.shape[1] >= 2:
        hot = arr == 1
        if not (np.isin(arr, (0, 1)).all() and (hot.sum(axis=1) == 1).all()):
            bad = int(np.argmax(~(np.isin(arr, (0, 1)).all(axis=1) & (hot.sum(axis=1) == 1))))
            raise ShapeError(f"{name} must be 1-D class labels or one-hot rows (a single 1, the rest 0), got shape "
                             f"{arr.shape} whose row {bad} is {arr[bad][:12].tolist()}; soft labels have no "
                             "ferronn counterpart")
        return np.ascontiguousarray(hot.argmax(axis=1), dtype=np.int64)
    if arr.dtype.kind == "f" and whole_floats:
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise DTypeError(f"{name} has dtype {arr.dtype} with values that are not whole numbers; class labels "
                             "must be integers (or whole-valued floats)")
        arr = arr.astype(np.int64)
    return _validate.labels(arr, name)


def verbosity(verbose: Any, auto: int, what: str) -> int:
    """0, 1 or 2 from Keras' ``verbose`` ("auto" gives ``auto``)."""
    if verbose == "auto":
        return auto
    return _validate.integer(verbose, f"{what} verbose", 0, 2, expected='"auto", 0 (silent), 1 (progress) or 2 '
                                                                      '(one line per epoch)')


def format_logs(logs: dict[str, Any]) -> str:
    """`` - loss: 0.4321 - accuracy: 0.8765`` as Keras prints logs (the rate left out)."""
    return "".join(f" - {k}: {v:.4f}" for k, v in logs.items() if k not in ("lr", "learning_rate"))


#: Keras' accuracy metric names (and their log keys): ferronn counts them as "accuracy".
_ACCURACY_NAMES = ("accuracy", "acc", "sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy")


def metric_args(metrics: Sequence[Any]) -> tuple[list[Any], str]:
    """``compile``'s metrics as ferronn names (Keras' metric objects of ``ferronn.keras.metrics``
    give their ``metric_name``), and the log key of accuracy: the Keras name it was asked
    by ("sparse_categorical_accuracy", ...), or "accuracy"."""
    out: list[Any] = []
    key = "accuracy"
    for m in metrics:
        m = getattr(m, "metric_name", m)
        if isinstance(m, str) and m.lower() in _ACCURACY_NAMES:
            key = "accuracy" if m.lower() == "acc" else m.lower()
            m = "accuracy"
        out.append(m)
    return out, key


def predict_args(model: Any, batch_size: Any, verbose: Any) -> int:
    """Checks Keras' ``predict`` arguments; returns the verbosity."""
    if batch_size is not None:
        _validate.positive_int(batch_size, "predict batch_size")
    return verbosity(verbose, model._auto_verbose, "predict")


def report_predict(verbose: int, batch_size: Any, n: int) -> None:
    """Keras' line after ``predict`` when verbose: the number of batches."""
    if verbose:
        steps = 1 if batch_size is None else max(1, -(-n // int(batch_size)))
        print(f"{steps}/{steps}")


def report_evaluate(model: Any, batch_size: Any, verbose: Any, n: int, logs: dict[str, Any]) -> None:
    """Checks ``evaluate``'s Keras arguments and prints Keras' summary line when verbose."""
    steps = 1
    if batch_size is not None:
        steps = -(-n // _validate.positive_int(batch_size, "evaluate batch_size"))
    if verbosity(verbose, model._auto_verbose, "evaluate"):
        print(f"{steps}/{steps}{format_logs(logs)}")


class KerasMethods:
    """Keras model methods for ``Sequential`` (see each method for where ferronn differs)."""

    #: What ``verbose="auto"`` means for predict / evaluate: ferronn's ``Sequential`` is
    #: silent; ``ferronn.keras.Sequential`` prints as Keras does.
    _auto_verbose = 0

    #: The activation applied outside the core ("softmax", "sigmoid") or None; set by compile.
    _fused_output: Optional[str] = None
    #: ``from_logits`` as compile was given it (None: decided by the last layer).
    _from_logits: Optional[bool] = None
    #: Whether whole-valued float class labels are accepted (Keras does; ferronn asks for integers).
    _whole_float_labels = False
    #: The log key of the core's accuracy count (Keras' name it was compiled by).
    _accuracy_key = "accuracy"

    def _logit_layers(self) -> list[Any]:
        """The layers as the core runs them: with a fused final activation, the last
        Dense as a copy without it (bound to the same tensors), or without the final
        Softmax / Sigmoid layer. The diagnostics' float64 reference runs these."""
        import copy
        layers = list(self.layers)  # type: ignore[attr-defined]
        if self._fused_output is None:
            return layers
        last = layers[-1]
        if getattr(last, "activation", None) in (SOFTMAX_ACTIVATION, "sigmoid") and hasattr(last, "units"):
            plain = copy.copy(last)
            object.__setattr__(plain, "activation", "identity")
            return layers[:-1] + [plain]
        return layers[:-1]

    def count_params(self) -> int:
        """The number of scalars in all the model's weights, as Keras counts them:
        trainable ones and buffers such as BatchNorm's running statistics."""
        return int(sum(a.size for a in self.get_weights()))  # type: ignore[attr-defined]

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """``predict`` on ``x`` as one batch."""
        return self.predict(x)  # type: ignore[attr-defined]

    def _batch_logs(self, stats: Any, xa: np.ndarray, ya: np.ndarray, return_dict: bool) -> Any:
        logs = self._logs_from_stats(stats, xa, ya)  # type: ignore[attr-defined]
        logs = {k: float(v) for k, v in logs.items()}
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def train_on_batch(self, x: Any, y: Any, sample_weight: Any = None, class_weight: Any = None,
                       return_dict: bool = False) -> Union[float, list[float], dict[str, float]]:
        """One optimizer step on ``(x, y)`` (in training mode unless ``eval()`` was called), building the model on first
        use; returns Keras' result: the loss (computed before the step), or
        ``[loss, *metrics]`` when metrics were compiled (a dict with ``return_dict``).
        Accuracy is counted during the step; the other metrics on the batch after it."""
        from . import _fit_args, training as _training
        with self._lock:  # type: ignore[attr-defined]
            if self.loss is None:  # type: ignore[attr-defined]
                raise ConfigError("call compile() before train_on_batch()")
            xa, ya = self._xy(x, y)  # type: ignore[attr-defined]
            w = None if sample_weight is None else _training.sample_weights(sample_weight, len(xa))
            w = _fit_args.with_class_weights(self, class_weight, xa, ya, w)
            if not self.built:  # type: ignore[attr-defined]
                shape = self._sample_shape or self._shape_of(x)  # type: ignore[attr-defined]
                net, seed = self._new_net(shape, None)  # type: ignore[attr-defined]
                net.check(xa, ya, sample_weight=w)
                self._install(net, seed)  # type: ignore[attr-defined]
                self._target_1d = np.ndim(y) == 1  # type: ignore[attr-defined]
            stats = self._net.train_step(xa, ya, sample_weight=w)  # type: ignore[attr-defined]
            return self._batch_logs(stats, xa, ya, return_dict)

    def test_on_batch(self, x: Any, y: Any, sample_weight: Any = None,
                      return_dict: bool = False) -> Union[float, list[float], dict[str, float]]:
        """``evaluate`` on ``(x, y)`` as one batch."""
        return self.evaluate(x, y, sample_weight=sample_weight, return_dict=return_dict)  # type: ignore

    def get_config(self) -> dict[str, Any]:
        """The architecture as a JSON-ready dict (no weights, no compile settings), as
        Keras' ``get_config``: ``{"name", "layers": [{"class_name", "config"}], "input_dim",
        "input_shape"}`` (the per-sample shape, once known).
        ``from_config`` rebuilds an equivalent, uncompiled model."""
        shape = self._sample_shape  # type: ignore[attr-defined]
        return {"name": getattr(self, "name", None), "input_dim": self.input_dim,  # type: ignore[attr-defined]
                "input_shape": None if shape is None else list(shape),
                "layers": [{"class_name": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}  # type: ignore[attr-defined]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        """The model ``get_config`` describes (uncompiled, with fresh weights once built)."""
        from .layers import from_spec
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ConfigError(f"a Sequential config is a dict with a 'layers' list (what get_config returns), "
                              f"got {config!r}"[:300])
        layers = []
        for entry in config["layers"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
                raise ConfigError(f"each layer of a Sequential config is {{'class_name', 'config'}}, got {entry!r}")
            layers.append(from_spec(entry["config"]))
        shape = config.get("input_shape")
        model = cls(layers, input_dim=config.get("input_dim") if shape is None else None,  # type: ignore[call-arg]
                    input_shape=shape)
        if config.get("name") is not None:
            setattr(model, "name", config["name"])
        return model
