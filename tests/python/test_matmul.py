"""fn.functional.matmul: the core GEMM against float64 numpy."""

import numpy as np
import pytest

import ferronn as fn


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 5, 7), (64, 784, 256), (300, 200, 150)])
def test_matmul_matches_float64(m, k, n):
    rng = np.random.default_rng(m * k + n)
    a = rng.normal(size=(m, k)).astype(np.float32)
    b = rng.normal(size=(k, n)).astype(np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    got = fn.functional.matmul(a, b)
    assert got.dtype == np.float32 and got.shape == (m, n)
    assert np.max(np.abs(got - want)) <= 1e-5 * np.sqrt(k) * np.max(np.abs(want)) + 1e-5


def test_matmul_rejects_mismatched_shapes():
    with pytest.raises(fn.ShapeError, match="columns must equal"):
        fn.functional.matmul(np.ones((2, 3)), np.ones((4, 2)))
