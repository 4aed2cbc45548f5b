"""The ports collector: both sources agree on this machine; address and port rules."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.collectors.ports import _proc_address, _ss_address
from driftcheck.model import CollectSettings
from driftcheck.script import NOT_APPLICABLE_RC

PORTS = BY_NAME["ports"]
#: Everything the /proc fallback uses; ss is left out so that the fallback runs.
TOOLS = ("cat", "od", "awk", "ls", "sh")


def tool_dir(tmp_path: Path, *names: str) -> Path:
    """A PATH directory holding only the named tools (so ss can be made to vanish)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    return bin_dir


def run_shell(path: str, *prefix: str) -> subprocess.CompletedProcess[bytes]:
    """The section's body under sh -c with the given PATH (the runner's prelude sets PATH)."""
    return subprocess.run(
        [*prefix, "sh", "-c", PORTS.shell_for(CollectSettings())],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env={"LC_ALL": "C", "PATH": path},
        check=False,
    )


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP listener of this process on a free port below the ephemeral range."""
    sock = socket.socket()
    for port in range(23_000, 23_200):
        try:
            sock.bind(("127.0.0.1", port))
            break
        except OSError:
            continue
    else:
        pytest.fail("no free port between 23000 and 23200")
    sock.listen()
    yield port
    sock.close()


def test_ss_and_proc_fallback_agree_on_this_machine(tmp_path: Path, listener: int) -> None:
    via_ss = run_shell(os.environ.get("PATH", "/usr/bin:/bin"))
    via_proc = run_shell(str(tool_dir(tmp_path, *TOOLS)))
    assert via_ss.returncode == 0 and via_proc.returncode == 0, via_proc.stderr
    assert b"#ss4" in via_ss.stdout and b"#proc tcp" in via_proc.stdout
    ss_facts = PORTS.parse(via_ss.stdout.decode("utf-8", "backslashreplace")).facts
    proc_facts = PORTS.parse(via_proc.stdout.decode("utf-8", "backslashreplace")).facts
    key = f"tcp 127.0.0.1:{listener}"
    me = Path("/proc/self/comm").read_text().strip()
    assert ss_facts[key] == proc_facts[key] == [me]
    # Device-bound sockets ("%lo") are the one thing /proc cannot show.
    assert {k.replace("%lo", "") for k in ss_facts} == set(proc_facts)


def test_unprivileged_run_lists_sockets_without_owners(listener: int) -> None:
    setpriv = shutil.which("setpriv") or "setpriv"
    nobody = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
    # pytest's tmp_path is private to root: nobody needs a directory it can enter.
    shared = Path(tempfile.mkdtemp(prefix="dc-ports-"))
    try:
        shared.chmod(0o755)
        tools = tool_dir(shared, *TOOLS)
        for path in (os.environ.get("PATH", "/usr/bin:/bin"), str(tools)):
            proc = run_shell(path, *nobody)
            assert proc.returncode == 0, proc.stderr
            facts = PORTS.parse(proc.stdout.decode("utf-8", "backslashreplace")).facts
            assert facts[f"tcp 127.0.0.1:{listener}"] == []
    finally:
        shutil.rmtree(shared)


def test_no_ss_and_no_awk_is_not_applicable(tmp_path: Path) -> None:
    proc = run_shell(str(tool_dir(tmp_path, "cat", "od", "sh")))
    assert proc.returncode == NOT_APPLICABLE_RC
    assert b"cannot be listed" in proc.stderr


@pytest.mark.parametrize(
    ("text", "family", "expected"),
    [
        ("*", "4", "0.0.0.0"),  # old ss: the IPv4 wildcard
        ("*", "6", "[::]"),  # new ss: a dual-stack IPv6 socket
        ("::", "6", "[::]"),  # old ss: ":::22"
        ("::1", "6", "[::1]"),
        ("[::ffff:127.0.0.1]", "6", "[::ffff:127.0.0.1]"),
        ("[FE80::0:1]%eth0", "6", "[fe80::1]%eth0"),
        ("fe80::1%eth0", "6", "[fe80::1]%eth0"),  # old ss puts the scope inside
        ("127.0.0.53%lo", "4", "127.0.0.53%lo"),
        ("not-an-address", "4", "not-an-address"),
    ],
)
def test_ss_addresses_get_one_spelling(text: str, family: str, expected: str) -> None:
    assert _ss_address(text, family) == expected


def test_proc_addresses_follow_the_host_byte_order() -> None:
    assert _proc_address("0100007F", little_endian=True) == "127.0.0.1"
    assert _proc_address("7F000001", little_endian=False) == "127.0.0.1"
    assert _proc_address("00000000000000000000000001000000", little_endian=True) == "[::1]"
    assert _proc_address("00000000000000000000000000000001", little_endian=False) == "[::1]"
    assert _proc_address("0000000000000000FFFF00000100007F", little_endian=True) == (
        "[::ffff:127.0.0.1]"
    )
    assert _proc_address("XYZ", little_endian=True) is None
    assert _proc_address("0100", little_endian=True) is None


def test_big_endian_proc_block() -> None:
    raw = (
        "#byteorder big\n#proc tcp\n"
        "   0: 7F000001:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
        "     0        0 42 1 0 100 0 0 10 0\n"
        "#owner 42 sshd\n"
    )
    assert PORTS.parse(raw).facts == {"tcp 127.0.0.1:22": ["sshd"]}


def test_ephemeral_range_and_reserved_ports_come_from_the_host() -> None:
    line = 'tcp LISTEN 0 128 0.0.0.0:{} 0.0.0.0:* users:(("app",pid=1,fd=3))\n'
    raw = "#range 1000\t2000\n#reserved 1500,1600-1610\n#ss4\n" + "".join(
        line.format(p) for p in (999, 1000, 1500, 1605, 1611, 2000, 2001)
    )
    assert PORTS.parse(raw).facts == {
        "tcp 0.0.0.0:(ephemeral)": ["app"],
        "tcp 0.0.0.0:1500": ["app"],
        "tcp 0.0.0.0:1605": ["app"],
        "tcp 0.0.0.0:2001": ["app"],
        "tcp 0.0.0.0:999": ["app"],
    }
    assert PORTS.volatile == ("*:(ephemeral)",)


def test_a_newline_in_a_program_name_does_not_break_the_record() -> None:
    raw = (
        "#ss4\n"
        'tcp LISTEN 0 128 127.0.0.1:9002 0.0.0.0:* users:(("a\n'
        'b",pid=7,fd=3),("other",pid=8,fd=3))\n'
        'tcp LISTEN 0 128 127.0.0.1:9003 0.0.0.0:* users:(("c",pid=9,fd=3))\n'
    )
    assert PORTS.parse(raw).facts == {
        "tcp 127.0.0.1:9002": ["a", "other"],
        "tcp 127.0.0.1:9003": ["c"],
    }


def test_old_ss_formats() -> None:
    # iproute2 3.x (RHEL 7.0-7.3): no "pid=" / "fd=", IPv6 without brackets.
    raw = (
        "#ss4\n"
        "Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
        'tcp LISTEN 0 128 *:22 *:* users:(("sshd",1234,3))\n'
        "#ss6\n"
        'tcp LISTEN 0 128 :::22 :::* users:(("sshd",1234,4))\n'
        'udp UNCONN 0 0 ::1:323 :::* users:(("chronyd",600,6))\n'
    )
    assert PORTS.parse(raw).facts == {
        "tcp 0.0.0.0:22": ["sshd"],
        "tcp [::]:22": ["sshd"],
        "udp [::1]:323": ["chronyd"],
    }
