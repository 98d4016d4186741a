"""Figures for convolutional models (re-exported by ``ferronn.plot``): a convolution's
learned kernels (``filters``) and the channels a layer computes for one image
(``feature_maps``). Like the rest of ``fn.plot`` they build matplotlib Figures with
the object-oriented API and return them."""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
from matplotlib.figure import Figure

from . import _validate
from .errors import ConfigError, ShapeError

__all__ = ["filters", "feature_maps"]

LayerArg = Union[int, str, Any]


def _layer_index(model: Any, layer: LayerArg) -> int:
    """The index in ``model.layers`` of ``layer``: an index (negative counts from the
    end), the layer object itself, or its ``name``."""
    layers = list(getattr(model, "layers", None) or [])
    if not layers:
        raise ConfigError(f"expected a ferronn model with layers, got {model!r}")
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if not -len(layers) <= int(layer) < len(layers):
            raise ConfigError(f"layer index {int(layer)} is out of range: the model has {len(layers)} layers")
        return int(layer) % len(layers)
    for i, candidate in enumerate(layers):
        if candidate is layer or (isinstance(layer, str) and getattr(candidate, "name", None) == layer):
            return i
    raise ConfigError(f"layer {layer!r} is not one of the model's layers {layers!r}")


def _tiles(n: int, ncols: int) -> tuple[int, int]:
    cols = min(ncols, n)
    return -(-n // cols), cols


def _blank(ax: Any) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def filters(model: Any, layer: LayerArg = 0, max_filters: int = 64, ncols: int = 8) -> Figure:
    """The kernels a ``Conv2D`` (or ``Conv1D``) layer has learned, one image per filter.

    A kernel over 3 input channels is drawn as one RGB image (each filter scaled to
    [0, 1] on its own, as the usual first-layer pictures of colour networks); any
    other count gives one image per input channel (a row per filter), coloured on one
    shared symmetric scale (blue negative, red positive) so that filters compare.
    A Conv1D kernel is one image of input channels × kernel positions.
    ``layer``: an index, the layer, or its name (default: the first layer).

    >>> model = fn.Sequential([fn.Input(shape=(8, 8, 1)), fn.layers.Conv2D(4, 3), fn.layers.Flatten(), fn.Dense(2)])
    >>> model.compile(loss="cross_entropy"); model.build((8, 8, 1))
    >>> len(fn.plot.filters(model).axes) - 1            # four filters and a colour bar
    4
    """
    from .layers.conv import _Conv
    index = _layer_index(model, layer)
    conv = model.layers[index]
    if not isinstance(conv, _Conv):
        raise ConfigError(f"filters needs a Conv2D or Conv1D layer, but layer {index} is {conv!r}")
    limit = _validate.positive_int(max_filters, "max_filters")
    cols = _validate.positive_int(ncols, "ncols")
    model._require_built("fn.plot.filters")
    w = np.asarray(conv.get_param("weight"), dtype=np.float64)
    if conv.rank == 1:
        w = w[None]  # [1, k, in/groups, filters]
    n = min(w.shape[3], limit)
    channels = w.shape[2]
    rgb = channels == 3 and conv.rank == 2
    fig = Figure(figsize=(1.3 * min(cols, n) + 1.0, 1.4 * _tiles(n, cols)[0] + 0.6), layout="constrained")
    kind = type(conv).__name__
    if rgb or channels == 1 or conv.rank == 1:
        rows, cols = _tiles(n, cols)
        scale = float(np.max(np.abs(w[..., :n]))) or 1.0
        image: Any = None
        for f in range(n):
            ax = fig.add_subplot(rows, cols, f + 1)
            k = w[..., f]  # [kh, kw, channels]
            if rgb:
                low, high = k.min(), k.max()
                ax.imshow((k - low) / (high - low) if high > low else np.full_like(k, 0.5), interpolation="nearest")
            else:
                data = k[0].T if conv.rank == 1 else k[..., 0]  # Conv1D: channels × positions
                image = ax.imshow(data, cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
            ax.set_title(f"filter {f}", fontsize=8)
            _blank(ax)
        if image is not None:
            fig.colorbar(image, ax=fig.axes, shrink=0.8, label="weight")
    else:
        shown = min(channels, cols)
        scale = float(np.max(np.abs(w[:, :, :shown, :n]))) or 1.0
        for f in range(n):
            for c in range(shown):
                ax = fig.add_subplot(n, shown, f * shown + c + 1)
                image = ax.imshow(w[:, :, c, f], cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
                ax.set_title(f"filter {f}, in {c}", fontsize=7)
                _blank(ax)
        fig.colorbar(image, ax=fig.axes, shrink=0.8, label="weight")
    what = "RGB" if rgb else f"{channels} input channel{'s' if channels != 1 else ''}"
    fig.suptitle(f"{kind} layer {index}: {n} of {w.shape[3]} filters ({what})", fontsize=10)
    return fig


def _one_sample(model: Any, image: Any) -> np.ndarray:
    """``image`` (one sample of the model's input shape, or a batch of one) as a batch of one."""
    x = _validate.numeric_array(image, "image", "a real numeric array")
    expected = tuple(model._sample_shape or ())
    if x.shape == expected:
        return x[None]
    if x.shape == (1, *expected):
        return x
    raise ShapeError(f"image has shape {x.shape}; expected one sample of shape {expected} (or (1, *{expected}))")


def feature_maps(model: Any, layer: LayerArg, image: Any, max_channels: int = 32, ncols: int = 8,
                 cmap: str = "viridis") -> Figure:
    """The channels layer ``layer`` computes for one ``image``: one panel per channel
    (its output over the image's positions, inference mode), each on its own colour
    scale with the channel's range in the title. For a sequence layer the channels
    are the rows of one panel (channels × positions). ``layer``: an index, the layer,
    or its name; its output must be an image or a sequence (a convolution, pooling or
    activation layer, not one after ``Flatten``).

    >>> model = fn.Sequential([fn.Input(shape=(8, 8, 1)), fn.layers.Conv2D(4, 3), fn.layers.Flatten(), fn.Dense(2)])
    >>> model.compile(loss="cross_entropy"); model.build((8, 8, 1))
    >>> len(fn.plot.feature_maps(model, 0, np.ones((8, 8, 1))).axes)   # one panel per channel
    4
    """
    from . import diagnostics
    index = _layer_index(model, layer)
    limit = _validate.positive_int(max_channels, "max_channels")
    cols = _validate.positive_int(ncols, "ncols")
    model._require_built("fn.plot.feature_maps")
    x = _one_sample(model, image)
    found: Optional[tuple[np.ndarray, Optional[tuple[int, ...]], str]] = None
    for record, shape, fmt in diagnostics._channel_records(model, x):
        if record.name == f"layers.{index}":
            found = (record.output, shape, fmt)
    assert found is not None, "every top-level layer has a record"
    out, shape, fmt = found
    name = type(model.layers[index]).__name__
    if shape is None:
        raise ConfigError(f"layer {index} ({name}) gives flat outputs of width {out.shape[1]}; feature maps "
                          "need a layer whose output is an image or a sequence (before Flatten)")
    maps = out.reshape(shape)
    if fmt == "channels_last":
        maps = np.moveaxis(maps, -1, 0)  # [channels, *positions]
    n = min(len(maps), limit)
    fig = Figure(figsize=(1.6 * min(cols, n) + 0.4, 1.7 * _tiles(n, cols)[0] + 0.6), layout="constrained")
    if maps.ndim == 2:  # a sequence: channels × positions in one panel
        fig.set_size_inches(8, 0.25 * n + 1.5)
        ax = fig.add_subplot(1, 1, 1)
        image_ = ax.imshow(maps[:n], cmap=cmap, aspect="auto", interpolation="nearest")
        ax.set_xlabel("position")
        ax.set_ylabel("channel")
        fig.colorbar(image_, ax=ax, label="output")
    else:
        rows, cols = _tiles(n, cols)
        for c in range(n):
            ax = fig.add_subplot(rows, cols, c + 1)
            ax.imshow(maps[c], cmap=cmap, interpolation="nearest")
            ax.set_title(f"ch {c} [{maps[c].min():.2g}, {maps[c].max():.2g}]", fontsize=7)
            _blank(ax)
    fig.suptitle(f"{name} layer {index}: {n} of {len(maps)} channels, output {tuple(shape)}", fontsize=10)
    return fig
