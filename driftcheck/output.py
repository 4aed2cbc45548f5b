"""Writing report files so that a reader never sees half of one."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from driftcheck.errors import DriftcheckError


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename.

    A path that exists and is not a regular file (``/dev/null``, ``/dev/stdout``,
    a FIFO) is written to directly: renaming over it would replace the device.
    A symlink keeps pointing where it points; its target is replaced.
    """
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise DriftcheckError(f"{path}: cannot write the report there ({exc.strerror})") from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise DriftcheckError(f"{path}: cannot write the report ({exc.strerror})") from None
        return
    target = Path(os.path.realpath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise DriftcheckError(f"{path}: cannot write the report there ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DriftcheckError(f"{path}: cannot write the report ({exc.strerror})") from None
