"""Figures for looking at training: learning curves, decision boundaries, activations,
gradient flow, dead units, confusion matrices, image grids, and a convolution's
filters and feature maps.

>>> fig = fn.plot.learning_curves(history)                 # one panel per metric, train vs validation
>>> fig = fn.plot.decision_boundary(model, X, y)           # 2-D inputs: the regions the model predicts
>>> fn.plot.save(fig, "out/curves.png")                    # a PNG; parent folders are created

Every function builds a ``matplotlib.figure.Figure`` with the object-oriented API
(never ``pyplot``: nothing opens a window, blocks, or needs a display), labels its
axes, adds a legend where a panel has more than one line, and returns the Figure.
Show one in a notebook by leaving it as the cell's value, or write it with ``save``.

matplotlib is an optional dependency: ``pip install "ferronn[plot]"``.
``import ferronn`` does not import this module; ``fn.plot`` does, on first use.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

try:
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap, to_rgb
    from matplotlib.ticker import MaxNLocator
    from matplotlib.figure import Figure
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("ferronn.plot needs matplotlib: pip install \"ferronn[plot]\" (or pip install matplotlib)") \
        from exc

from . import _validate, functional as _functional, metrics as _metrics, names as _names
from .errors import ConfigError, EmptyInputError, ShapeError, UnknownNameError
from ._plot_conv import feature_maps, filters  # noqa: F401  (convolutional models' figures)

__all__ = [
    "learning_curves", "decision_boundary", "decision_boundary_grid", "activation_gallery", "gradient_flow",
    "dead_units_over_time", "confusion_matrix", "image_grid", "filters", "feature_maps", "save",
]

#: Colours of the classes (matplotlib's "tab10"), cycled past ten classes.
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_DEFAULT_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "softplus")
# Keys of a History that are not metrics (left out of learning_curves unless asked for).
_NOT_METRICS = ("lr",)


# ----------------------------------------------------------------- helpers

def _numeric(a: Any, name: str) -> np.ndarray:
    return _validate.numeric_array(a, name, "a real numeric array")


def _lighten(color: str, amount: float = 0.55) -> tuple[float, float, float]:
    r, g, b = to_rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _grid_shape(n: int, ncols: int) -> tuple[int, int]:
    cols = min(ncols, n)
    return int(math.ceil(n / cols)), cols


# ----------------------------------------------------------------- learning curves

def _history_dict(history: Any) -> tuple[dict[str, list[float]], Optional[list[int]]]:
    if isinstance(history, Mapping):
        logs, epochs = history, None
    elif isinstance(getattr(history, "history", None), Mapping):
        logs, epochs = history.history, list(getattr(history, "epoch", []) or [])
    else:
        raise ConfigError(f"learning_curves takes a History (what fit returns) or its .history dict, "
                          f"got {type(history).__name__}")
    return {str(k): list(v) for k, v in logs.items()}, epochs


def learning_curves(history: Any, metrics: Union[None, str, Sequence[str]] = None) -> Figure:
    """One panel per metric: the training curve and, where logged, the validation one ("val_<name>").

    ``history``: the ``History`` that ``fit`` returns (or its ``.history`` dict).
    ``metrics``: base names to draw ("loss", "accuracy", ...); None draws every base
    name that has values ("loss" first; the learning rate "lr" only when asked for).
    The x axis is the epoch, counted from 1.
    """
    logs, epochs = _history_dict(history)
    logs = {k: v for k, v in logs.items() if len(v) > 0}
    if not logs:
        raise EmptyInputError("the history has no values: train at least one epoch first")
    bases: list[str] = []
    for key in logs:
        base = key[4:] if key.startswith("val_") else key
        if base not in bases:
            bases.append(base)
    if metrics is None:
        chosen = [b for b in bases if b not in _NOT_METRICS]
        chosen.sort(key=lambda b: b != "loss")  # loss first, the others in logged order
        if not chosen:
            chosen = bases
    else:
        chosen = [metrics] if isinstance(metrics, str) else list(metrics)
        if not chosen:
            raise ConfigError("metrics is empty; give at least one name, or None for all")
        for m in chosen:
            if m not in bases:
                raise UnknownNameError(f"the history has no values for {m!r}; it has: {', '.join(bases)}")
    fig = Figure(figsize=(4.6 * len(chosen), 3.6), layout="constrained")
    for i, name in enumerate(chosen):
        ax = fig.add_subplot(1, len(chosen), i + 1)
        lines = 0
        for key, label, style in ((name, "train", "-"), (f"val_{name}", "validation", "--")):
            values = logs.get(key)
            if not values:
                continue
            n = len(values)
            if epochs is not None and len(epochs) == n:
                x = np.asarray(epochs, dtype=np.float64) + 1
            else:
                x = np.arange(1, n + 1, dtype=np.float64)
            ax.plot(x, np.asarray(values, dtype=np.float64), style, marker="o" if n <= 20 else None,
                    markersize=3, label=label)
            lines += 1
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        if lines > 1:
            ax.legend()
    return fig


# ----------------------------------------------------------------- decision boundaries

def _points(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    Xa = _numeric(X, "X")
    if Xa.ndim != 2 or Xa.shape[1] != 2:
        raise ShapeError(f"decision_boundary draws 2-D inputs: X must have shape (samples, 2), got {Xa.shape}")
    if Xa.shape[0] == 0:
        raise EmptyInputError("X has no samples; expected at least one point")
    ya = _numeric(y, "y")
    if ya.ndim == 2 and ya.shape[1] == 1:
        ya = ya.ravel()
    if ya.ndim != 1:
        raise ShapeError(f"y must be 1-D (one label per point), got shape {ya.shape}")
    if len(ya) != len(Xa):
        raise ShapeError(f"X has {len(Xa)} points but y has {len(ya)} labels; expected the same number")
    Xa = Xa.astype(np.float64)
    if not np.isfinite(Xa).all():
        raise ShapeError("X contains NaN or infinity; cannot place the points")
    return Xa, ya


def _grid(X: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = X.min(axis=0), X.max(axis=0)
    span = hi - lo
    pad = np.where(span > 0, 0.15 * span, 1.0)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    return np.meshgrid(xs, ys)


def _predict_grid(model: Any, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    if not hasattr(model, "predict"):
        raise ConfigError(f"decision_boundary needs a fitted model with a predict method, got {type(model).__name__}")
    grid = np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float32)
    Z = np.asarray(model.predict(grid))
    if Z.ndim == 2 and Z.shape[1] == 1:
        Z = Z.ravel()
    if Z.ndim != 1 or len(Z) != len(grid):
        raise ShapeError(f"decision_boundary needs one prediction per point; the model's predict returned shape "
                         f"{Z.shape} for {len(grid)} points")
    return Z.reshape(xx.shape).astype(np.float64)


def _draw_boundary(ax: Any, model: Any, X: np.ndarray, y: np.ndarray, resolution: int, title: Optional[str],
                   legend: bool, colorbar: bool) -> None:
    xx, yy = _grid(X, resolution)
    Z = _predict_grid(model, xx, yy)
    size = float(np.clip(4000.0 / len(X), 14.0, 80.0))  # big markers for a few points, small for many
    discrete = bool(np.all(np.isfinite(Z)) and np.all(Z == np.round(Z)))
    labels_integral = bool(np.all(y == np.round(y)))
    classes = np.unique(np.concatenate([np.unique(Z), np.unique(y)])) if discrete and labels_integral else None
    if classes is not None and len(classes) <= 20:
        k = len(classes)
        colors = [CLASS_COLORS[i % len(CLASS_COLORS)] for i in range(k)]
        index = np.searchsorted(classes, Z)
        levels = np.arange(k + 1) - 0.5
        ax.contourf(xx, yy, index, levels=levels, cmap=ListedColormap([_lighten(c) for c in colors]))
        if k > 1 and len(np.unique(index)) > 1:
            ax.contour(xx, yy, index, levels=levels[1:-1], colors="k", linewidths=0.8, alpha=0.6)
        for i, c in enumerate(classes):
            mask = y == c
            if mask.any():
                ax.scatter(X[mask, 0], X[mask, 1], s=size, color=colors[i], edgecolors="k", linewidths=0.4,
                           label=f"class {int(c)}", zorder=3)
        if legend and len(np.unique(y)) > 1:
            ax.legend(loc="best", fontsize="small", framealpha=0.8)
    else:  # regression outputs (or many classes): a continuous map
        cs = ax.contourf(xx, yy, Z, levels=20, cmap="RdBu_r", alpha=0.8)
        ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu_r", s=size, edgecolors="k", linewidths=0.4, zorder=3)
        if colorbar:
            ax.figure.colorbar(cs, ax=ax, label="prediction")
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title is not None:
        ax.set_title(title)


def decision_boundary(model: Any, X: Any, y: Any, ax: Any = None, resolution: int = 200,
                      title: Optional[str] = None) -> Figure:
    """The regions a model assigns to each class, for 2-D inputs.

    Fills a ``resolution`` × ``resolution`` grid (padded 15% around ``X``) with
    ``model.predict`` (a ``Sequential``, a ``Perceptron``, or anything with
    ``predict``), draws the boundaries between classes, and the points of ``X``
    coloured by their label ``y``. Predictions that are not class labels (an
    ``mse`` model) are drawn as a continuous map with a colour bar. ``ax``: draw
    into this matplotlib Axes (its Figure is returned) instead of a new Figure.
    """
    Xa, ya = _points(X, y)
    res = _validate.integer(resolution, "resolution", 2)
    if ax is None:
        fig = Figure(figsize=(5.0, 4.4), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    _draw_boundary(ax, model, Xa, ya, res, title, legend=True, colorbar=True)
    return fig


def decision_boundary_grid(panels: Sequence[tuple[str, Any]], X: Any, y: Any, ncols: int = 4,
                           resolution: int = 120) -> Figure:
    """One ``decision_boundary`` per ``(title, model)`` in ``panels`` (e.g. copies of a
    model at several epochs), ``ncols`` to a row, the class legend in the first panel."""
    if isinstance(panels, (str, bytes)) or not isinstance(panels, Iterable):
        raise ConfigError("panels must be a list of (title, model) pairs")
    panels = list(panels)
    if not panels:
        raise EmptyInputError("panels is empty; give at least one (title, model) pair")
    for p in panels:
        if not isinstance(p, (tuple, list)) or len(p) != 2:
            raise ConfigError(f"each panel must be a (title, model) pair, got {p!r}")
    Xa, ya = _points(X, y)
    cols = _validate.positive_int(ncols, "ncols")
    res = _validate.integer(resolution, "resolution", 2)
    rows, cols = _grid_shape(len(panels), cols)
    fig = Figure(figsize=(3.4 * cols, 3.2 * rows), layout="constrained")
    for i, (title, model) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw_boundary(ax, model, Xa, ya, res, str(title), legend=(i == 0), colorbar=False)
    return fig


# ----------------------------------------------------------------- activations

def activation_gallery(names: Union[str, Sequence[str]] = _DEFAULT_ACTIVATIONS) -> Figure:
    """Each activation ``f`` and its derivative ``f'`` on [-5, 5], one panel per name
    (names of ``fn.functional.ACTIVATIONS``), computed by the core's own kernels."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ConfigError("names is empty; give at least one activation name")
    for n in names:
        _names.activation(n)  # UnknownNameError listing the core's names
    x = np.linspace(-5.0, 5.0, 401).astype(np.float32)
    rows, cols = _grid_shape(len(names), 4)
    fig = Figure(figsize=(3.3 * cols, 2.9 * rows), layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        f = _functional.activation(name, x)
        df = _functional.activation_grad(name, x, np.ones_like(x))
        ax.axhline(0.0, color="0.7", linewidth=0.8)
        ax.axvline(0.0, color="0.7", linewidth=0.8)
        ax.plot(x, f, label="f(x)", linewidth=2)
        ax.plot(x, df, "--", label="f'(x)", linewidth=1.6)
        ax.set_title(name)
        ax.set_xlabel("x")
        ax.set_ylabel("f(x), f'(x)")
        ax.set_ylim(-1.5, 5.2 if float(np.max(f)) > 1.5 else 1.6)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    return fig


# ----------------------------------------------------------------- gradients and dead units

def gradient_flow(monitor: Any) -> Figure:
    """The gradient norm of each layer over the steps a ``GradientMonitor`` recorded (log y axis).

    ``monitor``: a ``fn.diagnostics.GradientMonitor`` after ``fit`` (or its ``.history``
    dict). Lines go from dark (first layer) to light (last layer)."""
    history = getattr(monitor, "history", monitor)
    if not isinstance(history, Mapping):
        raise ConfigError(f"gradient_flow takes a GradientMonitor or its .history dict, got {type(monitor).__name__}")
    keys = [k for k in history if isinstance(k, str) and k.endswith("/grad_norm")]
    if not keys or not any(len(history[k]) for k in keys):
        raise EmptyInputError("the monitor has recorded no gradients: pass it to fit(callbacks=[monitor]) first")
    n = max(len(history[k]) for k in keys)
    steps = history.get("step")
    x = np.asarray(steps, dtype=np.float64) if steps is not None and len(steps) == n else np.arange(n, dtype=float)
    fig = Figure(figsize=(7.4 if len(keys) > 4 else 6.4, 4.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    viridis = colormaps["viridis"]
    for i, key in enumerate(keys):
        values = np.asarray(history[key], dtype=np.float64)
        color = viridis(0.9 * i / max(len(keys) - 1, 1))
        ax.plot(x[:len(values)], values, marker="o" if len(values) <= 20 else None, markersize=3,
                color=color, label=key[: -len("/grad_norm")])
    ax.set_yscale("log")
    ax.set_xlabel("training step (batches)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("gradient L2 norm (log scale)")
    ax.set_title("gradient norm per layer")
    ax.grid(True, which="both", alpha=0.3)
    if len(keys) > 4:  # many layers: the legend beside the plot, in layer order
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 + len(keys) // 16)
    elif len(keys) > 1:
        ax.legend(fontsize="small")
    return fig


def dead_units_over_time(steps: Sequence[float], fractions: Mapping[str, Sequence[float]]) -> Figure:
    """The fraction of dead units of each layer (``fractions``: layer name -> one value per
    step, e.g. from ``fn.diagnostics.dead_units`` after each epoch) against ``steps``."""
    x = _numeric(steps, "steps").astype(np.float64)
    if x.ndim != 1:
        raise ShapeError(f"steps must be 1-D, got shape {x.shape}")
    if len(x) == 0:
        raise EmptyInputError("steps is empty; expected at least one value")
    if not isinstance(fractions, Mapping):
        raise ConfigError(f"fractions must be a dict layer name -> list of fractions, got {type(fractions).__name__}")
    if not fractions:
        raise EmptyInputError("fractions is empty; expected at least one layer")
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for name, values in fractions.items():
        v = _numeric(values, f"fractions[{name!r}]").astype(np.float64)
        if v.ndim != 1 or len(v) != len(x):
            raise ShapeError(f"fractions[{name!r}] has shape {v.shape} but steps has {len(x)} values; "
                             "expected one fraction per step")
        ax.plot(x, v, marker="o" if len(x) <= 30 else None, markersize=3, label=str(name))
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("fraction of dead units")
    ax.set_title("dead units per layer")
    ax.grid(True, alpha=0.3)
    if len(fractions) > 1:
        ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------- classification results

def confusion_matrix(y_true: Any, y_pred: Any, class_names: Optional[Sequence[str]] = None,
                     normalize: bool = False) -> Figure:
    """The confusion matrix (``fn.metrics.confusion_matrix``) as an annotated heat map:
    rows are true classes, columns predicted ones. ``normalize=True`` shows each row
    as fractions of that class' samples."""
    num = None
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if not class_names:
            raise ConfigError("class_names is empty; give one name per class, or None")
        num = len(class_names)
    cm = _metrics.confusion_matrix(y_true, y_pred, num_classes=num).astype(np.float64)
    k = cm.shape[0]
    names = class_names if class_names is not None else [str(i) for i in range(k)]
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = min(max(3.2, 0.55 * k + 1.8), 14.0)
    fig = Figure(figsize=(size, size * 0.92), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=max(float(cm.max()), 1e-12))
    fontsize = max(5, min(10, int(120 / max(k, 1))))
    top = float(cm.max())
    for i in range(k):
        for j in range(k):
            text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                    color="white" if top > 0 and cm[i, j] > 0.5 * top else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(names, rotation=45 if max(len(n) for n in names) > 3 else 0, ha="right"
                       if max(len(n) for n in names) > 3 else "center")
    ax.set_yticklabels(names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    return fig


def image_grid(images: Any, true: Any = None, pred: Any = None, image_shape: tuple[int, int] = (28, 28),
               ncols: int = 8, class_names: Optional[Sequence[str]] = None, max_images: int = 32) -> Figure:
    """The first ``max_images`` images, ``ncols`` to a row, titled "true/pred" (or the one
    given); a title is red where the prediction is wrong. ``images``: flat rows reshaped
    to ``image_shape``, or an array (n, height, width)."""
    imgs = _numeric(images, "images").astype(np.float64)
    cols = _validate.positive_int(ncols, "ncols")
    limit = _validate.positive_int(max_images, "max_images")
    if imgs.ndim == 2:
        try:
            h, w = (int(s) for s in image_shape)
        except (TypeError, ValueError):
            raise ConfigError(f"image_shape must be (height, width), got {image_shape!r}") from None
        if h < 1 or w < 1 or h * w != imgs.shape[1]:
            raise ShapeError(f"images have {imgs.shape[1]} values each, which is not image_shape {image_shape} "
                             f"({h}×{w} = {h * w}); pass the right image_shape (e.g. (8, 8) for digits)")
        imgs = imgs.reshape(len(imgs), h, w)
    elif imgs.ndim != 3:
        raise ShapeError(f"images must be (n, height·width) or (n, height, width), got shape {imgs.shape}")
    if len(imgs) == 0:
        raise EmptyInputError("images is empty; expected at least one image")
    n = min(len(imgs), limit)

    def labels(a: Any, name: str) -> Optional[np.ndarray]:
        if a is None:
            return None
        arr = _numeric(a, name).ravel()
        if len(arr) < n:
            raise ShapeError(f"{name} has {len(arr)} labels for {n} images; expected one per image")
        return arr

    t, p = labels(true, "true"), labels(pred, "pred")

    def name(v: Any) -> str:
        if class_names is not None and float(v).is_integer() and 0 <= int(v) < len(class_names):
            return str(class_names[int(v)])
        return str(int(v)) if float(v).is_integer() else f"{v:g}"

    rows, cols = _grid_shape(n, cols)
    fig = Figure(figsize=(1.45 * cols, 1.6 * rows + 0.4), layout="constrained")
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(imgs[i], cmap="gray_r", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        parts = [name(a[i]) for a in (t, p) if a is not None]
        if parts:
            wrong = t is not None and p is not None and t[i] != p[i]
            ax.set_title("/".join(parts), fontsize=8, color="red" if wrong else "black")
    what = "true/pred" if t is not None and p is not None else ("true label" if t is not None else
                                                                 ("predicted label" if p is not None else ""))
    fig.suptitle(f"{n} images" + (f", titled {what}" if what else "")
                 + (" (mistakes in red)" if t is not None and p is not None else ""), fontsize=10)
    return fig


# ----------------------------------------------------------------- files

def save(fig: Figure, path: Union[str, os.PathLike], dpi: int = 100) -> str:
    """Writes ``fig`` as a PNG at ``path`` (parent folders created), and returns the path."""
    if not isinstance(fig, Figure):
        raise ConfigError(f"save takes a matplotlib Figure (what the fn.plot functions return), got "
                          f"{type(fig).__name__}")
    dpi = _validate.positive_int(dpi, "dpi")
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", facecolor="white")
    return path
