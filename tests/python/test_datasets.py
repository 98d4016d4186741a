"""Tests for ferronn.datasets: IDX files, embedded digits, Fashion-MNIST, toy data, splits."""

from __future__ import annotations

import gzip
import os
import struct
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

import ferronn as fn

ds = fn.datasets
errors = fn.errors

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# Class distribution of the UCI optdigits test portion (optdigits.tes), digits 0..9.
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def idx_bytes(code: int, shape, payload: bytes) -> bytes:
    """Build an IDX file by hand, independently of save_idx."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + payload


# ------------------------------------------------------------------------ load_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, dtype, shape, compress):
    rng = np.random.default_rng(1)
    a = (rng.normal(size=shape) * 100).astype(dtype)
    path = tmp_path / "a.idx"
    ds.save_idx(path, a, compress=compress)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == compress
    b = ds.load_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative
    assert b.shape == shape
    np.testing.assert_array_equal(a, b)
    b[...] = 0  # the result is an ordinary writable array
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_load_idx_detects_gzip_by_content_not_name(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw_named_gz = tmp_path / "raw.gz"
    gz_named_raw = tmp_path / "gzipped.idx"
    ds.save_idx(raw_named_gz, a, compress=False)
    ds.save_idx(gz_named_raw, a, compress=True)
    np.testing.assert_array_equal(ds.load_idx(raw_named_gz), a)
    np.testing.assert_array_equal(ds.load_idx(str(gz_named_raw)), a)


def test_load_idx_reads_big_endian_values(tmp_path):
    path = tmp_path / "be.idx"
    path.write_bytes(idx_bytes(0x0B, (3,), struct.pack(">3h", 1, -2, 300)))
    np.testing.assert_array_equal(ds.load_idx(path), np.array([1, -2, 300], np.int16))
    path.write_bytes(idx_bytes(0x0E, (2,), struct.pack(">2d", 0.5, -1e300)))
    np.testing.assert_array_equal(ds.load_idx(path), [0.5, -1e300])


def test_save_idx_writes_the_documented_header(tmp_path):
    path = tmp_path / "h.idx"
    ds.save_idx(path, np.zeros((2, 3), np.float32), compress=False)
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0D, 2])
    assert struct.unpack(">2I", raw[4:12]) == (2, 3)
    assert len(raw) == 12 + 6 * 4


def test_save_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(errors.DTypeError, match="int64"):
        ds.save_idx(tmp_path / "x.idx", np.zeros(3, np.int64))


@pytest.mark.parametrize(
    "raw, message",
    [
        (idx_bytes(0x08, (2, 3), bytes(5)), "truncated data"),
        (idx_bytes(0x08, (2, 3), bytes(7)), "trailing bytes"),
        (idx_bytes(0x0C, (4,), bytes(15)), "truncated data"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (idx_bytes(0x0A, (1,), bytes(1)), "dtype code 0x0A"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">I", 5), "truncated header"),
        (b"\x00\x00", "too short"),
        (b"", "too short"),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_rejects_corrupt_files(tmp_path, raw, message, compress):
    path = tmp_path / "bad.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(errors.DataFormatError, match=message) as info:
        ds.load_idx(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_load_idx_rejects_truncated_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    ds.save_idx(path, np.arange(1000, dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(errors.DataFormatError, match="gzip"):
        ds.load_idx(path)


def test_load_idx_missing_file(tmp_path):
    path = tmp_path / "nope-idx3-ubyte.gz"
    with pytest.raises(errors.DatasetNotFoundError, match="nope-idx3-ubyte.gz") as info:
        ds.load_idx(path)
    assert isinstance(info.value, FileNotFoundError)


# -------------------------------------------------------------------------- digits


def test_digits_shape_dtype_range():
    X, y = ds.digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    # Pixels are block counts 0..16, so 16*X is a whole number.
    np.testing.assert_array_equal(X * 16, np.round(X * 16))
    assert set(np.unique(y)) == set(range(10))
    counts = np.bincount(y, minlength=10)
    assert all(170 <= c <= 190 for c in counts)
    assert counts.tolist() == DIGITS_CLASS_COUNTS


def test_digits_images_match_flat():
    X, y = ds.digits()
    images, y2 = ds.digits(return_images=True)
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    np.testing.assert_array_equal(images.reshape(1797, 64), X)
    np.testing.assert_array_equal(y, y2)


def test_digits_look_like_digits():
    images, y = ds.digits(return_images=True)
    # Every sample is drawn ink, and the outer columns hold far less ink than the middle.
    assert (images.reshape(1797, -1).sum(axis=1) > 0).all()
    assert images[:, :, 0].mean() < 0.5 * images[:, :, 3:5].mean()
    # A "1" is a thin stroke: less ink on average than an "8" or a "0".
    ink = images.reshape(1797, -1).sum(axis=1)
    assert ink[y == 1].mean() < ink[y == 8].mean()
    assert ink[y == 1].mean() < ink[y == 0].mean()


def test_digits_files_round_trip_exactly(tmp_path):
    data = files("ferronn") / "data"
    for name, shape in [
        ("digits-images-idx3-ubyte.gz", (1797, 8, 8)),
        ("digits-labels-idx1-ubyte.gz", (1797,)),
    ]:
        original = (data / name).read_bytes()
        # Parse the header by hand, independently of load_idx.
        raw = gzip.decompress(original)
        assert raw[:4] == bytes([0, 0, 0x08, len(shape)])
        assert struct.unpack(f">{len(shape)}I", raw[4 : 4 + 4 * len(shape)]) == shape
        body = np.frombuffer(raw, np.uint8, offset=4 + 4 * len(shape)).reshape(shape)
        (tmp_path / name).write_bytes(original)
        loaded = ds.load_idx(tmp_path / name)
        np.testing.assert_array_equal(loaded, body)
        ds.save_idx(tmp_path / ("copy-" + name), loaded)
        assert (tmp_path / ("copy-" + name)).read_bytes() == original


# ------------------------------------------------------------------- fashion_mnist


def write_fake_fashion(root: Path, n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        ds.save_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        ds.save_idx(root / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


def test_fashion_mnist_from_path(tmp_path):
    write_fake_fashion(tmp_path)
    (Xtr, ytr), (Xte, yte) = ds.fashion_mnist(path=tmp_path)
    assert Xtr.shape == (12, 784) and Xte.shape == (5, 784)
    assert Xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert 0.0 <= Xtr.min() and Xtr.max() <= 1.0
    raw = ds.load_idx(tmp_path / "train-images-idx3-ubyte.gz")
    np.testing.assert_allclose(Xtr, raw.reshape(12, 784) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(yte, np.arange(5) % 10)
    Xt, yt = ds.fashion_mnist(path=str(tmp_path), kind="test")
    np.testing.assert_array_equal(Xt, Xte)
    Xr, yr = ds.fashion_mnist(path=tmp_path, kind="train")
    np.testing.assert_array_equal(yr, ytr)


def test_fashion_mnist_missing_directory(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(errors.DatasetNotFoundError) as info:
        ds.fashion_mnist(path=missing)
    message = str(info.value)
    assert str(missing) in message
    assert "dataset-fashion-mnist" in message and "path=" in message
    assert isinstance(info.value, FileNotFoundError)


def test_fashion_mnist_missing_file(tmp_path):
    write_fake_fashion(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(errors.DatasetNotFoundError, match="t10k-labels-idx1-ubyte.gz") as info:
        ds.fashion_mnist(path=tmp_path)
    assert "dataset-fashion-mnist" in str(info.value)


def test_fashion_mnist_mismatched_counts(tmp_path):
    write_fake_fashion(tmp_path)
    ds.save_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(errors.DataFormatError, match="labels"):
        ds.fashion_mnist(path=tmp_path)


def test_fashion_mnist_bad_kind(tmp_path):
    with pytest.raises(errors.ConfigError, match="kind"):
        ds.fashion_mnist(path=tmp_path, kind="validation")


def test_fashion_mnist_class_names():
    assert len(ds.FASHION_MNIST_CLASSES) == 10
    assert ds.FASHION_MNIST_CLASSES[0] == "T-shirt/top"
    assert ds.FASHION_MNIST_CLASSES[9] == "Ankle boot"


def test_fashion_mnist_real_files():
    (Xtr, ytr), (Xte, yte) = ds.fashion_mnist()
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert Xtr.dtype == np.float32 and yte.dtype == np.int64
    assert Xtr.min() == 0.0 and Xtr.max() == 1.0
    assert np.bincount(ytr).tolist() == [6000] * 10
    assert np.bincount(yte).tolist() == [1000] * 10


# ------------------------------------------------------------------ synthetic data


def test_xor():
    X, y = ds.xor()
    assert X.shape == (4, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert set(X.ravel().tolist()) == {0.0, 1.0}
    assert len({tuple(r) for r in X.tolist()}) == 4
    np.testing.assert_array_equal(y, X[:, 0].astype(np.int64) ^ X[:, 1].astype(np.int64))


@pytest.mark.parametrize("make, kwargs, classes", [
    (ds.spirals, {}, 2),
    (ds.spirals, {"classes": 3}, 3),
    (ds.moons, {}, 2),
])
def test_toy_data_shape_balance_and_seed(make, kwargs, classes):
    X, y = make(n=50, **kwargs)
    assert X.shape == (50 * classes, 2) and X.dtype == np.float32
    assert y.shape == (50 * classes,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [50] * classes
    assert np.isfinite(X).all()
    X2, y2 = make(n=50, seed=0, **kwargs)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(n=50, seed=1, **kwargs)
    assert not np.array_equal(X, X3)


def test_noise_is_the_gaussian_std():
    X0, _ = ds.moons(n=2000, noise=0.0)
    X1, _ = ds.moons(n=2000, noise=0.3, seed=5)
    assert abs(np.std(X1 - X0) - 0.3) < 0.01
    S0, _ = ds.spirals(n=2000, noise=0.0)
    S1, _ = ds.spirals(n=2000, noise=0.2, seed=5)
    assert abs(np.std(S1 - S0) - 0.2) < 0.01


def test_noiseless_shapes():
    X, y = ds.moons(n=100, noise=0.0)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-6)
    S, c = ds.spirals(n=100, noise=0.0, classes=2)
    radius = np.hypot(*S.T)
    assert radius.max() == pytest.approx(1.0, abs=1e-6)
    # Arm 1 is arm 0 turned half a circle.
    np.testing.assert_allclose(S[c == 1], -S[c == 0], atol=1e-6)


@pytest.mark.parametrize("call", [
    lambda: ds.spirals(n=0),
    lambda: ds.spirals(classes=1),
    lambda: ds.spirals(noise=-0.1),
    lambda: ds.moons(n=2.5),
    lambda: ds.moons(noise=float("nan")),
])
def test_toy_data_bad_arguments(call):
    with pytest.raises(errors.ConfigError):
        call()


# ---------------------------------------------------------------- train_test_split


def traceable(n=100, classes=4):
    X = np.arange(n, dtype=np.float64).reshape(n, 1)
    y = np.arange(n) % classes
    return X, y


def test_split_sizes_disjoint_complete():
    X, y = traceable()
    (Xa, ya), (Xb, yb) = ds.train_test_split(X, y, test_size=0.25)
    assert len(Xa) == len(ya) == 75 and len(Xb) == len(yb) == 25
    rows_a, rows_b = Xa[:, 0].astype(int), Xb[:, 0].astype(int)
    assert not set(rows_a) & set(rows_b)
    assert sorted(np.concatenate([rows_a, rows_b])) == list(range(100))
    # Each label still belongs to its row.
    np.testing.assert_array_equal(ya, rows_a % 4)
    np.testing.assert_array_equal(yb, rows_b % 4)
    assert not np.array_equal(rows_a, np.sort(rows_a))  # shuffled


def test_split_sizes_int_and_rounding():
    X, y = traceable(10)
    assert len(ds.train_test_split(X, y, test_size=3)[1][0]) == 3
    assert len(ds.train_test_split(X, y, test_size=0.21)[1][0]) == 3  # rounded up
    X100, y100 = traceable(100)
    # 0.07 * 100 is 7.000000000000001 in floats; that is still 7 samples.
    assert len(ds.train_test_split(X100, y100, test_size=0.07)[1][0]) == 7
    assert len(ds.train_test_split(X, y, test_size=np.int64(9))[1][0]) == 9


def test_split_reproducible_by_seed():
    X, y = traceable()
    a = ds.train_test_split(X, y, seed=3)
    b = ds.train_test_split(X, y, seed=3)
    c = ds.train_test_split(X, y, seed=4)
    np.testing.assert_array_equal(a[1][0], b[1][0])
    np.testing.assert_array_equal(a[0][0], b[0][0])
    assert not np.array_equal(a[1][0], c[1][0])


def test_split_without_shuffle_takes_the_tail():
    X, y = traceable(10)
    (Xa, _), (Xb, _) = ds.train_test_split(X, y, test_size=0.3, shuffle=False)
    np.testing.assert_array_equal(Xa[:, 0], np.arange(7))
    np.testing.assert_array_equal(Xb[:, 0], np.arange(7, 10))


def test_split_stratified_keeps_proportions():
    X = np.arange(200, dtype=np.float32).reshape(100, 2)
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    (Xa, ya), (Xb, yb) = ds.train_test_split(X, y, test_size=0.2, stratify=True, seed=7)
    assert np.bincount(yb).tolist() == [12, 6, 2]
    assert np.bincount(ya).tolist() == [48, 24, 8]
    rows = np.concatenate([Xa[:, 0], Xb[:, 0]]) // 2
    assert sorted(rows.astype(int)) == list(range(100))
    np.testing.assert_array_equal(yb, y[(Xb[:, 0] // 2).astype(int)])
    # Not left grouped by class.
    assert not np.array_equal(ya, np.sort(ya))


def test_split_stratified_uneven_counts_sum_to_test_size():
    y = np.array([0] * 7 + [1] * 5 + [2] * 3)
    X = np.arange(len(y))
    (Xa, ya), (Xb, yb) = ds.train_test_split(X, y, test_size=4, stratify=True)
    assert len(yb) == 4 and len(ya) == 11
    assert sorted(np.concatenate([Xa, Xb]).tolist()) == list(range(15))
    # 4 * (7, 5, 3) / 15 = (1.87, 1.33, 0.8): largest remainders get the extra sample.
    assert np.bincount(yb, minlength=3).tolist() == [2, 1, 1]


def test_split_accepts_lists_and_2d_targets():
    (Xa, ya), (Xb, yb) = ds.train_test_split([[1], [2], [3], [4]], [[1, 0]] * 4, test_size=1)
    assert Xa.shape == (3, 1) and yb.shape == (1, 2)


def test_split_length_mismatch():
    with pytest.raises(errors.ShapeError, match="10.*9"):
        ds.train_test_split(np.zeros((10, 2)), np.zeros(9))


@pytest.mark.parametrize("test_size", [0, 0.0, 1.0, 1.5, -0.2, 10, 11, "0.2", True])
def test_split_bad_test_size(test_size):
    X, y = traceable(10)
    with pytest.raises(errors.ConfigError, match="test_size"):
        ds.train_test_split(X, y, test_size=test_size)


def test_split_leaving_empty_train_side():
    X, y = traceable(10)
    with pytest.raises(errors.ConfigError, match="non-empty"):
        ds.train_test_split(X, y, test_size=0.95)  # ceil(9.5) = 10 of 10 samples


def test_split_too_few_samples():
    with pytest.raises(errors.ConfigError, match="at least 2"):
        ds.train_test_split(np.zeros((1, 3)), np.zeros(1), test_size=0.5)
    with pytest.raises(errors.EmptyInputError):
        ds.train_test_split(np.zeros((0, 3)), np.zeros(0))


def test_split_stratify_needs_1d_labels():
    with pytest.raises(errors.ShapeError, match="1-D"):
        ds.train_test_split(np.zeros((4, 1)), np.zeros((4, 2)), test_size=1, stratify=True)
