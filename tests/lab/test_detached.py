"""Detached labs: built from a YAML spec, they outlive the process that built them.

``cleanup_stale()`` leaves them alone; only ``stop_detached()`` (or the owning
``Lab`` object's ``down()``) removes them.  Every test stops what it started,
also when it fails, and never stops labs it did not start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import driftcheck.lab.host
from driftcheck.lab import (
    STATE_DIR,
    Lab,
    LabError,
    LabHostSpec,
    cleanup_stale,
    list_labs,
    load_specs,
    stop_detached,
)
from driftcheck.lab.registry import _select_detached
from driftcheck.lab.state import LabRecord
from driftcheck.lab.system import boot_id, start_time
from tests.support.lab_support import (
    lab_mounts,
    lab_netns,
    live_lab_processes,
    mounts_under,
    ns_inodes,
    spawn_python,
    ssh,
    ssh_port,
)

pytestmark = pytest.mark.lab

SPEC = """\
hosts:
  det-web1:
    environment: production
    files: {/etc/det.conf: "detached = yes\\n"}
    file_modes: {/etc/det.conf: "0640"}
  det-down: {environment: staging, fault: down}
"""

# Builds a lab from a YAML spec, prints how to reach it, then either exits
# normally (atexit handlers run) or waits to be SIGKILLed.
CHILD = r"""
import json, sys, time
from pathlib import Path
from driftcheck.lab import Lab, load_specs
workdir, spec, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
lab = Lab(workdir, detached=(how == "constructor"))
lab.up(load_specs(spec))
if how == "method":
    lab.detach()
print(json.dumps({
    "lab_id": lab.lab_id,
    "ports": {name: host.port for name, host in lab.hosts.items()},
    "identity": str(lab.identity_file),
    "known_hosts": str(lab.known_hosts),
}), flush=True)
if how == "method":
    time.sleep(600)
"""


@dataclass
class Remote:
    """A lab built by a child process, as the test sees it."""

    lab_id: str
    ports: dict[str, int]
    identity: Path
    known_hosts: Path
    workdir: Path
    inodes: set[int]

    def ssh(self, host: str, command: str) -> subprocess.CompletedProcess[str]:
        return ssh_port(self.identity, self.known_hosts, self.ports[host], command)


@pytest.fixture
def spawn_detached(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], Remote]:
    """Build a detached lab in a child process ("constructor": it exits; "method": SIGKILL)."""
    spec = tmp_path / "lab.yaml"
    spec.write_text(SPEC)

    def spawn(how: str) -> Remote:
        workdir = tmp_path / how
        workdir.mkdir()
        child = spawn_python(CHILD, str(workdir), str(spec), how)
        request.addfinalizer(child.kill)
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else "child lab did not start"
        info = json.loads(line)
        # Whatever the test does, never leave the detached lab running.
        request.addfinalizer(lambda: _stop_quietly(info["lab_id"]))
        if how == "constructor":
            assert child.wait(timeout=30) == 0, child.stderr.read() if child.stderr else ""
        else:
            child.send_signal(signal.SIGKILL)
            child.wait()
        return Remote(
            lab_id=info["lab_id"],
            ports=info["ports"],
            identity=Path(info["identity"]),
            known_hosts=Path(info["known_hosts"]),
            workdir=workdir,
            inodes=ns_inodes(info["lab_id"]),
        )

    return spawn


def _stop_quietly(lab_id: str) -> None:
    with contextlib.suppress(LabError):
        stop_detached(lab_id)


def port_is_bound(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE
            return True
    return False


def assert_running(remote: Remote) -> None:
    result = remote.ssh("det-web1", "hostname; stat -c %a /etc/det.conf; cat /etc/det.conf")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "det-web1\n640\ndetached = yes\n"
    # The "down" host refuses connections, and its port stays reserved
    # although the process that bound it first is gone.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", remote.ports["det-down"]), timeout=2).close()
    assert port_is_bound(remote.ports["det-down"])


def assert_stopped(remote: Remote) -> None:
    assert lab_netns(remote.lab_id) == []
    assert lab_mounts(remote.lab_id) == []
    assert mounts_under(remote.workdir) == []
    assert live_lab_processes(remote.lab_id, remote.inodes) == []
    assert not (STATE_DIR / f"{remote.lab_id}.json").exists()
    assert list(remote.workdir.iterdir()) == []
    assert remote.lab_id not in {info.lab_id for info in list_labs()}
    assert not port_is_bound(remote.ports["det-down"])
    assert remote.ssh("det-web1", "true").returncode == 255


def test_detached_lab_outlives_its_process(spawn_detached: Callable[[str], Remote]) -> None:
    remote = spawn_detached("constructor")  # the child exited normally: atexit ran
    assert_running(remote)

    removed = cleanup_stale()
    assert not [item for item in removed if remote.lab_id in item]
    assert_running(remote)

    (info,) = [info for info in list_labs() if info.lab_id == remote.lab_id]
    assert info.detached
    assert dict(info.hosts) == remote.ports
    assert info.workdir == remote.workdir
    assert info.identity_file == remote.identity
    assert info.known_hosts == remote.known_hosts

    assert stop_detached(remote.lab_id) == [remote.lab_id]
    assert_stopped(remote)
    with pytest.raises(LabError, match=f"no lab {remote.lab_id}"):
        stop_detached(remote.lab_id)


def test_detach_method_survives_sigkill_of_its_owner(
    spawn_detached: Callable[[str], Remote],
) -> None:
    remote = spawn_detached("method")
    assert_running(remote)
    cleanup_stale()
    assert_running(remote)
    # The "dclab-" form of the id works too.
    assert stop_detached(f"dclab-{remote.lab_id}") == [remote.lab_id]
    assert_stopped(remote)


@pytest.fixture(scope="module")
def owned_lab() -> Iterator[Lab]:
    with Lab() as lab:
        lab.up([LabHostSpec("own-web1", "staging")])
        yield lab


def test_list_labs_shows_labs_of_live_processes(owned_lab: Lab) -> None:
    (info,) = [info for info in list_labs() if info.lab_id == owned_lab.lab_id]
    assert not info.detached
    assert info.owner_pid == os.getpid()
    assert dict(info.hosts) == {"own-web1": owned_lab.hosts["own-web1"].port}


def test_stop_detached_refuses_what_it_must_not_stop(owned_lab: Lab) -> None:
    with pytest.raises(LabError) as info:
        stop_detached(owned_lab.lab_id)
    message = str(info.value)
    assert "\n" not in message and "not detached" in message and str(os.getpid()) in message
    with pytest.raises(LabError, match="invalid lab id 'nope'"):
        stop_detached("nope")
    with pytest.raises(LabError, match=r"no lab 00000000 on this machine; running labs: \w+"):
        stop_detached("00000000")
    assert ssh(owned_lab, "own-web1", "hostname").stdout.strip() == "own-web1"


def test_stop_all_selects_only_detached_labs() -> None:
    """stop_detached() without an id acts on detached labs alone (checked on records:
    stopping every detached lab here would stop other people's labs too)."""

    def mine(lab_id: str, detached: bool) -> LabRecord:
        pid = os.getpid()
        return LabRecord(lab_id, boot_id(), pid, start_time(pid), detached=detached)

    detached = mine("0000000a", detached=True)
    detached_dead_owner = LabRecord(lab_id="0000000b", detached=True, boot_id=boot_id())
    owned = mine("0000000c", detached=False)
    stale = LabRecord(lab_id="0000000d", boot_id=boot_id(), owner_pid=1, owner_start=-1)
    records = [detached, detached_dead_owner, owned, stale]
    assert _select_detached(records, None) == [detached, detached_dead_owner]
    assert _select_detached(records, "0000000b") == [detached_dead_owner]
    assert _select_detached(records, "0000000d") == [stale]  # its owner died: fine to stop
    with pytest.raises(LabError, match="not detached"):
        _select_detached(records, "0000000c")
    assert detached.in_use() and detached_dead_owner.in_use() and owned.in_use()
    assert not stale.in_use()
    # After a reboot nothing of a lab survives but its directories: never in use.
    assert not LabRecord(lab_id="0000000e", detached=True, boot_id="old-boot").in_use()


def test_detached_with_block_keeps_the_lab_unless_it_fails(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "lab.yaml"
    spec.write_text(SPEC)
    # While up() runs, the state file says "not detached": a process killed
    # half-way through up() leaves a lab that cleanup_stale removes.
    seen: list[bool] = []
    build = driftcheck.lab.host.HostBuilder.build

    def spy(self: driftcheck.lab.host.HostBuilder, index: int, spec: LabHostSpec) -> object:
        seen.append(json.loads((STATE_DIR / f"{lab.lab_id}.json").read_text())["detached"])
        return build(self, index, spec)

    with monkeypatch.context() as patch, Lab(tmp_path / "kept", detached=True) as lab:
        patch.setattr(driftcheck.lab.host.HostBuilder, "build", spy)
        request.addfinalizer(lambda: _stop_quietly(lab.lab_id))
        lab.up(load_specs(spec))
    assert seen == [False, False]
    assert json.loads((STATE_DIR / f"{lab.lab_id}.json").read_text())["detached"] is True
    assert ssh(lab, "det-web1", "hostname").stdout.strip() == "det-web1"
    lab.down()  # the owning object can still stop it
    assert lab_netns(lab.lab_id) == []

    with pytest.raises(RuntimeError), Lab(tmp_path / "failed", detached=True) as failed:
        failed.up([LabHostSpec("det-fail", "staging")])
        raise RuntimeError("the block failed")
    assert lab_netns(failed.lab_id) == []
    assert not (STATE_DIR / f"{failed.lab_id}.json").exists()


def test_failed_detached_up_leaves_nothing(tmp_path: Path) -> None:
    lab = Lab(tmp_path, detached=True)
    with pytest.raises(LabError, match="nosuchuser"):
        lab.up([LabHostSpec("det-bad", "staging", file_owners={"/etc/hosts": "nosuchuser"})])
    assert lab_netns(lab.lab_id) == []
    assert lab_mounts(lab.lab_id) == []
    assert list(tmp_path.iterdir()) == []
    assert lab.lab_id not in {info.lab_id for info in list_labs()}
    with pytest.raises(LabError, match="is down"):
        lab.detach()
