"""``Sequential``: a stack of layers with Keras' compile / fit / evaluate / predict."""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from typing import Any, Callable, Iterable, Optional, Sequence, Union, cast

import numpy as np

from . import _core, _fit_args, _validate, layers as _layers, optim as _optim, training as _training
from . import model_file as _model_file, names as _names
from ._compiled_metrics import MetricSpec, _metric_name, _metric_value, _resolve_metrics
from ._files import atomic_write
from .callbacks import Callback, CallbackList, History
from .epochs import EpochDriver
from .errors import ConfigError, ModelFileError, NotFittedError
from . import summary as _summary
from . import _keras_methods as _km
from . import _model_data
from ._mask_flow import check_mask_flow, output_mask
from ._model_data import built_shape
from ._predict_path import F32 as _F32, PredictPath

__all__ = ["Sequential", "load"]


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    """Runs ``method`` holding the model's lock: calls that train or swap the network
    (fit, train_step, set_weights, save, ...) run one whole call at a time. The lock is
    reentrant, so a callback inside ``fit`` may call them too. Inference does not take
    it: the core network lets it run between the chunks of a fit, on consistent weights."""
    @functools.wraps(method)
    def locked(self: "Sequential", *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


def _new_seed() -> int:
    return int(cast(int, np.random.SeedSequence().entropy)) & (2**63 - 1)  # drawn from the OS: an int


class Sequential(_km.KerasMethods, PredictPath):
    """A feed-forward network: layers applied in order.

    >>> model = Sequential([Dense(64, activation="relu"), Dense(10)])
    >>> model.compile(optimizer=optim.Adam(1e-3), loss="cross_entropy", metrics=["accuracy"])
    >>> history = model.fit(X, y, epochs=20, batch_size=32, seed=0)

    For classification losses the last layer outputs logits: ``predict`` returns
    class labels and ``predict_proba`` probabilities (as scikit-learn);
    ``predict_raw`` returns the outputs themselves. The input width is taken from
    the first ``fit`` unless ``input_dim`` is given (here or on the first layer).

    Images and sequences: ``input_shape=(28, 28, 1)`` (or a first ``fn.Input(shape=...)``)
    declares the per-sample shape; otherwise the first ``fit`` takes ``X.shape[1:]``.
    ``fit``, ``predict`` and ``evaluate`` then take arrays ``[N, *input_shape]``.
    Sequences of any length: ``input_shape=(None, F)``, or a first layer that reads
    sequences (recurrent, ``Embedding``, ``Masking``) and the shape from the first ``fit``;
    a declared length stays strict (``ShapeError`` for another), as in Keras.
    """

    #: The per-sample input shape ((28, 28, 1), or (width,)), once known; also read by
    #: models pickled before it existed. Public as ``input_shape`` (``ferronn.keras``'s
    #: Sequential gives that name Keras' meaning, with the batch axis).
    _sample_shape: Optional[tuple[int, ...]] = None

    @property
    def input_shape(self) -> Optional[tuple[int, ...]]:
        """The per-sample input shape, once known (``(28, 28, 1)``, or ``(width,)``;
        ``(None, F)`` for sequences of any length)."""
        return self._public_shape(self._sample_shape)

    @property
    def output_shape(self) -> Optional[tuple[int, ...]]:
        """The per-sample output shape, once the input shape is known."""
        return self._public_shape(self._sample_shape, output=True)

    def __init__(self, layers: Sequence[Any] = (), input_dim: Optional[int] = None,
                 seed: Optional[int] = None, input_shape: Optional[Sequence[int]] = None) -> None:
        self.layers = list(layers)
        if self.layers and isinstance(self.layers[0], _layers.Input):
            if input_shape is not None and tuple(input_shape) != self.layers[0].shape:
                raise ConfigError(f"input_shape={tuple(input_shape)} differs from the first {self.layers[0]!r}")
            input_shape = self.layers.pop(0).shape
        for layer in self.layers:
            if not isinstance(layer, _layers.Layer):
                raise ConfigError(f"Sequential takes layer objects such as fn.Dense(10), got {layer!r}")
        self._sample_shape, self._variable_steps = None, False
        if input_shape is not None:
            # checked: positive integers (None first: sequences of any length)
            self._sample_shape, self._variable_steps = _model_data.declared_shape(_layers.Input(input_shape).shape)
            if input_dim is not None and math.prod(self._sample_shape) != input_dim:
                raise ConfigError(f"input_dim={input_dim} differs from input_shape={self._sample_shape}")
            input_dim = math.prod(self._sample_shape)
        first = getattr(self.layers[0], "input_dim", None) if self.layers else None
        self.input_dim = input_dim if input_dim is not None else first
        if self._sample_shape is None and self.input_dim is not None:
            self._sample_shape = (int(self.input_dim),)
        self.seed = seed
        self.optimizer: Optional[_optim.Optimizer] = None
        self.loss: Optional[str] = None
        self.metrics: list[MetricSpec] = []
        self.stop_training = False
        self._net: Optional[Any] = None
        self._epochs_trained = 0
        self._target_1d = False
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)  # a lock cannot be copied; a copy gets its own
        state.pop("_output_shape_of", None)  # a cache (see _model_data)
        state.pop("_fast_predict", None)  # a cache (see ferronn._predict_path)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        if self.optimizer is not None:
            self.optimizer._bind_model(self)

    @_serialised
    def add(self, layer: _layers.Layer) -> None:
        """Appends a layer (before the model is built); an ``Input`` first declares the
        input shape, as in Keras."""
        if self._net is not None:
            raise ConfigError("cannot add layers to a model that is already built")
        if isinstance(layer, _layers.Input):
            if self.layers:
                raise ConfigError(f"{layer!r} must come before the first layer")
            self._sample_shape, self._variable_steps = _model_data.declared_shape(layer.shape)
            self.input_dim = math.prod(self._sample_shape)
            return
        if not isinstance(layer, _layers.Layer):
            raise ConfigError(f"Sequential takes layer objects such as fn.Dense(10), got {layer!r}")
        self.layers.append(layer)

    @_serialised
    def compile(self, optimizer: Union[str, _optim.Optimizer] = "adam", loss: str = "cross_entropy",
                metrics: Sequence[MetricSpec] = ()) -> None:
        """Chooses the optimizer, the loss and the metrics to report.

        ``loss``: a name from the core's table ("cross_entropy", "mse", Keras' names such as
        "sparse_categorical_crossentropy" ...) or a loss object of ``ferronn.keras.losses``
        (with ``from_logits``). A last layer that ends in a softmax (``Dense(10,
        activation="softmax")``, ``Softmax()``) before a cross-entropy loss, or in a sigmoid
        before the binary one, is trained in the fused logits form, numerically stable;
        ``predict_raw`` then returns probabilities. ``categorical_crossentropy`` also takes
        one-hot targets (per-step ones ``[N, T, C]`` too). On per-step outputs of padded
        sequences (a step mask reaching the output) every loss is the mean over the real steps.

        ``metrics``: names from ``ferronn.metrics.NAMES`` ("accuracy", "top_k_accuracy",
        "precision", "recall", "f1", "mae", "mse", "r2") or callables
        ``f(y_true, y_pred) -> float`` (logged under their ``__name__``; not saved with
        the model). For classification losses a metric gets class labels (the argmax
        of the outputs; outputs > 0 for binary cross-entropy), ``top_k_accuracy`` the
        scores; for ``mse`` the outputs. "accuracy" is counted by the core during the
        epoch (a running figure over the epoch's batches, as in Keras); the others are
        computed at the end of each epoch with the weights the epoch ended with, on the
        whole training set (unlike Keras' running averages) and on the validation
        data. Averaged metrics use their defaults (macro precision/recall/f1, k=5).
        Per-step outputs are scored step by step, over the real steps only when masked.
        """
        if not self.layers:
            raise ConfigError("the model has no layers; add at least one before compile()")
        loss_name, from_logits = _km.loss_arg(loss)
        info = _names.loss(loss_name)
        if isinstance(metrics, (str, bytes)) or callable(metrics) or hasattr(metrics, "metric_name"):
            metrics = [metrics]  # type: ignore[list-item]
        metrics, accuracy_key = _km.metric_args(metrics)
        for m in metrics:
            if not callable(m):
                _metric_name(m)  # unknown names first: UnknownNameError
        fused = _km.fused_output(self.layers, info, from_logits)
        resolved = _resolve_metrics(metrics, info.name)
        self.optimizer = _optim.get(optimizer)
        self.optimizer._bind_model(self)
        self.loss = info.name
        self.metrics = resolved
        self._fused_output, self._accuracy_key, self._from_logits = fused, accuracy_key, from_logits
        self._net = None
        if self._sample_shape is not None:
            self.build(self._sample_shape)

    # -- building ---------------------------------------------------------

    def _spec(self, input_shape: tuple[int, ...], seed: int) -> dict[str, Any]:
        assert self.optimizer is not None and self.loss is not None
        self._output_shapes(input_shape)
        check_mask_flow(self.layers)
        # Layers may have been added since compile: the fused output is decided on the final list.
        self._fused_output = _km.fused_output(self.layers, _names.loss(self.loss), self._from_logits)
        spec: dict[str, Any] = {"input_dim": math.prod(input_shape),
                                "layers": _km.core_layer_specs(self.layers, self._fused_output),
                                "loss": self.loss, "optimizer": self.optimizer.config(), "seed": int(seed)}
        spec.update(self._shape_spec(input_shape))
        if self.optimizer.schedule is not None:
            spec["schedule"] = self.optimizer.schedule.spec()
        return spec

    def _new_net(self, input_shape: tuple[int, ...], seed: Optional[int]) -> tuple[Any, int]:
        """A freshly initialised core network and the seed it was made with."""
        if seed is None:
            seed = self.seed if self.seed is not None else _new_seed()
        seed = _validate.seed(seed)
        return _core.Network(json.dumps(self._spec(input_shape, seed), allow_nan=False)), seed

    def _install(self, net: Any, seed: int) -> None:
        self._net, self.input_dim, self.seed = net, int(net.input_dim), seed
        self._sample_shape, self._variable_steps = built_shape(net)
        self._output_shapes(self._sample_shape)
        self._epochs_trained = 0
        self._bind_layers()

    def _bind_layers(self) -> None:
        for i, layer in enumerate(self.layers):
            layer._bind(self, f"layers.{i}")

    @_serialised
    def build(self, input_dim: Union[int, Sequence[int]], seed: Optional[int] = None) -> None:
        """Creates and initialises the weights for inputs of width ``input_dim``, or of
        per-sample shape ``input_dim`` when it is a tuple (``(28, 28, 1)``)."""
        if self.loss is None:
            raise NotFittedError("call compile() before build()")
        if isinstance(input_dim, (tuple, list)):
            shape, variable = _model_data.declared_shape(_layers.Input(input_dim).shape)
            self._variable_steps = variable or (self._variable_steps and shape[1:] == (self._sample_shape or ())[1:])
        else:
            shape = (_validate.positive_int(input_dim, "input_dim"),)
        self._install(*self._new_net(shape, seed))

    @property
    def built(self) -> bool:
        """Whether the weights exist (after ``build``, a first ``fit``, or ``compile`` with a known input width)."""
        return self._net is not None

    def _require_built(self, what: str) -> Any:
        if self._net is None:
            raise NotFittedError(f"{what} needs a built model: call compile() and fit() first (or give input_dim)")
        return self._net

    # -- data (the N-D handling lives in ferronn._model_data.ShapedData) ----------

    def _logs_from_stats(self, stats: Any, x: Optional[np.ndarray] = None,
                         y: Optional[np.ndarray] = None) -> dict[str, float]:
        """Loss and metrics, in compile order, from the core's ``LossStats``: accuracy from
        its counts, the others (when ``x``, ``y`` are given) from predictions with the
        current weights."""
        logs = {"loss": stats.mean_loss}
        outputs = mask = None
        for m in self.metrics:
            if m == "accuracy":
                logs[self._accuracy_key] = stats.accuracy
            elif x is not None and y is not None:
                if outputs is None:
                    outputs = self._require_built("metrics").predict(x)
                    mask = output_mask(self, x)  # the steps the loss counts
                key, value = _metric_value(m, y, outputs, self.loss, self._target_1d, mask)
                logs[key] = value
        return logs

    def _end_epoch(self, epoch: int, stats: Any, x: np.ndarray, y: np.ndarray,
                   validation: Optional[_fit_args.Validation]) -> dict[str, float]:
        """Records a completed epoch; returns its logs: training loss and metrics, the
        validation ones, and "lr", the rate the epoch ended with."""
        self._epochs_trained = epoch + 1
        logs = self._logs_from_stats(stats, x, y)
        # The chunks' loss sums are added one by one, so the last bits of the f64 mean depend on
        # where the (time-sized) chunks fell; rounded to float32 the value does not.
        logs["loss"] = float(np.float32(logs["loss"]))
        if validation is not None:
            xv, yv, wv = validation
            val = self._logs_from_stats(self._require_built("evaluate").evaluate(xv, yv, sample_weight=wv), xv, yv)
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs["lr"] = float(self._require_built("fit").current_lr)
        return logs

    # -- training ---------------------------------------------------------

    @_serialised
    def fit(self, x: Any, y: Any, epochs: int = 1, batch_size: int = 32, validation_split: float = 0.0,
            validation_data: Optional[tuple[Any, ...]] = None, shuffle: bool = True,
            class_weight: Optional[dict[int, float]] = None, sample_weight: Any = None,
            initial_epoch: Optional[int] = None, callbacks: Optional[Sequence[Callback]] = None,
            seed: Optional[int] = None, verbose: Union[int, str] = "auto") -> History:
        """Trains the model and returns a ``History`` (one entry per completed epoch).

        ``epochs``: without ``initial_epoch``, the number of epochs to train; the epoch
        count continues from earlier fits (so two ``fit(epochs=2)`` equal one
        ``fit(epochs=4)``: same shuffles, schedules and optimizer state). With
        ``initial_epoch`` (Keras' resuming idiom), epochs ``initial_epoch .. epochs-1``
        are trained. ``History.epoch`` lists the epoch indices.

        ``validation_split``: the fraction of the data held out, *before* shuffling,
        from the end of the arrays (as Keras); for classification it is stratified:
        the last ``round(fraction·n_c)`` samples of each class ``c`` (at least one per
        class with two or more samples). ``validation_data``, ``(X_val, y_val)`` or
        ``(X_val, y_val, sample_weight_val)``, takes precedence over it.

        ``sample_weight`` (one weight >= 0 per sample) and ``class_weight``
        (``{class: weight}``; classes not named weigh 1) scale each sample's loss:
        a batch's loss is ``Σ w_i·loss_i / batch_size`` (Keras' convention). Both may
        be given (their product is used); class weights apply to training only.

        ``callbacks``: ``ferronn.callbacks.Callback`` objects (``TerminateOnNaN`` is
        always active; ``verbose=1`` adds a ``ProgressBar``). ``seed`` fixes the
        initial weights (on the first call) and the shuffles. Ctrl-C stops training
        cleanly and returns the History so far (see ``ferronn.training``).
        The History's logs hold "loss", the metrics, "val_*" and "lr", the learning
        rate each epoch ended with.
        """
        if self.loss is None:
            raise NotFittedError("call compile() before fit()")
        args = _fit_args.checked(self, x, y, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                                 validation_data=validation_data, class_weight=class_weight,
                                 sample_weight=sample_weight, initial_epoch=initial_epoch, callbacks=callbacks,
                                 seed=seed, verbose=verbose)
        xa, ya, weights, validation = args.x, args.y, args.weights, args.validation
        # Build into a local first and check all data before anything changes:
        # a rejected fit leaves the model exactly as it was (even unbuilt).
        # The first fit fixes the input shape (set when the network is installed).
        shape = self._sample_shape if self._sample_shape is not None else self._shape_of(x)
        fresh = self._new_net(shape, args.seed) if self._net is None else None
        net: Any = fresh[0] if fresh is not None else self._net
        net.check(xa, ya, sample_weight=weights)
        if validation is not None:
            net.check(*validation[:2], sample_weight=validation[2])
        if fresh is not None:
            self._install(*fresh)
        self._target_1d = np.ndim(y) == 1
        if args.initial_epoch is None:
            first, stop = self._epochs_trained, self._epochs_trained + int(args.epochs)
        else:
            first, stop = int(args.initial_epoch), int(args.epochs)
        shuffle_seed = args.seed if args.seed is not None else int(self.seed or 0)
        steps = -(-len(xa) // int(args.batch_size))
        history = History({"epochs": stop, "initial_epoch": first, "batch_size": int(args.batch_size),
                           "samples": len(xa), "steps": steps, "verbose": int(args.verbose)})
        cbs = CallbackList(args.callbacks, model=self, params=history.params, verbose=int(args.verbose), history=history)
        net = self._net
        # fit trains in training mode, as Keras: passed per core call, the model's mode is untouched.
        driver = EpochDriver(net, xa, ya, batch_size=int(args.batch_size), shuffle=bool(shuffle), seed=shuffle_seed,
                             sample_weight=weights, chunk_seconds=cbs.chunk_seconds(), max_chunk=cbs.max_chunk(),
                             training=True, checked=True)
        return _training.fit_loop(
            driver, cbs, history, model=self, epochs=range(first, stop), batch_logs=self._logs_from_stats,
            epoch_logs=lambda epoch, stats: self._end_epoch(epoch, stats, xa, ya, validation))

    # -- modes and custom loops ---------------------------------------------

    def train(self, mode: bool = True) -> "Sequential":
        """Training mode for ``train_step`` and ``model(x)``: dropout active, BatchNorm on
        batch statistics (updating its running ones). The default, as in PyTorch."""
        self._require_built("train").training = bool(mode)
        return self

    def eval(self) -> "Sequential":
        """Inference mode for ``train_step`` and ``model(x)``: no dropout, BatchNorm on its
        running statistics. ``fit`` always trains in training mode; ``predict`` and
        ``evaluate`` always infer."""
        return self.train(False)

    @property
    def training(self) -> bool:
        """The mode of ``train_step`` and ``model(x)``: True in training mode (see ``train`` and ``eval``)."""
        return bool(self._require_built("training").training)

    def __call__(self, x: Any, training: Optional[bool] = None) -> np.ndarray:
        """Outputs for ``x`` in the current mode (or the one given), as one batch.
        In training mode this updates BatchNorm's running statistics."""
        net = self._require_built("calling the model")
        # As train_step: rows the core reads as they are skip `_features`; the core checks
        # their width, count and values itself (the same named errors).
        fast = (type(x) is np.ndarray and x.dtype is _F32 and x.ndim == 2 and x.flags.c_contiguous
                and (self._sample_shape is None or len(self._sample_shape) == 1) and not self._variable_steps)
        xa = x if fast else self._features(x)
        # The mode is passed per call, never set and reset: other threads see no change.
        return _km.apply_output(self._fused_output,
                                self._outputs(net.forward(xa, None if training is None else bool(training))))

    @_serialised
    def train_step(self, x: Any, y: Any, sample_weight: Any = None) -> float:
        """One optimizer step on one batch, in the current mode; returns the batch's mean loss (before the step).

        ``sample_weight``: one weight >= 0 per sample (the loss is ``Σ w_i·loss_i / n``).
        A step whose loss or gradients are not finite is not applied (the loss
        returned is then NaN or inf)."""
        net = self._require_built("train_step")
        fast = (type(x) is np.ndarray and x.ndim == 2 and x.dtype == np.float32 and x.flags.c_contiguous
                and (self._sample_shape is None or len(self._sample_shape) == 1))
        xa = x if fast else self._features(x)
        w = None if sample_weight is None else _training.sample_weights(sample_weight, len(xa))
        stats = net.train_step(xa, self._targets(y), sample_weight=w)
        return stats.loss_sum / stats.samples

    # -- inference --------------------------------------------------------

    def predict(self, x: Any, batch_size: Optional[int] = None, verbose: Union[int, str] = "auto") -> np.ndarray:
        """Class labels for classification losses; outputs for ``mse``. (``ferronn.keras.Sequential``
        returns the outputs, as Keras.) ``batch_size`` and ``verbose`` as Keras (the core
        predicts in one call whatever the batch size; ``"auto"`` is silent here)."""
        verbose = _km.predict_args(self, batch_size, verbose)
        out = self._logits(x)
        _km.report_predict(verbose, batch_size, len(out))
        assert self.loss is not None  # a built model is compiled
        task = _names.loss_task(self.loss)
        if task == "labels":  # per-step scores [N, T, C] give per-step classes [N, T]
            return self._outputs(out).argmax(axis=-1)
        if task == "binary":
            out = (out > 0).astype(np.int64)
        return out.ravel() if self._target_1d and out.shape[1] == 1 else self._outputs(out)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities (softmax, sigmoid, or exp of log-probabilities)."""
        assert self.loss is not None  # a built model is compiled
        proba = _names.loss(self.loss).proba
        if proba is None:
            raise ConfigError(f"predict_proba needs a classification loss; this model uses {self.loss}")
        out = self._logits(x)
        if proba == "softmax":
            return _km.apply_output("softmax", self._outputs(out))  # per step on [N, T, C]
        if proba == "exp":
            return np.exp(out)
        p = _core.activation_forward(proba, out, None)
        return p.ravel() if self._target_1d and p.shape[1] == 1 else p

    def evaluate(self, x: Any, y: Any, batch_size: Optional[int] = None, verbose: Union[int, str] = "auto",
                 sample_weight: Any = None, return_dict: bool = False) -> Union[float, list[float], dict[str, float]]:
        """Loss (and metrics, in compile order) on ``(x, y)``: a float, ``[loss, *metrics]``, or a dict.

        ``sample_weight`` weights each sample's loss (``Σ w_i·loss_i / n``); the metrics
        other than accuracy are unweighted."""
        net = self._require_built("evaluate")
        xa, ya = self._xy(x, y)
        w = None if sample_weight is None else _training.sample_weights(sample_weight, len(xa))
        logs = self._logs_from_stats(net.evaluate(xa, ya, sample_weight=w), xa, ya)
        _km.report_evaluate(self, batch_size, verbose, len(xa), logs)
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    # -- weights ----------------------------------------------------------

    def _tensors(self) -> list[tuple[str, np.ndarray]]:
        return [(n, a) for n, a, _ in self._require_built("reading weights").tensors()]

    def _get_tensor(self, name: str) -> np.ndarray:
        return self._require_built("reading weights").get_param(name)

    def _set_tensor(self, name: str, value: Any) -> None:
        self._require_built("setting weights").set_param(name, _validate.weights(value, name))

    def get_weights(self) -> list[np.ndarray]:
        """Every array, layer by layer, as Keras: kernel [in, out] then bias for Dense,
        gamma, beta, running_mean, running_var for BatchNorm, and so on."""
        return [a for _, a in self._tensors()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets every array from a list shaped like ``get_weights()``."""
        names = [n for n, _, _ in self._require_built("set_weights").tensors()]
        if len(weights) != len(names):
            raise ConfigError(f"expected {len(names)} arrays (one per parameter tensor), got {len(weights)}")
        self._assign_tensors((name, _validate.weights(w, name)) for name, w in zip(names, weights))

    @_serialised
    def _assign_tensors(self, tensors: Iterable[tuple[str, np.ndarray]]) -> None:
        """Sets named tensors (parameters or buffers), all or nothing: they are written
        into a copy of the network, which replaces it only when every one was accepted.
        The one place where the model's network is swapped after it is built."""
        staged = self._require_built("setting weights").copy()
        for name, value in tensors:
            staged.set_param(name, value)
        self._net = staged

    @property
    def n_params(self) -> int:
        """Number of trainable scalars."""
        return int(self._require_built("n_params").n_params)

    def summary(self, print_fn: Any = print) -> None:
        """Prints a table of layers, output shapes and parameter counts, as Keras."""
        print_fn(_summary.table(self, self._require_built("summary")))

    # -- files ------------------------------------------------------------

    def _extra(self) -> str:
        """The metadata saved with the core network (see ``ferronn.model_file``)."""
        net = self._require_built("save")
        return _model_file.write_metadata(_model_file.Metadata(
            metrics=[m for m in self.metrics if isinstance(m, str)], target_1d=self._target_1d,
            epochs_trained=self._epochs_trained, lr_scale=float(net.lr_scale), epoch=int(net.epoch),
            layers=None if self._fused_output is None else [layer.spec() for layer in self.layers]))

    @_serialised
    def save(self, path: Union[str, os.PathLike], layout: str = "ferronn") -> None:
        """Writes weights, architecture and optimizer state to a safetensors file (atomically).

        ``layout="torch"`` writes only the tensors, named and shaped as the ``state_dict`` of
        the equivalent ``torch.nn.Sequential`` (Dense weights transposed to [out, in]); read it
        back with ``fn.load_torch_weights(model, path)``. See ``ferronn.torch_layout``."""
        from . import torch_layout
        if torch_layout.check_layout(layout) == "torch":
            torch_layout.save_torch(self, path)
        else:
            atomic_write(path, self._require_built("save").to_bytes(self._extra()))

    def export_onnx(self, path: Union[str, os.PathLike], opset: int = 17) -> None:
        """Writes the inference graph to an ONNX file (opset 17 by default; input ``"input"``,
        output ``"output"``, float32 [batch, width] with a dynamic batch). Needs the ``onnx``
        package. Layers without an ONNX form raise ``ExportError``. See ``ferronn.onnx_export``."""
        from . import onnx_export
        onnx_export.export_onnx(self, path, opset)

    @classmethod
    def _from_net(cls, net: Any, extra: str) -> "Sequential":
        """A model around a core network read from a file, with its metadata ``extra``;
        ``ModelFileError`` (naming the field) for anything ferronn would not have written."""
        try:
            spec = json.loads(net.spec_json)
            model = cls([_layers.from_spec(s) for s in spec["layers"]], input_dim=spec["input_dim"],
                        seed=spec.get("seed"), input_shape=spec.get("input_shape"))
            model._variable_steps = bool(spec.get("variable_steps", False))
            model.optimizer = _optim.from_config(spec["optimizer"], spec.get("schedule"))
            model.loss = _names.loss(spec["loss"]).name
        except (KeyError, TypeError, ValueError) as e:  # ferronn's own errors are ValueErrors too
            raise ModelFileError(f"model file metadata is not what ferronn writes: {e}") from e
        meta = _model_file.read_metadata(extra, lambda names: _resolve_metrics(names, model.loss or ""))
        if meta.layers is not None:  # the layers as written, with the fused final activation
            try:
                model.layers = [_layers.from_spec(s) for s in meta.layers]
                model._fused_output = _km.fused_output(model.layers, _names.loss(model.loss), None)
            except (KeyError, TypeError, ValueError) as e:
                raise ModelFileError(f"model file metadata field 'layers' is not valid: {e}") from e
            kinds = [s.get("type") for s in _km.core_layer_specs(model.layers, model._fused_output)]
            if model._fused_output is None or kinds != [s.get("type") for s in json.loads(net.spec_json)["layers"]]:
                raise ModelFileError("model file metadata field 'layers' does not match the network it stores")
        net.lr_scale, net.epoch = meta.lr_scale, meta.epoch
        model.metrics = list(meta.metrics)
        model._target_1d, model._epochs_trained = meta.target_1d, meta.epochs_trained
        model.optimizer._bind_model(model)
        model._net = net
        model._output_shapes(model._sample_shape or (int(net.input_dim),))
        model._bind_layers()
        return model

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}])"


def load(path: Union[str, os.PathLike]) -> Sequential:
    """Reads a model written by ``Sequential.save``: ready to predict and to continue training."""
    return Sequential._from_net(*_core.Network.load(os.fspath(path)))
