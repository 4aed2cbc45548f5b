"""The groups collector: its shell never lets a group password out; its parser's rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

from driftcheck.collectors import BY_NAME
from driftcheck.model import CollectSettings

GROUPS = BY_NAME["groups"]


def run_shell(group: Path) -> subprocess.CompletedProcess[bytes]:
    """The section's shell against another file, under sh -c like the runner."""
    body = GROUPS.shell_for(CollectSettings()).replace("/etc/group", str(group))
    return subprocess.run(
        ["sh", "-c", body],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_shell_blanks_group_passwords(tmp_path: Path) -> None:
    group = tmp_path / "group"
    group.write_text("wheel:$1$abc$hashhashhash:10:alice,bob\nstaff:x:50:\n")
    proc = run_shell(group)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"wheel::10:alice,bob\nstaff::50:\n"
    assert b"gshadow" not in GROUPS.shell_for(CollectSettings()).encode()


def test_shell_on_this_machine_never_sends_the_second_field() -> None:
    proc = run_shell(Path("/etc/group"))
    assert proc.returncode == 0
    lines = [line for line in proc.stdout.split(b"\n") if b":" in line]
    assert lines and all(line.split(b":")[1] == b"" for line in lines)


def test_members_are_a_sorted_set() -> None:
    parsed = GROUPS.parse("g::7:zed, amy,,zed,\nh::8\n")
    assert parsed.facts == {
        "g": {"gid": 7, "members": ["amy", "zed"]},
        "h": {"gid": 8, "members": []},
    }
    assert parsed.errors == {}


def test_malformed_lines_are_errors_and_the_first_entry_wins() -> None:
    parsed = GROUPS.parse("a::1:x\na::2:y\nb::2:c:d\nc\n")
    assert parsed.facts == {"a": {"gid": 1, "members": ["x"]}}
    assert parsed.errors == {"b": "malformed /etc/group entry: 5 fields, expected 4"}
