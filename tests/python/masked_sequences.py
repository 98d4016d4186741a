"""What the masking tests of Bidirectional and of global pooling share: a batch of
sequences padded in every way (at the end, at the start, at both ends, not at all, down to
one real step), weights drawn large enough that every step matters, and one direction's
tensors picked out of a Bidirectional's."""

import numpy as np

import ferronn as fn

KINDS = {"rnn": fn.SimpleRNN, "lstm": fn.LSTM, "gru": fn.GRU}
F, H, T = 3, 4, 6
#: (first real step, number of real steps) per sample: padded at the end, at the
#: start, not at all, one real step, padded at both ends.
SPANS = [(0, 4), (2, 4), (0, 6), (0, 1), (1, 3)]


def padded(seed=0):
    """`[len(SPANS), T, F]` float32 sequences: normal values on the real steps, 0 elsewhere."""
    rng = np.random.default_rng(seed)
    x = np.zeros((len(SPANS), T, F), np.float32)
    for i, (a, n) in enumerate(SPANS):
        x[i, a:a + n] = rng.normal(size=(n, F))  # never exactly 0: every real step stays
    return x


def randomise(model, seed=1):
    """Every tensor of `model` drawn from N(0, 0.5²)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])


def direction(p, name):
    """The tensors of one direction (`"forward"` / `"backward"`), without its prefix."""
    return {k[len(name) + 1:]: v for k, v in p.items() if k.startswith(name + ".")}
