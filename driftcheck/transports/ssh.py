"""The ``ssh`` transport: fabric/paramiko, strict host keys, one connection per host.

Speed traps avoided on purpose (each measured in the design notes):
- TCP_NODELAY on our own socket: paramiko leaves Nagle on, and every small
  round trip then stalls ~40 ms on delayed ACKs;
- known_hosts parsed once per run and shared by every connection: paramiko's
  parser is quadratic and fabric would otherwise give each client its own copy;
- the script goes in one channel (``sh -s`` on stdin): one round trip per host;
- one connection per jump host for the whole run (:mod:`.jumps`).
"""

from __future__ import annotations

import select
import threading
import time

import fabric
import paramiko

from driftcheck.model import Host

from .base import CommandResult, OutputSink, TransportError, remote_command
from .hostkeys import HostKeyPolicy, HostKeyRefused, KnownHosts
from .jumps import JumpHosts
from .login import check_identity, connect, host_login, jump_login, open_tcp

__all__ = ["HostKeyPolicy", "HostKeyRefused", "JumpHosts", "KnownHosts", "SSHTransport"]

_CHUNK = 65536


def _pump(chan: paramiko.Channel, sink: OutputSink, deadline: float) -> str:
    """Pass the channel's output to ``sink`` until EOF; "" then, else why it stopped.

    Every chunk goes on at once: what the sink drops is never held here, and the
    channel's window keeps paramiko's own buffer small.
    """
    while True:
        if chan.recv_ready():
            sink.stdout(chan.recv(_CHUNK))
        elif chan.recv_stderr_ready():
            sink.stderr(chan.recv_stderr(_CHUNK))
        elif chan.eof_received or chan.closed:
            break
        else:
            # The channel's fileno is a pipe paramiko signals on data, EOF and close.
            select.select([chan], [], [], max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            return "timeout"
        why = sink.hang_up()
        if why:
            return why
    # EOF can arrive between our "nothing ready" check and the EOF check: what
    # paramiko buffered just before it must still be read.
    while chan.recv_ready():
        sink.stdout(chan.recv(_CHUNK))
    while chan.recv_stderr_ready():
        sink.stderr(chan.recv_stderr(_CHUNK))
    return ""


class SSHTransport:
    """Connects with fabric (through the host's jump hosts, if any), verifies the
    host key, runs the script on one channel."""

    def __init__(self, host: Host, known_hosts: KnownHosts, jumps: JumpHosts) -> None:
        """Prepare a connection to ``host``; nothing is opened until :meth:`run`."""
        self.host = host
        self._known_hosts = known_hosts
        self._jumps = jumps
        self._conn: fabric.Connection | None = None

    def _connect(self) -> fabric.Connection:
        """Open the connection: TCP (or a channel through the last jump host), then
        the host key check, then authentication."""
        h = self.host
        login = host_login(h)
        check_identity(login)
        if h.jumps:
            chain = tuple(jump_login(j, h) for j in h.jumps)
            sock = self._jumps.forward(chain, h.address, h.port)
        else:
            sock = open_tcp(login)
        return connect(login, sock, self._known_hosts, time.monotonic())

    def run(self, script: str, timeout: float, sink: OutputSink) -> CommandResult:
        """Open the connection, run the script, pass stdout/stderr to ``sink`` as they
        arrive until EOF, the timeout, or the sink hangs up."""
        self._conn = conn = self._connect()
        transport = conn.client.get_transport()
        if transport is None:  # pragma: no cover - paramiko just connected it
            raise TransportError("SSH transport closed right after connecting")
        deadline = time.monotonic() + timeout
        # paramiko's exec_command and sendall can wait forever on a server that
        # stops answering after login; closing the transport at the deadline
        # unblocks every such wait.
        watchdog = threading.Timer(timeout + 1.0, transport.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            return self._exchange(transport, script, deadline, sink)
        finally:
            watchdog.cancel()

    def _exchange(
        self, transport: paramiko.Transport, script: str, deadline: float, sink: OutputSink
    ) -> CommandResult:
        try:
            chan = transport.open_session(timeout=self.host.connect_timeout)
            chan.settimeout(max(0.1, deadline - time.monotonic()))
            chan.exec_command(remote_command(self.host.become))
            chan.sendall(script.encode())
            chan.shutdown_write()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if time.monotonic() >= deadline:
                return CommandResult(None, timed_out=True, cut_short="timeout")
            raise TransportError(f"could not start the collection command: {exc}") from None
        cut = _pump(chan, sink, deadline)
        rc: int | None = None
        if not cut and chan.status_event.wait(max(0.0, deadline - time.monotonic())):
            rc = chan.exit_status
        chan.close()
        if rc is None and not cut:
            cut = "timeout"
        return CommandResult(rc, timed_out=cut == "timeout", cut_short=cut)

    def close(self) -> None:
        """Close the SSH connection if it was opened."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
