"""One SSH login (a host or a jump host): which keys to offer, one deadline over the
whole handshake, and one honest line for every way it can fail.

paramiko's own timeouts each bound one wait (the banner, one auth reply), never
the whole handshake, and a server that answers the banner and then stalls is
only dropped by its packetizer much later. So every login runs under a watchdog
that closes the connection at ``connect_timeout``; the phase it was in then
names the error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import fabric
import paramiko

from driftcheck.model import Host, Jump

from .base import TransportError
from .hostkeys import HostKeyPolicy, HostKeyRefused, KnownHosts, fingerprint

#: The keys OpenSSH (and paramiko's look_for_keys) tries when none is configured.
DEFAULT_KEYS = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519")
#: paramiko's own timeouts come this long after ours, so ours always speaks first.
_PARAMIKO_SLACK = 5.0


def _quiet_paramiko() -> None:
    """paramiko logs tracebacks and socket errors through Python's last-resort
    handler (stderr) when nobody configured logging: send them to driftcheck's
    debug output instead (DRIFTCHECK_DEBUG=1), else nowhere."""
    log = logging.getLogger("paramiko")
    log.propagate = False
    if log.handlers:
        return
    if os.environ.get("DRIFTCHECK_DEBUG"):
        handler: logging.Handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("driftcheck debug: %(name)s: %(message)s"))
        log.setLevel(logging.DEBUG)
    else:
        handler = logging.NullHandler()
    log.addHandler(handler)


_quiet_paramiko()


@dataclass(frozen=True)
class Login:
    """What one SSH login needs; a host and each of its jump hosts have one."""

    #: how messages name it: "prod-web1" or "jump host root@bastion:2222"
    label: str
    address: str
    port: int
    user: str
    identity_file: Path | None
    identities_only: bool
    known_hosts: Path
    connect_timeout: float
    #: said when the address does not resolve: whether ssh_config was read
    resolve_hint: str = ""

    @property
    def key_name(self) -> str:
        """The name known_hosts lists it under, as ssh writes it."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    @property
    def where(self) -> str:
        """``address:port`` for messages."""
        return f"{self.address}:{self.port}"


def host_login(h: Host) -> Login:
    """The login of ``h`` itself (its jump hosts each have their own)."""
    if h.ssh_config is None:
        hint = "ssh_config is not read: if it is a Host alias there, set ssh_config: true"
    else:
        hint = f"no Host alias in {h.ssh_config} gives it a HostName either"
    return Login(
        h.name, h.address, h.port, h.user, h.identity_file, h.identities_only,
        h.known_hosts, h.connect_timeout, hint,
    )  # fmt: skip


def jump_login(j: Jump, h: Host) -> Login:
    """The login of jump host ``j`` on the way to ``h``: its host key is checked
    against ``h``'s known_hosts, with ``h``'s timeout."""
    return Login(
        f"jump host {j.label()}", j.address, j.port, j.user, j.identity_file,
        h.identities_only, h.known_hosts, h.connect_timeout,
    )  # fmt: skip


def check_identity(login: Login) -> None:
    """A configured identity_file that cannot be read fails before any connection."""
    path = login.identity_file
    if path is not None and not os.access(path, os.R_OK):
        raise TransportError(
            f"identity_file {path} does not exist or is not readable; fix the path in the inventory"
        )


def open_tcp(login: Login) -> socket.socket:
    """A TCP connection to the login's SSH port, Nagle off; one line on failure."""
    where = login.where
    try:
        sock = socket.create_connection((login.address, login.port), timeout=login.connect_timeout)
    except ConnectionRefusedError:
        raise TransportError(f"connection refused by {where} (is sshd running there?)") from None
    except TimeoutError:
        raise TransportError(
            f"connection to {where} timed out after {login.connect_timeout:g}s"
        ) from None
    except socket.gaierror as exc:
        hint = f" ({login.resolve_hint})" if login.resolve_hint else ""
        raise TransportError(f"cannot resolve {login.address!r}: {exc.strerror}{hint}") from None
    except UnicodeError:
        raise TransportError(
            f"{login.address!r} is not a valid host name; fix the address"
        ) from None
    except OSError as exc:
        raise TransportError(f"cannot connect to {where}: {exc.strerror or exc}") from None
    # paramiko leaves Nagle on: every small round trip would wait for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@dataclass(frozen=True)
class _Keys:
    """The keys a login offers, in paramiko's terms (it tries pkey, the files,
    the agent, then the default files, in that order)."""

    key_filename: tuple[str, ...]
    pkey: paramiko.PKey | None
    allow_agent: bool
    look_for_keys: bool
    #: the agent connection ``pkey`` signs through; closed after the login
    agent: paramiko.Agent | None = None

    def close(self) -> None:
        """Let go of the agent connection, if one was opened for ``pkey``."""
        if self.agent is not None:
            self.agent.close()

    def offered(self) -> str:
        """What was offered, for a refusal message."""
        parts = [f"identity_file {f}" for f in self.key_filename]
        if self.allow_agent:
            parts.append(f"the ssh-agent's keys ({_agent_count()})")
        if self.look_for_keys:
            found = [k for k in DEFAULT_KEYS if Path(k).expanduser().is_file()]
            parts.append(", ".join(found) if found else "no ~/.ssh/id_* key")
        return "; ".join(parts) or "no key"


def _agent_keys() -> tuple[paramiko.AgentKey, ...]:
    if not os.environ.get("SSH_AUTH_SOCK"):
        return ()
    agent = paramiko.Agent()
    try:
        return agent.get_keys()
    finally:
        agent.close()


def _agent_count() -> str:
    if not os.environ.get("SSH_AUTH_SOCK"):
        return "none: SSH_AUTH_SOCK is not set"
    try:
        return str(len(_agent_keys()))
    except paramiko.SSHException as exc:
        return f"agent not reachable: {exc}"


def _keys(login: Login) -> _Keys:
    """Keys as OpenSSH offers them: the agent's, then identity_file (or, without
    one, the default ~/.ssh/id_* files); with identities_only, identity_file only."""
    agent = bool(os.environ.get("SSH_AUTH_SOCK"))
    if login.identity_file is None:
        return _Keys((), None, agent and not login.identities_only, True)
    files = (str(login.identity_file),)
    if not login.identities_only:
        return _Keys(files, None, agent, False)
    # IdentitiesOnly still lets the agent sign for this very key (an encrypted
    # key file, unlocked in the agent): ssh matches it by the .pub file.
    try:
        blob = Path(f"{login.identity_file}.pub").read_text().split()[1]
    except (OSError, IndexError):
        return _Keys(files, None, False, False)
    if not agent:
        return _Keys(files, None, False, False)
    try:
        # The key signs through this connection: it stays open until the login ends
        # (one per login, since an agent connection carries one request at a time).
        conn = paramiko.Agent()
    except paramiko.SSHException:
        return _Keys(files, None, False, False)
    key = next((k for k in conn.get_keys() if k.get_base64() == blob), None)
    return _Keys(files, key, False, False, conn)


class _Watchdog:
    """Closes a login's connection at its deadline; tells afterwards whether it did."""

    def __init__(self, seconds: float, conn: fabric.Connection, sock: socket.socket) -> None:
        self._conn, self._sock = conn, sock
        self._lock = threading.Lock()
        self._done = False
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
        close_quietly(self._conn, self._sock)

    def stop(self) -> bool:
        """Stop watching; True when the deadline had already struck."""
        self._timer.cancel()
        with self._lock:
            self._done = True
            return self.expired


def close_quietly(conn: fabric.Connection | None, sock: socket.socket | None) -> None:
    """Close a connection and its socket, transport first: closing the socket under
    paramiko's running thread is what makes it log "Bad file descriptor"."""
    if conn is not None:
        transport = conn.client.get_transport()
        if transport is not None:
            transport.close()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def connect(
    login: Login, sock: socket.socket, known_hosts: KnownHosts, started: float
) -> fabric.Connection:
    """Log in over ``sock``: banner, key exchange, host key check, authentication,
    all within ``login.connect_timeout`` of ``started``."""
    policy = known_hosts.policy(login.known_hosts, login.key_name)
    keys = _keys(login)
    remaining = max(0.1, login.connect_timeout - (time.monotonic() - started))
    conn = _connection(login, sock, policy, keys, remaining + _PARAMIKO_SLACK)
    watchdog = _Watchdog(remaining, conn, sock)
    try:
        conn.open()
    except (paramiko.SSHException, OSError, EOFError) as exc:
        close_quietly(conn, sock)
        if watchdog.stop():
            raise TransportError(_timed_out(login, conn, policy)) from None
        raise TransportError(handshake_error(login, exc, keys)) from None
    finally:
        keys.close()
    if watchdog.stop():  # struck just as the login finished: it is closed now
        raise TransportError(_timed_out(login, conn, policy))
    return conn


def _connection(
    login: Login, sock: socket.socket, policy: HostKeyPolicy, keys: _Keys, timeout: float
) -> fabric.Connection:
    """A fabric connection over ``sock`` that checks host keys our way."""
    conn = fabric.Connection(
        login.address,
        user=login.user,
        port=login.port,
        # No ~/.ssh/config behind the inventory's back: ssh_config is read only
        # when the inventory asks for it, and then by driftcheck.sshconfig.
        config=fabric.Config(lazy=True),
        gateway=False,
        forward_agent=False,  # never: a collection needs no agent on the host
        connect_kwargs={
            "sock": sock,
            "key_filename": list(keys.key_filename),
            "pkey": keys.pkey,
            "look_for_keys": keys.look_for_keys,
            "allow_agent": keys.allow_agent,
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
            "channel_timeout": timeout,
        },
    )
    client: paramiko.SSHClient = conn.client
    # fabric installs AutoAddPolicy (accept any key): check against known_hosts.
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


def _timed_out(login: Login, conn: fabric.Connection, policy: HostKeyPolicy) -> str:
    """Which phase the deadline struck in, from how far the handshake got."""
    seconds = f"{login.connect_timeout:g}s"
    transport = conn.client.get_transport()
    if transport is None or not transport.remote_version:
        return f"no SSH banner from {login.where} within {seconds} (host hung or not an SSH server)"
    if not policy.verified:
        return f"SSH key exchange with {login.where} timed out after {seconds}"
    return (
        f"authentication as {login.user!r} on {login.where} timed out after {seconds} "
        "(the server took the key exchange, then never answered the login)"
    )


def handshake_error(login: Login, exc: Exception, keys: _Keys) -> str:
    """What went wrong between TCP connect and login, in one non-empty line."""
    if isinstance(exc, HostKeyRefused):
        return str(exc)
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"host key for {login.key_name} does not match {login.known_hosts} (offered "
            f"{fingerprint(exc.key)}, expected {fingerprint(exc.expected_key)}); refusing to "
            "connect. If the host was reinstalled, verify and update known_hosts"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return _auth_error(login, exc, keys)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, paramiko.SSHException):
        if "No authentication methods available" in text:
            return (
                f"no key to log in to {login.where} as {login.user!r} with ({keys.offered()}); "
                "set identity_file or load a key into ssh-agent"
            )
        if "banner" in text.lower():
            return (
                f"no SSH banner from {login.where} within {login.connect_timeout:g}s "
                "(host hung or not an SSH server)"
            )
        return f"SSH error with {login.where}: {text}"
    if isinstance(exc, EOFError) or not str(exc):
        return (
            f"{login.where} closed the connection during the SSH handshake (not an SSH "
            "server, or sshd refused us: MaxStartups, AllowUsers, a firewall?)"
        )
    return f"connection to {login.where} lost during the SSH handshake: {text}"


def _auth_error(login: Login, exc: paramiko.AuthenticationException, keys: _Keys) -> str:
    """Refused, timed out or unusable key: which, and what was offered."""
    who = f"authentication as {login.user!r} on {login.where}"
    if isinstance(exc, paramiko.PasswordRequiredException):
        key = login.identity_file or "a default ~/.ssh/id_* key"
        return (
            f"{who} failed: {key} is encrypted and the ssh-agent does not hold it; load it "
            "with ssh-add (driftcheck never asks for a passphrase)"
        )
    if isinstance(exc, paramiko.BadAuthenticationType):
        allowed = ", ".join(exc.allowed_types) or "nothing"
        return f"{who} refused: the server allows only {allowed}; driftcheck logs in with keys"
    if "timeout" in str(exc).lower():
        return f"{who} timed out after {login.connect_timeout:g}s (the server never answered)"
    return f"{who} refused (offered: {keys.offered()})"
