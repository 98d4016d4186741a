"""The one way ferronn writes a file: atomically.

Every file the library writes (models in both layouts, ONNX graphs, checkpoints)
goes through ``atomic_write``: the bytes go to a temporary file beside the
target, which is flushed to disk and then renamed over the target, and the
directory is flushed so the rename itself survives a crash. A reader (or a
crash) sees the old file or the new one, never a mixture.

Temporary names are ``.<target>.tmp-<pid>-<random>``: unique per call, so
concurrent saves to one path from threads or processes never share one (the
last rename wins, and each rename installs a complete file). A save killed
mid-write leaves its temporary file behind; the next save to the same target
removes those whose process no longer exists.
"""

from __future__ import annotations

import os
import tempfile
from typing import Union

__all__ = ["atomic_write"]

PathArg = Union[str, "os.PathLike[str]"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or cannot tell: leave its files alone
    return True


def _remove_stale(directory: str, prefix: str) -> None:
    """Removes temporary files of this target left by processes that have ended."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for entry in names:
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                os.remove(os.path.join(directory, entry))
            except OSError:
                pass  # another process cleaned it up first


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some systems cannot open a directory; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathArg, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see the module docstring). Errors are
    ``OSError`` subclasses (a full disk, a missing directory, no permission);
    on any error the target is unchanged and no temporary file is left."""
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    if not name:
        raise IsADirectoryError(f"'{os.fspath(path)}' is a directory, not a file path")
    prefix = f".{name}.tmp-"
    _remove_stale(directory, prefix)
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _umask() -> int:
    """The process's umask (mkstemp creates files readable by the owner only; a saved
    model gets the permissions a plain ``open(path, "wb")`` would give it). Read from
    /proc where it exists: setting the umask to read it back would race other threads."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
