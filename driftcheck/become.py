"""``become: sudo``: what a refusing sudo said, in one line, and the sudoers rule it needs.

The collection command runs as ``sudo -n``: sudo then never prompts, it fails at
once with a message on stderr, before the script starts. That message is all a
host that refused says, so it is turned into the reason the host is incomplete.
"""

from __future__ import annotations

from collections.abc import Iterable

from driftcheck.model import Host
from driftcheck.transports.base import SUDO_COMMAND

#: (what sudo prints, what it means for the user); the first match wins.
_SUDO_SAYS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("a password is required", "a terminal is required to read the password"),
        "sudo wants a password for {user!r}; driftcheck runs sudo -n and never answers a "
        "prompt: add a NOPASSWD rule (driftcheck sudoers prints it)",
    ),
    (
        ("must have a tty", "requiretty"),
        "sudo requires a tty for {user!r} (Defaults requiretty); exempt that user with "
        "'Defaults:{user} !requiretty'",
    ),
    (
        ("not in the sudoers file", "is not allowed to execute", "may not run sudo",
         "is not allowed to run sudo"),
        "{user!r} may not run the collection command under sudo: add the rule that "
        "driftcheck sudoers prints",
    ),
    (
        ("sudo: not found", "sudo: command not found", "No such file or directory"),
        "sudo is not installed on the host; install it or log in as root",
    ),
)  # fmt: skip


def sudo_refusal(stderr: str, user: str) -> str:
    """Why sudo refused to start the script, from its stderr; "" when it did not say."""
    lines = [line.strip() for line in stderr.splitlines() if "sudo" in line]
    for needles, meaning in _SUDO_SAYS:
        if any(n in line for n in needles for line in lines):
            return meaning.format(user=user)
    # "unable to resolve host" is a warning sudo prints and then goes on.
    lines = [line for line in lines if "unable to resolve host" not in line]
    return f"sudo refused to start the collection: {lines[-1][:200]}" if lines else ""


def sudoers_lines(hosts: Iterable[Host]) -> list[str]:
    """The sudoers rules the ``become: sudo`` hosts need: one per login user, allowing
    exactly the collection command and nothing else, without a password."""
    users = sorted({h.user for h in hosts if h.become == "sudo"})
    command = SUDO_COMMAND.removeprefix("sudo -n -- ")
    # sudoers treats these characters specially inside a command's arguments.
    escaped = command.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")
    escaped = escaped.replace("=", "\\=")
    return [f"{user} ALL=(root) NOPASSWD: {escaped}" for user in users]
