"""LabHostSpec.release: lab hosts whose root is a real other Debian release.

The spec and cache tests run without root or network (a fake debootstrap).
The lab tests bring up a bookworm and a trixie host on root trees that
debootstrap built once into /var/cache/driftcheck-lab/releases (a few minutes
per release the first time, then cached), talk to the release's own sshd over
real SSH and collect both through the service layer into a store.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from driftcheck import service
from driftcheck.inventory import load_inventory
from driftcheck.lab import Lab, LabError, LabHostSpec, load_specs, releases
from driftcheck.lab.packages import check_release_installs
from driftcheck.lab.releases import build_release, debian_mirror, release_dir
from driftcheck.lab.spec import RELEASES
from driftcheck.model import HostStatus
from driftcheck.redact import Redactor
from driftcheck.storage import Store
from tests.support.lab_support import lab_mounts, lab_netns, live_lab_processes, mounts_under, ssh

PLANTED = "/etc/myapp/app.conf"
SYSCTL = ("net.core.somaxconn", "1777")
#: What each release's /etc/debian_version starts with.
DEBIAN_VERSION = {"bullseye": "11.", "bookworm": "12.", "trixie": "13."}


# ------------------------------------------------------------------ the spec


def test_release_is_validated() -> None:
    for release in RELEASES:
        assert LabHostSpec("h", "staging", release=release).release == release
    assert LabHostSpec("h", "staging").release is None
    message = r"unknown release 'buster' for host h; supported releases: bullseye, bookworm, trixie"
    with pytest.raises(LabError, match=message):
        LabHostSpec("h", "staging", release="buster")
    with pytest.raises(LabError, match="unknown release 13"):
        LabHostSpec("h", "staging", release=13)  # type: ignore[arg-type]


def test_specfile_reads_release_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(
        "hosts:\n"
        "  old-web1: {environment: production, release: bullseye}\n"
        "  new-web1:\n"
        "    environment: staging\n"
        "    release: trixie\n"
        "  own-web1: {environment: staging, release: null}\n"
    )
    assert [s.release for s in load_specs(path)] == ["bullseye", "trixie", None]
    path.write_text("hosts:\n  web1:\n    environment: staging\n\n    release: Trixie\n")
    with pytest.raises(LabError) as caught:
        load_specs(path)
    assert str(caught.value) == (
        f"{path}:5: unknown release 'Trixie' for host web1; supported releases: "
        "bullseye, bookworm, trixie (or leave release out for the machine's own root)"
    )
    path.write_text("hosts:\n  web1: {environment: staging, releas: trixie}\n")
    with pytest.raises(
        LabError, match=r"lab\.yaml:2: unknown field 'releas'.*did you mean release"
    ):
        load_specs(path)


def test_package_installs_need_the_machines_release() -> None:
    removal = LabHostSpec("h", "staging", release="trixie", packages={"cron": None})
    check_release_installs(removal, "bookworm")  # the host's own dpkg removes it
    same = LabHostSpec("h", "staging", release="bookworm", packages={"hello": "2.10-3"})
    check_release_installs(same, "bookworm")
    other = LabHostSpec("h", "staging", release="trixie", packages={"hello": "2.10-3"})
    with pytest.raises(LabError, match=r"host h \(release trixie\) cannot install hello=2.10-3"):
        check_release_installs(other, "bookworm")


def test_mirror_comes_from_apt_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sources.list.d").mkdir()
    monkeypatch.setattr(releases, "_SOURCES_LIST", tmp_path / "sources.list")
    monkeypatch.setattr(releases, "_SOURCES_DIR", tmp_path / "sources.list.d")
    monkeypatch.setattr(releases, "machine_release", lambda: "bookworm")
    assert debian_mirror() == releases.DEFAULT_MIRROR  # nothing configured
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert debian_mirror() == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] http://one.example/debian bookworm main\n"
    )
    assert debian_mirror() == "http://one.example/debian"


# ------------------------------------------------------------ the cache (no network)


@pytest.fixture()
def fake_build(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """debootstrap and apt replaced by a quick fake tree; returns the releases built."""
    built: list[str] = []

    def debootstrap(release: str, target: Path, mirror: str, lock_fd: int) -> None:
        built.append(release)
        time.sleep(0.2)  # long enough for a second builder to queue up
        for name in ("etc/debian_version", "usr/sbin/sshd", "usr/bin/dpkg-query"):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text(f"{release}\n")
        (target / "etc/ssh").mkdir()
        (target / "etc/ssh/ssh_host_rsa_key").write_text("secret")

    monkeypatch.setattr(releases, "_debootstrap", debootstrap)
    monkeypatch.setattr(releases, "_install_packages", lambda release, target, lock_fd: None)
    monkeypatch.setattr(releases.shutil, "which", lambda name: f"/usr/sbin/{name}")
    return built


def test_release_is_built_once_and_reused(tmp_path: Path, fake_build: list[str]) -> None:
    results: list[Path] = []
    builders = [
        threading.Thread(target=lambda: results.append(build_release("trixie", tmp_path)))
        for _ in range(3)
    ]
    for builder in builders:
        builder.start()
    for builder in builders:
        builder.join()
    assert fake_build == ["trixie"]  # one built, two waited and reused it
    assert results == [release_dir("trixie", tmp_path)] * 3
    tree = release_dir("trixie", tmp_path)
    assert (tree / "etc/debian_version").read_text() == "trixie\n"
    assert not list((tree / "etc/ssh").iterdir())  # no shared host key
    assert sorted(p.name for p in tmp_path.iterdir()) == [".trixie.lock", "trixie", "trixie.json"]
    assert build_release("trixie", tmp_path) == tree and fake_build == ["trixie"]


def test_interrupted_build_is_never_reused(
    tmp_path: Path, fake_build: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(release: str, target: Path, lock_fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(releases, "_install_packages", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_release("bookworm", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bookworm.lock"]
    # A build killed outright leaves its folder: the next build removes it.
    (tmp_path / ".build-bookworm-killed" / "etc").mkdir(parents=True)
    monkeypatch.setattr(releases, "_install_packages", lambda release, target, lock_fd: None)
    build_release("bookworm", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".bookworm.lock",
        "bookworm",
        "bookworm.json",
    ]


def test_a_held_lock_is_waited_for_then_named(
    tmp_path: Path, fake_build: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a killed build left running keeps the lock: nobody deletes its folder."""
    monkeypatch.setattr(releases, "_LOCK_WAIT", 0.5)
    with open(tmp_path / ".trixie.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(LabError, match=r"another build of the trixie root has held .*\.lock"):
            build_release("trixie", tmp_path)
    assert fake_build == []
    build_release("trixie", tmp_path)  # released: builds
    assert fake_build == ["trixie"]


def test_unknown_release_cannot_be_built(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="unknown release 'sid'; supported releases: bullseye"):
        build_release("sid", tmp_path)


# ------------------------------------------------------------------ real hosts (root)

SPECS = [
    LabHostSpec("old-web1", "production", release="bookworm"),
    LabHostSpec(
        "new-web1",
        "staging",
        release="trixie",
        files={PLANTED: "workers = 8\n"},
        file_modes={PLANTED: 0o640},
        file_owners={PLANTED: "root:adm"},
        sysctls={SYSCTL[0]: SYSCTL[1]},
        packages={"cron": None},
    ),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    # The first run builds both trees (minutes); later ones reuse the cache.
    for spec in SPECS:
        assert spec.release is not None
        build_release(spec.release)
    started = time.monotonic()
    with Lab(tmp_path_factory.mktemp("rlab")) as running:
        running.up(SPECS)
        print(f"\nrelease lab up from the cache in {time.monotonic() - started:.2f} s")
        yield running


def banner(port: int) -> str:
    """The SSH identification string the host's sshd sends first."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.makefile("rb").readline().decode().strip()


@pytest.mark.lab
def test_hosts_run_their_release(lab: Lab) -> None:
    for spec in SPECS:
        assert spec.release is not None
        out = ssh(
            lab, spec.name, "cat /etc/debian_version; . /etc/os-release; echo $VERSION_CODENAME"
        )
        assert out.returncode == 0, out.stderr
        version, codename = out.stdout.split()
        assert version.startswith(DEBIAN_VERSION[spec.release]) and codename == spec.release
        assert ssh(lab, spec.name, "hostname").stdout == f"{spec.name}\n"


@pytest.mark.lab
def test_each_host_runs_its_releases_own_sshd_and_dpkg(lab: Lab) -> None:
    seen = {}
    for spec in SPECS:
        out = ssh(lab, spec.name, "dpkg-query -W -f '${Version}' openssh-server")
        assert out.returncode == 0, out.stderr
        seen[spec.name] = out.stdout
        # The server announces the Debian revision that release's dpkg installed
        # (its upstream part may differ: trixie's 10.0p1-7 says "10.0p2").
        revision = out.stdout.rsplit("-", 1)[1]
        assert banner(lab.hosts[spec.name].port).endswith(f" Debian-{revision}")
        assert ssh(lab, spec.name, "test -d /run/sshd && echo yes").stdout == "yes\n"
    assert seen["old-web1"] != seen["new-web1"]
    assert len(ssh(lab, "new-web1", "dpkg-query -W").stdout.splitlines()) > 100
    # The spec removed cron from the trixie host only ("rc": only its conffiles remain).
    status = "dpkg-query -W -f '${db:Status-Abbrev}' cron"
    assert ssh(lab, "new-web1", status).stdout.strip() == "rc"
    assert ssh(lab, "old-web1", status).stdout.strip() == "ii"


@pytest.mark.lab
def test_planted_state_lands_in_the_host_only(lab: Lab) -> None:
    out = ssh(
        lab, "new-web1", f"cat {PLANTED}; stat -c '%a %U:%G' {PLANTED}; sysctl -n {SYSCTL[0]}"
    )
    assert out.stdout == f"workers = 8\n640 root:adm\n{SYSCTL[1]}\n", out.stderr
    assert ssh(lab, "old-web1", f"test -e {PLANTED}").returncode == 1
    tree = release_dir("trixie")
    assert not (tree / PLANTED.lstrip("/")).exists()  # the cached tree is never written
    assert (tree / "var/lib/dpkg/info/cron.list").exists()  # removed on the host only
    planted = lab.upper_dir("new-web1") / PLANTED.lstrip("/")
    assert stat.S_IMODE(planted.stat().st_mode) == 0o640
    # The host key is the host's own, not one of the tree's (the build removed those).
    assert not list((tree / "etc/ssh").glob("ssh_host_*"))
    assert lab.hosts["new-web1"].host_public_key != lab.hosts["old-web1"].host_public_key


@pytest.mark.lab
def test_driftcheck_collects_both_releases(lab: Lab, tmp_path: Path) -> None:
    inv_path = tmp_path / "inventory.yaml"
    inv_path.write_text(yaml.safe_dump(lab.inventory({"files": [PLANTED]}), sort_keys=False))
    inventory = load_inventory(inv_path)
    store = Store(f"sqlite:///{tmp_path / 'dc.db'}")
    redactor = Redactor.from_key_file(tmp_path / "hmac.key")
    run_id, snapshots = service.collect(inventory, store, redactor)
    stored = store.snapshots(run_id)
    assert {name: snap.status for name, snap in stored.items()} == {
        "old-web1": HostStatus.OK,
        "new-web1": HostStatus.OK,
    }, {snap.host: snap.error for snap in snapshots}
    report = service.latest_report(inventory, store)
    keys = {(f.collector, f.key) for f in report.findings if f.state.is_drift}
    # Another release differs in a great many facts; a few that must be among them:
    assert ("packages", "openssh-server") in keys
    assert ("packages", "cron") in keys
    assert ("sysctl", SYSCTL[0]) in keys
    assert len(keys) > 100
    store.close()


@pytest.mark.lab
def test_faults_and_teardown_on_a_release_host(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    try:
        lab.up(
            [
                LabHostSpec("rel-hang", "staging", release="trixie", fault="hang"),
                LabHostSpec("rel-down", "staging", release="bookworm", fault="down"),
            ]
        )
        out = ssh(lab, "rel-hang", "true", connect_timeout=1, timeout=10)
        assert out.returncode == 255 and "timed out" in out.stderr
        out = ssh(lab, "rel-down", "true", connect_timeout=1, timeout=10)
        assert out.returncode == 255 and "refused" in out.stderr
    finally:
        lab.down()
    assert lab_netns(lab.lab_id) == []
    assert lab_mounts(lab.lab_id) == []
    assert mounts_under(tmp_path) == []
    assert mounts_under(release_dir("trixie")) == []
    assert live_lab_processes(lab.lab_id) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.lab
def test_foreign_package_install_is_refused_before_anything_exists(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    spec = LabHostSpec("rel-pkg", "staging", release="trixie", packages={"hello": "2.10-3"})
    with pytest.raises(LabError, match=r"cannot install hello=2\.10-3: the \.debs come from"):
        lab.up([spec])
    assert lab_netns(lab.lab_id) == [] and list(tmp_path.iterdir()) == []
    assert not os.path.exists(lab.known_hosts)
