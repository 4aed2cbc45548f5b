"""A lab host as the lab process sees it: where its pieces live, and how to run commands in it."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from driftcheck.lab.commands import HOST_ENV, run
from driftcheck.lab.names import LAB_ADDRESS
from driftcheck.lab.spec import LabHostSpec


@dataclass
class HostRuntime:
    """Where one host's pieces live, and the process that serves its port."""

    spec: LabHostSpec
    index: int
    #: "" for a bastion that runs in the machine's own network namespace.
    netns: str
    mnt_file: Path
    uts_file: Path
    hdir: Path
    upper: Path
    work: Path
    root: Path
    #: The overlay's lower layer: the machine's own / or a release's root tree.
    lower: Path = Path("/")
    #: Where a client connects: 127.0.0.1, or 192.0.2.N behind a bastion.
    address: str = LAB_ADDRESS
    port: int = 0
    host_public_key: str = ""
    known_hosts_key: str = ""
    #: The sudo user's password (login "sudo-password" only).
    sudo_password: str | None = None
    #: The socat listener, or the port holder of a "down" host.
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """socat's and sshd's (-e) messages."""
        return self.hdir / "listener.log"

    def enter(self) -> list[str]:
        """Prefix that runs a command inside this host (namespaces + chroot)."""
        # No netns: a bastion in the machine's network stays in the machine's.
        net = [f"--net=/run/netns/{self.netns}"] if self.netns else []
        return [
            "nsenter",
            *net,
            f"--mount={self.mnt_file}",
            f"--uts={self.uts_file}",
            "chroot",
            str(self.root),
        ]

    def run(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        timeout: float = 120.0,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the host as root; errors name the host and ``argv``."""
        return run(
            [*self.enter(), *argv],
            input=input,
            timeout=timeout,
            env={**HOST_ENV, **(env or {})},
            check=check,
            shown=argv,
            where=f"on {self.spec.name}",
        )
