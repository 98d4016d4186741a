"""Fixtures shared by the pytest suite.

tests/python is on ``sys.path`` through the ``pythonpath`` option in pyproject.toml's
``[tool.pytest.ini_options]``, so test modules import the float64 reference as plain
``import reference as ref``.
"""

from __future__ import annotations

import pytest

import ferronn as fn


@pytest.fixture(autouse=True)
def restore_threads():
    """Give every test the thread count it started with: tests that call
    ``fn.set_num_threads`` (directly or through an estimator's ``n_threads``) must not
    change the threads of the tests after them."""
    before = fn.get_num_threads()
    yield
    fn.set_num_threads(before)
