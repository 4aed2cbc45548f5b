"""known_hosts: plain, hashed and [host]:port names; several keys of one type; @revoked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from driftcheck.transports.ssh import HostKeyRefused, KnownHosts


def new_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def pkey(line: str) -> paramiko.PKey:
    keytype, blob = line.split()[:2]
    return paramiko.PKey.from_type_string(keytype, base64.b64decode(blob))


def hashed(name: str) -> str:
    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def accepts(kh: KnownHosts, path: Path, name: str, key: str) -> bool:
    try:
        kh.policy(path, name).missing_host_key(paramiko.SSHClient(), name, pkey(key))
    except HostKeyRefused:
        return False
    return True


def test_plain_hashed_port_names_and_markers(tmp_path: Path) -> None:
    plain, hashed_key, port_key, revoked, other = (new_key() for _ in range(5))
    path = tmp_path / "known_hosts"
    path.write_text(
        "# comment\n\n"
        f"web1.example.com,10.0.0.1 {plain} a comment\n"
        f"{hashed('10.0.0.2')} {hashed_key}\n"
        f"[10.0.0.3]:2222 {port_key}\n"
        f"10.0.0.4 {revoked}\n"
        f"@revoked * {revoked}\n"
        f"@cert-authority *.example.com {other}\n"
        "garbage line\n"
    )
    kh = KnownHosts()
    assert accepts(kh, path, "10.0.0.1", plain) and accepts(kh, path, "web1.example.com", plain)
    assert accepts(kh, path, "10.0.0.2", hashed_key)
    assert accepts(kh, path, "[10.0.0.3]:2222", port_key)
    assert not accepts(kh, path, "10.0.0.3", port_key)  # another port, another host
    assert not accepts(kh, path, "10.0.0.1", other)
    assert not accepts(kh, path, "10.0.0.4", revoked)  # listed, but revoked


def test_several_keys_of_one_type_all_count(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    path = tmp_path / "known_hosts"
    path.write_text(f"10.0.0.1 {old}\n10.0.0.1 {new}\n")
    kh = KnownHosts()
    assert accepts(kh, path, "10.0.0.1", old) and accepts(kh, path, "10.0.0.1", new)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is not in"),
        ("10.0.0.1 {other}\n", "does not match"),
        ("10.0.0.1 {key}\n@revoked * {key}\n", "is marked @revoked"),
    ],
)
def test_refusals_say_why(tmp_path: Path, content: str, message: str) -> None:
    key, other = new_key(), new_key()
    path = tmp_path / "known_hosts"
    path.write_text(content.format(key=key, other=other))
    with pytest.raises(HostKeyRefused, match=message):
        KnownHosts().policy(path, "10.0.0.1").missing_host_key(
            paramiko.SSHClient(), "10.0.0.1", pkey(key)
        )


def test_missing_file_trusts_nothing(tmp_path: Path) -> None:
    assert not accepts(KnownHosts(), tmp_path / "absent", "10.0.0.1", new_key())


def test_file_is_read_once_per_run(tmp_path: Path) -> None:
    key = new_key()
    path = tmp_path / "known_hosts"
    path.write_text(f"10.0.0.1 {key}\n")
    kh = KnownHosts()
    assert accepts(kh, path, "10.0.0.1", key)
    path.write_text("")  # a later change is not seen by the same run
    assert accepts(kh, path, "10.0.0.1", key)
