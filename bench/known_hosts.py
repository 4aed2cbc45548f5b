"""known_hosts handling: parse once per run vs once per connection.

paramiko's HostKeys.load checks every new line against the entries already
loaded, so parsing is quadratic in the file's size; fabric would have each
connection load the file again. driftcheck parses each file once per run
(driftcheck.transports.ssh.KnownHosts) and shares it.

Run: python3 bench/known_hosts.py [LINES] [HOSTS]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sys
import tempfile
import time
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from driftcheck.transports.ssh import KnownHosts


def hashed(host: str) -> str:
    salt = os.urandom(20)
    digest = hmac.new(salt, host.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def make_file(path: Path, lines: int) -> list[str]:
    hosts = [f"[10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}]:22" for i in range(lines)]
    with path.open("w") as f:
        for host in hosts:
            key = (
                ed25519.Ed25519PrivateKey.generate()
                .public_key()
                .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            )
            f.write(f"{hashed(host)} {key.decode()}\n")
    return hosts


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    n_hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "known_hosts"
        hosts = make_file(path, lines)
        shared = KnownHosts()
        started = time.perf_counter()
        shared.policy(path, hosts[0])  # the first host reads the file
        once = time.perf_counter() - started
        started = time.perf_counter()
        for host in hosts[1 : n_hosts + 1]:
            assert shared.policy(path, host).known
        lookup = (time.perf_counter() - started) / n_hosts
        started = time.perf_counter()
        naive = paramiko.HostKeys(str(path))
        per_connection = time.perf_counter() - started
        started = time.perf_counter()
        for host in hosts[1 : n_hosts + 1]:
            assert naive.lookup(host) is not None
        naive_lookup = (time.perf_counter() - started) / n_hosts
    print(f"known_hosts with {lines} hashed entries")
    print(f"driftcheck: read + index once per run   {once * 1000:8.1f} ms")
    print(f"driftcheck: policy() per host            {lookup * 1000:8.1f} ms")
    print(f"paramiko:   HostKeys(file), each load   {per_connection * 1000:8.1f} ms")
    print(f"paramiko:   lookup per host             {naive_lookup * 1000:8.1f} ms")
    print(
        f"paramiko, loading per connection, {n_hosts} hosts: "
        f"{(per_connection + naive_lookup) * n_hosts:.1f} s; driftcheck: "
        f"{once + lookup * n_hosts:.2f} s"
    )


if __name__ == "__main__":
    main()
