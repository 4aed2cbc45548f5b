"""Jump hosts (OpenSSH's ProxyJump): one connection per bastion for the whole run.

Every host behind a bastion is reached through a ``direct-tcpip`` channel of one
shared, authenticated connection to it, so 50 hosts cost one bastion handshake,
not 50 (and a bastion's MaxStartups never sees a burst). Each hop's host key is
checked by the same strict policy as a target's, before authentication.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import fabric
import paramiko

from .base import TransportError
from .hostkeys import KnownHosts
from .login import Login, Sock, check_identity, close_quietly, connect, open_tcp


@dataclass
class _Hop:
    """One jump host reached through the hops before it; opened by one thread
    while the others wait on its lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    conn: fabric.Connection | None = None
    #: why it could not be reached: every host behind it fails with this at once
    error: str = ""


class JumpHosts:
    """The run's connections to jump hosts, keyed by the chain of hops."""

    def __init__(self, known_hosts: KnownHosts) -> None:
        """Nothing is opened until a host behind a jump host connects."""
        self._known_hosts = known_hosts
        self._lock = threading.Lock()
        self._hops: dict[tuple[Login, ...], _Hop] = {}
        #: SSH logins to jump hosts so far (the benchmark and the tests count them)
        self.handshakes = 0

    def forward(self, chain: tuple[Login, ...], address: str, port: int) -> paramiko.Channel:
        """A channel to ``address:port`` opened by the last hop of ``chain``, to be
        used as the socket of the next login."""
        transport = self._transport(chain)
        last = chain[-1]
        try:
            return transport.open_channel(
                "direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=last.connect_timeout
            )
        except paramiko.ChannelException as exc:
            why = exc.text or f"code {exc.code}"
            raise TransportError(
                f"{last.label} could not open a connection to {address}:{port}: {why} (is that "
                "host up and reachable from the jump host, and TCP forwarding allowed there?)"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(
                f"connection to {last.label} lost while opening a channel to {address}:{port}: "
                f"{exc or type(exc).__name__}"
            ) from None

    def _transport(self, chain: tuple[Login, ...]) -> paramiko.Transport:
        """The live transport of the chain's last hop, logging in first if needed."""
        with self._lock:
            hop = self._hops.setdefault(chain, _Hop())
        with hop.lock:
            if hop.error:
                raise TransportError(hop.error)
            transport: paramiko.Transport | None = (
                hop.conn.client.get_transport() if hop.conn is not None else None
            )
            if transport is not None and transport.is_active():
                return transport
            # Never opened, or closed by the jump host since: (re)connect.
            try:
                hop.conn = self._login(chain)
            except TransportError as exc:
                hop.error = f"{chain[-1].label}: {exc}"
                raise TransportError(hop.error) from None
            transport = hop.conn.client.get_transport()
            assert transport is not None  # connect() returns logged-in connections
            return transport

    def _login(self, chain: tuple[Login, ...]) -> fabric.Connection:
        last = chain[-1]
        check_identity(last)
        started = time.monotonic()
        sock: Sock
        if len(chain) == 1:
            sock = open_tcp(last)
        else:
            sock = self.forward(chain[:-1], last.address, last.port)
        conn = connect(last, sock, self._known_hosts, started)
        with self._lock:
            self.handshakes += 1
        return conn

    def close(self) -> None:
        """Close every jump host connection (after the run's last host)."""
        with self._lock:
            hops, self._hops = self._hops, {}
        # The innermost hops first: their channels ride on the outer ones.
        for chain in sorted(hops, key=len, reverse=True):
            close_quietly(hops[chain].conn, None)
