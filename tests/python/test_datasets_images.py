"""Image-shaped datasets: digits and Fashion-MNIST as [N, H, W, 1], the CIFAR-10 binary
reader (on small files written here in that exact format) and Keras' load_data forms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ferronn as fn
from ferronn import datasets as ds, errors
from ferronn import keras

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def test_digits_as_images():
    flat, y = ds.digits()
    images, y2 = ds.digits(images=True)
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images.reshape(1797, 64), flat)
    np.testing.assert_array_equal(y, y2)


def _write_fashion(root: Path, n_train=6, n_test=3):
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        ds.save_idx(root / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        ds.save_idx(root / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))


def test_fashion_mnist_as_images_and_in_keras_format(tmp_path):
    _write_fashion(tmp_path)
    (x_img, y_img), _ = ds.fashion_mnist(tmp_path, images=True)
    (x_flat, _), _ = ds.fashion_mnist(tmp_path)
    assert x_img.shape == (6, 28, 28, 1) and x_img.dtype == np.float32
    np.testing.assert_array_equal(x_img.reshape(6, -1), x_flat)
    (xk, yk), (xt, yt) = keras.datasets.fashion_mnist.load_data(path=tmp_path)
    assert xk.dtype == np.uint8 and xk.shape == (6, 28, 28) and yk.dtype == np.uint8 and yk.shape == (6,)
    np.testing.assert_array_equal(xk, ds.load_idx(tmp_path / "train-images-idx3-ubyte.gz"))
    assert xt.shape == (3, 28, 28) and yt.tolist() == [0, 1, 2]


def test_keras_fashion_mnist_names_the_debian_package_when_absent(tmp_path):
    with pytest.raises(errors.DatasetNotFoundError, match="dataset-fashion-mnist"):
        keras.datasets.fashion_mnist.load_data(path=tmp_path / "missing")


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="needs the Debian package dataset-fashion-mnist")
def test_keras_fashion_mnist_from_the_debian_files():
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == y_train.dtype == np.uint8 and y_test.shape == (10000,)
    assert sorted(np.unique(y_train).tolist()) == list(range(10))


# ------------------------------------------------------------------ CIFAR-10

def _cifar_record(label: int, image: np.ndarray) -> bytes:
    """One record as the format defines it: the label byte, then the red, green and blue
    planes, each 32 rows of 32 bytes (written out plane by plane, row by row)."""
    out = bytearray([label])
    for channel in range(3):
        for row in range(32):
            out += bytes(int(v) for v in image[row, :, channel])
    return bytes(out)


def _write_cifar(root: Path, per_file=2):
    rng = np.random.default_rng(2)
    expected = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        images = rng.integers(0, 256, (per_file, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, per_file).astype(np.uint8)
        (root / name).write_bytes(b"".join(_cifar_record(int(l), im) for l, im in zip(labels, images)))
        expected[name] = (images, labels)
    return expected


def test_load_cifar10_reads_the_binary_format(tmp_path):
    expected = _write_cifar(tmp_path)
    (x_train, y_train), (x_test, y_test) = ds.load_cifar10(tmp_path)
    assert x_train.shape == (10, 32, 32, 3) and x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    train_images = np.concatenate([expected[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(x_train, train_images)
    np.testing.assert_array_equal(y_train, np.concatenate([expected[f"data_batch_{i}.bin"][1] for i in range(1, 6)]))
    np.testing.assert_array_equal(x_test, expected["test_batch.bin"][0])
    np.testing.assert_array_equal(y_test, expected["test_batch.bin"][1])
    (kx, ky), (_, kyt) = keras.datasets.cifar10.load_data(path=tmp_path)
    np.testing.assert_array_equal(kx, x_train)
    assert ky.shape == (10, 1) and kyt.shape == (2, 1)  # Keras' label shape
    assert len(ds.CIFAR10_CLASSES) == 10


def test_cifar10_truncated_file_names_file_and_record(tmp_path):
    _write_cifar(tmp_path)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:3073 + 100])
    with pytest.raises(errors.DataFormatError, match=r"data_batch_3\.bin.*record 1"):
        ds.load_cifar10(tmp_path)


def test_cifar10_bad_label_names_file_and_record(tmp_path):
    _write_cifar(tmp_path)
    path = tmp_path / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[3073] = 42  # the second record's label byte
    path.write_bytes(bytes(raw))
    with pytest.raises(errors.DataFormatError, match=r"test_batch\.bin: record 1 .*label byte 42"):
        ds.load_cifar10(tmp_path)


def test_cifar10_missing_and_empty_files(tmp_path):
    with pytest.raises(errors.DatasetNotFoundError, match="cifar-10-batches-bin"):
        ds.load_cifar10(tmp_path / "nowhere")
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_5.bin").unlink()
    with pytest.raises(errors.DatasetNotFoundError, match="data_batch_5.bin"):
        ds.load_cifar10(tmp_path)
    (tmp_path / "data_batch_5.bin").write_bytes(b"")
    with pytest.raises(errors.DataFormatError, match=r"data_batch_5\.bin: the file is empty"):
        ds.load_cifar10(tmp_path)
    with pytest.raises(errors.DatasetNotFoundError, match="path="):
        keras.datasets.cifar10.load_data()
