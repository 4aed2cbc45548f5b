"""The transport interface: run one script on one host, return what came back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from driftcheck.script import PATH

#: The command every transport runs. ``env -i`` gives the script a minimal
#: environment so nothing from the login session changes what it collects.
REMOTE_COMMAND = f"env -i PATH={PATH} LC_ALL=C sh -s"

#: The same command under sudo. ``-n``: never a password prompt (a prompt would
#: wait for the command timeout and could be answered by the script's own stdin);
#: the absolute path of env is what a sudoers rule names.
SUDO_COMMAND = f"sudo -n -- /usr/bin/{REMOTE_COMMAND}"


def remote_command(become: str | None) -> str:
    """The command a host runs: :data:`REMOTE_COMMAND`, under sudo with ``become: sudo``."""
    return SUDO_COMMAND if become == "sudo" else REMOTE_COMMAND


@dataclass(frozen=True)
class CommandResult:
    """Exit status (None when it never finished); the output went to the sink.

    ``cut_short`` says why reading stopped early ("timeout", or the sink's
    :meth:`OutputSink.hang_up` reason); the output is then partial and its
    unfinished sections count as truncated.
    """

    rc: int | None
    timed_out: bool = False
    cut_short: str = ""


class OutputSink(Protocol):
    """Where a transport puts the output as it arrives (a
    :class:`driftcheck.script.SectionReader`): nothing is buffered whole."""

    def stdout(self, data: bytes) -> None:
        """The next chunk of stdout."""
        ...

    def stderr(self, data: bytes) -> None:
        """The next chunk of stderr."""
        ...

    def hang_up(self) -> str:
        """Why to stop reading now (too much output), or "" to go on."""
        ...


class TransportError(Exception):
    """The host could not be reached or refused us: nothing ran there.

    The message is one line saying why (refused, timed out, host key, auth).
    """


class Transport(Protocol):
    """Runs the collection script on one host."""

    def run(self, script: str, timeout: float, sink: OutputSink) -> CommandResult:
        """Send ``script`` on stdin of ``sh -s``, its output to ``sink`` as it arrives;
        stop after ``timeout`` s or when the sink hangs up."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
