"""``keras.utils``: ``to_categorical`` (see ``ferronn.utils``)."""

from ..utils import to_categorical

__all__ = ["to_categorical"]
