"""The ``local`` transport: collect from the machine driftcheck runs on."""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import shlex
import signal
import subprocess
import time
from pathlib import Path

from .base import CommandResult, OutputSink, remote_command

_CHUNK = 65536
#: After a kill, how long output still in the pipes is read.
_DRAIN_SECONDS = 5.0


class _Pipes:
    """The script's stdin, stdout and stderr, served by one selector: the script is
    written as the shell reads it, output goes to the sink as it comes (like
    ``communicate``, without keeping the output)."""

    def __init__(self, proc: subprocess.Popen[bytes], script: bytes, sink: OutputSink) -> None:
        assert proc.stdin and proc.stdout and proc.stderr  # all three are pipes
        self._stdin, self._script, self._offset = proc.stdin, memoryview(script), 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(proc.stdout, selectors.EVENT_READ, sink.stdout)
        self._selector.register(proc.stderr, selectors.EVENT_READ, sink.stderr)
        self._selector.register(proc.stdin, selectors.EVENT_WRITE)
        self._sink = sink

    def pump(self, deadline: float) -> str:
        """Move data until both outputs end; "" then, else why it stopped (timeout,
        or the sink's reason to hang up)."""
        while any(key.events & selectors.EVENT_READ for key in self._selector.get_map().values()):
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            for key, _ in self._selector.select(left):
                if key.fileobj is self._stdin:
                    self._write()
                    continue
                chunk = os.read(key.fd, _CHUNK)
                if chunk:
                    key.data(chunk)
                else:
                    self._selector.unregister(key.fileobj)
            why = self._sink.hang_up()
            if why:
                return why
        return ""

    def _write(self) -> None:
        # PIPE_BUF at a time: a write that size never blocks on a writable pipe.
        end = self._offset + select.PIPE_BUF
        try:
            self._offset += os.write(self._stdin.fileno(), self._script[self._offset : end])
        except BrokenPipeError:  # the shell exited before reading it all
            self._offset = len(self._script)
        if self._offset >= len(self._script):
            self._close_stdin()

    def _close_stdin(self) -> None:
        if not self._stdin.closed:
            with contextlib.suppress(KeyError):
                self._selector.unregister(self._stdin)
            with contextlib.suppress(BrokenPipeError):
                self._stdin.close()

    def close(self) -> None:
        """Stop watching; the process's pipes are closed by the caller."""
        self._close_stdin()
        self._selector.close()


class LocalTransport:
    """Runs the script with ``sh -s`` in a new session on this machine."""

    def __init__(self, become: str | None = None) -> None:
        """``become``: "sudo" to run the script under ``sudo -n``, as on a remote host."""
        self._argv = shlex.split(remote_command(become))

    def run(self, script: str, timeout: float, sink: OutputSink) -> CommandResult:
        """Run ``script``, its output to ``sink``; on timeout (or when the sink hangs
        up) kill its whole session, keeping what output already came."""
        proc = subprocess.Popen(
            self._argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # so a timeout can kill every child, not just sh
        )
        pipes = _Pipes(proc, script.encode(), sink)
        try:
            deadline = time.monotonic() + timeout
            cut = pipes.pump(deadline)
            rc = None if cut else _wait(proc, deadline)
            if rc is not None:
                return CommandResult(rc)
            _kill_session(proc.pid)
            if cut in ("", "timeout"):
                # What the killed commands printed last still says something.
                pipes.pump(time.monotonic() + _DRAIN_SECONDS)
                return CommandResult(None, timed_out=True, cut_short="timeout")
            return CommandResult(None, cut_short=cut)
        finally:
            pipes.close()
            _release(proc)

    def close(self) -> None:
        """Nothing to release."""


def _wait(proc: subprocess.Popen[bytes], deadline: float) -> int | None:
    """The exit status, or None when the shell is still running at the deadline."""
    try:
        return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None


def _release(proc: subprocess.Popen[bytes]) -> None:
    """Close the pipes and reap the shell, never waiting long: a child stuck in the
    kernel must not hang the run."""
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1)


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
