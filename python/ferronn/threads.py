"""Thread count of ferronn's compute pool."""

from __future__ import annotations

import numpy as np

from . import _core
from .errors import ConfigError

__all__ = ["set_num_threads", "get_num_threads"]


def set_num_threads(n: int) -> None:
    """Uses ``n`` threads (>= 1) for all later work, as ``torch.set_num_threads``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"num_threads must be at least 1 (an integer), got {n!r}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """The number of threads in use (default: every available core)."""
    return _core.get_num_threads()
