"""Jump hosts (OpenSSH's ProxyJump): one connection per bastion for the whole run.

Every host behind a bastion is reached through a ``direct-tcpip`` channel of one
shared, authenticated connection to it, so 50 hosts cost one bastion handshake,
not 50 (and a bastion's MaxStartups never sees a burst). Each hop's host key is
checked by the same strict policy as a target's, before authentication.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import fabric
import paramiko

from .base import TransportError
from .hostkeys import KnownHosts
from .login import Login, check_identity, close_quietly, connect, open_tcp

_CHUNK = 65536


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

    def forward(self, chain: tuple[Login, ...], address: str, port: int) -> socket.socket:
        """A connection to ``address:port`` through the last hop of ``chain``, to be
        used as the socket of the next login."""
        transport = self._transport(chain)
        last = chain[-1]
        try:
            chan = transport.open_channel(
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
        return _bridged(chan, f"{last.label} -> {address}:{port}")

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


def _bridged(chan: paramiko.Channel, name: str) -> socket.socket:
    """One end of a socket pair whose other end a thread of its own copies to and from
    ``chan``.

    paramiko sends a channel's data and window adjustments outside the lock that
    handles the server's CLOSE; with several threads using one jump host
    connection, a message can then follow the CLOSE and OpenSSH drops the whole
    connection ("data packet referred to nonexistent channel"), every host behind
    it with it (seen with 20 hosts, 16 at once). Here only one thread ever touches
    the channel, and it closes it once the login's side has hung up.
    """
    ours, theirs = socket.socketpair()
    thread = threading.Thread(target=_copy, args=(chan, theirs), name=f"tunnel {name}")
    thread.daemon = True
    thread.start()
    return ours


def _copy(chan: paramiko.Channel, sock: socket.socket) -> None:
    """Copy both ways until either side ends, then close both."""
    watched: list[Any] = [chan, sock]  # both have fileno(): select takes them
    try:
        while True:
            ready, _, _ = select.select(watched, [], [])
            if sock in ready:
                data = sock.recv(_CHUNK)
                if not data:
                    break
                chan.sendall(data)
            if chan in ready:
                data = chan.recv(_CHUNK)
                if not data:
                    break
                sock.sendall(data)
    except (OSError, EOFError, paramiko.SSHException):
        pass  # either side went away: the login using the other end sees it closed
    finally:
        chan.close()
        sock.close()
