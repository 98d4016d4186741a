"""The PyTorch module expressions and helper class sources that ``torch_source``
writes for convolution, pooling, Reshape, BatchNorm and PReLU on N-D inputs, the
recurrent layers and Embedding.

How the layout difference is handled: the generated model takes its input in the
ferronn model's own layout (``[N, *input_shape]``, so NHWC for channels_last) and
every tensor between its modules stays in that layout. A channels_first layer with
symmetric (or no) padding is the plain ``nn`` module. Any other becomes a small
subclass of the same ``nn`` module (``LayoutConv2d(nn.Conv2d)``, ...) that moves
the channels to axis 1 before the operation and back after it, and applies
asymmetric padding (TensorFlow's "same") itself; its ``state_dict`` is exactly
the ``nn`` module's. Because the tensors stay in ferronn's layout, a ``Flatten``
flattens in ferronn's (H, W, C) order and the following ``nn.Linear`` takes
ferronn's Dense weights unchanged (transposed only), with no row permutation.

The recurrent layers become subclasses of ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``
(``SequenceLSTM``, ...) that return a tensor rather than PyTorch's (output, state)
tuple, so they fit in ``nn.Sequential``; their ``state_dict`` is the ``nn``
module's (``weight_ih_l0``, ...).
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["LAYOUT", "GLOBAL_POOL", "RESHAPE", "SEQUENCE", "TOKEN_EMBEDDING", "FLAT_PRELU", "torch_pad", "symmetric",
           "tuple_src"]

# The mixin and the subclasses built on it; written once into the generated source.
LAYOUT = '''class Layout:
    """Runs a channels-first PyTorch layer on ferronn's layout: for channels_last
    inputs moves the channels to axis 1 and back; applies the zero (or -inf)
    padding `pad` (F.pad's order: last axis first) before the operation."""

    fill = 0.0

    def __init__(self, *args, pad=(), channels_last=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.pad, self.channels_last = tuple(pad), channels_last

    def run(self, x):
        if any(self.pad):
            x = nn.functional.pad(x, self.pad, value=self.fill)
        return super().forward(x)

    def forward(self, x):
        if self.channels_last:
            x = x.movedim(-1, 1)
        y = self.run(x)
        return y.movedim(1, -1) if self.channels_last else y


class LayoutConv1d(Layout, nn.Conv1d):
    pass


class LayoutConv2d(Layout, nn.Conv2d):
    pass


class LayoutMaxPool1d(Layout, nn.MaxPool1d):
    fill = float("-inf")  # padding never wins


class LayoutMaxPool2d(Layout, nn.MaxPool2d):
    fill = float("-inf")


class LayoutAvgPool1d(Layout, nn.AvgPool1d):
    def run(self, x):  # the mean of the cells inside the input (Keras' "same")
        total = super().run(x)
        return total / super().run(torch.ones_like(x[:1, :1])) if any(self.pad) else total


class LayoutAvgPool2d(Layout, nn.AvgPool2d):
    def run(self, x):
        total = super().run(x)
        return total / super().run(torch.ones_like(x[:1, :1])) if any(self.pad) else total


class LayoutBatchNorm1d(Layout, nn.BatchNorm1d):
    pass


class LayoutBatchNorm2d(Layout, nn.BatchNorm2d):
    pass


class LayoutPReLU(Layout, nn.PReLU):
    pass
'''

GLOBAL_POOL = '''class GlobalPool(nn.Module):
    """Global max or average pooling over the spatial axes `dims`: output [N, C]."""

    def __init__(self, mode, dims):
        super().__init__()
        self.mode, self.dims = mode, tuple(dims)

    def forward(self, x):
        return x.amax(dim=self.dims) if self.mode == "max" else x.mean(dim=self.dims)
'''

RESHAPE = '''class Reshape(nn.Module):
    """Gives each sample the shape `shape` (row-major, as ferronn's and Keras' Reshape)."""

    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)
'''


SEQUENCE = '''class Sequence:
    """Runs a batch_first PyTorch RNN as ferronn's recurrent layer: with
    go_backwards it reads the time axis from its end (its outputs then come in that
    reading order, as Keras'); it returns every step's output, or the final state
    (each direction's, side by side). A bidirectional one (ferronn's Bidirectional)
    merges the two directions' halves by merge_mode: concat (PyTorch's own output),
    sum, mul or ave."""

    def __init__(self, *args, return_sequences=False, go_backwards=False, merge_mode="concat", **kwargs):
        super().__init__(*args, batch_first=True, **kwargs)
        self.return_sequences, self.go_backwards = return_sequences, go_backwards
        self.merge_mode = merge_mode

    def forward(self, x):
        if self.go_backwards:
            x = x.flip(1)
        y, state = super().forward(x)  # y: [N, T, directions·units]
        if not self.return_sequences:
            h = state[0] if isinstance(state, tuple) else state  # LSTM's state is (h, c)
            y = h.movedim(0, 1).flatten(1)  # [directions, N, units] -> [N, directions·units]
        if self.merge_mode == "concat":
            return y
        fwd, bwd = y.chunk(2, -1)
        if self.merge_mode == "sum":
            return fwd + bwd
        if self.merge_mode == "mul":
            return fwd * bwd
        return 0.5 * (fwd + bwd)


class SequenceRNN(Sequence, nn.RNN):
    pass


class SequenceLSTM(Sequence, nn.LSTM):
    pass


class SequenceGRU(Sequence, nn.GRU):
    pass
'''

TOKEN_EMBEDDING = '''class TokenEmbedding(nn.Embedding):
    """nn.Embedding on ferronn's float token ids (converted to integers)."""

    def forward(self, x):
        return super().forward(x.long())
'''

FLAT_PRELU = '''class FlatPReLU(nn.PReLU):
    """nn.PReLU with one slope per value of an N-D sample (Keras' default PReLU)."""

    def forward(self, x):
        return super().forward(x.flatten(1)).reshape(x.shape)
'''


def torch_pad(pads: Sequence[int]) -> tuple[int, ...]:
    """ferronn's [before, after] per spatial axis as F.pad's order (last axis first)."""
    pairs = [(pads[i], pads[i + 1]) for i in range(0, len(pads), 2)]
    return tuple(v for pair in reversed(pairs) for v in pair)


def symmetric(pads: Sequence[int]) -> bool:
    return all(pads[i] == pads[i + 1] for i in range(0, len(pads), 2))


def tuple_src(values: Sequence[int]) -> str:
    """``(a, b)`` or ``(a,)``: a tuple literal."""
    items = [str(int(v)) for v in values]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
