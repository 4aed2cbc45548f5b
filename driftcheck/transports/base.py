"""The transport interface: run one script on one host, return what came back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from driftcheck.script import PATH

#: The command every transport runs. ``env -i`` gives the script a minimal
#: environment so nothing from the login session changes what it collects.
REMOTE_COMMAND = f"env -i PATH={PATH} LC_ALL=C sh -s"


@dataclass(frozen=True)
class CommandResult:
    """Exit status (None when it never finished), raw stdout and stderr bytes.

    ``cut_short`` says why reading stopped early ("timeout", or the output limit);
    the output is then partial and its unfinished sections count as truncated.
    """

    rc: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    cut_short: str = ""


class TransportError(Exception):
    """The host could not be reached or refused us: nothing ran there.

    The message is one line saying why (refused, timed out, host key, auth).
    """


class Transport(Protocol):
    """Runs the collection script on one host."""

    def run(self, script: str, timeout: float) -> CommandResult:
        """Send ``script`` on stdin of ``sh -s``; stop waiting after ``timeout`` s."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
