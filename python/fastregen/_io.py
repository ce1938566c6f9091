"""Atomic file writes: a temp file in the target's folder, fsync, then rename.

An interrupted write never leaves a half-written output under the final name.
A symlink is written through (its target is replaced, the link stays); a
FIFO, device, socket or directory at the output path is refused, since the
rename would replace the node itself (as root, ``/dev/null``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_open", "atomic_write_text", "output_target"]


def _umask() -> int:
    """The process umask, read without changing it where the OS allows.

    ``os.umask`` can only be read by setting it, and setting it to 0 even
    briefly lets a file another thread creates meanwhile come out
    world-writable; Linux reports it in /proc/self/status instead.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o077)  # the safe value while we read it
    os.umask(umask)
    return umask


_NODE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def output_target(path) -> tuple[Path, os.stat_result | None]:
    """The file a write to ``path`` replaces, and its stat (None: it does not exist yet).

    A symlink (or a chain of them) resolves to its final target, so writing
    updates what the link points to and keeps the link. Anything at the
    target that is not a regular file is refused: a directory with
    IsADirectoryError, a FIFO, device or socket with ValueError.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return target, None
    if stat.S_ISREG(st.st_mode):
        return target, st
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", os.fspath(path))
    kind = next((name for test, name in _NODE_KINDS if test(st.st_mode)), "not a regular file")
    shown = os.fspath(path) if target == path else f"{path} (-> {target})"
    raise ValueError(
        f"{shown}: is {kind}; outputs are written to a temporary file and renamed over the target, "
        "which would replace it: write to a regular file instead"
    )


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """Open a temp file beside ``path``; on success rename it over ``path``.

    On an exception (KeyboardInterrupt included) the temp file is removed and
    ``path`` is left as it was. A symlink is written through to its target;
    a path that is not a regular file is refused (see `output_target`). An
    existing file keeps its permission bits.
    """
    if "w" not in mode:
        raise ValueError(f"atomic_open is for writing, got mode {mode!r}")
    path, existing = output_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the output the permissions of the
        # file it replaces, or those a plain open() would.
        os.chmod(tmp, stat.S_IMODE(existing.st_mode) if existing is not None else 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)
