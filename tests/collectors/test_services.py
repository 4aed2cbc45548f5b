"""The ``services`` collector beyond its fixtures: no systemd, volatile units, planted lab drift."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.findings import State
from driftcheck.inventory import Inventory, load_inventory
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import CollectSettings, HostSnapshot, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.redact import Redactor
from driftcheck.runner import collect_all, now_iso
from driftcheck.script import NOT_APPLICABLE_RC

SERVICES = BY_NAME["services"]
Planted = tuple[Inventory, dict[str, HostSnapshot]]


@pytest.mark.parametrize("shell", ["/bin/sh", "busybox"])
def test_without_systemctl_the_section_is_not_applicable(shell: str, tmp_path: Path) -> None:
    # Alpine (OpenRC) or a container: no systemctl on PATH -> 193 and a reason, not an error.
    busybox = shutil.which("busybox")
    if shell == "busybox" and not busybox:
        pytest.fail("busybox is not installed: apt-get install busybox (see .ci/run)")
    argv = [str(busybox), "sh"] if shell == "busybox" else [shell]
    proc = subprocess.run(
        [*argv, "-c", SERVICES.shell_for(CollectSettings())],
        env={"PATH": str(tmp_path)},  # an empty directory: no systemctl, no anything
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == NOT_APPLICABLE_RC
    assert proc.stdout == ""
    assert "systemctl" in proc.stderr


def is_volatile(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, glob) for glob in SERVICES.volatile)


@pytest.mark.parametrize(
    "key",
    [
        "session-3.scope",
        "session-1.scope:active",
        "init.scope:active",
        "user@1000.service:active",
        "user-runtime-dir@1000.service:active",
        "user-1000.slice",
        "user-1000.slice:active",
        "run-user-1000.mount:active",
        "run-u42.service",
        "run-r0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e.scope:active",
        "run-p1234-i5678.service:active",
        "sys-subsystem-net-devices-eth0.device:active",
        r"dev-disk-by\x2duuid-615eb89d\x2dbcbf.swap:active",
        r"systemd-fsck@dev-disk-by\x2duuid-05d927bb.service:active",
        "var-lib-docker-overlay2-1f2e-merged.mount:active",
        "snap-core20-2105.mount",
        "systemd-coredump@0-1234-0.service:active",
    ],
)
def test_units_that_change_by_nature_are_volatile(key: str) -> None:
    assert is_volatile(key)


@pytest.mark.parametrize(
    "key",
    [
        "ssh.service",
        "ssh.service:active",
        "cron.service:active",
        "getty@tty1.service",
        "getty@tty1.service:active",
        "user@.service",  # the template's enabled state is configuration
        "-.mount:active",
        "apt-daily.timer:active",
        "run-parts-nightly.service",  # a real unit whose name starts with "run-"
        "rabbitmq-server.service:active",
        "multi-user.target:active",
    ],
)
def test_configuration_is_not_volatile(key: str) -> None:
    assert not is_volatile(key)


def test_active_states_come_only_from_the_active_block() -> None:
    raw = "#unit-files\nssh.service enabled enabled\n#enabled-instances\n"
    assert SERVICES.parse(raw).facts == {"ssh.service": "enabled"}
    raw += "#active\n  ssh.service loaded active running OpenBSD Secure Shell server\n"
    assert SERVICES.parse(raw).facts == {"ssh.service": "enabled", "ssh.service:active": "active"}


# ---------------------------------------------------------------- lab: planted drift


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    tmp = tmp_path_factory.mktemp("services-lab")
    with Lab(tmp) as lab:
        lab.up([LabHostSpec("prod1", "production"), LabHostSpec("stg1", "staging")])
        # The planting recipe: systemd is not running in a lab host, so systemctl edits
        # the unit symlinks of the host's own (overlay) /etc offline.
        lab.exec("stg1", ["systemctl", "--root=/", "disable", "ssh.service"])
        lab.exec("stg1", ["systemctl", "--root=/", "enable", "getty@tty2.service"])
        inventory = load_inventory(lab.write_inventory(tmp / "inventory.yaml"))
        snaps = collect_all(inventory.hosts, [SERVICES], inventory.collect, Redactor(b"k" * 32))
        yield inventory, {s.host: s for s in snaps}


@pytest.mark.lab
def test_lab_hosts_report_unit_files(planted: Planted) -> None:
    _, snaps = planted
    for snap in snaps.values():
        section = snap.sections["services"]
        assert section.status is SectionStatus.OK, section.error
        # systemd is not PID 1 in a lab host: enabled states only, no guessed active states
        assert not [k for k in section.facts if k.endswith(":active")]
    assert snaps["prod1"].sections["services"].facts["ssh.service"] == "enabled"
    assert snaps["prod1"].sections["services"].facts["getty@tty1.service"] == "enabled"


@pytest.mark.lab
def test_lab_disabled_service_is_exactly_the_drift(planted: Planted) -> None:
    inventory, snaps = planted
    report = build_report(inventory, snaps, [SERVICES], now_iso())
    found = {(f.key, f.state): f.values for f in report.findings}
    assert found == {
        ("ssh.service", State.CHANGED): {"prod1": "enabled", "stg1": "disabled"},
        # `systemctl disable ssh` also removes Debian's sshd.service alias symlink
        ("sshd.service", State.MISSING): {"prod1": "alias", "stg1": None},
        ("getty@tty2.service", State.EXTRA): {"prod1": None, "stg1": "enabled"},
    }
