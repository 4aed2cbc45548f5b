"""The ports collector: both sources agree on this machine, as root and as nobody;
address and port rules; what a non-root collection cannot know."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.collectors.base import DENIED
from driftcheck.collectors.ports import UNKNOWN_USER, _proc_address, _ss_address
from driftcheck.model import CollectSettings, ParseResult
from driftcheck.script import NOT_APPLICABLE_RC

PORTS = BY_NAME["ports"]
#: Everything the /proc fallback uses; ss is left out so that the fallback runs.
TOOLS = ("cat", "od", "awk", "ls", "sh", "id")
#: By its path: run_shell's PATH may hold only TOOLS.
NOBODY = (shutil.which("setpriv") or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


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


def parsed(proc: subprocess.CompletedProcess[bytes]) -> ParseResult:
    assert proc.returncode == 0, proc.stderr
    return PORTS.parse(proc.stdout.decode("utf-8", "backslashreplace"))


def test_ss_and_proc_fallback_agree_on_this_machine(tmp_path: Path, listener: int) -> None:
    via_ss = run_shell(os.environ.get("PATH", "/usr/bin:/bin"))
    via_proc = run_shell(str(tool_dir(tmp_path, *TOOLS)))
    assert b"#ss4" in via_ss.stdout and b"#proc tcp" in via_proc.stdout
    ss, proc = parsed(via_ss), parsed(via_proc)
    key = f"tcp 127.0.0.1:{listener}"
    me = Path("/proc/self/comm").read_text().strip()
    assert ss.facts[key] == proc.facts[key] == [me]
    # Device-bound sockets ("%lo") are the one thing /proc cannot show.
    assert {k.replace("%lo", "") for k in ss.facts} == set(proc.facts)
    assert not ss.errors and not proc.errors  # root sees every program


@pytest.fixture
def shared_tools() -> Iterator[Path]:
    """The fallback's tools in a folder nobody can enter (pytest's tmp_path is root's only)."""
    shared = Path(tempfile.mkdtemp(prefix="dc-ports-"))
    shared.chmod(0o755)
    yield tool_dir(shared, *TOOLS)
    shutil.rmtree(shared)


@pytest.fixture
def nobodys_listener(listener: int) -> Iterator[tuple[int, int]]:
    """(nobody's own listener, a listener of root handed to a process of nobody).

    The second is systemd's socket activation in small: root creates the socket,
    a service running as another user inherits it, root keeps its copy.
    """
    own, handed_port = listener + 1, listener + 2
    handed = socket.socket()
    handed.bind(("127.0.0.1", handed_port))
    handed.listen()
    procs = [
        subprocess.Popen(
            [*NOBODY, "socat", "-u", f"TCP4-LISTEN:{own},bind=127.0.0.1", "/dev/null"]
        ),
        subprocess.Popen([*NOBODY, "sleep", "60"], pass_fds=[handed.fileno()]),
    ]
    try:
        for _ in range(100):  # socat needs a moment to listen
            if f":{own:04X} ".encode() in Path("/proc/net/tcp").read_bytes():
                break
            time.sleep(0.05)
        yield own, handed_port
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        handed.close()


def test_unprivileged_run_reports_unknown_programs_as_errors(
    listener: int, nobodys_listener: tuple[int, int], shared_tools: Path
) -> None:
    own, handed = nobodys_listener
    for path in (os.environ.get("PATH", "/usr/bin:/bin"), str(shared_tools)):
        as_root, as_nobody = parsed(run_shell(path)), parsed(run_shell(path, *NOBODY))
        me = Path("/proc/self/comm").read_text().strip()
        assert as_root.facts[f"tcp 127.0.0.1:{handed}"] == sorted([me, "sleep"])
        assert as_root.facts[f"tcp 127.0.0.1:{own}"] == as_nobody.facts[f"tcp 127.0.0.1:{own}"]
        assert as_nobody.facts[f"tcp 127.0.0.1:{own}"] == ["socat"]
        # Root's socket shows no program to nobody; the handed one shows only "sleep".
        for port in (listener, handed):
            assert f"tcp 127.0.0.1:{port}" not in as_nobody.facts
            assert as_nobody.errors[f"tcp 127.0.0.1:{port}"] == DENIED
        # Whatever nobody cannot read is an error, never a fact with another value.
        assert as_nobody.facts.keys() | as_nobody.errors.keys() == as_root.facts.keys()
        assert all(as_root.facts[k] == v for k, v in as_nobody.facts.items())


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


SS_E = "#ss4\ntcp LISTEN 0 128 127.0.0.1:{port} 0.0.0.0:* {rest}\n"


@pytest.mark.parametrize(
    ("uid", "rest", "value", "error"),
    [
        # Root: what ss shows is the truth, an empty list included (a kernel socket).
        ("0", "ino:5 sk:1 <->", [], None),
        ("0", 'users:(("app",pid=1,fd=3)) uid:1000 ino:5 sk:1 <->', ["app"], None),
        # Not root: only the collecting user's own socket with a process seen is known.
        ("1000", 'users:(("app",pid=1,fd=3)) uid:1000 ino:5 sk:1 <->', ["app"], None),
        ("1000", "uid:1000 ino:5 sk:1 <->", None, DENIED),
        ("1000", 'users:(("app",pid=1,fd=3)) ino:5 sk:1 <->', None, DENIED),  # root's socket
        ("1000", 'users:(("app",pid=1,fd=3)) uid:33 ino:5 sk:1 <->', None, DENIED),
        # A name cannot make "uid:" up: only what follows the process list counts.
        ("1000", 'users:(("uid:1000",pid=1,fd=3)) ino:5 <->', None, DENIED),
        # Old output (no #uid, ss without -e): only an empty list is unknown.
        (None, 'users:(("app",pid=1,fd=3))', ["app"], None),
        (None, "", None, UNKNOWN_USER),
        ("", "ino:5 <->", None, UNKNOWN_USER),  # the host had no id(1)
    ],
)
def test_who_collected_decides_what_is_known(
    uid: str | None, rest: str, value: list[str] | None, error: str | None
) -> None:
    header = "" if uid is None else f"#uid {uid}\n"
    result = PORTS.parse(header + SS_E.format(port=8080, rest=rest))
    key = "tcp 127.0.0.1:8080"
    assert result.facts.get(key) == value
    assert result.errors.get(key) == error


def test_one_unknown_socket_makes_its_whole_key_unknown() -> None:
    # SO_REUSEPORT: two sockets, one key; nobody sees its own, not root's.
    raw = (
        "#uid 65534\n"
        + SS_E.format(port=8090, rest='users:(("web",pid=1,fd=3)) uid:65534 ino:5 <->')
        + SS_E.format(port=8090, rest="ino:6 <->").replace("#ss4\n", "")
    )
    assert PORTS.parse(raw) == ParseResult({}, {"tcp 127.0.0.1:8090": DENIED})


def test_a_newline_in_a_name_before_the_details_of_ss_e() -> None:
    raw = (
        "#uid 0\n#ss4\n"
        'tcp LISTEN 0 128 127.0.0.1:9002 0.0.0.0:* users:(("a\n'
        'b",pid=7,fd=3)) uid:65534 ino:5 sk:1 cgroup:/ <->\n'
        "tcp LISTEN 0 128 127.0.0.1:9003 0.0.0.0:* ino:6 sk:2 cgroup:/ <->\n"
    )
    assert PORTS.parse(raw).facts == {"tcp 127.0.0.1:9002": ["a"], "tcp 127.0.0.1:9003": []}
