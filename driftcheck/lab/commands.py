"""Running external commands with one-line errors, and the tools the lab needs."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from driftcheck.lab.errors import LabError

# Command -> Debian package, checked before anything is created so a missing
# tool gives one clear message instead of a half-built lab.
REQUIRED_TOOLS: Mapping[str, str] = MappingProxyType(
    {
        "ip": "iproute2",
        "socat": "socat",
        "nsenter": "util-linux",
        "unshare": "util-linux",
        "mount": "mount",
        "umount": "mount",
        "sysctl": "procps",
        "chroot": "coreutils",
        "base64": "coreutils",
        "ssh-keygen": "openssh-client",
        "/usr/sbin/sshd": "openssh-server",
    }
)

# A clean environment for commands run inside hosts, so results do not depend
# on the caller's locale or PATH.
HOST_ENV: Mapping[str, str] = MappingProxyType(
    {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
)


def require_tools() -> None:
    """Raise :class:`LabError` naming every missing tool and its Debian package."""
    missing = {tool: pkg for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool)}
    if missing:
        shown = ", ".join(f"{tool} (Debian package {pkg})" for tool, pkg in missing.items())
        packages = " ".join(dict.fromkeys(missing.values()))
        raise LabError(
            f"the lab needs missing tools: {shown}; install them with: "
            f"apt-get install --no-install-recommends {packages}"
        )


def one_line(text: str, limit: int = 600) -> str:
    """Join the non-blank lines of ``text`` with `` | `` and cut it at ``limit``."""
    line = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def failure(proc: subprocess.CompletedProcess[str], shown: str) -> str:
    """One-line description of a failed command: exit status and what it said."""
    detail = one_line(proc.stderr) or one_line(proc.stdout) or "no output"
    return f"command failed (exit {proc.returncode}): {shown}: {detail}"


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    shown: Sequence[str] | None = None,
    where: str = "",
    pass_fds: Sequence[int] = (),
) -> subprocess.CompletedProcess[str]:
    """Run a command; failures become one-line :class:`LabError` messages.

    ``shown`` is what messages quote instead of ``argv`` (e.g. the command
    without the nsenter prefix) and ``where`` prefixes them ("on HOST");
    ``pass_fds`` stay open in the command (see subprocess.Popen).
    """
    text = one_line(shlex.join(shown if shown is not None else argv), 300)
    prefix = f"{where}: " if where else ""
    try:
        proc = subprocess.run(
            list(argv),
            check=False,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            # Output from inside a host is not always UTF-8 (file names, program
            # names); keep it visible instead of failing the command.
            errors="backslashreplace",
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            pass_fds=tuple(pass_fds),
        )
    except FileNotFoundError as exc:
        raise LabError(f"{prefix}command not found: {argv[0]} ({exc.strerror})") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{prefix}command timed out after {timeout:g}s: {text}") from None
    if check and proc.returncode != 0:
        raise LabError(prefix + failure(proc, text))
    return proc
