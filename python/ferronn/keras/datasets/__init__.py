"""``keras.datasets``: ``fashion_mnist`` (the Debian package's files) and ``cifar10``
(a local copy of the binary distribution), in Keras' format. Nothing is downloaded:
``mnist`` and the others raise ``NotSupportedError`` saying so."""

from typing import Any

from .._common import missing_attr
from . import cifar10, fashion_mnist

__all__ = ["fashion_mnist", "cifar10"]


def __getattr__(name: str) -> Any:
    missing_attr("datasets", name, {n: "ferronn downloads nothing; fashion_mnist reads the Debian package "
                                       "dataset-fashion-mnist, cifar10 a local copy, and ferronn.datasets.digits "
                                       "is embedded" for n in ("mnist", "cifar100", "imdb", "reuters",
                                                               "boston_housing", "california_housing")})
