"""fn.diagnostics.time_step_gradients: ‖∂L/∂h_t‖ per time step of every recurrent
layer, recorded by the core's backward pass, against central differences of a float64
reference (PyTorch's equations, tests/python/recurrent_reference.py) in which a
perturbation is added to the hidden state of one sample at one input step.

The model is ``Input((T, F)) → layer → [Flatten] → Dense(3)`` with an MSE loss, so
the gradient reaching ``h_t`` comes through the recurrence (and, with
``return_sequences``, also straight from the output at step ``t``).
"""

from __future__ import annotations

import numpy as np
import pytest

import ferronn as fn

import recurrent_reference as rr
import reference as ref

BATCH, OUT, T, F, H = 3, 3, 5, 2, 4
KINDS = {"rnn": fn.SimpleRNN, "lstm": fn.LSTM, "gru": fn.GRU}
CASES = [(cell, seq, back) for cell in KINDS for seq in (False, True) for back in (False, True)]


def _run_shifted(cell, x, p, seq, back, shift):
    """rr.run's recurrence with ``shift[n, t]`` added to the hidden state computed
    from input step ``t`` (before anything uses it); [N, H] or [N, T·H] in reading order."""
    N = x.shape[0]
    outs = []
    for n in range(N):
        h, c = np.zeros(H), np.zeros(H)
        states = []
        for t in (range(T - 1, -1, -1) if back else range(T)):
            h, c = rr._step(cell, x[n, t], h, c, p, np.tanh)
            h = h + shift[n, t]
            states.append(h)
        outs.append(np.concatenate(states) if seq else h)
    return np.array(outs)


def _case(cell, seq, back, seed=0):
    layers = [fn.Input((T, F)), KINDS[cell](H, return_sequences=seq, go_backwards=back)]
    layers += [fn.Flatten()] if seq else []
    model = fn.Sequential(layers + [fn.Dense(OUT)], seed=0)
    model.compile(optimizer=fn.optim.SGD(lr=0.1), loss="mse")
    rng = np.random.default_rng(seed)
    tensors = model._net.tensors()
    model.set_weights([rng.normal(0.0, 0.7, a.shape).astype(np.float32) for _, a, _ in tensors])
    x = rng.normal(size=(BATCH, T, F)).astype(np.float32)
    y = rng.normal(size=(BATCH, OUT)).astype(np.float32)
    return model, x, y


def _reference_norms(model, x, y, cell, seq, back, eps=1e-6):
    params = {n: np.asarray(a, dtype=np.float64) for n, a, _ in model._net.tensors()}
    local = {k.split(".", 2)[2]: v for k, v in params.items() if k.startswith("layers.0.")}
    dense = "layers.2" if seq else "layers.1"
    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def loss(shift):
        h = _run_shifted(cell, x64, local, seq, back, shift)
        return ref.loss("mse", h @ params[f"{dense}.weight"] + params[f"{dense}.bias"], y64)

    grad = np.zeros((BATCH, T, H))
    for idx in np.ndindex(*grad.shape):
        shift = np.zeros_like(grad)
        shift[idx] = eps
        up = loss(shift)
        shift[idx] = -eps
        grad[idx] = (up - loss(shift)) / (2 * eps)
    return np.sqrt((grad ** 2).sum(axis=(0, 2)))


@pytest.mark.parametrize("cell,seq,back", CASES)
def test_norms_match_finite_differences_of_the_hidden_states(cell, seq, back):
    model, x, y = _case(cell, seq, back)
    got = fn.diagnostics.time_step_gradients(model, x, y)
    assert list(got) == ["layers.0"]
    want = _reference_norms(model, x, y, cell, seq, back)
    assert got["layers.0"].shape == (T,) and got["layers.0"].dtype == np.float64
    # Not a flat profile that any scale or step order would match.
    assert want.max() > 1.1 * want.min() and not np.allclose(want, want[::-1], rtol=1e-2)
    np.testing.assert_allclose(got["layers.0"], want, rtol=2e-4, atol=1e-7)


def test_the_model_is_left_unchanged():
    model, x, y = _case("lstm", True, False)
    model.train_step(x, y)
    before = [a.copy() for _, a, _ in model._net.tensors()]
    grads_before = [g.copy() for _, g in model._net.grads()]
    fn.diagnostics.time_step_gradients(model, x[:2], y[:2])
    for a, b in zip(before, (a for _, a, _ in model._net.tensors())):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(grads_before, (g for _, g in model._net.grads())):
        np.testing.assert_array_equal(a, b)


def test_stacked_layers_are_each_reported_and_the_batch_mean_scales_them():
    """Two recurrent layers give two entries; the loss is a mean over the samples, so a
    batch of two copies of the same samples gives norms smaller by √2 (twice the rows,
    each with half the gradient)."""
    model = fn.Sequential([fn.Input((T, F)), fn.GRU(H, return_sequences=True), fn.SimpleRNN(H), fn.Dense(2)], seed=1)
    model.compile(optimizer="adam", loss="cross_entropy")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, T, F)).astype(np.float32)
    y = np.array([0, 1, 1, 0])
    once = fn.diagnostics.time_step_gradients(model, x, y)
    assert list(once) == ["layers.0", "layers.1"] and all(v.shape == (T,) for v in once.values())
    assert all(np.all(v > 0) for v in once.values())
    twice = fn.diagnostics.time_step_gradients(model, np.concatenate([x, x]), np.concatenate([y, y]))
    for name in once:
        np.testing.assert_allclose(twice[name] * np.sqrt(2.0), once[name], rtol=1e-5)


def test_a_recurrent_layer_inside_a_residual_block_is_named_by_its_tensors():
    model = fn.Sequential([fn.Input((T, F)), fn.layers.Residual([fn.LSTM(F, return_sequences=True)]),
                           fn.Flatten(), fn.Dense(2)], seed=0)
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(2)
    got = fn.diagnostics.time_step_gradients(model, rng.normal(size=(3, T, F)).astype(np.float32),
                                             rng.normal(size=(3, 2)).astype(np.float32))
    assert list(got) == ["layers.0.block.0"]
    assert "layers.0.block.0.weight_hh" in dict(model._net.params())
    assert got["layers.0.block.0"].shape == (T,) and np.all(got["layers.0.block.0"] > 0)


def test_training_mode_runs_dropout_and_inference_mode_does_not():
    """``training=False`` skips the Dropout after the layer, so its norms equal those of the
    same weights without the Dropout; ``training=True`` drops units, and the norms change."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, T, F)).astype(np.float32)
    y = rng.normal(size=(4, 2)).astype(np.float32)
    models = []
    for dropout in ([fn.Dropout(0.5)], []):
        model = fn.Sequential([fn.Input((T, F)), fn.GRU(H, return_sequences=True), *dropout, fn.Flatten(),
                               fn.Dense(2)], seed=0)
        model.compile(optimizer="adam", loss="mse")
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    plain = fn.diagnostics.time_step_gradients(models[1], x, y)["layers.0"]
    inference = fn.diagnostics.time_step_gradients(models[0], x, y, training=False)["layers.0"]
    training = fn.diagnostics.time_step_gradients(models[0], x, y, training=True)["layers.0"]
    np.testing.assert_array_equal(inference, plain)
    assert not np.allclose(training, plain, rtol=1e-3)


BIDIR_CASES = [(cell, seq, "concat") for cell in KINDS for seq in (False, True)] + [("gru", True, "mul"),
                                                                                    ("lstm", False, "ave")]


def _bidir_case(cell, seq, merge):
    layers = [fn.Input((T, F)), fn.Bidirectional(KINDS[cell](H, return_sequences=seq), merge_mode=merge)]
    model = fn.Sequential(layers + ([fn.Flatten()] if seq else []) + [fn.Dense(OUT)], seed=0)
    model.compile(optimizer=fn.optim.SGD(lr=0.1), loss="mse")
    rng = np.random.default_rng(4)
    model.set_weights([rng.normal(0.0, 0.7, a.shape).astype(np.float32) for _, a, _ in model._net.tensors()])
    return model, rng.normal(size=(BATCH, T, F)).astype(np.float32), rng.normal(size=(BATCH, OUT)).astype(np.float32)


def _bidir_reference_norms(model, x, y, cell, seq, merge, eps=1e-6):
    """Central differences of the loss with respect to each direction's hidden state
    computed from input step t (the backward direction's outputs put back in time order
    before the merge, as Keras' Bidirectional)."""
    params = {n: np.asarray(a, dtype=np.float64) for n, a, _ in model._net.tensors()}
    local = {d: {k.split(".", 3)[3]: v for k, v in params.items() if k.startswith(f"layers.0.{d}.")}
             for d in ("forward", "backward")}
    dense = "layers.2" if seq else "layers.1"
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    merges = {"concat": lambda a, b: np.concatenate([a, b], axis=-1), "mul": lambda a, b: a * b,
              "ave": lambda a, b: (a + b) / 2}

    def loss(shifts):
        fw = _run_shifted(cell, x64, local["forward"], seq, False, shifts["forward"]).reshape(BATCH, -1, H)
        bw = _run_shifted(cell, x64, local["backward"], seq, True, shifts["backward"]).reshape(BATCH, -1, H)
        h = merges[merge](fw, bw[:, ::-1]).reshape(BATCH, -1)
        return ref.loss("mse", h @ params[f"{dense}.weight"] + params[f"{dense}.bias"], y64)

    out = {}
    for direction in ("forward", "backward"):
        grad = np.zeros((BATCH, T, H))
        for idx in np.ndindex(*grad.shape):
            shifts = {d: np.zeros_like(grad) for d in ("forward", "backward")}
            shifts[direction][idx] = eps
            up = loss(shifts)
            shifts[direction][idx] = -eps
            grad[idx] = (up - loss(shifts)) / (2 * eps)
        out[f"layers.0.{direction}"] = np.sqrt((grad ** 2).sum(axis=(0, 2)))
    return out


@pytest.mark.parametrize("cell,seq,merge", BIDIR_CASES)
def test_both_directions_of_a_bidirectional_layer_match_finite_differences(cell, seq, merge):
    model, x, y = _bidir_case(cell, seq, merge)
    got = fn.diagnostics.time_step_gradients(model, x, y)
    assert list(got) == ["layers.0.forward", "layers.0.backward"]
    assert "layers.0.forward.weight_hh" in dict(model._net.params())  # named as the directions' tensors
    want = _bidir_reference_norms(model, x, y, cell, seq, merge)
    for name in got:
        assert got[name].shape == (T,)
        assert want[name].max() > 1.1 * want[name].min()
        np.testing.assert_allclose(got[name], want[name], rtol=2e-4, atol=1e-7, err_msg=name)
    if not seq:  # the final state is the forward one's last step and the backward one's first
        assert np.argmax(want["layers.0.forward"]) == T - 1 and np.argmax(want["layers.0.backward"]) == 0


def test_bad_inputs_raise_named_errors():
    dense = fn.Sequential([fn.Dense(4), fn.Dense(2)], seed=0)
    dense.compile(optimizer="adam", loss="cross_entropy")
    dense.build(3)
    with pytest.raises(fn.ConfigError, match="recurrent layer"):
        fn.diagnostics.time_step_gradients(dense, np.ones((2, 3), np.float32), np.array([0, 1]))
    model, x, y = _case("gru", False, False)
    with pytest.raises(fn.ShapeError):
        fn.diagnostics.time_step_gradients(model, x[:, :, :1], y)
    with pytest.raises(fn.ShapeError):
        fn.diagnostics.time_step_gradients(model, x, y[:2])


# -- padded steps ---------------------------------------------------------------------

#: Real steps per sample (Masking(0.0) finds them); the last step is padded in every sample.
KEEP = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [1, 0, 1, 1, 0]], bool)


def _run_masked_shifted(cell, x, p, seq, back, shift):
    """rr.run's masked recurrence with ``shift[n, t]`` added to the hidden state computed
    from a real input step ``t``; a padded step computes no state (it carries the last),
    so nothing is added there. [N, T, H] in reading order, or [N, H]."""
    outs = []
    for n in range(x.shape[0]):
        h, c = np.zeros(H), np.zeros(H)
        states = []
        for t in (range(T - 1, -1, -1) if back else range(T)):
            if KEEP[n, t]:
                h, c = rr._step(cell, x[n, t], h, c, p, np.tanh)
                h = h + shift[n, t]
            states.append(h)
        outs.append(np.array(states) if seq else h)
    return np.array(outs)


@pytest.mark.parametrize("cell,seq,merge", [("lstm", False, None), ("gru", True, None), ("rnn", True, "concat"),
                                            ("lstm", False, "concat"), ("gru", True, "mul")])
def test_padded_steps_count_for_nothing(cell, seq, merge):
    """At a padded step the layer computes no state, so the norm of step ``t`` is over
    the samples whose step ``t`` is real (a step padded everywhere reads 0), for plain
    and bidirectional layers alike: against central differences of the masked float64
    reference with the perturbation only on the states the layer computes."""
    inner = KINDS[cell](H, return_sequences=seq)
    layer = inner if merge is None else fn.Bidirectional(inner, merge_mode=merge)
    layers = [fn.Masking(0.0), layer] + ([fn.Flatten()] if seq else []) + [fn.Dense(OUT)]
    model = fn.Sequential(layers, input_shape=(T, F), seed=0)
    model.compile(optimizer=fn.optim.SGD(lr=0.1), loss="mse")
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(0.0, 0.7, a.shape).astype(np.float32) for _, a, _ in model._net.tensors()])
    x = (rng.normal(size=(BATCH, T, F)) * KEEP[:, :, None]).astype(np.float32)
    y = rng.normal(size=(BATCH, OUT)).astype(np.float64)
    params = {n: np.asarray(a, dtype=np.float64) for n, a, _ in model._net.tensors()}
    dense = "layers.3" if seq else "layers.2"
    names = ["layers.1"] if merge is None else ["layers.1.forward", "layers.1.backward"]
    local = {name: {k[len(name) + 1:]: v for k, v in params.items() if k.startswith(name + ".") and k.count(".") ==
                    name.count(".") + 1} for name in names}
    merges = {"concat": lambda a, b: np.concatenate([a, b], axis=-1), "mul": lambda a, b: a * b}

    def loss(shifts):
        x64 = x.astype(np.float64)
        if merge is None:
            h = _run_masked_shifted(cell, x64, local[names[0]], seq, False, shifts[names[0]])
        else:
            fw = _run_masked_shifted(cell, x64, local[names[0]], seq, False, shifts[names[0]])
            bw = _run_masked_shifted(cell, x64, local[names[1]], seq, True, shifts[names[1]])
            if seq:  # back in time order, padded output steps zero (Keras' zero_output_for_mask)
                bw = bw[:, ::-1]
                fw, bw = fw * KEEP[:, :, None], bw * KEEP[:, :, None]
            h = merges[merge](fw, bw)
        h = h.reshape(BATCH, -1)
        return ref.loss("mse", h @ params[f"{dense}.weight"] + params[f"{dense}.bias"], y)

    got = fn.diagnostics.time_step_gradients(model, x, y.astype(np.float32))
    assert list(got) == names
    eps = 1e-6
    for name in names:
        grad = np.zeros((BATCH, T, H))
        for idx in np.ndindex(*grad.shape):
            shifts = {d: np.zeros_like(grad) for d in names}
            shifts[name][idx] = eps
            up = loss(shifts)
            shifts[name][idx] = -eps
            grad[idx] = (up - loss(shifts)) / (2 * eps)
        want = np.sqrt((grad ** 2).sum(axis=(0, 2)))
        assert got[name][T - 1] == 0.0 and np.all(want[:T - 1] > 0)
        np.testing.assert_allclose(got[name], want, rtol=2e-4, atol=1e-7, err_msg=name)
