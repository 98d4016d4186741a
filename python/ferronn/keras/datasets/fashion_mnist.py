"""``keras.datasets.fashion_mnist`` from the files of the Debian package ``dataset-fashion-mnist``."""

from __future__ import annotations

from typing import Any

from ...datasets import fashion_mnist_raw

__all__ = ["load_data"]


def load_data(path: Any = None) -> Any:
    """``((x_train, y_train), (x_test, y_test))`` as Keras returns them: images uint8
    ``[N, 28, 28]`` (60000 and 10000), labels uint8 ``[N]``. Read from
    /usr/share/datasets/fashion-mnist (or the directory ``path``);
    ``DatasetNotFoundError`` naming the Debian package ``dataset-fashion-mnist`` when the
    files are absent."""
    return fashion_mnist_raw(path)
