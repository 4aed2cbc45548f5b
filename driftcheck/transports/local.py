"""The ``local`` transport: collect from the machine driftcheck runs on."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path

from .base import REMOTE_COMMAND, CommandResult


class LocalTransport:
    """Runs the script with ``sh -s`` in a new session on this machine."""

    def run(self, script: str, timeout: float) -> CommandResult:
        """Run ``script``; on timeout kill its whole process group and keep partial output."""
        proc = subprocess.Popen(
            shlex.split(REMOTE_COMMAND),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # so a timeout can kill every child, not just sh
        )
        try:
            out, err = proc.communicate(script.encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_session(proc.pid)
            try:
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # a child stuck in the kernel keeps a pipe
                proc.kill()
                out, err = b"", b""
            return CommandResult(None, out or b"", err or b"", timed_out=True, cut_short="timeout")
        return CommandResult(proc.returncode, out, err)

    def close(self) -> None:
        """Nothing to release."""


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid``.

    Killing the process group is not enough: coreutils ``timeout`` (which wraps
    each section) puts its command in a process group of its own.
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_bytes().rsplit(b")", 1)[1].split()
            if int(fields[3]) == sid:  # field 6 of stat: the session id
                os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue
