"""What goes into a new host's root: its keys, a fresh /root, and the spec's files."""

from __future__ import annotations

import base64
import contextlib
import os
import posixpath
import shlex
import shutil
from pathlib import Path

from driftcheck.lab.commands import run
from driftcheck.lab.errors import LabError
from driftcheck.lab.names import LAB_SUDO_USER
from driftcheck.lab.spec import LabHostSpec


class HostScript:
    """A /bin/sh script that creates files inside a host; it runs in the host's chroot.

    Running it in the chroot (rather than writing below the overlay from
    outside) makes symlinks in the paths resolve within the host root, so
    they never reach the real ``/``.
    """

    def __init__(self) -> None:
        self._lines = ["set -eu", "umask 022"]

    def line(self, command: str) -> None:
        """Append a shell command as is."""
        self._lines.append(command)

    def put(self, path: str, content: bytes, mode: int | None = None) -> None:
        """Create or replace ``path`` (and its parent directories)."""
        self._lines.append(f"mkdir -p {shlex.quote(posixpath.dirname(path))}")
        # base64 in a quoted here-document: any content, no quoting issues.
        self._lines.append(f"base64 -d > {shlex.quote(path)} <<'DCLAB_EOF'")
        self._lines.extend(base64.encodebytes(content).decode().splitlines())
        self._lines.append("DCLAB_EOF")
        if mode is not None:
            self.chmod(path, mode)

    def chmod(self, path: str, mode: int) -> None:
        """Set the permission bits of ``path``."""
        self._lines.append(f"chmod {mode:o} {shlex.quote(path)}")

    def chown(self, path: str, owner: str) -> None:
        """Change the owner of ``path`` (not of a symlink's target)."""
        # chown runs in the chroot: names resolve against the host's passwd.
        self._lines.append(f"chown -h {shlex.quote(owner)} {shlex.quote(path)}")

    def text(self) -> str:
        """The script, for ``/bin/sh -s``."""
        return "\n".join(self._lines) + "\n"


def _public(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def keygen(path: Path, comment: str) -> str:
    """Generate an ed25519 key pair without passphrase; return the public line."""
    for p in (path, _public(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return _public(path).read_text().strip()


def key_only(public_line: str) -> str:
    """The key type and key ("ssh-ed25519 AAAA..."), as known_hosts holds them."""
    return " ".join(public_line.split()[:2])


def fresh_root_home(upper: Path, lower: Path = Path("/")) -> None:
    """Give the host a fresh /root, like a newly installed Debian system.

    The dotfiles come from ``lower``, the overlay's lower layer (the machine's
    own / or a release's root tree), so a host gets its own release's.
    With lowerdir=/ the host would otherwise see the real machine's /root:
    its dotfiles (a .bashrc that runs e.g. ``pyenv init`` costs ~150 ms per
    SSH command), its credentials and its authorized_keys.  An *opaque* upper
    directory hides the lower one; it is prepared before the overlay is
    mounted, which is the supported way to seed an upper layer.
    """
    home = upper / "root"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o700)
    try:
        os.setxattr(home, "trusted.overlay.opaque", b"y")
    except OSError as exc:
        raise LabError(f"cannot prepare overlay upper dir {home}: {exc.strerror}") from None
    # Debian's own defaults for root (package base-files), when present.
    for name in ("bashrc", "profile"):
        skel = lower / f"usr/share/base-files/dot.{name}"
        if skel.is_file():
            target = home / f".{name}"
            shutil.copyfile(skel, target)
            os.chmod(target, 0o644)


def provision_script(spec: LabHostSpec, host_key: Path, identity_pub: str) -> str:
    """The script that gives a new host its identity and the spec's files."""
    script = HostScript()
    # Only this host's own key: drop the real machine's keys (in the
    # overlay, i.e. whiteouts) so no key is shared between hosts.
    script.line("rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub")
    script.put("/etc/ssh/ssh_host_ed25519_key", host_key.read_bytes(), 0o600)
    script.put("/etc/ssh/ssh_host_ed25519_key.pub", _public(host_key).read_bytes(), 0o644)
    script.line("mkdir -p /root/.ssh && chmod 700 /root/.ssh")
    if spec.login == "root":
        script.put("/root/.ssh/authorized_keys", (identity_pub + "\n").encode(), 0o600)
    else:
        # The sudo kinds: root cannot log in, not even with the lab's key.
        script.line("rm -f /root/.ssh/authorized_keys")
    script.put("/etc/hostname", (spec.name + "\n").encode(), 0o644)
    # /run is a fresh tmpfs: give it the login records file a booted
    # Debian has, or sshd logs "logout() returned an error" per session.
    script.line(": > /run/utmp && chmod 664 /run/utmp && { chgrp utmp /run/utmp || true; }")
    for path, content in spec.files.items():
        script.put(path, content.encode())
    for path, mode in spec.file_modes.items():
        script.chmod(path, mode)
    for path, owner in spec.file_owners.items():
        script.chown(path, owner)
    return script.text()


# /etc/sudoers.d/LAB_SUDO_USER per sudo login kind.
_SUDOERS: dict[str, str] = {
    "sudo": f"{LAB_SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n",
    "sudo-password": f"{LAB_SUDO_USER} ALL=(ALL) ALL\n",
    "sudo-requiretty": (
        f"Defaults:{LAB_SUDO_USER} requiretty\n{LAB_SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n"
    ),
}


def sudo_user_script(spec: LabHostSpec, identity_pub: str, password: str | None) -> str:
    """The script (run in the host's chroot) that makes the sudo user of a sudo login.

    It runs after the spec's packages, so a host may bring its own sudo.
    ``password`` is set as the user's password (needed by "sudo-password").
    """
    user = LAB_SUDO_USER
    home = f"/home/{user}"
    script = HostScript()
    script.line(
        "command -v sudo >/dev/null || { echo 'sudo is not installed in this host root; "
        "apt-get install sudo on the machine (see .ci/run) or list it in packages' >&2; exit 1; }"
    )
    script.line(f"id -u {user} >/dev/null 2>&1 || useradd -m -s /bin/sh {user}")
    script.line(f"mkdir -p {home}/.ssh")
    script.put(f"{home}/.ssh/authorized_keys", (identity_pub + "\n").encode(), 0o600)
    script.chmod(f"{home}/.ssh", 0o700)
    script.line(f"chown -R {user}:{user} {home}/.ssh")
    if password is not None:
        script.line(f"printf '%s:%s\\n' {user} {shlex.quote(password)} | chpasswd")
    sudoers = f"/etc/sudoers.d/{user}"
    script.put(sudoers, _SUDOERS[spec.login].encode(), 0o440)
    # A broken sudoers file would make sudo refuse to run at all: fail here instead.
    script.line(f"visudo -cqf {sudoers}")
    return script.text()
