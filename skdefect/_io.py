"""Writing files so that a failure or an interrupt never leaves a half-written one in place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, and rename it over ``path``.

    A failure or an interrupt at any point leaves an earlier file at ``path`` whole (a reader sees the old or
    the new file, never half of one). The file gets the mode a plain ``open(path, "w")`` would give (0666 less
    the umask), not ``mkstemp``'s owner-only 0600.
    """
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
