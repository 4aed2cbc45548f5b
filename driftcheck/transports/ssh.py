"""The ``ssh`` transport: fabric/paramiko, strict host keys, one connection per host.

Speed traps avoided on purpose (each measured in the design notes):
- TCP_NODELAY on our own socket: paramiko leaves Nagle on, and every small
  round trip then stalls ~40 ms on delayed ACKs;
- known_hosts parsed once per run and shared by every connection: paramiko's
  parser is quadratic and fabric would otherwise give each client its own copy;
- the script goes in one channel (``sh -s`` on stdin): one round trip per host.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import fabric
import paramiko

from driftcheck.model import Host

from .base import REMOTE_COMMAND, CommandResult, OutputSink, TransportError

_CHUNK = 65536


@dataclass
class _KnownHostsIndex:
    """One known_hosts file: plain names in a dict, hashed names in a list.

    Keys stay base64 text until a host actually needs them.
    """

    plain: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    hashed: list[tuple[bytes, bytes, str, str]] = field(default_factory=list)
    #: keys marked @revoked: refused for every host, whatever else the file says
    revoked: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str) -> _KnownHostsIndex:
        index = cls()
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[0] == "@revoked":
                index.revoked.add(fields[3])
                continue
            # Other markers (@cert-authority) never make a key trusted.
            if len(fields) < 3 or fields[0].startswith(("#", "@")):
                continue
            names, keytype, blob = fields[:3]
            for name in names.split(","):
                if name.startswith("|1|"):
                    try:
                        salt_b64, digest_b64 = name[3:].split("|", 1)
                        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
                    except (ValueError, binascii.Error):
                        continue
                    index.hashed.append((salt, digest, keytype, blob))
                else:
                    index.plain.setdefault(name, []).append((keytype, blob))
        return index

    def lookup(self, name: str) -> list[tuple[str, str]]:
        found = list(self.plain.get(name, ()))
        raw = name.encode()
        # Both sides of this comparison are local data (our own known_hosts and
        # inventory), so a plain == leaks nothing and is faster than compare_digest.
        found.extend(
            (keytype, blob)
            for salt, digest, keytype, blob in self.hashed
            if hmac.digest(salt, raw, "sha1") == digest
        )
        return found


class KnownHosts:
    """known_hosts files, each read once per run and shared between threads.

    paramiko's own loader is quadratic (every line is checked against all the
    lines before it: ~5 s for 5,000 lines) and its lookup of hashed names is
    slow; this index reads a file in one linear pass and answers a lookup with
    one dict access plus one HMAC per hashed entry.
    """

    def __init__(self) -> None:
        """Start with nothing loaded; files load on first use."""
        self._lock = threading.Lock()
        self._files: dict[Path, _KnownHostsIndex] = {}

    def _index(self, path: Path) -> _KnownHostsIndex:
        with self._lock:
            index = self._files.get(path)
            if index is None:
                try:
                    text = path.read_text(encoding="utf-8", errors="replace")
                except FileNotFoundError:
                    text = ""
                except OSError as exc:
                    raise TransportError(
                        f"cannot read known_hosts {path}: {exc.strerror}"
                    ) from None
                index = self._files[path] = _KnownHostsIndex.parse(text)
            return index

    def policy(self, path: Path, name: str) -> HostKeyPolicy:
        """The host key check for ``name``: every key ``path`` lists for it, none revoked."""
        index = self._index(path)
        return HostKeyPolicy(name, path, index.lookup(name), frozenset(index.revoked))


class HostKeyRefused(paramiko.SSHException):
    """The server's host key is unknown, changed or revoked; the message says which."""


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept exactly the keys known_hosts lists for one host (several of one type
    too, as during a key rotation), never a revoked one.

    The client holds no host keys of its own, so paramiko asks this policy about
    every server key; doing the check here (instead of paramiko's one-key-per-type
    table) is what lets two ed25519 lines for one host both count.
    """

    def __init__(
        self, name: str, path: Path, known: list[tuple[str, str]], revoked: frozenset[str]
    ) -> None:
        """``known``: (type, base64) pairs listed for ``name`` in ``path``."""
        self.name, self.path = name, path
        self.known = [(t, b) for t, b in known if b not in revoked]
        self.revoked = revoked

    def key_types(self) -> set[str]:
        """Host key algorithms worth negotiating: those of the known keys."""
        types = {t for t, _ in self.known}
        if "ssh-rsa" in types:
            types |= {"rsa-sha2-256", "rsa-sha2-512"}
        return types

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        """Accept a listed key; refuse anything else with the reason."""
        blob = key.get_base64()
        if blob in self.revoked:
            raise HostKeyRefused(
                f"host key of {self.name} ({_fingerprint(key)}) is marked @revoked in "
                f"{self.path}; refusing to connect"
            )
        if any(b == blob for _, b in self.known):
            return
        if self.known:
            listed = ", ".join(sorted({t for t, _ in self.known}))
            raise HostKeyRefused(
                f"host key for {self.name} does not match {self.path} (offered "
                f"{_fingerprint(key)}; known: {listed}); refusing to connect. If the host "
                "was reinstalled, verify and update known_hosts"
            )
        raise HostKeyRefused(
            f"host key of {self.name} is not in {self.path}; refusing to connect. "
            "Verify its fingerprint and add it to known_hosts"
        )


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} SHA256:{key.fingerprint.split(':', 1)[-1]}"


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


def _open_socket(h: Host) -> socket.socket:
    """A TCP connection to the host's SSH port, Nagle off; one line on failure."""
    try:
        sock = socket.create_connection((h.address, h.port), timeout=h.connect_timeout)
    except ConnectionRefusedError:
        raise TransportError(
            f"connection refused by {h.address}:{h.port} (is sshd running there?)"
        ) from None
    except TimeoutError:
        raise TransportError(
            f"connection to {h.address}:{h.port} timed out after {h.connect_timeout:g}s"
        ) from None
    except socket.gaierror as exc:
        raise TransportError(f"cannot resolve {h.address!r}: {exc.strerror}") from None
    except UnicodeError:
        raise TransportError(f"{h.address!r} is not a valid host name; fix the address") from None
    except OSError as exc:
        raise TransportError(f"cannot connect to {h.address}:{h.port}: {exc}") from None
    # paramiko leaves Nagle on: every small round trip would wait for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class SSHTransport:
    """Connects with fabric, verifies the host key, runs the script on one channel."""

    def __init__(self, host: Host, known_hosts: KnownHosts) -> None:
        """Prepare a connection to ``host``; nothing is opened until :meth:`run`."""
        self.host = host
        self._known_hosts = known_hosts
        self._conn: fabric.Connection | None = None

    def _target(self) -> str:
        h = self.host
        return h.address if h.port == 22 else f"[{h.address}]:{h.port}"

    def _connect(self) -> fabric.Connection:
        """Open the connection: TCP, then the host key check, then authentication."""
        h = self.host
        if h.identity_file is not None and not os.access(h.identity_file, os.R_OK):
            raise TransportError(
                f"identity_file {h.identity_file} does not exist or is not readable; "
                "fix the path in the inventory"
            )
        sock = _open_socket(h)
        conn = self._connection(sock)
        try:
            conn.open()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            sock.close()
            raise self._handshake_error(exc) from None
        return conn

    def _connection(self, sock: socket.socket) -> fabric.Connection:
        """A fabric connection over ``sock`` that checks host keys our way."""
        h = self.host
        key_file = str(h.identity_file) if h.identity_file else None
        conn = fabric.Connection(
            h.address,
            user=h.user,
            port=h.port,
            # The inventory is the single source of truth: ~/.ssh/config is not
            # read, so a stray "StrictHostKeyChecking no" there changes nothing.
            config=fabric.Config(lazy=True),
            gateway=False,
            connect_kwargs={
                "sock": sock,
                "key_filename": key_file,
                "look_for_keys": key_file is None,
                "allow_agent": key_file is None,
                "banner_timeout": h.connect_timeout,
                "auth_timeout": h.connect_timeout,
                "channel_timeout": h.connect_timeout,
            },
        )
        client: paramiko.SSHClient = conn.client
        # fabric installs AutoAddPolicy (accept any key): check against known_hosts
        # instead, from the run's shared index.
        policy = self._known_hosts.policy(h.known_hosts, self._target())
        client.set_missing_host_key_policy(policy)
        wanted = policy.key_types()
        if wanted:
            # Like ssh, ask the server for a key type we know for it: a host with an
            # RSA key in known_hosts must not be refused for offering ed25519 first.
            offered = getattr(paramiko.Transport, "_preferred_keys", ())
            conn.connect_kwargs["disabled_algorithms"] = {
                "keys": [k for k in offered if k not in wanted]
            }
        return conn

    def _handshake_error(self, exc: Exception) -> TransportError:
        """What went wrong between TCP connect and login, in one line."""
        h = self.host
        key_file = str(h.identity_file) if h.identity_file else None
        if isinstance(exc, HostKeyRefused):
            return TransportError(str(exc))
        if isinstance(exc, paramiko.BadHostKeyException):
            return TransportError(
                f"host key for {self._target()} does not match {h.known_hosts} (offered "
                f"{_fingerprint(exc.key)}, expected {_fingerprint(exc.expected_key)}); refusing "
                "to connect. If the host was reinstalled, verify and update known_hosts"
            )
        if isinstance(exc, paramiko.PasswordRequiredException):
            return TransportError(
                f"identity_file {key_file} is encrypted; load it into ssh-agent and remove "
                "identity_file from the inventory"
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return TransportError(
                f"authentication as {h.user!r} failed"
                + (f" with key {key_file}" if key_file else " (no identity_file set)")
            )
        if isinstance(exc, paramiko.SSHException):
            text = str(exc)
            if "not found in known_hosts" in text:
                return TransportError(
                    f"host key of {self._target()} is not in {h.known_hosts}; refusing to "
                    "connect. Verify its fingerprint and add it to known_hosts"
                )
            if "banner" in text.lower():
                return TransportError(
                    f"no SSH banner from {h.address}:{h.port} within {h.connect_timeout:g}s "
                    "(host hung or not an SSH server)"
                )
            return TransportError(f"SSH error: {text}")
        return TransportError(f"connection lost during SSH handshake: {exc}")

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
            chan.exec_command(REMOTE_COMMAND)
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
