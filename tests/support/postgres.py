"""A throw-away PostgreSQL server for the storage tests (Debian's postgresql package).

The server listens on a Unix socket in its own temporary directory only, runs as
the unprivileged ``postgres`` user (initdb refuses root) and is stopped at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} not found: apt-get install postgresql (see .ci/run)"
        )
    return found[-1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a private server; yield its SQLAlchemy URL; stop and remove it."""
    user = pwd.getpwnam("postgres")
    base = Path(tempfile.mkdtemp(prefix="dcpg-"))
    os.chown(base, user.pw_uid, user.pw_gid)
    data = base / "data"

    def as_postgres(*argv: str) -> None:
        subprocess.run(
            [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
                *argv,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    try:
        as_postgres(_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
        as_postgres(
            _bin("pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(base / "log"),
            "-o",
            f"-k {base} -c listen_addresses=''",
            "start",
        )
        yield f"postgresql+psycopg://postgres@/postgres?host={base}"
    finally:
        if (data / "postmaster.pid").exists():
            as_postgres(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)
