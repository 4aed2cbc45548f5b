"""The users collector: its shell never lets a password out; its parser's rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

from driftcheck.collectors import BY_NAME
from driftcheck.model import CollectSettings

USERS = BY_NAME["users"]
HASH = "$6$salt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"


def run_shell(passwd: Path, max_lines: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """The section's shell against another file, under sh -c like the runner."""
    body = USERS.shell_for(CollectSettings()).replace("/etc/passwd", str(passwd))
    if max_lines is not None:
        body = body.replace("-v max=100000", f"-v max={max_lines}")
    return subprocess.run(
        ["sh", "-c", body],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_shell_blanks_password_hashes_and_keeps_everything_else(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_bytes(
        f"root:{HASH}:0:0:root:/root:/bin/bash\n"
        f"old:{HASH}:1000:1000:Jos\xe9:/home/old:/bin/sh\n".encode("latin-1")
        + b"weird:x\n"
    )
    proc = run_shell(passwd)
    assert proc.returncode == 0, proc.stderr
    assert b"$6$" not in proc.stdout and b"salt" not in proc.stdout
    assert proc.stdout == (
        b"root::0:0:root:/root:/bin/bash\nold::1000:1000:Jos\xe9:/home/old:/bin/sh\nweird:\n"
    )


def test_shell_on_this_machine_never_sends_the_second_field() -> None:
    proc = run_shell(Path("/etc/passwd"))
    assert proc.returncode == 0
    lines = [line for line in proc.stdout.split(b"\n") if b":" in line]
    assert lines and all(line.split(b":")[1] == b"" for line in lines)
    assert b"shadow" not in USERS.shell_for(CollectSettings()).encode()


def test_too_large_a_file_is_an_error_not_a_cut_list(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(f"u{i}:x:{i}:{i}::/:/bin/sh\n" for i in range(5)))
    proc = run_shell(passwd, max_lines=3)
    assert proc.returncode == 3
    assert b"more than 3 lines" in proc.stderr


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    assert run_shell(tmp_path / "absent").returncode != 0


def test_first_valid_entry_wins_and_malformed_ones_are_errors() -> None:
    parsed = USERS.parse(
        "dup::1:1::/a:/bin/sh\n"
        "dup::2:2::/b:/bin/sh\n"
        "late:::\n"  # malformed first...
        "late::3:3:Late:/c:/bin/sh\n"  # ...then valid: glibc returns this one
        "bad::4\n"
        "  # comment: here\n"
    )
    assert parsed.facts == {
        "dup": {"uid": 1, "gid": 1, "home": "/a", "shell": "/bin/sh"},
        "late": {"uid": 3, "gid": 3, "gecos": "Late", "home": "/c", "shell": "/bin/sh"},
    }
    assert parsed.errors == {"bad": "malformed /etc/passwd entry: 3 fields, expected 7"}


def test_values_are_deterministic() -> None:
    text = "b::2:2::/b:/bin/sh\na::1:1::/a:/bin/sh\n"
    assert list(USERS.parse(text).facts) == ["a", "b"]
    assert USERS.parse(text) == USERS.parse(text)
