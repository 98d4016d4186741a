"""Float64 NumPy transcriptions of PyTorch's documented recurrent equations
(torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU), one step at a time, for the tests.

Tensors as PyTorch names them (without ``_l0``): ``weight_ih`` [G·H, F],
``weight_hh`` [G·H, H], ``bias_ih`` and ``bias_hh`` [G·H]; gate order LSTM
i, f, g, o and GRU r, z, n. ``go_backwards`` reads the steps last to first and
returns the outputs in that reading order (Keras' convention).

With a step ``mask`` ([N, T] bool by input time, True for a real step), a padded
step leaves ``h`` and ``c`` as they were and outputs the state so far (Keras'
masking with ``zero_output_for_mask=False``, the RNN layers' default).
"""

from __future__ import annotations

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _step(cell, x_t, h, c, p, act):
    W_ih, W_hh, b_ih, b_hh = p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]
    H = h.shape[-1]
    if cell == "rnn":
        return act(W_ih @ x_t + b_ih + W_hh @ h + b_hh), c
    if cell == "lstm":
        gi = W_ih @ x_t + b_ih
        gh = W_hh @ h + b_hh
        i = _sigmoid(gi[:H] + gh[:H])
        f = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
        g = np.tanh(gi[2 * H:3 * H] + gh[2 * H:3 * H])
        o = _sigmoid(gi[3 * H:] + gh[3 * H:])
        c = f * c + i * g
        return o * np.tanh(c), c
    if cell == "gru":
        W_ir, W_iz, W_in = W_ih[:H], W_ih[H:2 * H], W_ih[2 * H:]
        W_hr, W_hz, W_hn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
        b_ir, b_iz, b_in = b_ih[:H], b_ih[H:2 * H], b_ih[2 * H:]
        b_hr, b_hz, b_hn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
        r = _sigmoid(W_ir @ x_t + b_ir + W_hr @ h + b_hr)
        z = _sigmoid(W_iz @ x_t + b_iz + W_hz @ h + b_hz)
        n = np.tanh(W_in @ x_t + b_in + r * (W_hn @ h + b_hn))
        return (1.0 - z) * n + z * h, c
    raise ValueError(cell)


def run(cell, x, p, return_sequences=False, go_backwards=False, act=np.tanh, mask=None):
    """``x`` [N, T, F] → [N, H] (last state) or [N, T, H] (every state)."""
    N, T, _ = x.shape
    H = p["weight_hh"].shape[1]
    out = np.zeros((N, T, H))
    last = np.zeros((N, H))
    for n in range(N):
        h, c = np.zeros(H), np.zeros(H)
        order = range(T - 1, -1, -1) if go_backwards else range(T)
        for k, t in enumerate(order):
            if mask is None or mask[n, t]:
                h, c = _step(cell, x[n, t], h, c, p, act)
            out[n, k] = h
        last[n] = h
    return out if return_sequences else last


def gradient_case(layer, seq, seed, batch, inputs, outputs, steps, features):
    """``Dense(steps·features) → Reshape((steps, features)) → layer → [Flatten] → Dense(outputs)``
    with every tensor drawn from N(0, 0.6²), trained by nothing (SGD at lr 0) on MSE; returns
    the model, its tensors in float64 by name, and a batch ``(x, y)``. The first Dense's weight
    gradient is xᵀ·(the layer's input gradient), so the finite-difference checks reach it."""
    import ferronn as fn

    layers = [fn.Dense(steps * features), fn.Reshape((steps, features)), layer]
    model = fn.Sequential(layers + ([fn.Flatten()] if seq else []) + [fn.Dense(outputs)])
    model.compile(optimizer=fn.optim.SGD(lr=0.0), loss="mse")
    model.build(inputs, seed=0)
    rng = np.random.default_rng(seed)
    tensors = model._net.tensors()
    weights = [rng.normal(0.0, 0.6, a.shape).astype(np.float32) for _, a, _ in tensors]
    model.set_weights(weights)
    x = rng.normal(size=(batch, inputs)).astype(np.float32)
    y = rng.normal(size=(batch, outputs)).astype(np.float32)
    params = {n: w.astype(np.float64) for (n, _, _), w in zip(tensors, weights)}
    return model, params, x, y
