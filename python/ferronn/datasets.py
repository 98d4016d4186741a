"""Datasets for the classic experiments: IDX files, the embedded digits, Fashion-MNIST,
small synthetic 2-D problems, and a train/test split.

IDX is the format MNIST and Fashion-MNIST are distributed in: a 4-byte magic number
(two zero bytes, a dtype code, the number of dimensions), one big-endian uint32 per
dimension, then the values in row-major order, big-endian. Files are usually gzipped.
Everything here needs only numpy.
"""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import zlib
from importlib.resources import files
from pathlib import Path

import numpy as np

from . import _validate
from .errors import (
    ConfigError,
    DataFormatError,
    DatasetNotFoundError,
    DTypeError,
    EmptyInputError,
    ShapeError,
)

__all__ = [
    "load_idx", "save_idx", "digits", "fashion_mnist", "fashion_mnist_raw", "FASHION_MNIST_CLASSES",
    "xor", "spirals", "moons", "train_test_split", "load_cifar10", "CIFAR10_CLASSES",
]

#: The names of the ten Fashion-MNIST classes, indexed by label.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

FASHION_MNIST_PATH = "/usr/share/datasets/fashion-mnist"

# IDX dtype code -> big-endian numpy dtype, as the format defines them.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"



def _parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decode the bytes of an IDX file (gzipped or not); ``source`` names it in errors."""
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{source}: corrupt or truncated gzip data ({exc})") from None
    if len(raw) < 4:
        raise DataFormatError(
            f"{source}: {len(raw)} bytes is too short for an IDX header (expected at least 4)"
        )
    if raw[0] != 0 or raw[1] != 0:
        raise DataFormatError(
            f"{source}: bad magic number {raw[:4].hex()}; an IDX file starts with two zero bytes"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DataFormatError(
            f"{source}: unknown IDX dtype code 0x{code:02X} (expected one of {known})"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(
            f"{source}: truncated header: {ndim} dims need {header} bytes, file has {len(raw)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated data" if got < expected else "trailing bytes after the data"
        raise DataFormatError(
            f"{source}: {what}: shape {shape} of {dtype.newbyteorder('=').name} "
            f"needs {expected} data bytes, file has {got}"
        )
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # native byte order, a writable copy


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw (told apart by its first bytes, not its name).

    Returns an array of the stored shape and dtype in native byte order.
    Raises DatasetNotFoundError if the file is missing, DataFormatError if it is not
    valid IDX (bad magic, unknown dtype code, truncated, or trailing bytes).
    """
    try:
        raw = Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise DatasetNotFoundError(f"IDX file not found: {os.fspath(path)}") from None
    return _parse_idx(raw, os.fspath(path))


def save_idx(path: str | os.PathLike, array, compress: bool = True) -> None:
    """Write ``array`` as an IDX file (gzipped unless ``compress=False``).

    The file appears atomically: it is written to a temporary file beside ``path`` and
    then renamed, so a reader never sees half a file. Output is deterministic (the gzip
    header carries no timestamp).
    """
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DTypeError(
            f"IDX cannot store dtype {array.dtype}; use one of {', '.join(map(str, _IDX_CODES))}"
        )
    if array.ndim > 255 or any(d >= 2**32 for d in array.shape):
        raise ShapeError(f"IDX cannot store shape {array.shape} (at most 255 dims, each < 2**32)")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + np.ascontiguousarray(array, _IDX_DTYPES[code]).tobytes()
    if compress:
        data = gzip.compress(data, mtime=0)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise



def digits(return_images: bool = False, images: bool = False):
    """The 8x8 handwritten digits (1797 samples, 10 classes), shipped inside the package.

    Returns ``(X, y)``: X float32 of shape (1797, 64), pixels 0..16 scaled to [0, 1],
    or (1797, 8, 8) with ``return_images=True`` (scikit-learn's ``images``), or
    (1797, 8, 8, 1) with ``images=True`` (channels last, a convolutional network's
    input as Keras lays it out); y int64 labels 0..9.
    See ``ferronn/data/README.md`` for the data's origin and licence.
    """
    data = files("ferronn") / "data"
    pixels = _parse_idx((data / "digits-images-idx3-ubyte.gz").read_bytes(), "digits images")
    labels = _parse_idx((data / "digits-labels-idx1-ubyte.gz").read_bytes(), "digits labels")
    X = pixels.astype(np.float32) / np.float32(16.0)
    if images:
        X = X[..., np.newaxis]
    elif not return_images:
        X = X.reshape(len(X), -1)
    return X, labels.astype(np.int64)


def fashion_mnist(path: str | os.PathLike | None = None, kind: str = "both", images: bool = False):
    """Fashion-MNIST: 28x28 grey images of clothing in 10 classes (``FASHION_MNIST_CLASSES``).

    Reads the four standard gzip IDX files from ``path`` (default
    /usr/share/datasets/fashion-mnist, installed by the Debian package
    ``dataset-fashion-mnist``). X is float32 of shape (n, 784) scaled to [0, 1],
    y is int64; with ``images=True`` X has shape (n, 28, 28, 1) (channels last, as
    Keras' convolutional layers take it). ``kind="both"`` returns ``((X_train, y_train), (X_test, y_test))``;
    ``kind="train"`` or ``"test"`` returns just that ``(X, y)`` pair.
    """
    if kind not in ("both", "train", "test"):
        raise ConfigError(f"kind must be 'both', 'train' or 'test', got {kind!r}")

    def scaled(raw):
        x, y = raw
        shape = (len(x), 28, 28, 1) if images else (len(x), -1)
        return x.reshape(shape).astype(np.float32) / np.float32(255.0), y.astype(np.int64)

    if kind == "both":
        train, test = fashion_mnist_raw(path)
        return scaled(train), scaled(test)
    return scaled(fashion_mnist_raw(path, kind))


def fashion_mnist_raw(path: str | os.PathLike | None = None, kind: str = "both"):
    """Fashion-MNIST as stored: images uint8 (n, 28, 28), labels uint8 (n,), with the
    pairing of ``fashion_mnist`` (``kind``); ``DatasetNotFoundError`` naming the Debian
    package ``dataset-fashion-mnist`` when the files are absent."""
    if kind not in ("both", "train", "test"):
        raise ConfigError(f"kind must be 'both', 'train' or 'test', got {kind!r}")
    root = Path(FASHION_MNIST_PATH if path is None else path)
    hint = (
        "install the Debian package with `apt-get install dataset-fashion-mnist`, "
        "or pass path= to the directory holding the files"
    )
    if not root.is_dir():
        raise DatasetNotFoundError(f"Fashion-MNIST directory not found: {root}; {hint}")

    def part(prefix: str):
        arrays = []
        for name in (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"):
            if not (root / name).is_file():
                raise DatasetNotFoundError(f"Fashion-MNIST file not found: {root / name}; {hint}")
            arrays.append(load_idx(root / name))
        images, labels = arrays
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataFormatError(
                f"{root}/{prefix}-*: expected images (n, 28, 28) and labels (n,), "
                f"got {images.shape} and {labels.shape}"
            )
        if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise DataFormatError(f"{root}/{prefix}-labels: label {labels.max()} is not in 0..9")
        return images.astype(np.uint8), labels.astype(np.uint8)

    if kind == "train":
        return part("train")
    if kind == "test":
        return part("t10k")
    return part("train"), part("t10k")



from . import _cifar10  # noqa: E402  (the CIFAR-10 reader is a module of its own; exported here)
from ._cifar10 import load_cifar10  # noqa: E402

#: The names of the ten CIFAR-10 classes, indexed by label.
CIFAR10_CLASSES = _cifar10.CIFAR10_CLASSES


def xor():
    """The four XOR points: X float32 (4, 2) in {0, 1}, y int64 = x0 XOR x1."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def spirals(n: int = 200, noise: float = 0.1, seed=0, classes: int = 2):
    """Interleaved spiral arms, one per class, ``n`` points each.

    Each arm winds 1.5 turns outwards from the origin to radius 1; arm k is rotated by
    k/classes of a full turn. Gaussian noise of std ``noise`` is added to both
    coordinates. Returns X float32 (n*classes, 2) and y int64, rows grouped by class.
    """
    n = _validate.positive_int(n, "n")
    classes = _validate.integer(classes, "classes", 2)
    noise = _validate.finite_float(noise, "noise", low=0.0)
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)
    parts = []
    for k in range(classes):
        angle = 3.0 * np.pi * t + 2.0 * np.pi * k / classes
        parts.append(np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1))
    X = np.concatenate(parts) + rng.normal(0.0, noise, size=(n * classes, 2))
    y = np.repeat(np.arange(classes, dtype=np.int64), n)
    return X.astype(np.float32), y


def moons(n: int = 200, noise: float = 0.1, seed=0):
    """Two interleaving half circles, ``n`` points each, with Gaussian noise of std ``noise``.

    Class 0 is the upper half of the unit circle; class 1 the lower half shifted to
    centre (1, 0.5), so each moon reaches into the other's hollow.
    Returns X float32 (2n, 2) and y int64, rows grouped by class.
    """
    n = _validate.positive_int(n, "n")
    noise = _validate.finite_float(noise, "noise", low=0.0)
    rng = np.random.default_rng(seed)
    angle = np.linspace(0.0, np.pi, n)
    upper = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    lower = np.stack([1.0 - np.cos(angle), 0.5 - np.sin(angle)], axis=1)
    X = np.concatenate([upper, lower]) + rng.normal(0.0, noise, size=(2 * n, 2))
    y = np.repeat(np.arange(2, dtype=np.int64), n)
    return X.astype(np.float32), y



def _test_count(test_size, n: int) -> int:
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ConfigError(f"a float test_size must be in (0, 1), got {test_size}")
        n_test = math.ceil(round(float(test_size) * n, 9))  # 0.07 * 100 is 7.000000000000001, not 8
    elif _validate.is_integer(test_size):
        n_test = int(test_size)
    else:
        raise ConfigError(f"test_size must be a float in (0, 1) or an int, got {test_size!r}")
    if not 0 < n_test < n:
        raise ConfigError(
            f"test_size={test_size!r} puts {n_test} of {n} samples in the test set; "
            "both the train and the test set must be non-empty"
        )
    return n_test


def _stratified_test_counts(class_counts: np.ndarray, n_test: int) -> np.ndarray:
    """Share ``n_test`` among classes in proportion to their sizes (largest remainder)."""
    exact = class_counts * n_test / class_counts.sum()
    counts = np.floor(exact).astype(np.int64)
    leftover = n_test - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:leftover]] += 1
    return counts


def train_test_split(X, y, test_size=0.2, seed=0, shuffle: bool = True, stratify: bool = False):
    """Split samples into a train and a test set: ``((X_train, y_train), (X_test, y_test))``.

    ``test_size`` is a fraction in (0, 1) (rounded up to whole samples) or a count.
    With ``shuffle`` the rows are permuted by ``numpy.random.default_rng(seed)``;
    without it the last rows form the test set. ``stratify=True`` gives each class
    the same share in both sets, as far as whole samples allow.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ShapeError(f"X and y need a sample axis, got shapes {X.shape} and {y.shape}")
    n = len(X)
    if len(y) != n:
        raise ShapeError(f"X and y must have the same number of samples, got {n} and {len(y)}")
    if n == 0:
        raise EmptyInputError("cannot split an empty dataset")
    if n < 2:
        raise ConfigError(f"need at least 2 samples to split into train and test, got {n}")
    n_test = _test_count(test_size, n)
    rng = np.random.default_rng(seed)

    if not stratify:
        order = rng.permutation(n) if shuffle else np.arange(n)
        train_idx, test_idx = order[: n - n_test], order[n - n_test :]
    else:
        if y.ndim != 1:
            raise ShapeError(f"stratify=True needs 1-D class labels, got y of shape {y.shape}")
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        per_class_test = _stratified_test_counts(counts, n_test)
        train_parts, test_parts = [], []
        for k in range(len(classes)):
            members = np.flatnonzero(inverse == k)
            if shuffle:
                members = rng.permutation(members)
            cut = len(members) - per_class_test[k]
            train_parts.append(members[:cut])
            test_parts.append(members[cut:])
        train_idx, test_idx = np.concatenate(train_parts), np.concatenate(test_parts)
        # Don't leave the rows grouped by class.
        if shuffle:
            train_idx, test_idx = rng.permutation(train_idx), rng.permutation(test_idx)
        else:
            train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return (X[train_idx], y[train_idx]), (X[test_idx], y[test_idx])
