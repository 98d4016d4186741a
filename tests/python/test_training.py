"""End-to-end learning on real data, reproducibility, and the fit API."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import ferronn as fn


def mlp(hidden, out, activation="relu", optimizer=None, loss="cross_entropy", metrics=("accuracy",)):
    model = fn.Sequential([fn.Dense(h, activation=activation) for h in hidden] + [fn.Dense(out)])
    model.compile(optimizer=optimizer or fn.optim.Adam(1e-3), loss=loss, metrics=list(metrics))
    return model


def test_xor_2_8_1_tanh_reaches_100_percent():
    X, y = fn.datasets.xor()
    model = mlp([8], 1, activation="tanh", optimizer=fn.optim.Adam(0.01), loss="bce")
    history = model.fit(X, y.astype(np.float32), epochs=2000, batch_size=4, seed=0, verbose=0)
    assert np.array_equal(model.predict(X), y)
    assert history.history["accuracy"][-1] == 1.0
    assert history.history["loss"][-1] < 0.05


def test_digits_test_accuracy_at_least_95_percent():
    X, y = fn.datasets.digits()
    (Xtr, ytr), (Xte, yte) = fn.datasets.train_test_split(X, y, test_size=0.2, seed=0)
    model = mlp([64], 10)
    history = model.fit(Xtr, ytr, epochs=20, batch_size=32, validation_data=(Xte, yte), seed=0, verbose=0)
    loss, acc = model.evaluate(Xte, yte)
    assert acc >= 0.95
    assert np.mean(model.predict(Xte) == yte) == pytest.approx(acc)
    assert history.history["val_accuracy"][-1] == pytest.approx(acc)
    assert history.history["loss"][-1] < history.history["loss"][0] / 5


def test_fashion_mnist_784_256_128_10_reaches_88_5_percent():
    (Xtr, ytr), (Xte, yte) = fn.datasets.fashion_mnist()
    # Standardising the pixels is the usual preprocessing for this benchmark.
    mean, std = Xtr.mean(), Xtr.std()
    Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
    model = mlp([256, 128], 10, optimizer=fn.optim.Adam(1e-3))
    model.fit(Xtr, ytr, epochs=10, batch_size=128, seed=0, verbose=0)
    _, acc = model.evaluate(Xte, yte)
    assert acc >= 0.885, f"test accuracy {acc:.4f}"


def _train_digits(threads, seed=3, batch_size=64):
    fn.set_num_threads(threads)
    X, y = fn.datasets.digits()
    model = mlp([128, 64], 10, activation="gelu")
    model.fit(X, y, epochs=3, batch_size=batch_size, seed=seed, verbose=0)
    model.train_step(X[:batch_size], y[:batch_size])
    return model.get_weights()


@pytest.mark.parametrize("batch_size", [64, 128])
def test_same_seed_same_weights_with_one_two_and_three_threads(batch_size):
    # The 128x64 layer's two backward products run at the same time on 2 and 3
    # threads (each on its share of them), and from batch 128 the forward pass
    # runs in row ranges, one per share: the bits stay those of one thread.
    one_a, one_b = _train_digits(1, batch_size=batch_size), _train_digits(1, batch_size=batch_size)
    two_a, two_b = _train_digits(2, batch_size=batch_size), _train_digits(2, batch_size=batch_size)
    three = _train_digits(3, batch_size=batch_size)
    for arrays in (one_b, two_a, two_b, three):
        assert all(np.array_equal(a, b) for a, b in zip(one_a, arrays))
    other = _train_digits(1, seed=4, batch_size=batch_size)
    assert not np.array_equal(one_a[0], other[0])


def test_second_fit_continues_training():
    X, y = fn.datasets.digits()
    model = mlp([32], 10)
    first = model.fit(X, y, epochs=2, batch_size=64, seed=0, verbose=0)
    second = model.fit(X, y, epochs=2, batch_size=64, seed=0, verbose=0)
    assert second.epoch == [2, 3]
    assert second.history["loss"][0] < first.history["loss"][0]
    # Two fits of 2 epochs equal one fit of 4 (same shuffles, same optimizer state).
    again = mlp([32], 10)
    again.fit(X, y, epochs=4, batch_size=64, seed=0, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))


def test_history_and_progress_output(capsys):
    X, y = fn.datasets.digits()
    model = mlp([16], 10)
    model.fit(X[:200], y[:200], epochs=2, verbose=0, seed=0)
    assert capsys.readouterr().err == ""
    h = model.fit(X[:200], y[:200], epochs=2, verbose=1, seed=0, validation_data=(X[200:300], y[200:300]))
    err = capsys.readouterr().err
    assert "epoch" in err and "loss" in err
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 2 for v in h.history.values())


def test_train_step_lowers_the_loss():
    X, y = fn.datasets.digits()
    model = mlp([32], 10, optimizer=fn.optim.SGD(0.1, momentum=0.9))
    model.build(64, seed=0)
    losses = [model.train_step(X[:128], y[:128]) for _ in range(30)]
    assert losses[-1] < losses[0] / 3
    assert model._net.optimizer_steps == 30


def test_mse_regression_fits_a_line():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5], dtype=np.float32) + 0.3
    model = fn.Sequential([fn.Dense(1)])
    model.compile(optimizer=fn.optim.Adam(0.05), loss="mse")
    model.fit(X, y, epochs=200, batch_size=32, seed=0, verbose=0)
    pred = model.predict(X)
    assert pred.shape == (256,)
    assert np.max(np.abs(pred - y)) < 1e-2
    W, b = model.get_weights()
    assert np.allclose(W.ravel(), [1.0, -2.0, 0.5], atol=1e-2) and abs(b[0] - 0.3) < 1e-2


def test_predict_proba_is_softmax_of_logits():
    X, y = fn.datasets.digits()
    model = mlp([16], 10)
    model.fit(X, y, epochs=1, verbose=0, seed=0)
    logits = model.predict_raw(X[:50]).astype(np.float64)
    expect = np.exp(logits - logits.max(1, keepdims=True))
    expect /= expect.sum(1, keepdims=True)
    assert np.allclose(model.predict_proba(X[:50]), expect, atol=1e-6)


def test_fit_releases_the_gil():
    (X, y) = fn.datasets.digits()
    X = np.repeat(X, 20, axis=0)
    y = np.repeat(y, 20)
    model = mlp([256, 256], 10)
    model.build(64, seed=0)
    done = threading.Event()
    ticks = 0

    def train():
        model.fit(X, y, epochs=1, batch_size=64, verbose=0, seed=0)
        done.set()

    worker = threading.Thread(target=train)
    start = time.perf_counter()
    worker.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - start
    # With the GIL held for the whole epoch this thread could not run at all.
    assert elapsed > 0.05 and ticks >= 10


def test_main_job_trains_and_saves(tmp_path):
    out = tmp_path / "model.safetensors"
    proc = subprocess.run(
        [sys.executable, "-m", "ferronn", "train", "--epochs", "5", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and str(out) in proc.stdout
    model = fn.load(out)
    X, y = fn.datasets.digits()
    assert model.evaluate(X, y)[1] > 0.9


def test_stubs_match_the_extension_module():
    proc = subprocess.run([sys.executable, "-m", "mypy.stubtest", "ferronn._core"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_package_type_checks():
    # pyproject.toml's [tool.mypy] names the package; optional third-party imports are Any
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], capture_output=True, text=True,
                          timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues found" in proc.stdout
