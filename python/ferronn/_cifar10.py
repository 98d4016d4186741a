"""CIFAR-10's binary distribution (``cifar-10-batches-bin``), read with numpy.

The format: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (the training set) and
``test_batch.bin``, each a run of 10000 records of 3073 bytes: one label byte (0..9),
then the 32x32 image as three planes, red, green, blue, each row-major. The arrays
returned are channels last, ``[N, 32, 32, 3]`` uint8, as Keras' ``cifar10.load_data``
returns them. A file whose length is not a whole number of records, or a label
outside 0..9, raises ``DataFormatError`` naming the file and the record.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from .errors import DataFormatError, DatasetNotFoundError

__all__ = ["CIFAR10_CLASSES", "load_cifar10", "read_batch", "TRAIN_FILES", "TEST_FILE"]

#: The names of the ten classes, indexed by label.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
_SIDE, _CHANNELS = 32, 3
_RECORD = 1 + _SIDE * _SIDE * _CHANNELS  # 3073 bytes


def read_batch(path: Union[str, os.PathLike]) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images uint8 ``[N, 32, 32, 3]`` and labels uint8 ``[N]``."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DatasetNotFoundError(f"cannot read the CIFAR-10 file {path}: {e.strerror or e}") from None
    full, rest = divmod(raw.size, _RECORD)
    if rest:
        raise DataFormatError(f"{path}: {raw.size} bytes is not a whole number of {_RECORD}-byte records; record "
                              f"{full} (0-based) is truncated after {rest} bytes")
    if full == 0:
        raise DataFormatError(f"{path}: the file is empty; expected {_RECORD}-byte records")
    records = raw.reshape(full, _RECORD)
    labels = records[:, 0].copy()
    bad = np.flatnonzero(labels >= len(CIFAR10_CLASSES))
    if bad.size:
        raise DataFormatError(f"{path}: record {int(bad[0])} (0-based) has the label byte {int(labels[bad[0]])}; "
                              "labels are 0..9 (is this the binary version of CIFAR-10, not CIFAR-100 or the "
                              "Python pickles?)")
    planes = records[:, 1:].reshape(full, _CHANNELS, _SIDE, _SIDE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def load_cifar10(directory: Union[str, os.PathLike]):
    """The CIFAR-10 binary distribution in ``directory`` (the files of
    ``cifar-10-batches-bin``): ``((x_train, y_train), (x_test, y_test))`` with images
    uint8 ``[N, 32, 32, 3]`` (channels last) and labels uint8 ``[N]``, class names in
    ``CIFAR10_CLASSES``. ``DatasetNotFoundError`` naming a missing file;
    ``DataFormatError`` naming the file and record of a truncated or corrupt one.
    Nothing is downloaded."""
    root = Path(directory)
    if not root.is_dir():
        raise DatasetNotFoundError(f"CIFAR-10 directory not found: {root}; expected the extracted "
                                   "cifar-10-batches-bin (data_batch_1.bin .. data_batch_5.bin, test_batch.bin)")
    missing = [name for name in (*TRAIN_FILES, TEST_FILE) if not (root / name).is_file()]
    if missing:
        raise DatasetNotFoundError(f"CIFAR-10 files not found in {root}: {', '.join(missing)}")
    parts = [read_batch(root / name) for name in TRAIN_FILES]
    x_train = np.concatenate([x for x, _ in parts])
    y_train = np.concatenate([y for _, y in parts])
    return (x_train, y_train), read_batch(root / TEST_FILE)
