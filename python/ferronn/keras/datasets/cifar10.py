"""``keras.datasets.cifar10`` from a local copy of the CIFAR-10 binary distribution."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from ...datasets import load_cifar10
from ...errors import DatasetNotFoundError

__all__ = ["load_data"]


def load_data(path: Optional[Union[str, os.PathLike]] = None) -> Any:
    """``((x_train, y_train), (x_test, y_test))`` as Keras returns them: images uint8
    ``[N, 32, 32, 3]``, labels uint8 of shape ``[N, 1]``, read from ``path``: the
    directory of the extracted ``cifar-10-batches-bin`` (data_batch_1.bin ..
    data_batch_5.bin, test_batch.bin). ferronn downloads nothing, so ``path`` is required."""
    if path is None:
        raise DatasetNotFoundError("keras.datasets.cifar10.load_data(path=...) needs the directory of a local copy "
                                   "of the CIFAR-10 binary version (cifar-10-batches-bin); ferronn downloads nothing")
    (x_train, y_train), (x_test, y_test) = load_cifar10(path)
    return (x_train, y_train.reshape(-1, 1)), (x_test, y_test.reshape(-1, 1))
