"""Callbacks: the hooks fit calls, EarlyStopping, ModelCheckpoint, CSVLogger,
ReduceLROnPlateau, LambdaCallback, the progress bar."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import ferronn as fn
from ferronn import callbacks as C
from ferronn.errors import ConfigError


def noisy_blobs(seed=0, n_train=30, n_val=150, d=10, k=3, flip=0.3):
    """Few training samples with many wrong labels, clean validation data: the
    validation loss falls while the signal is learnt, then rises as the noise is."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = np.arange(n) % k
        return (rng.normal(size=(n, d)) + 1.2 * np.eye(k, d)[y]).astype(np.float32), y

    (x, y), val = draw(n_train), draw(n_val)
    wrong = rng.random(n_train) < flip
    y = np.where(wrong, (y + 1 + rng.integers(0, k - 1, n_train)) % k, y)
    return x, y, val


def overfitter(seed=0):
    model = fn.Sequential([fn.Dense(64, activation="relu"), fn.BatchNorm(), fn.Dense(3)], seed=seed)
    model.compile(optimizer=fn.optim.Adam(3e-3), loss="cross_entropy", metrics=["accuracy"])
    return model


def recorder(model, store):
    """Records every tensor (BatchNorm's running statistics included) at each epoch end."""
    return C.LambdaCallback(on_epoch_end=lambda e, logs: store.append((e, logs["val_loss"], model.get_weights())))


def assert_weights(actual, expected):
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)


def test_hooks_run_in_order_with_the_documented_logs():
    x, y, _ = noisy_blobs()
    events = []
    cb = C.LambdaCallback(on_train_begin=lambda logs: events.append("train_begin"),
                          on_epoch_begin=lambda e, logs: events.append(f"epoch_begin {e}"),
                          on_batch_end=lambda b, logs: events.append("batch"),
                          on_epoch_end=lambda e, logs: events.append(f"epoch_end {e} {sorted(logs)}"),
                          on_train_end=lambda logs: events.append("train_end"))
    model = overfitter()
    model.fit(x, y, epochs=2, batch_size=8, seed=0, verbose=0, callbacks=[cb])
    compact = [e for i, e in enumerate(events) if e != "batch" or events[i - 1] != "batch"]
    keys = "['accuracy', 'loss', 'lr']"
    assert compact == ["train_begin", "epoch_begin 0", "batch", f"epoch_end 0 {keys}",
                       "epoch_begin 1", "batch", f"epoch_end 1 {keys}", "train_end"]
    assert cb.model is model and cb.params["epochs"] == 2 and cb.params["steps"] == 4


def test_early_stopping_restores_the_best_epoch_weights_and_buffers():
    x, y, val = noisy_blobs()
    model = overfitter()
    seen = []
    stop = C.EarlyStopping(monitor="val_loss", patience=4, restore_best_weights=True)
    h = model.fit(x, y, epochs=200, batch_size=8, validation_data=val, seed=0, verbose=0,
                  callbacks=[stop, recorder(model, seen)])
    losses = [v for _, v, _ in seen]
    best = int(np.argmin(losses))
    assert 0 < best and len(seen) == best + 5 < 200, "training must stop 4 epochs after the best one"
    assert stop.best_epoch == best and stop.stopped_epoch == len(seen) - 1
    assert h.epoch == list(range(len(seen)))
    assert_weights(model.get_weights(), seen[best][2])
    # The last epoch's weights (and BatchNorm statistics) differ: restoring did something.
    assert not np.array_equal(seen[-1][2][-3], seen[best][2][-3])  # running_var of BatchNorm
    assert model.evaluate(*val)[0] == pytest.approx(losses[best], rel=1e-5)


def test_early_stopping_follows_keras_rules():
    class Stub:
        stop_training = False

    def run(values, **kw):
        cb = C.EarlyStopping(monitor="m", **kw)
        stub = Stub()
        cb.set_model(stub)
        cb.on_train_begin()
        for epoch, v in enumerate(values):
            cb.on_epoch_end(epoch, {"m": v})
            if stub.stop_training:
                return epoch
        return None

    assert run([5, 4, 4, 4]) == 2  # patience 0: the first epoch without improvement stops
    assert run([5, 4, 4, 4, 3, 3, 3], patience=2) == 3
    assert run([5, 4.95, 4.9, 4.85], min_delta=0.1, patience=2) == 2  # gains below min_delta don't count
    assert run([5, 4.95, 4.9, 4.85], patience=2) is None
    assert run([1, 2, 3, 2], mode="max") == 3
    assert run([5, 5, 5, 4, 4], start_from_epoch=3) == 4  # epochs 0-2 ignored
    # An epoch that does not beat the baseline does not reset the patience counter.
    assert run([5, 6, 6, 6], baseline=1.0, patience=2) == 1
    assert run([5, 6, 6, 6], baseline=10.0, patience=2) == 2
    assert run([5, 6, 6, 6], patience=2) == 2
    cb = C.EarlyStopping(monitor="val_accuracy")
    assert cb.maximize and not C.EarlyStopping(monitor="val_loss").maximize
    with pytest.raises(ConfigError, match="mode"):
        C.EarlyStopping(mode="up")
    with pytest.raises(ConfigError, match="patience"):
        C.EarlyStopping(patience=-1)


def test_model_checkpoint_best_only_holds_the_best_epoch(tmp_path):
    x, y, val = noisy_blobs(seed=1)
    model = overfitter()
    seen = []
    path = tmp_path / "best.fnn"
    ckpt = C.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    every = C.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.fnn"))
    model.fit(x, y, epochs=25, batch_size=8, validation_data=val, seed=0, verbose=0,
              callbacks=[ckpt, every, recorder(model, seen)])
    losses = [v for _, v, _ in seen]
    best = int(np.argmin(losses))
    assert best < len(seen) - 1, "the data must make the last epoch worse than the best"
    assert ckpt.best == losses[best]
    loaded = fn.load(path)
    assert_weights(loaded.get_weights(), seen[best][2])
    assert loaded._epochs_trained == best + 1
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("m-"))
    assert names == [f"m-{e + 1:02d}-{v:.2f}.fnn" for e, v in enumerate(losses)]
    assert_weights(fn.load(tmp_path / names[-1]).get_weights(), model.get_weights())


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    x, y, val = noisy_blobs()
    path = tmp_path / "log.csv"
    model = overfitter()
    h = model.fit(x, y, epochs=3, validation_data=val, seed=0, verbose=0, callbacks=[C.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "lr", "val_accuracy", "val_loss"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    for i, row in enumerate(rows[1:]):
        assert [float(v) for v in row[1:]] == [h.history[k][i] for k in rows[0][1:]]
    # append: no second header; separator
    model.fit(x, y, epochs=2, validation_data=val, seed=0, verbose=0, callbacks=[C.CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("epoch,") and lines[4].startswith("3,")
    h = model.fit(x, y, epochs=1, seed=0, verbose=0, callbacks=[C.CSVLogger(path, separator=";")])
    lines = path.read_text().splitlines()  # rewritten (append=False)
    row = ";".join(["5"] + [repr(h.history[k][0]) for k in ("accuracy", "loss", "lr")])
    assert lines == ["epoch;accuracy;loss;lr", row]


def test_reduce_lr_on_plateau_lowers_the_rate_after_patience():
    x, y, _ = noisy_blobs()
    model = fn.Sequential([fn.Dense(3)], seed=0)
    model.compile(optimizer=fn.optim.SGD(1e-9), loss="cross_entropy")  # the loss stays flat
    plateau = C.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)
    h = model.fit(x, y, epochs=6, batch_size=8, seed=0, verbose=0, callbacks=[plateau])
    # epoch 0 sets the best; epochs 1, 2 wait; the rate halves after 2 and again after 4.
    assert h.history["lr"] == pytest.approx([1e-9, 1e-9, 1e-9, 5e-10, 5e-10, 2.5e-10], rel=1e-5)
    assert model._net.current_lr == pytest.approx(2.5e-10, rel=1e-5)
    assert model._net.lr == pytest.approx(1e-9) and model._net.lr_scale == pytest.approx(0.25)
    # min_lr bounds it; cooldown pauses the counting.
    model = fn.Sequential([fn.Dense(3)], seed=0)
    model.compile(optimizer=fn.optim.SGD(1e-9), loss="cross_entropy")
    plateau = C.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, cooldown=2, min_lr=3e-10)
    h = model.fit(x, y, epochs=8, batch_size=8, seed=0, verbose=0, callbacks=[plateau])
    # epoch 1 waits 1 = patience: halve; epochs 2, 3 cool down (2 counts as cooldown, 3 waits); at 3 the
    # rate would halve to 2.5e-10 but stops at min_lr; after that it cannot go lower.
    assert h.history["lr"] == pytest.approx([1e-9, 1e-9, 5e-10, 5e-10, 3e-10, 3e-10, 3e-10, 3e-10], rel=1e-5)
    with pytest.raises(ConfigError, match="factor"):
        C.ReduceLROnPlateau(factor=1.0)


def test_reduce_lr_on_plateau_leaves_an_improving_run_alone():
    x, y, val = noisy_blobs()
    model = overfitter()
    h = model.fit(x, y, epochs=4, seed=0, verbose=0, callbacks=[C.ReduceLROnPlateau(monitor="loss", patience=1)])
    assert h.history["loss"] == sorted(h.history["loss"], reverse=True)
    assert h.history["lr"] == pytest.approx([3e-3] * 4)


def test_missing_monitor_warns_once():
    x, y, _ = noisy_blobs()
    model = overfitter()
    with pytest.warns(RuntimeWarning, match=r"monitors 'val_loss'.*not in the logs") as rec:
        model.fit(x, y, epochs=3, seed=0, verbose=0, callbacks=[C.EarlyStopping()])
    assert sum("val_loss" in str(w.message) for w in rec) == 1


def test_progress_bar(capsys):
    x, y, _ = noisy_blobs()
    model = overfitter()
    model.fit(x, y, epochs=2, seed=0, verbose=0)
    assert capsys.readouterr().err == ""
    model.fit(x, y, epochs=2, seed=0, verbose=0, callbacks=[C.ProgressBar()])
    err = capsys.readouterr().err
    assert "2/2" in err and "epoch" in err and "loss" in err


def test_terminate_on_nan_is_not_duplicated_and_exports():
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    model = fn.Sequential([fn.Dense(1)], seed=0)
    model.compile(optimizer=fn.optim.SGD(1e6), loss="mse")
    mine = C.TerminateOnNaN()
    with pytest.warns(RuntimeWarning, match="non-finite") as rec:
        model.fit(x, x.sum(axis=1), epochs=100, batch_size=16, seed=0, verbose=0, callbacks=[mine])
    assert sum("non-finite" in str(w.message) for w in rec) == 1  # one TerminateOnNaN, the user's
    assert mine.model is model and mine.stopped is not None
    assert f"epoch {mine.stopped[0]}, batch {mine.stopped[1]}" in str(rec[0].message)
    assert fn.History is C.History and fn.callbacks is C and fn.metrics.accuracy([1], [1]) == 1.0
