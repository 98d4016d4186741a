"""Every file ferronn writes goes through one atomic-write helper: unique temporary names,
OSError subclasses on failure, stale temporary files cleaned up, the directory synced."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import ferronn as fn
from ferronn import _files


def _model(seed: int = 0) -> fn.Sequential:
    m = fn.Sequential([fn.Dense(8, activation="relu"), fn.Dense(3)], input_dim=4, seed=seed)
    m.compile()
    return m


def _savers(tmp_path):
    """(name, save(model, path)) for every kind of file the library writes."""
    out = [("ferronn", lambda m, p: m.save(p))]
    try:
        import safetensors  # noqa: F401
        out.append(("torch", lambda m, p: m.save(p, layout="torch")))
    except ImportError:
        pass
    try:
        import onnx  # noqa: F401
        out.append(("onnx", lambda m, p: m.export_onnx(p)))
    except ImportError:
        pass
    return out


def test_concurrent_saves_to_one_path_from_threads_leave_one_complete_file(tmp_path):
    models = [_model(seed) for seed in range(4)]
    for kind, save in _savers(tmp_path):
        path = tmp_path / f"shared.{kind}"
        errors: list[BaseException] = []

        def worker(m):
            try:
                for _ in range(10):
                    save(m, path)
            except BaseException as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(m,)) for m in models]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], kind
        assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
        if kind == "ferronn":
            got = fn.load(path).get_weights()
            assert any(all(np.array_equal(a, b) for a, b in zip(got, m.get_weights())) for m in models)


def test_concurrent_saves_from_processes(tmp_path):
    path = tmp_path / "m.safetensors"
    code = ("import ferronn as fn, sys\n"
            "m = fn.Sequential([fn.Dense(3)], input_dim=4, seed=int(sys.argv[2])); m.compile()\n"
            "for _ in range(20): m.save(sys.argv[1])\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(i)]) for i in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert fn.load(path).n_params == 15
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_temporary_files_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".m.safetensors.tmp-{dead_pid}-abc"
    live = tmp_path / f".m.safetensors.tmp-{os.getppid()}-def"  # the test runner's parent: alive
    other = tmp_path / f".other.safetensors.tmp-{dead_pid}-ghi"  # another target: not ours to touch
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    _model().save(tmp_path / "m.safetensors")
    assert not stale.exists() and live.exists() and other.exists()


def test_a_failed_write_is_an_oserror_and_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    m = _model()
    m.save(path)
    before = path.read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    for kind, save in _savers(tmp_path):
        monkeypatch.setattr(os, "fsync", full_disk)
        target = path if kind == "ferronn" else tmp_path / f"x.{kind}"
        with pytest.raises(OSError) as info:
            save(_model(1), target)
        monkeypatch.setattr(os, "fsync", real_fsync)
        assert info.value.errno == errno.ENOSPC, kind
        assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    assert path.read_bytes() == before


def test_the_directory_is_synced_after_the_rename(tmp_path, monkeypatch):
    synced: list[str] = []
    real = _files._fsync_directory
    monkeypatch.setattr(_files, "_fsync_directory", lambda d: (synced.append(d), real(d)))
    _model().save(tmp_path / "m.safetensors")
    assert synced == [str(tmp_path)]


def test_saving_into_a_missing_directory_is_an_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        _model().save(tmp_path / "missing" / "m.safetensors")


def test_saved_files_get_the_usual_permissions(tmp_path):
    path = tmp_path / "m.safetensors"
    _model().save(path)
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)
