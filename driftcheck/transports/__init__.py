"""Transports by name, imported lazily so the ``local`` transport never loads paramiko."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from driftcheck.model import Host

from .base import CommandResult, OutputSink, Transport, TransportError

if TYPE_CHECKING:
    from .ssh import JumpHosts, KnownHosts

__all__ = ["CommandResult", "OutputSink", "Transport", "TransportError", "Transports"]


class Transports:
    """Opens the transport each host names; one instance per run shares state
    between connections (the parsed known_hosts files, the jump host connections);
    :meth:`close` ends it."""

    def __init__(self) -> None:
        """Nothing is loaded until the first SSH host."""
        self._known_hosts: KnownHosts | None = None
        self._jumps: JumpHosts | None = None
        self._lock = threading.Lock()

    def open(self, host: Host) -> Transport:
        """The transport for ``host`` (its ``transport`` setting: ssh or local)."""
        if host.transport == "local":
            from .local import LocalTransport  # noqa: PLC0415 - lazy: no paramiko for local

            return LocalTransport(host.become)
        from .ssh import JumpHosts, KnownHosts, SSHTransport  # noqa: PLC0415 - lazy: paramiko is slow to import

        with self._lock:  # hosts open from worker threads; parse known_hosts once
            if self._known_hosts is None or self._jumps is None:
                self._known_hosts = KnownHosts()
                self._jumps = JumpHosts(self._known_hosts)
            known_hosts, jumps = self._known_hosts, self._jumps
        return SSHTransport(host, known_hosts, jumps)

    @property
    def jump_handshakes(self) -> int:
        """Logins to jump hosts so far in this run."""
        return self._jumps.handshakes if self._jumps is not None else 0

    def close(self) -> None:
        """Close the connections shared between hosts (jump hosts)."""
        with self._lock:
            jumps, self._jumps, self._known_hosts = self._jumps, None, None
        if jumps is not None:
            jumps.close()
