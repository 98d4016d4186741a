"""Inference and GEMM benchmarks, ferronn against its peers:

- `model.predict_raw` of the 784-256-128-10 MLP at batch 1, 32 and 1024, against
  torch (inference mode), a jitted JAX forward and onnxruntime on the graph
  `model.export_onnx` wrote (intra-op threads = the suite's thread count);
- the 512³ float32 GEMM `fn.functional.matmul` against numpy, torch and jnp.matmul.

Each case that needs a missing peer is skipped.
"""

from __future__ import annotations

import numpy as np
import pytest

import peers
from conftest import THREADS, ferronn_mlp, need

DIMS = [784, 256, 128, 10]


@pytest.mark.parametrize("batch", [1, 32, 1024])
@pytest.mark.parametrize("lib", ["ferronn", "torch", "jax", "onnxruntime"])
def test_predict_raw(benchmark, data, lib, batch):
    benchmark.group = f"predict_raw b={batch} 784-256-128-10"
    x = np.ascontiguousarray(data[0][:batch])
    model = ferronn_mlp(DIMS)
    if lib == "ferronn":
        run = lambda: model.predict_raw(x)  # noqa: E731
    elif lib == "torch":
        torch = need("torch")
        tmodel, tx = peers.torch_mlp(DIMS).eval(), torch.from_numpy(x)

        def run():
            with torch.inference_mode():
                return tmodel(tx)
    elif lib == "jax":
        jmodel = peers.JaxMLP(need("jax"), DIMS, data[0], data[1], 128)
        xj = jmodel.jax.device_put(x)
        run = lambda: jmodel.predict(xj)  # noqa: E731
    else:
        need("onnxruntime")
        need("onnx")  # model.export_onnx needs it
        sess = peers.onnx_session(model, THREADS)
        run = lambda: sess.run(None, {"input": x})  # noqa: E731
    run()
    benchmark(run)


@pytest.mark.benchmark(group="GEMM 512x512x512 float32")
@pytest.mark.parametrize("lib", ["ferronn", "numpy", "torch", "jax"])
def test_gemm_512(benchmark, lib):
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((512, 512), dtype=np.float32) for _ in range(2))
    if lib == "ferronn":
        import ferronn as fn
        run = lambda: fn.functional.matmul(a, b)  # noqa: E731
    elif lib == "numpy":
        run = lambda: np.matmul(a, b)  # noqa: E731
    elif lib == "torch":
        torch = need("torch")
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        run = lambda: torch.mm(ta, tb)  # noqa: E731
    else:
        jax = need("jax")
        ja, jb = jax.device_put(a), jax.device_put(b)
        mm = jax.jit(jax.numpy.matmul)
        run = lambda: mm(ja, jb).block_until_ready()  # noqa: E731
    run()
    benchmark(run)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["gflops"] = round(2 * 512 ** 3 / benchmark.stats.stats.median / 1e9, 1)
