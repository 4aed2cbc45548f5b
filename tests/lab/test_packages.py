"""Real package drift on lab hosts: dpkg inside each host's overlay, never on the real machine.

Versions are picked at run time from what apt offers (Debian's archive moves
on: never hard-code them).  Test subjects: tzdata (arch all, several versions
in bookworm / -updates / -security, installed on the real machine) and hello
(small, not installed).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftcheck.lab import (
    DEB_CACHE,
    Lab,
    LabError,
    LabHostSpec,
    available_versions,
    installed_version,
)
from driftcheck.lab.packages import fetch_debs
from tests.support.lab_support import lab_mounts, lab_netns, live_lab_processes, ssh

pytestmark = pytest.mark.lab

STATUS = "dpkg-query -W -f='${db:Status-Abbrev}|${Version}\\n' "


@dataclass(frozen=True)
class Picks:
    real_tzdata: str | None
    other_tzdata: str
    hello: str


@pytest.fixture(scope="module")
def picks() -> Picks:
    real = installed_version("tzdata")
    other = [v for v in available_versions("tzdata") if v != real]
    assert other, "apt offers no tzdata version other than the installed one"
    hello = available_versions("hello")
    assert hello, "apt offers no hello"
    return Picks(real_tzdata=real, other_tzdata=other[0], hello=hello[0])


def real_dpkg_snapshot() -> dict[str, object]:
    """The real machine's dpkg database and the files of the test packages."""
    return {
        "status": hashlib.sha256(Path("/var/lib/dpkg/status").read_bytes()).hexdigest(),
        "info": sorted(os.listdir("/var/lib/dpkg/info")),
        "tzdata": installed_version("tzdata"),
        "hello": installed_version("hello"),
        "hello_bin": os.path.lexists("/usr/bin/hello"),
        "tzdata.zi": Path("/usr/share/zoneinfo/tzdata.zi").read_text().splitlines()[:1]
        if Path("/usr/share/zoneinfo/tzdata.zi").exists()
        else None,
    }


@pytest.fixture(scope="module")
def real_before() -> dict[str, object]:
    return real_dpkg_snapshot()


TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest, picks: Picks, real_before: dict[str, object]) -> Lab:
    lab = Lab()
    request.addfinalizer(lab.down)
    started = time.monotonic()
    lab.up(
        [
            LabHostSpec("pkg-other", "staging", packages={"tzdata": picks.other_tzdata}),
            LabHostSpec("pkg-plain", "production"),
            LabHostSpec("pkg-hello", "staging", packages={"hello": picks.hello}),
            # tzdata has installed reverse dependencies on Debian 12 (e.g.
            # libtcl8.6 where present): removal may need --force-depends.
            LabHostSpec("pkg-gone", "staging", packages={"tzdata": None}),
        ]
    )
    TIMINGS["up"] = time.monotonic() - started
    return lab


def status(lab: Lab, host: str, package: str) -> str | None:
    """'VERSION' when ``package`` is installed on ``host`` (asked over SSH), else None."""
    result = ssh(lab, host, STATUS + package)
    assert result.returncode in (0, 1), result.stderr
    for line in result.stdout.splitlines():
        abbrev, _, version = line.partition("|")
        if abbrev[1:2] == "i":
            return version
    return None


def test_versions_are_picked_dynamically(picks: Picks) -> None:
    versions = available_versions("tzdata")
    assert len(versions) == len(set(versions)) >= 2
    # Newest first, as dpkg orders versions.
    for newer, older in itertools.pairwise(versions):
        ordered = subprocess.run(["dpkg", "--compare-versions", newer, "gt", older], check=False)
        assert ordered.returncode == 0, (newer, older)
    assert picks.other_tzdata in versions and picks.other_tzdata != picks.real_tzdata
    real = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "dpkg"], capture_output=True, text=True, check=True
    )
    assert installed_version("dpkg") == real.stdout
    assert installed_version("hello") is None
    assert available_versions("no-such-package-driftcheck") == []
    with pytest.raises(LabError, match="invalid package name"):
        installed_version("tzdata; true")
    with pytest.raises(LabError, match="invalid package name"):
        available_versions("-o")


def test_tzdata_at_another_version_on_one_host(lab: Lab, picks: Picks) -> None:
    assert status(lab, "pkg-other", "tzdata") == picks.other_tzdata
    assert status(lab, "pkg-plain", "tzdata") == picks.real_tzdata
    assert status(lab, "pkg-hello", "tzdata") == picks.real_tzdata
    # The package's files were really unpacked: tzdata.zi names its upstream version.
    upstream = picks.other_tzdata.split("-")[0]
    first = ssh(lab, "pkg-other", "head -1 /usr/share/zoneinfo/tzdata.zi").stdout
    assert first.strip() == f"# version {upstream}"


def test_extra_package_only_on_its_host(lab: Lab, picks: Picks) -> None:
    assert status(lab, "pkg-hello", "hello") == picks.hello
    assert ssh(lab, "pkg-hello", "hello").stdout.strip() == "Hello, world!"
    for host in ("pkg-other", "pkg-plain", "pkg-gone"):
        assert status(lab, host, "hello") is None, host
        assert ssh(lab, host, "command -v hello").returncode == 1, host


def test_removed_package_gone_on_its_host_only(lab: Lab, picks: Picks) -> None:
    assert status(lab, "pkg-gone", "tzdata") is None
    # dpkg --remove keeps configuration files: dpkg reports "rc", as after `apt remove`.
    result = ssh(lab, "pkg-gone", STATUS + "tzdata")
    assert result.stdout.startswith(("rc", "un")) or result.returncode == 1, result.stdout
    assert ssh(lab, "pkg-gone", "test -e /usr/share/zoneinfo/UTC; echo $?").stdout.strip() == "1"
    if picks.real_tzdata is not None:
        assert status(lab, "pkg-plain", "tzdata") == picks.real_tzdata
        assert Path("/usr/share/zoneinfo/UTC").exists()


def test_real_dpkg_database_untouched(lab: Lab, real_before: dict[str, object]) -> None:
    assert real_dpkg_snapshot() == real_before
    # Everything went to the hosts' overlay upper dirs, .debs not included
    # (they were copied to each host's own /tmp, a tmpfs).
    for host in ("pkg-other", "pkg-hello", "pkg-gone"):
        upper = lab.upper_dir(host)
        assert (upper / "var/lib/dpkg/status").is_file(), host
        assert not list(upper.rglob("*.deb")), host
    assert (lab.upper_dir("pkg-hello") / "usr/bin/hello").is_file()
    assert (lab.upper_dir("pkg-hello") / "var/lib/dpkg/info/hello.list").is_file()
    # A removed directory is a whiteout in the upper dir, not a deletion below it.
    whiteout = os.stat(lab.upper_dir("pkg-gone") / "usr/share/zoneinfo", follow_symlinks=False)
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert not (lab.upper_dir("pkg-plain") / "var/lib/dpkg/status").exists()


def test_up_with_cached_debs_downloads_nothing(
    lab: Lab, picks: Picks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module lab filled the cache: a second lab comes up with apt-get unusable."""
    cached = {
        (name, version): fetch_debs([(name, version)])[(name, version)]
        for name, version in (("tzdata", picks.other_tzdata), ("hello", picks.hello))
    }
    assert all(path.parent == DEB_CACHE for path in cached.values())
    mtimes = {path: path.stat().st_mtime_ns for path in cached.values()}
    fake = tmp_path / "bin"
    fake.mkdir()
    called = tmp_path / "apt-get-was-called"
    (fake / "apt-get").write_text(f"#!/bin/sh\ntouch {called}\nexit 100\n")
    (fake / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    with Lab() as again:
        again.up([LabHostSpec("cached-hello", "staging", packages={"hello": picks.hello})])
        elapsed = time.monotonic() - started
        assert status(again, "cached-hello", "hello") == picks.hello
    assert not called.exists()
    assert {path: path.stat().st_mtime_ns for path in cached.values()} == mtimes
    assert elapsed < 5.0, f"a one-host lab with a cached package took {elapsed:.2f}s"
    assert TIMINGS["up"] < 30.0, f"the package lab took {TIMINGS['up']:.2f}s"


def fresh_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point apt at empty package lists, as on a freshly installed machine."""
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    (tmp_path / "cache" / "archives" / "partial").mkdir(parents=True)
    conf = tmp_path / "apt.conf"
    conf.write_text(f'Dir::State::Lists "{lists}/";\nDir::Cache "{tmp_path}/cache/";\n')
    monkeypatch.setenv("APT_CONFIG", str(conf))
    assert subprocess.run(["apt-cache", "madison", "hello"], capture_output=True,
                          text=True, check=True).stdout == ""  # fmt: skip
    return lists


def test_fresh_machine_download_updates_lists_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, picks: Picks
) -> None:
    lists = fresh_apt(tmp_path, monkeypatch)
    cache = tmp_path / "debs"
    debs = fetch_debs([("hello", picks.hello)], cache=cache)
    assert debs[("hello", picks.hello)].parent == cache
    assert debs[("hello", picks.hello)].is_file()
    assert list(lists.glob("*_Packages*")), "apt-get update did not run"
    assert sorted(p.name for p in cache.iterdir()) == [debs[("hello", picks.hello)].name]


def test_fresh_machine_available_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, picks: Picks
) -> None:
    fresh_apt(tmp_path, monkeypatch)
    assert picks.hello in available_versions("hello")


def assert_nothing_left(lab: Lab, workdir: Path) -> None:
    assert lab_netns(lab.lab_id) == []
    assert lab_mounts(lab.lab_id) == []
    assert live_lab_processes(lab.lab_id) == []
    assert list(workdir.iterdir()) == []


def test_missing_version_names_the_versions_that_exist(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    bogus = "0.0.1-driftcheck1"
    with pytest.raises(LabError) as info:
        lab.up(
            [
                LabHostSpec("ok-web1", "production"),
                LabHostSpec("bad-web1", "staging", packages={"hello": bogus}),
            ]
        )
    message = str(info.value)
    assert "\n" not in message
    assert f"package hello has no version {bogus}" in message
    for version in available_versions("hello"):
        assert version in message
    assert_nothing_left(lab, tmp_path)


def test_unknown_package_is_a_clear_error(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    with pytest.raises(LabError, match=r"no-such-package-driftcheck .*unknown to apt"):
        lab.up([LabHostSpec("bad-web2", "staging", packages={"no-such-package-driftcheck": "1"})])
    assert_nothing_left(lab, tmp_path)


def test_unmet_dependencies_are_reported(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """dpkg -i does not resolve dependencies: the error says so, and names the package."""
    # A package whose dependencies are not installed here: pick it at run time.
    candidates = ["cowsay", "sl", "figlet"]
    name = next(
        (
            c
            for c in candidates
            if installed_version(c) is None and available_versions(c) and _has_missing_dep(c)
        ),
        None,
    )
    assert name is not None, f"none of {candidates} has an uninstalled dependency"
    lab = Lab(tmp_path)
    with pytest.raises(LabError) as info:
        lab.up([LabHostSpec("dep-web1", "staging", packages={name: available_versions(name)[0]})])
    message = str(info.value)
    assert "\n" not in message and f"installing {name}=" in message, message
    assert "dependencies" in message
    assert_nothing_left(lab, tmp_path)


def _has_missing_dep(name: str) -> bool:
    out = subprocess.run(
        ["apt-cache", "depends", "--no-recommends", "--no-suggests", name],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    deps = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Depends:" in line]
    return any(installed_version(dep.strip("<>")) is None for dep in deps if dep)
