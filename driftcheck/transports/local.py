"""The ``local`` transport: collect from the machine driftcheck runs on."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

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
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return CommandResult(None, out or b"", err or b"", timed_out=True, cut_short="timeout")
        return CommandResult(proc.returncode, out, err)

    def close(self) -> None:
        """Nothing to release."""
