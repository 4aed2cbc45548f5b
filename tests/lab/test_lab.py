"""End-to-end tests of the namespace test lab (driftcheck.lab), as root.

Every test talks to real lab hosts with the system OpenSSH client.  Labs are
always torn down by finalizers, also when a test fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
import yaml

from driftcheck.lab import (
    NETNS_PREFIX,
    STATE_DIR,
    Lab,
    LabError,
    LabHostSpec,
    cleanup_stale,
    require_root,
)
from tests.support.lab_support import (
    lab_mounts,
    lab_netns,
    live_lab_processes,
    mounts_under,
    ns_inodes,
    spawn_python,
    ssh,
    timed_up,
    wait_for,
)

pytestmark = pytest.mark.lab

PLANTED = "/etc/driftcheck-lab-test/app.conf"
PLANTED_TEXT = "listen = 8080\nworkers = 4\n"
SYSCTL_KEY = "net.core.somaxconn"
SYSCTL_PATH = Path("/proc/sys/net/core/somaxconn")
SYSCTL_VALUE = "1537"  # unlikely to be anybody's default

TIMINGS: dict[str, float] = {}

SPECS = [
    LabHostSpec(
        "prod-web1",
        "production",
        roles=("web", "app"),
        files={PLANTED: PLANTED_TEXT},
        file_modes={PLANTED: 0o600, "/etc/hosts": 0o640},
        file_owners={PLANTED: "daemon:daemon"},
        sysctls={SYSCTL_KEY: SYSCTL_VALUE},
    ),
    LabHostSpec("stg-web1", "staging"),
    LabHostSpec("stg-down", "staging", fault="down"),
    LabHostSpec("stg-hang", "staging", fault="hang"),
    LabHostSpec("stg-badkey", "staging", fault="wrong_host_key"),
]


# ---------------------------------------------------------------- helpers


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def real_root_snapshot() -> dict[str, object]:
    """Facts about the real / that the lab must never change."""
    snap: dict[str, object] = {
        "planted_exists": os.path.lexists(PLANTED),
        "hosts_mode": stat.S_IMODE(os.stat("/etc/hosts").st_mode),
        "hosts_sha": sha256("/etc/hosts"),
        "sysctl": SYSCTL_PATH.read_text(),
        "etc_ssh": sorted(os.listdir("/etc/ssh")),
    }
    for path in (
        "/etc/hostname",
        "/etc/ssh/ssh_host_ed25519_key.pub",
        "/root/.ssh/authorized_keys",
    ):
        snap[path] = sha256(path) if os.path.exists(path) else None
    return snap


def ns_inode_of(lab: Lab, host: str, kind: str) -> int:
    link = lab.exec(host, ["readlink", f"/proc/self/ns/{kind}"]).stdout
    return int(re.sub(r"\D", "", link))


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def real_before() -> dict[str, object]:
    return real_root_snapshot()


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, real_before: dict[str, object]) -> Lab:
    lab = Lab()
    request.addfinalizer(lab.down)
    return timed_up(lab, SPECS, TIMINGS)


# ---------------------------------------------------------------- the hosts


def test_up_is_fast(lab: Lab) -> None:
    assert TIMINGS["up"] < 5.0, f"bringing up {len(SPECS)} hosts took {TIMINGS['up']:.2f}s"


def test_two_hosts_answer_with_their_own_hostname(lab: Lab) -> None:
    for name in ("prod-web1", "stg-web1"):
        started = time.monotonic()
        result = ssh(lab, name, "hostname; cat /etc/hostname; uname -n")
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [name, name, name]
        assert elapsed < 5.0


def test_each_host_presents_its_own_host_key(lab: Lab) -> None:
    keys = {}
    for name in ("prod-web1", "stg-web1"):
        result = ssh(lab, name, "cat /etc/ssh/ssh_host_ed25519_key.pub; ls /etc/ssh | grep host_")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        keys[name] = " ".join(lines[0].split()[:2])
        assert keys[name] == lab.hosts[name].host_public_key
        # Only the host's own key pair; the real machine's keys are hidden.
        assert lines[1:] == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    assert keys["prod-web1"] != keys["stg-web1"]
    real_pub = Path("/etc/ssh/ssh_host_ed25519_key.pub")
    if real_pub.exists():
        assert " ".join(real_pub.read_text().split()[:2]) not in keys.values()
    kh = lab.known_hosts.read_text().splitlines()
    for name, host in lab.hosts.items():
        assert any(line.startswith(f"[127.0.0.1]:{host.port} ssh-ed25519 ") for line in kh), name


def test_planted_file_only_on_its_host(lab: Lab) -> None:
    prod = ssh(lab, "prod-web1", f"stat -c '%a %U:%G' {PLANTED}; cat {PLANTED}")
    assert prod.returncode == 0, prod.stderr
    assert prod.stdout == "600 daemon:daemon\n" + PLANTED_TEXT
    stg = ssh(lab, "stg-web1", f"test -e {PLANTED}; echo $?")
    assert stg.stdout.strip() == "1"
    assert not os.path.lexists(PLANTED)
    # The write went to prod's overlay upper dir.
    assert (lab.upper_dir("prod-web1") / PLANTED.lstrip("/")).read_text() == PLANTED_TEXT


def test_mode_drift_on_an_existing_file(lab: Lab, real_before: dict[str, object]) -> None:
    prod = ssh(lab, "prod-web1", "stat -c %a /etc/hosts")
    stg = ssh(lab, "stg-web1", "stat -c %a /etc/hosts")
    assert prod.stdout.strip() == "640"
    assert stg.stdout.strip() == f"{real_before['hosts_mode']:o}"
    assert stat.S_IMODE(os.stat("/etc/hosts").st_mode) == real_before["hosts_mode"]


def test_planted_sysctl_only_on_its_host(lab: Lab, real_before: dict[str, object]) -> None:
    prod = ssh(lab, "prod-web1", f"sysctl -n {SYSCTL_KEY}")
    stg = ssh(lab, "stg-web1", f"sysctl -n {SYSCTL_KEY}")
    assert prod.stdout.strip() == SYSCTL_VALUE
    assert stg.stdout.strip() not in ("", SYSCTL_VALUE)
    assert SYSCTL_PATH.read_text() == real_before["sysctl"]
    assert SYSCTL_PATH.read_text().strip() != SYSCTL_VALUE


def test_down_host_refuses_connections(lab: Lab) -> None:
    started = time.monotonic()
    result = ssh(lab, "stg-down", "true", connect_timeout=2)
    assert result.returncode == 255
    assert "Connection refused" in result.stderr
    assert time.monotonic() - started < 2.0


def test_hang_host_times_out(lab: Lab) -> None:
    # The TCP connection is accepted, but no SSH banner ever comes.
    with socket.create_connection(("127.0.0.1", lab.hosts["stg-hang"].port), timeout=2) as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(64)
    started = time.monotonic()
    result = ssh(lab, "stg-hang", "true", connect_timeout=2)
    elapsed = time.monotonic() - started
    assert result.returncode == 255
    assert "timed out" in result.stderr
    assert 1.5 < elapsed < 15


def test_wrong_host_key_is_refused(lab: Lab, tmp_path: Path) -> None:
    result = ssh(lab, "stg-badkey", "hostname")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr
    assert result.stdout == ""
    # The host itself works: with its real key it answers.
    host = lab.hosts["stg-badkey"]
    real_kh = tmp_path / "known_hosts"
    real_kh.write_text(f"[127.0.0.1]:{host.port} {host.host_public_key}\n")
    good = subprocess.run(
        [
            "ssh", "-F", "/dev/null", "-i", str(lab.identity_file),
            "-o", f"UserKnownHostsFile={real_kh}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-p", str(host.port), "root@127.0.0.1", "hostname",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "stg-badkey"


def test_ssh_command_helper(lab: Lab) -> None:
    result = subprocess.run(
        lab.ssh_command("stg-web1", "echo $SSH_CONNECTION"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # sshd gets the real TCP socket (socat nofork), so it knows the client.
    assert result.stdout.split()[0] == "127.0.0.1"
    assert result.stdout.split()[3] == str(lab.hosts["stg-web1"].port)


def test_paramiko_accepts_lab_known_hosts(lab: Lab) -> None:
    """The project's SSH library verifies hosts against the lab's known_hosts."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            "127.0.0.1",
            port=lab.hosts["prod-web1"].port,
            username="root",
            key_filename=str(lab.identity_file),
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
        )
        _, stdout, _ = client.exec_command("hostname")
        assert stdout.read().decode().strip() == "prod-web1"
    finally:
        client.close()


def test_exec_changes_state_between_collections(lab: Lab) -> None:
    path = "/etc/driftcheck-lab-test/exec.conf"
    lab.write_file("stg-web1", path, "changed = yes\n", mode=0o640, owner="root:daemon")
    result = ssh(lab, "stg-web1", f"stat -c '%a %U:%G' {path}; cat {path}")
    assert result.stdout == "640 root:daemon\nchanged = yes\n"
    assert not os.path.lexists(path)
    assert lab.exec("stg-web1", ["cat", path]).stdout == "changed = yes\n"
    assert lab.exec("stg-web1", ["false"], check=False).returncode == 1
    with pytest.raises(LabError) as info:
        lab.exec("stg-web1", ["ls", "/nonexistent-dir"])
    message = str(info.value)
    assert "\n" not in message and "ls /nonexistent-dir" in message and "No such file" in message
    # exec works on faulty hosts too (their namespaces exist).
    assert lab.exec("stg-down", ["hostname"]).stdout.strip() == "stg-down"
    with pytest.raises(LabError, match="unknown lab host"):
        lab.exec("nope", ["true"])


def test_host_has_a_fresh_root_home(lab: Lab) -> None:
    result = ssh(lab, "stg-web1", "ls -A /root; stat -c '%a %U' /root")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [".bashrc", ".profile", ".ssh", "700", "root"]


def test_host_sees_only_its_own_network(lab: Lab) -> None:
    result = ssh(lab, "stg-web1", "ls /sys/class/net; findmnt -n -o TARGET / ")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "lo"


def test_inventory_shape(lab: Lab, tmp_path: Path) -> None:
    ports = {name: host.port for name, host in lab.hosts.items()}
    expected = {
        "defaults": {
            "user": "root",
            "port": 22,
            "identity_file": str(lab.identity_file),
            "known_hosts": str(lab.known_hosts),
            "connect_timeout": 5,
            "command_timeout": 30,
        },
        "environments": {
            "production": {
                "hosts": {
                    "prod-web1": {
                        "address": "127.0.0.1",
                        "port": ports["prod-web1"],
                        "roles": ["web", "app"],
                    }
                }
            },
            "staging": {
                "hosts": {
                    name: {"address": "127.0.0.1", "port": ports[name], "roles": ["web"]}
                    for name in ("stg-web1", "stg-down", "stg-hang", "stg-badkey")
                }
            },
        },
        "compare": {"reference": "production", "targets": ["staging"]},
        "collect": {},
    }
    assert lab.inventory() == expected
    collect = {"sections": ["sysctl", "files"]}
    path = lab.write_inventory(tmp_path / "inv" / "lab.yaml", collect)
    assert yaml.safe_load(path.read_text()) == {**expected, "collect": collect}
    assert len(set(ports.values())) == len(ports)


def test_real_root_untouched(lab: Lab, real_before: dict[str, object]) -> None:
    real_version = Path("/etc/debian_version").read_text()
    probe = "/usr/local/share/driftcheck-lab-probe"
    # Create and delete files from inside a host, as root.
    result = ssh(
        lab,
        "prod-web1",
        f"echo x > {probe} && rm /etc/debian_version && test ! -e /etc/debian_version",
    )
    assert result.returncode == 0, result.stderr
    assert not os.path.lexists(probe)
    assert Path("/etc/debian_version").read_text() == real_version
    # Runs after the tests that wrote inside the hosts.
    assert real_root_snapshot() == real_before
    # Every change is in the host's overlay upper dir (a deletion is a whiteout).
    upper = lab.upper_dir("prod-web1")
    assert (upper / probe.lstrip("/")).read_text() == "x\n"
    whiteout = os.stat(upper / "etc/debian_version", follow_symlinks=False)
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert (upper / "etc/ssh/ssh_host_ed25519_key").exists()
    assert (upper / "root/.ssh/authorized_keys").exists()
    # The other host is not affected.
    assert ssh(lab, "stg-web1", "cat /etc/debian_version").stdout == real_version


# ---------------------------------------------------------------- validation


def test_spec_validation() -> None:
    with pytest.raises(LabError, match="only net"):
        LabHostSpec("h1", "staging", sysctls={"kernel.pid_max": "1"})
    with pytest.raises(LabError, match="invalid path"):
        LabHostSpec("h1", "staging", files={"etc/x": ""})
    with pytest.raises(LabError, match="invalid path"):
        LabHostSpec("h1", "staging", file_modes={"/etc/../x": 0o600})
    with pytest.raises(LabError, match="invalid lab host name"):
        LabHostSpec("bad name", "staging")
    with pytest.raises(LabError, match="unknown fault"):
        LabHostSpec("h1", "staging", fault="flaky")  # type: ignore[arg-type]
    with pytest.raises(LabError, match="invalid owner"):
        LabHostSpec("h1", "staging", file_owners={"/etc/x": "root; rm -rf /"})
    spec = LabHostSpec("h1", "staging", files={"/etc/x": "1"})
    with pytest.raises(TypeError):
        spec.files["/etc/y"] = "2"  # type: ignore[index]


def test_require_root_message(monkeypatch: pytest.MonkeyPatch) -> None:
    require_root()  # we are root in CI
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError) as info:
        require_root()
    assert str(info.value) == "the lab needs root (network and mount namespaces); run as root"


def test_up_rejects_duplicates_and_reuse() -> None:
    lab = Lab()
    try:
        with pytest.raises(LabError, match="duplicate"):
            lab.up([LabHostSpec("a1", "staging"), LabHostSpec("a1", "production")])
    finally:
        lab.down()
    assert not lab.workdir.exists()
    with pytest.raises(LabError, match="only once"):
        lab.up([LabHostSpec("a1", "staging")])


def test_failed_up_leaves_nothing(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    bad = LabHostSpec("bad-web1", "staging", file_owners={"/etc/hosts": "nosuchuser:nosuchgroup"})
    with pytest.raises(LabError) as info:
        lab.up([LabHostSpec("ok-web1", "production"), bad])
    message = str(info.value)
    assert "\n" not in message and "chown" in message and "nosuchuser" in message
    assert lab_netns(lab.lab_id) == []
    assert lab_mounts(lab.lab_id) == []
    assert live_lab_processes(lab.lab_id) == []
    assert list(tmp_path.iterdir()) == []
    assert not (STATE_DIR / f"{lab.lab_id}.json").exists()
    lab.down()  # still fine


def test_unknown_sysctl_is_a_clear_error() -> None:
    with Lab() as lab, pytest.raises(LabError, match=r"net\.core\.no_such_key"):
        lab.up([LabHostSpec("bad-web2", "staging", sysctls={"net.core.no_such_key": "1"})])
    assert not lab.workdir.exists()


# ---------------------------------------------------------------- teardown


def test_down_removes_everything(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    lab = Lab(tmp_path)
    request.addfinalizer(lab.down)
    lab.up([LabHostSpec("td-web1", "production"), LabHostSpec("td-hang", "staging", fault="hang")])
    netns = lab_netns(lab.lab_id)
    assert len(netns) == 2
    inodes = {ns_inode_of(lab, h, kind) for h in lab.hosts for kind in ("mnt", "net")}
    state_file = STATE_DIR / f"{lab.lab_id}.json"
    assert sorted(json.loads(state_file.read_text())["netns"]) == sorted(netns)

    # A live SSH session and a hung connection that down() must end.
    session = subprocess.Popen(
        [*lab.ssh_command("td-web1", "echo ready; exec sleep 300")],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    request.addfinalizer(session.kill)
    assert session.stdout is not None
    line = session.stdout.readline()
    assert line.strip() == "ready", lab.log_text("td-web1")
    hung = socket.create_connection(("127.0.0.1", lab.hosts["td-hang"].port), timeout=2)
    request.addfinalizer(hung.close)
    wait_for(lambda: "sleep 3600" in lab.exec("td-hang", ["ps", "-eo", "args"]).stdout)
    before = live_lab_processes(lab.lab_id, inodes)
    assert any("sleep 300" in p for p in before)
    assert any("sleep 3600" in p for p in before)
    assert any("socat" in p for p in before)
    assert len(lab_mounts(lab.lab_id)) == 7  # run dir, 2 x (mnt, uts), 2 netns

    started = time.monotonic()
    lab.down()
    elapsed = time.monotonic() - started

    assert lab_netns(lab.lab_id) == []
    assert mounts_under(tmp_path) == []
    assert lab_mounts(lab.lab_id) == []
    assert not (STATE_DIR / f"{NETNS_PREFIX}{lab.lab_id}").exists()
    assert live_lab_processes(lab.lab_id, inodes) == []
    assert not state_file.exists()
    assert tmp_path.exists() and list(tmp_path.iterdir()) == []  # a given workdir is kept
    assert session.wait(timeout=10) is not None  # the ssh session was cut
    lab.down()  # idempotent
    assert elapsed < 5.0


def test_default_workdir_is_removed() -> None:
    lab = Lab()
    try:
        lab.up([LabHostSpec("tmp-web1", "staging")])
        assert lab.identity_file.exists() and str(lab.workdir).startswith("/")
    finally:
        lab.down()
    assert not lab.workdir.exists()


CHILD = r"""
import json, sys, time
from pathlib import Path
from driftcheck.lab import Lab, LabHostSpec
lab = Lab(Path(sys.argv[1]))
lab.up([LabHostSpec("crash-web1", "production"),
        LabHostSpec("crash-hang", "staging", fault="hang")])
print(json.dumps({
    "lab_id": lab.lab_id,
    "ports": {name: host.port for name, host in lab.hosts.items()},
    "identity": str(lab.identity_file),
    "known_hosts": str(lab.known_hosts),
}), flush=True)
time.sleep(600)
"""


@pytest.fixture
def killed_lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, object]]:
    """A lab whose process was SIGKILLed while a session and a hung connection were open."""
    child = spawn_python(CHILD, str(tmp_path))

    def finish() -> None:
        child.kill()
        child.wait()
        cleanup_stale()  # whatever the test did, leave nothing behind

    request.addfinalizer(finish)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, child.stderr.read() if child.stderr else "child lab did not start"
    info: dict[str, object] = json.loads(line)
    ports: dict[str, int] = info["ports"]  # type: ignore[assignment]
    session = subprocess.Popen(
        [
            "ssh", "-F", "/dev/null", "-i", str(info["identity"]),
            "-o", f"UserKnownHostsFile={info['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-p", str(ports["crash-web1"]), "root@127.0.0.1",
            "echo ready; exec sleep 301",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    request.addfinalizer(session.kill)
    assert session.stdout is not None
    assert session.stdout.readline().strip() == "ready"
    hung = socket.create_connection(("127.0.0.1", ports["crash-hang"]), timeout=2)
    request.addfinalizer(hung.close)
    lab_id = str(info["lab_id"])
    wait_for(lambda: any("sleep 3600" in p for p in live_lab_processes(lab_id, ns_inodes(lab_id))))

    child.send_signal(signal.SIGKILL)
    child.wait()
    info["inodes"] = ns_inodes(lab_id)
    info["workdir"] = str(tmp_path)
    info["session"] = session
    yield info


def assert_leftovers(info: dict[str, object]) -> None:
    lab_id = str(info["lab_id"])
    inodes: set[int] = info["inodes"]  # type: ignore[assignment]
    assert len(lab_netns(lab_id)) == 2
    assert len(inodes) == 6  # 2 netns + 2 mount + 2 UTS namespaces
    procs = live_lab_processes(lab_id, inodes)
    assert any("socat" in p for p in procs)
    assert any("sleep 3600" in p for p in procs)
    assert any("sleep 301" in p for p in procs)
    assert len(lab_mounts(str(info["lab_id"]))) == 7


def assert_all_gone(info: dict[str, object]) -> None:
    lab_id = str(info["lab_id"])
    assert lab_netns(lab_id) == []
    assert live_lab_processes(lab_id, info["inodes"]) == []  # type: ignore[arg-type]
    assert mounts_under(Path(str(info["workdir"]))) == []
    assert lab_mounts(lab_id) == []
    assert not (STATE_DIR / f"{lab_id}.json").exists()
    session: subprocess.Popen[str] = info["session"]  # type: ignore[assignment]
    assert session.wait(timeout=10) is not None


def test_cleanup_stale_after_sigkill(killed_lab: dict[str, object], lab: Lab) -> None:
    assert_leftovers(killed_lab)
    lab_id = str(killed_lab["lab_id"])
    assert (STATE_DIR / f"{lab_id}.json").exists()

    removed = cleanup_stale()

    assert f"netns {NETNS_PREFIX}{lab_id}-0" in removed
    assert any(item.startswith("process ") for item in removed)
    assert any(item.startswith("dir ") for item in removed)
    assert_all_gone(killed_lab)
    assert list(Path(str(killed_lab["workdir"])).iterdir()) == []
    # A live lab (the module's) is never touched by cleanup.
    assert ssh(lab, "prod-web1", "hostname").stdout.strip() == "prod-web1"
    assert cleanup_stale() == []


def test_cleanup_stale_without_state_file(killed_lab: dict[str, object]) -> None:
    """A lab killed before its state file was written is still found by its prefix."""
    lab_id = str(killed_lab["lab_id"])
    (STATE_DIR / f"{lab_id}.json").unlink()
    assert_leftovers(killed_lab)

    removed = cleanup_stale()

    assert f"netns {NETNS_PREFIX}{lab_id}-1" in removed
    assert_all_gone(killed_lab)


def test_new_lab_after_a_killed_one(killed_lab: dict[str, object]) -> None:
    """Lab.up() cleans stale leftovers first and then works."""
    with (
        pytest.warns(UserWarning, match=f"leftovers of crashed lab.*{killed_lab['lab_id']}"),
        Lab() as fresh,
    ):
        fresh.up([LabHostSpec("next-web1", "staging")])
        assert ssh(fresh, "next-web1", "hostname").stdout.strip() == "next-web1"
    assert_all_gone(killed_lab)
