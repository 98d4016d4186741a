"""Hardening (issue 11, items 1, 2, 4, 5, 6): sizes from users and files never abort
the process, a model file is checked against its tensors before anything is
reserved, and a training step that overflows weights, optimizer state or
BatchNorm statistics is refused and undone bit for bit.

Memory bombs run in a child process under a 2 GiB address-space limit: the child
must exit normally with the named exception, and its peak memory stay small."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ferronn as fn
from ferronn.errors import AllocationError, ConfigError, ModelFileError

LIMIT = 2 << 30
# The children import the ferronn this test imported (an installed wheel in CI, a
# source tree on PYTHONPATH in development), never another copy.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))


def run_limited(code: str) -> tuple[str, int]:
    """Runs `code` in a child under RLIMIT_AS; returns what it printed and its peak RSS in MiB."""
    prog = (
        f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT}))\n"
        "import ferronn as fn\n"
        f"{textwrap.dedent(code)}\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
        "print('maxrss', [int(l.split()[1]) // 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, f"child died with {p.returncode}: {p.stderr[-2000:]}"
    out = p.stdout.strip().splitlines()
    return "\n".join(out[:-1]), int(out[-1].split()[1])


def expect(code: str, exc: str, peak_mib: int = 400) -> str:
    """The child raises `exc` (by class name, subclasses allowed) and stays under `peak_mib`."""
    out, peak = run_limited(
        f"try:\n{textwrap.indent(textwrap.dedent(code), '    ')}\n"
        "    print('no error')\n"
        "except Exception as e:\n"
        "    print([c.__name__ for c in type(e).__mro__], e)\n"
    )
    assert exc in out, out
    assert peak < peak_mib, f"peak {peak} MiB"
    return out


# ------------------------------------------------------------- 1, 2: huge sizes

HUGE = {
    "dense_1e12": "fn.Sequential([fn.Dense(10**12)], input_dim=4).compile(loss='mse')",
    "input_1e12": "fn.Sequential([fn.Dense(10)], input_dim=10**12).compile(loss='mse')",
    "batchnorm_1e12": "fn.Sequential([fn.BatchNorm()], input_dim=10**12).compile(loss='mse')",
    "swiglu_1e12": "fn.Sequential([fn.SwiGLU(10**12)], input_dim=4).compile(loss='mse')",
    "matmul_16gib": "import numpy as np\nfn.functional.matmul(np.ones((65536, 1), np.float32), np.ones((1, 65536), np.float32))",
}


@pytest.mark.parametrize("code", HUGE.values(), ids=HUGE.keys())
def test_huge_sizes_raise_allocation_error_not_abort(code):
    out = expect(code, "AllocationError")
    assert "MemoryError" in out and "bytes) asked for" in out


@pytest.mark.parametrize("layer", ["fn.Dense(2**62)", "fn.SwiGLU(2**62)", "fn.Dense(2**63 - 1)"])
def test_overflowing_sizes_are_config_errors(layer):
    with pytest.raises(ConfigError, match="too large"):
        fn.Sequential([eval(layer)], input_dim=4).compile(loss="mse")


def test_a_batch_too_large_for_memory_is_an_allocation_error():
    # The workspaces grow with the batch: 100000 x 8192 values (3.3 GB) cannot be
    # reserved under the 2 GiB limit.
    expect(
        """
        import numpy as np
        m = fn.Sequential([fn.Dense(8192)], input_dim=1, seed=0)
        m.compile(loss='cross_entropy')
        m.fit(np.zeros((100_000, 1), np.float32), np.zeros(100_000, np.int64), batch_size=100_000, verbose=0)
        """,
        "AllocationError",
    )


# ---------------------------------------------------------- 4: model files

def small_model() -> fn.Sequential:
    m = fn.Sequential([fn.Dense(3, activation="relu"), fn.Dense(2)], input_dim=4, seed=0)
    m.compile(loss="mse")
    m.fit(np.ones((8, 4), np.float32), np.ones((8, 2), np.float32), epochs=1, verbose=0)
    return m


def split_file(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join_file(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("hard") / "m.fnn"
    small_model().save(path)
    return path.read_bytes()


def with_spec(model_bytes: bytes, edit) -> bytes:
    header, body = split_file(model_bytes)
    spec = json.loads(header["__metadata__"]["spec"])
    edit(spec)
    header["__metadata__"]["spec"] = json.dumps(spec)
    return join_file(header, body)


@pytest.mark.parametrize("units", [10**8, 10**9, 2**64 - 1, 2**62])
def test_a_file_claiming_a_huge_layer_is_refused_without_allocating(model_bytes, tmp_path, units):
    path = tmp_path / "bomb.fnn"
    path.write_bytes(with_spec(model_bytes, lambda s: s["layers"][0].update(units=units)))
    assert path.stat().st_size < 4000
    expect(f"fn.load({str(path)!r})", "ModelFileError", peak_mib=200)


def test_a_file_with_a_million_layers_is_refused_cheaply(model_bytes, tmp_path):
    def deepen(spec):
        spec["layers"][1:1] = [{"type": "activation", "activation": "relu"}] * 10**6

    path = tmp_path / "deep.fnn"
    path.write_bytes(with_spec(model_bytes, deepen))
    out = expect(f"fn.load({str(path)!r})", "ModelFileError", peak_mib=700)
    assert "layers" in out


@pytest.mark.parametrize("target", ["/dev/zero", "dir", "fifo"])
def test_load_reads_regular_files_only_and_promptly(tmp_path, target):
    if target == "dir":
        target = str(tmp_path)
    elif target == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    with pytest.raises((ModelFileError, OSError)):
        fn.load(target)


def test_a_header_longer_than_the_file_is_refused(model_bytes, tmp_path):
    path = tmp_path / "long.fnn"
    path.write_bytes(struct.pack("<Q", 2**40) + model_bytes[8:])
    with pytest.raises(ModelFileError, match="header claims"):
        fn.load(path)


JSON_EDITS = st.sampled_from(["units", "input_dim", "drop_layer", "dup_layer", "type", "shape", "offsets", "dtype", "steps"])


def apply_edit(header: dict, edit: str, n: int) -> None:
    meta = header["__metadata__"]
    spec = json.loads(meta["spec"])
    tensor = header[sorted(k for k in header if k != "__metadata__")[n % (len(header) - 1)]]
    if edit == "units":
        spec["layers"][n % 2]["units"] = [0, 1, 7, 2**31, 2**64 - 1, 10**8][n % 6]
    elif edit == "input_dim":
        spec["input_dim"] = [0, 1, 5, 10**12][n % 4]
    elif edit == "drop_layer":
        spec["layers"].pop(n % 2)
    elif edit == "dup_layer":
        spec["layers"].append(spec["layers"][-1])
    elif edit == "type":
        spec["layers"][n % 2]["type"] = ["batch_norm", "gated", "nope", "dropout"][n % 4]
    elif edit == "shape":
        tensor["shape"] = [[], [n], [2**40, 2**40], [1, 1, 1]][n % 4]
    elif edit == "offsets":
        tensor["data_offsets"] = [0, [0, 2**62][n % 2] + n]
    elif edit == "dtype":
        tensor["dtype"] = ["F64", "I8", "BF16"][n % 3]
    elif edit == "steps":
        meta["optimizer_steps"] = ["-1", "0", "18446744073709551615", "x"][n % 4]
    meta["spec"] = json.dumps(spec)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edit=JSON_EDITS, n=st.integers(0, 1000), flip=st.integers(0, 10**6), byte=st.integers(0, 255), raw=st.booleans())
def test_mutated_files_load_or_raise_a_named_error(model_bytes, tmp_path, edit, n, flip, byte, raw):
    if raw:
        data = bytearray(model_bytes)
        data[flip % len(data)] = byte
        data = bytes(data)
    else:
        header, body = split_file(model_bytes)
        apply_edit(header, edit, n)
        data = join_file(header, body)
    path = tmp_path / "mut.fnn"
    path.write_bytes(data)
    try:
        m = fn.load(path)
    except (ModelFileError, OSError):
        return
    # Whatever loads round-trips.
    again = tmp_path / "again.fnn"
    m.save(again)
    m2 = fn.load(again)
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------- 5, 6: overflowing state is refused

def snapshot(m: fn.Sequential) -> list[bytes]:
    return [w.tobytes() for w in m.get_weights()]


def optimizer_state(path) -> dict:
    header, body = split_file(path.read_bytes())
    return {k: body[v["data_offsets"][0] : v["data_offsets"][1]] for k, v in header.items() if k.startswith("optimizer.")}


CASES = {
    "adam_1e22": (lambda: [fn.Dense(4, activation="relu"), fn.Dense(1)], "adam", 1e22),
    "rmsprop_1e22": (lambda: [fn.Dense(4, activation="relu"), fn.Dense(1)], "rmsprop", 1e22),
    "adagrad_1e22": (lambda: [fn.Dense(4, activation="relu"), fn.Dense(1)], "adagrad", 1e22),
    "batchnorm_1e20": (lambda: [fn.BatchNorm(), fn.Dense(1)], "sgd", 1e20),
}


@pytest.mark.parametrize("layers,opt,scale", CASES.values(), ids=CASES.keys())
def test_a_step_overflowing_the_state_is_refused_and_undone(tmp_path, layers, opt, scale):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    m = fn.Sequential(layers(), input_dim=3, seed=0)
    m.compile(loss="mse", optimizer=opt)
    m.fit(X, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    before = tmp_path / "before.fnn"
    m.save(before)
    weights = snapshot(m)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m.fit(X * np.float32(scale), y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    diverged = any("non-finite" in str(w.message) for w in caught)
    after = tmp_path / "after.fnn"
    m.save(after)  # whatever trained can be saved ...
    back = fn.load(after)  # ... and loaded back
    for a, b in zip(m.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    if diverged and snapshot(m) == weights:
        # Refused at the first batch: weights, buffers and optimizer state bit for bit as before.
        assert optimizer_state(after) == optimizer_state(before)
    for w in m.get_weights():
        assert np.isfinite(w).all()


def test_the_first_refused_step_leaves_everything_bit_for_bit(tmp_path):
    y = np.ones((16, 1), np.float32)
    spread = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    # Adam: g (~1e22) is finite, 0.001·g² overflows v; BatchNorm: the batch variance (1e40) overflows its running_var.
    for opt, layers, X in [("adam", [fn.Dense(1)], np.full((16, 3), 1e11, np.float32)),
                           ("sgd", [fn.BatchNorm(), fn.Dense(1)], spread * np.float32(1e20))]:
        m = fn.Sequential(layers, input_dim=3, seed=0)
        m.compile(loss="mse", optimizer=opt)
        m.fit(np.ones((16, 3), np.float32), y, epochs=1, verbose=0)
        before = tmp_path / "b.fnn"
        m.save(before)
        with pytest.warns(RuntimeWarning, match="non-finite"):
            m.fit(X, y, epochs=1, batch_size=16, verbose=0)
        after = tmp_path / "a.fnn"
        m.save(after)
        assert snapshot(fn.load(after)) == snapshot(fn.load(before))
        assert optimizer_state(after) == optimizer_state(before)
