"""Thread count of ferronn's compute pool."""

from __future__ import annotations

from . import _core, _validate

__all__ = ["set_num_threads", "get_num_threads"]


def set_num_threads(n: int) -> None:
    """Uses ``n`` threads (>= 1) for all later work, as ``torch.set_num_threads``."""
    _core.set_num_threads(_validate.integer(n, "num_threads", 1, expected="at least 1 (an integer)"))


def get_num_threads() -> int:
    """The number of threads in use (default: every available core)."""
    return _core.get_num_threads()
