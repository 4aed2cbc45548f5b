"""Transports by name, imported lazily so the ``local`` transport never loads paramiko."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from driftcheck.model import Host

from .base import CommandResult, OutputSink, Transport, TransportError

if TYPE_CHECKING:
    from .ssh import KnownHosts

__all__ = ["CommandResult", "OutputSink", "Transport", "TransportError", "Transports"]


class Transports:
    """Opens the transport each host names; one instance per run shares state
    between connections (the parsed known_hosts files)."""

    def __init__(self) -> None:
        """Nothing is loaded until the first SSH host."""
        self._known_hosts: KnownHosts | None = None
        self._lock = threading.Lock()

    def open(self, host: Host) -> Transport:
        """The transport for ``host`` (its ``transport`` setting: ssh or local)."""
        if host.transport == "local":
            from .local import LocalTransport  # noqa: PLC0415 - lazy: no paramiko for local

            return LocalTransport()
        from .ssh import KnownHosts, SSHTransport  # noqa: PLC0415 - lazy: paramiko is slow to import

        with self._lock:  # hosts open from worker threads; parse known_hosts once
            if self._known_hosts is None:
                self._known_hosts = KnownHosts()
            known_hosts = self._known_hosts
        return SSHTransport(host, known_hosts)
