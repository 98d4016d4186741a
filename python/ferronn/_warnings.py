"""Warnings attributed to the user's code, however deep inside ferronn they are raised.

A fixed ``stacklevel`` breaks whenever the call path changes (a callback called
from the fit loop, the same callback called from a test); instead the frame
reported is the first one outside the ferronn package.
"""

from __future__ import annotations

import os
import sys
import types
import warnings

__all__ = ["warn_user"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called in this module's ``warn_user``
    that points at the innermost caller outside the package."""
    frame: types.FrameType | None = sys._getframe(2)  # the function that called warn_user: stacklevel 2 from there
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn_user(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """``warnings.warn(message, category)`` reported at the user's line that led here."""
    warnings.warn(message, category, stacklevel=_user_stacklevel())
