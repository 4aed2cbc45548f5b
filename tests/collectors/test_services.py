"""The ``services`` collector beyond its fixtures: planted sysv, chkconfig and OpenRC trees,
no service manager, volatile units, planted lab drift."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.collectors.services import PID1_HIDDEN
from driftcheck.findings import State
from driftcheck.inventory import Inventory, load_inventory
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import CollectSettings, HostSnapshot, ParseResult, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.redact import Redactor
from driftcheck.runner import collect_all, now_iso
from driftcheck.script import NOT_APPLICABLE_RC
from tests.support.paths import FIXTURES

SERVICES = BY_NAME["services"]
Planted = tuple[Inventory, dict[str, HostSnapshot]]


# ------------------------------------------------- planted init trees (mount namespace)


@dataclass(frozen=True)
class Link:
    """A symlink to plant."""

    target: str


#: path below the planted root -> file content (a "#!" script is made executable),
#: a Link, or "" for a path ending in "/" (an empty directory).
Tree = dict[str, "str | Link"]
BUSYBOX = "/usr/bin/busybox"
SCRIPT = "#!/bin/sh\n# a service script\n"
OPENRC = "#!/sbin/openrc-run\ndescription='a service'\n"


def plant(root: Path, tree: Tree) -> None:
    """Make ``tree`` under ``root``, readable by every user."""
    for rel, what in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, Link):
            path.symlink_to(what.target)
        elif rel.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text(what)
            path.chmod(0o755 if what.startswith("#!") else 0o644)
    for sub in ("etc", "run"):
        (root / sub).mkdir(exist_ok=True)
    for folder in [root, *(d for d in root.rglob("*") if d.is_dir() and not d.is_symlink())]:
        folder.chmod(0o755)


def run_in_tree(
    root: Path,
    shell: list[str],
    *,
    pid1: str | None = None,
    as_nobody: bool = False,
    hidden: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """The section (script on stdin, like the runner) with ``root``'s etc and run as
    /etc and /run, in a private mount namespace; ``pid1`` planted as /proc/1/comm
    (root-only when ``hidden``).

    PATH is an empty folder: no systemctl, and the section must get by on builtins.
    """
    binds = ['mount --bind "$1/etc" /etc', 'mount --bind "$1/run" /run']
    if pid1 is not None:
        (root / "comm").write_text(pid1 + "\n")
        (root / "comm").chmod(0o600 if hidden else 0o644)
        binds.append('mount --bind "$1/comm" /proc/1/comm')
    (root / "empty").mkdir(exist_ok=True)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    inner = [*(nobody if as_nobody else []), "env", "-i", "LC_ALL=C", f"PATH={root}/empty"]
    return subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            " && ".join(binds) + ' || exit 99; shift; exec "$@"',
            "sh",
            str(root),
            *inner,
            *shell,
            "-s",
        ],
        input=SERVICES.shell_for(CollectSettings()).encode(),
        capture_output=True,
        check=False,
    )


def rc_links(name: str, start: str, stop: str, number: str = "01") -> Tree:
    """update-rc.d's links for a script: S in ``start``'s runlevels, K in ``stop``'s."""
    tree: Tree = {}
    for kind, levels in (("S", start), ("K", stop)):
        for level in levels:
            tree[f"etc/rc{level}.d/{kind}{number}{name}"] = Link(f"../init.d/{name}")
    return tree


#: Debian with sysvinit-core instead of systemd: what update-rc.d leaves behind.
SYSV: Tree = {
    **{f"etc/init.d/{n}": SCRIPT for n in ("ssh", "cron", "nginx", "procps", "rsync")},
    "etc/init.d/rc": SCRIPT,  # sysv-rc's runlevel drivers, not services
    "etc/init.d/rcS": SCRIPT,
    "etc/init.d/README": "Scripts in this folder are started by rc.\n",
    "etc/init.d/skeleton": "# copy me\n",  # not executable: not a service
    "etc/init.d/ssh.dpkg-old": SCRIPT,  # a conffile's old copy, left by dpkg
    **rc_links("ssh", "2345", ""),
    **rc_links("cron", "2345", ""),
    **rc_links("nginx", "", "0123456"),  # update-rc.d nginx disable
    **rc_links("procps", "S", ""),
    "etc/rc2.d/S02gone": Link("../init.d/gone"),  # its package was removed
    "etc/rc2.d/README": "runlevel 2\n",
}

#: RHEL 6 (chkconfig): scripts in /etc/rc.d/init.d, /etc/init.d and /etc/rcN.d are symlinks.
RHEL6: Tree = {
    **{f"etc/rc.d/init.d/{n}": SCRIPT for n in ("network", "sshd", "crond", "netconsole")},
    "etc/rc.d/init.d/functions": "# sourced by the scripts\n",
    "etc/init.d": Link("rc.d/init.d"),
    **{f"etc/rc{n}.d": Link(f"rc.d/rc{n}.d") for n in "0123456"},
    **{
        k.replace("etc/", "etc/rc.d/", 1): v
        for k, v in {
            **rc_links("network", "2345", "016", "10"),
            **rc_links("sshd", "2345", "016", "55"),
            **rc_links("crond", "2345", "016", "90"),
            **rc_links("netconsole", "", "0123456", "50"),
        }.items()
    },
}


def openrc_links(level: str, *names: str) -> Tree:
    """``rc-update add NAME LEVEL`` for each name."""
    return {f"etc/runlevels/{level}/{n}": Link(f"/etc/init.d/{n}") for n in names}


#: Alpine's runlevels after setup-alpine (alpine-base's rc-update calls).
ALPINE_RUNLEVELS = {
    "sysinit": ("devfs", "dmesg", "mdev", "hwdrivers"),
    "boot": ("bootmisc", "hostname", "hwclock", "modules", "networking", "seedrng"),
    "default": ("acpid", "crond", "sshd", "chronyd"),
    "shutdown": ("killprocs", "mount-ro", "savecache"),
}
ALPINE_RUNLEVELS["boot"] += ("swap", "sysctl", "syslog")
_IN_RUNLEVELS = [n for names in ALPINE_RUNLEVELS.values() for n in names]

#: Alpine (OpenRC, busybox) booted to "default": every service of its runlevels started
#: but chronyd (it failed); local and nginx installed but in no runlevel; an apk-new copy
#: of sshd's script; an empty runlevel of its own (nonetwork).
ALPINE: Tree = {
    **{f"etc/init.d/{n}": OPENRC for n in (*_IN_RUNLEVELS, "local", "nginx")},
    "etc/init.d/sshd.apk-new": OPENRC,
    **{
        k: v
        for level, names in ALPINE_RUNLEVELS.items()
        for k, v in openrc_links(level, *names).items()
    },
    "etc/runlevels/nonetwork/": "",
    "run/openrc/softlevel": "default\n",
    **{
        f"run/openrc/started/{n}": Link(f"/etc/init.d/{n}")
        for level in ("sysinit", "boot", "default")
        for n in ALPINE_RUNLEVELS[level]
        if n != "chronyd"
    },
}

#: fixture case -> (tree, shell, PID 1's name as planted)
PLANTED_CASES: dict[str, tuple[Tree, list[str], str]] = {
    "sysv-debian-no-systemd": (SYSV, ["/bin/sh"], "init"),
    "sysv-rhel6-chkconfig": (RHEL6, ["/bin/sh"], "init"),
    "alpine-openrc": (ALPINE, [BUSYBOX, "sh"], "init"),
}


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A folder under /tmp that nobody may enter (pytest's own are root's only)."""
    root = Path(tempfile.mkdtemp(prefix="dc-services-"))
    yield root
    shutil.rmtree(root)


@pytest.mark.parametrize("case", sorted(PLANTED_CASES))
def test_planted_trees_print_their_fixture(case: str, shared_root: Path) -> None:
    # The fixtures' output.txt is this shell's real output over these trees.
    tree, shell, pid1 = PLANTED_CASES[case]
    plant(shared_root, tree)
    proc = run_in_tree(shared_root, shell, pid1=pid1)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (FIXTURES / "services" / case / "output.txt").read_bytes()
    # Everything read is world-readable: nobody sees the same.
    assert run_in_tree(shared_root, shell, pid1=pid1, as_nobody=True).stdout == proc.stdout


def test_update_rc_d_enable_and_disable_are_what_the_keys_show(shared_root: Path) -> None:
    # This machine's own /etc under an overlay, edited by Debian's update-rc.d.
    upper, work = shared_root / "upper", shared_root / "work"
    upper.mkdir()
    work.mkdir()
    steps = {"enable": ["2", "3", "4", "5"], "disable": []}
    for action, levels in steps.items():
        proc = subprocess.run(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                # an empty /run: update-rc.d must not see (and reload) a running systemd
                "mount -t tmpfs none /run && "
                f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc"
                f" && update-rc.d ssh {action} >/dev/null 2>&1 && exec sh -s",
            ],
            input=SERVICES.shell_for(CollectSettings()).encode(),
            capture_output=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        facts = SERVICES.parse(proc.stdout.decode()).facts
        assert facts["sysv:ssh"] == levels, action


@pytest.mark.parametrize("shell", [["/bin/sh"], [BUSYBOX, "sh"]])
def test_without_any_service_manager_the_section_is_not_applicable(
    shell: list[str], shared_root: Path
) -> None:
    # A minimal container: no systemctl, no /etc/init.d, no /etc/runlevels.
    plant(shared_root, {"etc/hostname": "box\n"})
    proc = run_in_tree(shared_root, shell)
    assert proc.returncode == NOT_APPLICABLE_RC
    assert proc.stdout == b""
    assert b"no systemctl, /etc/init.d or /etc/runlevels" in proc.stderr


def test_a_hidden_pid_1_is_unknown(shared_root: Path) -> None:
    # hidepid: /proc/1 is hidden from other users; here a root-only file over /proc/1/comm.
    plant(shared_root, SYSV)
    proc = run_in_tree(shared_root, ["/bin/sh"], pid1="init", as_nobody=True, hidden=True)
    assert proc.returncode == 0, proc.stderr
    parsed = SERVICES.parse(proc.stdout.decode())
    assert "pid1" not in parsed.facts
    assert parsed.errors == {"pid1": PID1_HIDDEN}
    assert parsed.facts["sysv:ssh"] == ["2", "3", "4", "5"]


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


def test_init_script_lines() -> None:
    raw = (
        "#pid1 init\n#init.d\nssh\nrc\nfoo~\nbar.rpmsave\n\n"
        "#rc.d\n2 S20ssh\n3 Sssh\n0 K01ssh\nS S01unknown\n2 garbage\n2\n"
    )
    assert SERVICES.parse(raw) == ParseResult({"pid1": "init", "sysv:ssh": ["2", "3"]})
    # /etc/runlevels makes the same scripts OpenRC's; no #started: OpenRC has not run.
    raw = "#init.d\nsshd\nnginx\n#rc.d\n#runlevels\ndefault sshd\nboot sshd\nnolevel\n"
    assert SERVICES.parse(raw).facts == {"openrc:nginx": [], "openrc:sshd": ["boot", "default"]}
    assert SERVICES.parse("#pid1?\n#init.d\n") == ParseResult({}, {"pid1": PID1_HIDDEN})


def test_keys_of_the_three_sources_cannot_collide() -> None:
    facts = SERVICES.parse(
        (FIXTURES / "services" / "debian12-offline-sysv" / "output.txt").read_text()
    ).facts
    units = [k for k in facts if not k.startswith(("sysv:", "openrc:")) and k != "pid1"]
    assert units and all(re.search(r"\.[a-z]+(:active)?$", k) for k in units)
    assert {"ssh.service", "sysv:ssh", "pid1"} <= facts.keys()


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
    # the init scripts too, and who really is PID 1 (the same on both: no drift)
    assert snaps["prod1"].sections["services"].facts["sysv:ssh"] == ["2", "3", "4", "5"]
    assert len({snap.sections["services"].facts["pid1"] for snap in snaps.values()}) == 1


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
        # ...and runs update-rc.d (systemd-sysv-install), which turns the S links into K
        ("sysv:ssh", State.CHANGED): {"prod1": ["2", "3", "4", "5"], "stg1": []},
    }
