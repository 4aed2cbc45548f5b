"""Host keys: known_hosts files indexed once per run, and the strict policy that
checks every server key (targets and jump hosts alike) against them."""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from .base import TransportError


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
        #: set once the server's key was accepted: authentication comes next
        self.verified = False

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
                f"host key of {self.name} ({fingerprint(key)}) is marked @revoked in "
                f"{self.path}; refusing to connect"
            )
        if any(b == blob for _, b in self.known):
            self.verified = True
            return
        if self.known:
            listed = ", ".join(sorted({t for t, _ in self.known}))
            raise HostKeyRefused(
                f"host key for {self.name} does not match {self.path} (offered "
                f"{fingerprint(key)}; known: {listed}); refusing to connect. If the host "
                "was reinstalled, verify and update known_hosts"
            )
        raise HostKeyRefused(
            f"host key of {self.name} is not in {self.path}; refusing to connect. "
            "Verify its fingerprint and add it to known_hosts"
        )


def fingerprint(key: paramiko.PKey) -> str:
    """``type SHA256:...``, as ssh prints a key."""
    return f"{key.get_name()} SHA256:{key.fingerprint.split(':', 1)[-1]}"
