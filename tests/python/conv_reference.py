"""Float64 NumPy transcriptions of PyTorch's documented convolution and pooling
definitions (torch.nn.Conv1d/Conv2d, MaxPool, AvgPool), written independently of
ferronn's own NumPy forwards: each output value is its window's sum written out.

Tensors here are PyTorch's: [N, C, H, W] (a sequence is [N, C, 1, L]), conv
weights [out, in/groups, kh, kw]. ``to_nchw`` / ``from_nchw`` convert from and
to ferronn's flat rows in either data format.
"""

from __future__ import annotations

import numpy as np


def to_nchw(rows: np.ndarray, shape: tuple, channels_first: bool) -> np.ndarray:
    """Flat rows of per-sample ``shape`` (2-D sequence or 3-D image) as [N, C, H, W]."""
    x = np.asarray(rows, dtype=np.float64).reshape((len(rows), *shape))
    if len(shape) == 2:
        x = x if channels_first else np.moveaxis(x, 2, 1)  # [N, C, L]
        return x[:, :, None]  # [N, C, 1, L]
    return x if channels_first else np.moveaxis(x, 3, 1)


def from_nchw(y: np.ndarray, rank: int, channels_first: bool) -> np.ndarray:
    """[N, C, H, W] back to flat rows in the layout (a sequence drops H)."""
    if rank == 1:
        y = y[:, :, 0]  # [N, C, L]
        y = y if channels_first else np.moveaxis(y, 1, 2)
    else:
        y = y if channels_first else np.moveaxis(y, 1, 3)
    return np.ascontiguousarray(y).reshape(len(y), -1)


def conv2d(x, w, b, stride, pads, dilation, groups):
    """out[n, o, i, j] = b[o] + Σ_{c<in/groups, p, q} w[o, c, p, q] ·
    x_pad[n, g(o)·in/groups + c, i·s0 + p·d0, j·s1 + q·d1], pads = (top, bottom, left, right)."""
    n, cin, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    xp = np.zeros((n, cin, h + pads[0] + pads[1], wd + pads[2] + pads[3]))
    xp[:, :, pads[0]:pads[0] + h, pads[2]:pads[2] + wd] = x
    oh = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, cout, oh, ow))
    per_group = cout // groups
    for o in range(cout):
        g = o // per_group
        for i in range(oh):
            for j in range(ow):
                rows = i * stride[0] + dilation[0] * np.arange(kh)
                cols = j * stride[1] + dilation[1] * np.arange(kw)
                patch = xp[:, g * cg:(g + 1) * cg][:, :, rows][:, :, :, cols]  # [n, cg, kh, kw]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + (0.0 if b is None else b[o])
    return out


def pool2d(x, size, stride, pads, mode):
    """Max (PyTorch's MaxPool2d: padding never wins) or average pooling over the cells
    inside the input (Keras' "same" AveragePooling; PyTorch's count_include_pad=False)."""
    n, c, h, wd = x.shape
    oh = (h + pads[0] + pads[1] - size[0]) // stride[0] + 1
    ow = (wd + pads[2] + pads[3] - size[1]) // stride[1] + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * stride[0] - pads[0], j * stride[1] - pads[2]
            rows = [r for r in range(r0, r0 + size[0]) if 0 <= r < h]
            cols = [q for q in range(c0, c0 + size[1]) if 0 <= q < wd]
            window = x[:, :, rows][:, :, :, cols]
            out[:, :, i, j] = window.max(axis=(2, 3)) if mode == "max" else window.mean(axis=(2, 3))
    return out


def same_pads(size, k, s, d=1):
    """TensorFlow's "same": ceil(size/s) outputs, the odd cell of the total pad at the end."""
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def torch_weight(w_ferronn: np.ndarray) -> np.ndarray:
    """ferronn's [kh, kw, in/groups, out] (or [k, in/groups, out]) as PyTorch's [out, in/groups, kh, kw]."""
    w = np.asarray(w_ferronn, dtype=np.float64)
    if w.ndim == 3:
        w = w[None]
    return w.transpose(3, 2, 0, 1)
