"""Shapes shared by the convolution and pooling layers: argument checks, the
data format, "same"/"valid" padding as Keras and TensorFlow compute it, output
sizes, and the NumPy helpers of their reference forwards.

A sample of a sequence is ``(length, channels)`` (channels_last) or
``(channels, length)``; of an image ``(height, width, channels)`` or
``(channels, height, width)``. The core stores its row-major flattening.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from ..errors import ConfigError

__all__ = ["ints", "data_format", "split", "join", "resolve_pads", "out_size", "to_last", "from_last", "windows"]

PadArg = Union[str, int, tuple, list]


def ints(value: Any, rank: int, name: str, low: int = 1) -> tuple[int, ...]:
    """``value`` (an int, or one int per spatial axis) as a ``rank``-tuple of ints >= ``low``."""
    items = [value] * rank if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        out = tuple(items)
    except TypeError:
        raise ConfigError(f"{name} must be an integer or {rank} integers, got {value!r}") from None
    if len(out) != rank or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in out):
        raise ConfigError(f"{name} must be an integer or {rank} integers, got {value!r}")
    if any(v < low for v in out):
        raise ConfigError(f"{name} must be at least {low}, got {value!r}")
    return tuple(int(v) for v in out)


def data_format(value: Optional[str]) -> str:
    """Keras' ``data_format``: None means "channels_last"."""
    if value is None:
        return "channels_last"
    if value not in ("channels_last", "channels_first"):
        raise ConfigError(f"data_format must be 'channels_last' or 'channels_first', got {value!r}")
    return value


def split(shape: tuple[int, ...], rank: int, fmt: str, kind: str) -> tuple[tuple[int, ...], int]:
    """(spatial sizes, channels) of a per-sample shape; ``ConfigError`` for the wrong rank."""
    if len(shape) != rank + 1:
        what = "(length, channels)" if rank == 1 else "(height, width, channels)"
        if fmt == "channels_first":
            what = "(channels, length)" if rank == 1 else "(channels, height, width)"
        raise ConfigError(f"{kind} takes samples of shape {what}, got per-sample shape {shape}")
    if fmt == "channels_last":
        return tuple(shape[:-1]), int(shape[-1])
    return tuple(shape[1:]), int(shape[0])


def join(spatial: tuple[int, ...], channels: int, fmt: str) -> tuple[int, ...]:
    return (*spatial, channels) if fmt == "channels_last" else (channels, *spatial)


def padding_arg(padding: PadArg, rank: int, kind: str, causal: bool = False) -> Union[str, tuple[tuple[int, int], ...]]:
    """A padding argument checked: "valid", "same" (and "causal" for Conv1D), or explicit
    zero padding: an int (all sides), one int per axis (both sides), or (before, after) per axis."""
    if isinstance(padding, str):
        allowed = ("valid", "same", "causal") if causal else ("valid", "same")
        if padding.lower() not in allowed:
            raise ConfigError(f"{kind} padding must be one of {allowed} or integers, got {padding!r}")
        return padding.lower()
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        padding = (padding,) * rank
    if not isinstance(padding, (tuple, list)) or len(padding) != rank:
        raise ConfigError(f"{kind} padding must be 'valid', 'same', an integer or {rank} values, got {padding!r}")
    pairs: list[tuple[int, int]] = []
    for p in padding:
        low, high = ints(p, 2, f"{kind} padding", low=0)
        pairs.append((low, high))
    return tuple(pairs)


def resolve_pads(padding: Any, sizes: tuple[int, ...], k: tuple[int, ...], s: tuple[int, ...],
                 d: tuple[int, ...]) -> list[int]:
    """[before, after] per spatial axis, flattened. "same" as TensorFlow: the output has
    ceil(size / stride) positions and an odd total pad puts the extra cell at the end."""
    pads: list[int] = []
    for a, size in enumerate(sizes):
        span = (k[a] - 1) * d[a] + 1
        if padding == "valid":
            pads += [0, 0]
        elif padding == "same":
            total = max((-(-size // s[a]) - 1) * s[a] + span - size, 0)
            pads += [total // 2, total - total // 2]
        elif padding == "causal":
            pads += [span - 1, 0]
        else:
            pads += list(padding[a])
    return pads


def out_size(sizes: tuple[int, ...], k: tuple[int, ...], s: tuple[int, ...], d: tuple[int, ...],
             pads: list[int], kind: str) -> tuple[int, ...]:
    """floor((size + pads - dilation·(k - 1) - 1) / stride) + 1 per axis; ``ConfigError``
    when the input is smaller than the window."""
    out = []
    for a, size in enumerate(sizes):
        span = (k[a] - 1) * d[a] + 1
        padded = size + pads[2 * a] + pads[2 * a + 1]
        if padded < span:
            raise ConfigError(f"{kind}: input of size {size} along spatial axis {a} (padded to {padded}) is smaller "
                              f"than its window of {span}")
        out.append((padded - span) // s[a] + 1)
    return tuple(out)


def to_last(h: np.ndarray, shape: tuple[int, ...], rank: int, fmt: str) -> np.ndarray:
    """A flat batch as [n, h, w, c] (a sequence as [n, 1, l, c])."""
    x = h.reshape((h.shape[0], *shape))
    if fmt == "channels_first":
        x = np.moveaxis(x, 1, -1)
    return x[:, None] if rank == 1 else x


def from_last(y: np.ndarray, rank: int, fmt: str) -> np.ndarray:
    """The inverse of ``to_last``, flattened: [n, h, w, c] back to a flat batch in the layout."""
    if rank == 1:
        y = y[:, 0]
    if fmt == "channels_first":
        y = np.moveaxis(y, -1, 1)
    return np.ascontiguousarray(y).reshape(y.shape[0], -1)


def windows(x: np.ndarray, pads: list[int], fill: float, k: tuple[int, ...], s: tuple[int, ...],
            d: tuple[int, ...], out: tuple[int, ...], rank: int):
    """Yields ((ky, kx), the [n, oh, ow, c] slice that window cell (ky, kx) sees) over
    ``x`` ([n, h, w, c]) padded with ``fill``."""
    if rank == 1:
        k, s, d, out, pads = (1, *k), (1, *s), (1, *d), (1, *out), [0, 0, *pads]
    xp = np.pad(x, ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0)), constant_values=fill)
    for ky in range(k[0]):
        for kx in range(k[1]):
            y0, x0 = ky * d[0], kx * d[1]
            yield (ky, kx), xp[:, y0:y0 + s[0] * (out[0] - 1) + 1:s[0], x0:x0 + s[1] * (out[1] - 1) + 1:s[1], :]
