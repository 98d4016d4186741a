"""One model shared by many Python threads: inference runs concurrently and in
parallel with bit-identical results; training calls serialise; a predict during
a fit sees the weights between two of its core calls; a huge output raises
AllocationError instead of aborting."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np
import pytest

import ferronn as fn
from ferronn.errors import AllocationError


def _data(n: int = 256, d: int = 20, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, :k].argmax(axis=1)).astype(np.int64)


def _model(seed: int = 0, d: int = 20) -> fn.Sequential:
    model = fn.Sequential([fn.Dense(32, activation="relu"), fn.BatchNorm(), fn.Dropout(0.2), fn.Dense(4)],
                          input_dim=d, seed=seed)
    model.compile(optimizer=fn.optim.Adam(1e-2), loss="cross_entropy", metrics=["accuracy"])
    return model


def _in_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs ``work(i)`` in ``n`` threads started together; re-raises the first error."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_predict_raw_from_8_threads_is_bit_identical() -> None:
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    want = model.predict_raw(x[:16])

    def work(i: int) -> int:
        bad = 0
        for _ in range(200):
            bad += not np.array_equal(model.predict_raw(x[:16]), want)
        return bad

    assert _in_threads(8, work) == [0] * 8


def test_large_batch_predict_in_row_ranges_from_4_threads_is_bit_identical() -> None:
    """A batch of >= 256 rows through Dense layers runs as one row range per pool
    thread (src/infer.rs): from 4 Python threads at once, on 2 threads, every
    result has the bits of a one-thread predict."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 64)).astype(np.float32)
    model = fn.Sequential([fn.Dense(96, activation="gelu"), fn.Dense(37, activation="tanh"), fn.Dense(5)],
                          input_dim=64, seed=2)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    before = fn.get_num_threads()
    try:
        fn.set_num_threads(1)
        want = model.predict_raw(x)
        fn.set_num_threads(2)

        def work(i: int) -> int:
            return sum(not np.array_equal(model.predict_raw(x), want) for _ in range(40))

        assert _in_threads(4, work) == [0] * 4
    finally:
        fn.set_num_threads(before)


def test_small_batch_predict_with_the_helper_from_4_threads_is_bit_identical() -> None:
    """Batches of 2-64 rows of a large Dense model share work with the helper
    thread (by columns below 16 rows, by rows from 16 on): from 4 Python threads
    at once, on 2 threads, every result has the bits of a one-thread predict."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 784)).astype(np.float32)
    model = fn.Sequential([fn.Dense(256, activation="relu"), fn.Dense(128, activation="relu"), fn.Dense(10)],
                          input_dim=784, seed=1)
    model.compile(optimizer=fn.optim.Adam(1e-3), loss="cross_entropy")
    sizes = [8, 16, 31, 64]
    before = fn.get_num_threads()
    try:
        fn.set_num_threads(1)
        want = [model.predict_raw(x[:b]) for b in sizes]
        fn.set_num_threads(2)

        def work(i: int) -> int:
            return sum(not np.array_equal(model.predict_raw(x[:b]), w) for _ in range(50) for b, w in zip(sizes, want))

        assert _in_threads(4, work) == [0] * 4
    finally:
        fn.set_num_threads(before)


def test_proba_evaluate_and_call_concurrently() -> None:
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.eval()
    want = (model.predict_proba(x), model.evaluate(x, y), model(x), model.predict(x))

    def work(i: int) -> None:
        for _ in range(20):
            got = (model.predict_proba(x), model.evaluate(x, y), model(x), model.predict(x))
            assert np.array_equal(got[0], want[0]) and got[1] == want[1]
            assert np.array_equal(got[2], want[2]) and np.array_equal(got[3], want[3])

    _in_threads(6, work)
    assert model.training is False


def test_fit_while_others_predict_save_and_read(tmp_path: Any) -> None:
    x, y = _data(n=512)
    alone = _model(seed=5)
    alone.fit(x, y, epochs=4, batch_size=16, seed=1, verbose=0)
    model = _model(seed=5)
    start = model.predict_raw(x[:8])
    done = threading.Event()
    seen: list[np.ndarray] = []

    def reader(i: int) -> None:
        while not done.is_set():
            seen.append(model.predict_raw(x[:8]))
            model.get_weights()
            model.evaluate(x[:64], y[:64])
            if i == 0:
                model.save(tmp_path / "during.safetensors")
            time.sleep(0.001)

    def work(i: int) -> None:
        if i == 0:
            try:
                model.fit(x, y, epochs=4, batch_size=16, seed=1, verbose=0)
            finally:
                done.set()
        else:
            reader(i - 1)

    _in_threads(4, work)
    end = model.predict_raw(x[:8])
    # Trained alone or among readers: the same weights, bit for bit.
    for a, b in zip(model.get_weights(), alone.get_weights()):
        assert np.array_equal(a, b)
    assert np.array_equal(end, alone.predict_raw(x[:8]))
    assert seen and all(np.isfinite(s).all() and s.shape == (8, 4) for s in seen)
    assert not np.array_equal(start, end)
    assert fn.load(tmp_path / "during.safetensors").predict_raw(x[:8]).shape == (8, 4)


def test_train_step_from_4_threads_serialises() -> None:
    x, y = _data()
    model = _model()
    k = 25

    def work(i: int) -> None:
        for j in range(k):
            rows = slice(16 * ((i * k + j) % 16), 16 * ((i * k + j) % 16) + 16)
            assert np.isfinite(model.train_step(x[rows], y[rows]))

    _in_threads(4, work)
    assert model._net.optimizer_steps == 4 * k


def test_set_weights_during_fit_is_all_or_nothing() -> None:
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    weights = [w * 0 + 0.5 for w in model.get_weights()]

    def work(i: int) -> None:
        if i == 0:
            model.fit(x, y, epochs=3, batch_size=8, verbose=0)
        else:
            model.set_weights(weights)

    _in_threads(2, work)
    got = model.get_weights()
    assert all(np.isfinite(w).all() for w in got) and len(got) == len(weights)


def test_huge_predict_output_raises_allocation_error_and_model_still_works() -> None:
    model = fn.Sequential([fn.Dense(10**6)], input_dim=1, seed=0)
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((10**5, 1), np.float32)  # the output would be 10**11 floats: 400 GB
    t = time.perf_counter()
    with pytest.raises(AllocationError):
        model.predict_raw(x)
    with pytest.raises(MemoryError):
        model(x)
    assert time.perf_counter() - t < 5
    assert model.predict_raw(x[:2]).shape == (2, 10**6)


def test_one_sample_predict_with_the_helper_thread_is_bit_identical() -> None:
    """A one-sample predict shares its wide products with ferronn's helper thread
    when two threads are allowed; the outputs are the one-thread bits, also from
    8 Python threads at once (one of them uses the helper, the others do all the work)."""
    rng = np.random.default_rng(5)
    model = fn.Sequential([fn.Dense(256, activation="relu"), fn.Dense(128, activation="relu"), fn.Dense(10)],
                          input_dim=784, seed=1)
    model.compile(optimizer="adam", loss="cross_entropy")
    rows = rng.normal(size=(8, 784)).astype(np.float32)
    fn.set_num_threads(1)
    want = [model.predict_raw(rows[i:i + 1]) for i in range(8)]
    fn.set_num_threads(2)
    assert all(np.array_equal(model.predict_raw(rows[i:i + 1]), want[i]) for i in range(8))

    def work(i: int) -> int:
        return sum(not np.array_equal(model.predict_raw(rows[i:i + 1]), want[i]) for _ in range(300))

    assert _in_threads(8, work) == [0] * 8
    # The one-sample path agrees with the batch path to rounding (different summation order).
    np.testing.assert_allclose(np.concatenate(want), model.predict_raw(rows), rtol=1e-5, atol=1e-5)


def test_one_image_cnn_predict_with_the_helper_thread_is_bit_identical() -> None:
    """A one-image CNN predict with two threads allowed (the helper thread is woken,
    its Dense may share columns) gives the one-thread bits, also from 4 Python
    threads at once."""
    rng = np.random.default_rng(6)
    model = fn.Sequential([fn.Conv2D(16, 3, padding="same", activation="relu"), fn.MaxPool2D(2),
                           fn.Conv2D(32, 3, padding="same", activation="relu"), fn.MaxPool2D(2), fn.Flatten(),
                           fn.Dense(10)], input_shape=(28, 28, 1), seed=2)
    model.compile(optimizer="adam", loss="cross_entropy")
    images = rng.random((4, 28, 28, 1), dtype=np.float32)
    fn.set_num_threads(1)
    want = [model.predict_raw(images[i:i + 1]) for i in range(4)]
    fn.set_num_threads(2)

    def work(i: int) -> int:
        return sum(not np.array_equal(model.predict_raw(images[i:i + 1]), want[i]) for _ in range(100))

    assert work(0) == 0
    assert _in_threads(4, work) == [0] * 4
