"""known_hosts index: plain, hashed and [host]:port names; markers never trust a key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from driftcheck.transports.ssh import KnownHosts


def new_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def hashed(name: str) -> str:
    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def trusted(known_hosts: KnownHosts, path: Path, name: str) -> list[str]:
    client = paramiko.SSHClient()
    known_hosts.trust(client, path, name)
    found = client.get_host_keys().lookup(name)
    return [] if found is None else [found[k].get_base64() for k in found]


def test_plain_hashed_and_port_names(tmp_path: Path) -> None:
    plain, hashed_key, port_key, other = new_key(), new_key(), new_key(), new_key()
    path = tmp_path / "known_hosts"
    path.write_text(
        "# comment\n\n"
        f"web1.example.com,10.0.0.1 {plain} a comment\n"
        f"{hashed('10.0.0.2')} {hashed_key}\n"
        f"[10.0.0.3]:2222 {port_key}\n"
        f"@revoked 10.0.0.4 {other}\n"
        f"@cert-authority *.example.com {other}\n"
        "garbage line\n"
        "10.0.0.5 ssh-ed25519 !!!notbase64\n"
    )
    kh = KnownHosts()
    assert trusted(kh, path, "10.0.0.1") == [plain.split()[1]]
    assert trusted(kh, path, "web1.example.com") == [plain.split()[1]]
    assert trusted(kh, path, "10.0.0.2") == [hashed_key.split()[1]]
    assert trusted(kh, path, "[10.0.0.3]:2222") == [port_key.split()[1]]
    assert trusted(kh, path, "10.0.0.3") == []
    assert trusted(kh, path, "10.0.0.4") == []
    assert trusted(kh, path, "10.0.0.5") == []


def test_missing_file_trusts_nothing(tmp_path: Path) -> None:
    assert trusted(KnownHosts(), tmp_path / "absent", "10.0.0.1") == []


def test_file_is_read_once_per_run(tmp_path: Path) -> None:
    key = new_key()
    path = tmp_path / "known_hosts"
    path.write_text(f"10.0.0.1 {key}\n")
    kh = KnownHosts()
    assert trusted(kh, path, "10.0.0.1")
    path.write_text("")  # a later change is not seen by the same run
    assert trusted(kh, path, "10.0.0.1")
