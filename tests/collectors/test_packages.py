"""The packages section on real hosts: rpm next to dpkg, apk's database, busybox.

Parsers are covered by tests/fixtures/packages/; this checks the shell: that a
Debian host with Debian's rpm package reports the same facts as one without it
(rpm's per-user database is neither read nor created), that the apk block reads
the database at its real path, and that busybox runs the block byte for byte
like dash with GNU sed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import CollectSettings, ParseResult, SectionStatus
from driftcheck.script import Section, build_script, new_marker, split_output
from tests.support.paths import FIXTURES as ALL_FIXTURES

COLLECTOR = BY_NAME["packages"]
FIXTURES = ALL_FIXTURES / "packages"
ALPINE_DB = FIXTURES / "alpine318-aarch64" / "installed"


def script() -> tuple[str, str]:
    """The combined script holding only the packages section, and its marker."""
    marker = new_marker()
    section = Section(
        COLLECTOR.name, COLLECTOR.shell_for(CollectSettings()), 120, COLLECTOR.requires
    )
    return build_script([section], marker), marker


def run_as(user: str, home: str) -> tuple[SectionStatus, ParseResult, str]:
    """Run the section on this machine as ``user`` with HOME=``home``, as a login would."""
    text, marker = script()
    argv = ["su", user, "-s", "/bin/sh", "-c", f"cd / && env -i HOME={home} sh -s"]
    proc = subprocess.run(argv, input=text.encode(), capture_output=True, timeout=180, check=False)
    raw = split_output(proc.stdout, proc.stderr, marker, [COLLECTOR.name])[COLLECTOR.name]
    return raw.status, COLLECTOR.parse(raw.stdout), raw.stdout


def test_rpm_next_to_dpkg_adds_nothing_and_writes_nothing(tmp_path: Path) -> None:
    # A fresh HOME: before the fix, "rpm -qa" created HOME/.rpmdb there.
    home = tmp_path / "home"
    home.mkdir()
    root_status, root, root_out = run_as("root", str(home))
    assert root_status is SectionStatus.OK
    assert list(home.iterdir()) == [], "the section wrote into HOME"
    assert "#rpm" not in root_out.splitlines()
    # A user whose HOME does not exist: before the fix rpm failed there and the
    # whole section became an error on Debian hosts that have rpm installed.
    nobody_status, nobody, _ = run_as("nobody", "/nonexistent")
    assert nobody_status is SectionStatus.OK
    assert not Path("/nonexistent").exists()
    assert root.facts == nobody.facts and root.facts
    assert root.facts["rpm"]  # the dpkg entry of the rpm package itself


def busybox_sed_block(tmp_path: Path) -> bytes:
    """The apk block run by busybox sh with busybox sed (applet links in PATH)."""
    busybox = shutil.which("busybox")
    assert busybox is not None
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for applet in ("sed", "sh"):
        (bindir / applet).symlink_to(busybox)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LC_ALL": "C"}
    return subprocess.run(
        [str(bindir / "sh"), "-c", apk_block()], capture_output=True, env=env, check=True
    ).stdout


def apk_block() -> str:
    """The apk block of the section, reading the fixture database instead of /lib/apk."""
    shell = COLLECTOR.shell_for(CollectSettings())
    start = shell.index("for db in /lib/apk/db/installed")
    block = shell[start : shell.index("done\n", start) + 5]
    return block.replace("/lib/apk/db/installed /usr/lib/apk/db/installed", str(ALPINE_DB))


def test_apk_block_with_dash_and_gnu_sed_matches_the_fixture() -> None:
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    proc = subprocess.run(
        ["/bin/dash", "-c", apk_block()], capture_output=True, env=env, check=True
    )
    assert proc.stdout == (FIXTURES / "alpine318-aarch64" / "output.txt").read_bytes()


def test_apk_block_with_busybox_sh_and_sed_matches_the_fixture(tmp_path: Path) -> None:
    expected = (FIXTURES / "alpine318-aarch64" / "output.txt").read_bytes()
    assert busybox_sed_block(tmp_path) == expected


# -- lab: real hosts -------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("lab")) as running:
        running.up(
            [
                LabHostSpec("pk-rpm", "production"),
                # Debian's rpm package removed on this host only.
                LabHostSpec("pk-norpm", "staging", packages={"rpm": None}),
                LabHostSpec(
                    "pk-apkdb",
                    "staging",
                    files={"/lib/apk/db/installed": ALPINE_DB.read_text(encoding="utf-8")},
                ),
            ]
        )
        yield running


def run_in(lab: Lab, host: str) -> tuple[SectionStatus, ParseResult, str]:
    text, marker = script()
    proc = lab.exec(host, ["sh", "-s"], input=text, timeout=180)
    raw = split_output(proc.stdout.encode(), proc.stderr.encode(), marker, [COLLECTOR.name])[
        COLLECTOR.name
    ]
    return raw.status, COLLECTOR.parse(raw.stdout), raw.stdout


@pytest.mark.lab
def test_debian_hosts_with_and_without_rpm_report_the_same(lab: Lab) -> None:
    assert lab.exec("pk-rpm", ["sh", "-c", "command -v rpm"], check=False).returncode == 0
    assert lab.exec("pk-norpm", ["sh", "-c", "command -v rpm"], check=False).returncode != 0
    with_status, with_rpm, _ = run_in(lab, "pk-rpm")
    without_status, without_rpm, _ = run_in(lab, "pk-norpm")
    assert with_status is without_status is SectionStatus.OK
    # The only difference is dpkg's own entry for the removed package.
    differing = {
        k
        for k in with_rpm.facts.keys() | without_rpm.facts.keys()
        if with_rpm.facts.get(k) != without_rpm.facts.get(k)
    }
    assert differing == {"rpm"}


@pytest.mark.lab
def test_apk_database_at_its_real_path_is_read(lab: Lab) -> None:
    status, parsed, out = run_in(lab, "pk-apkdb")
    assert status is SectionStatus.OK
    assert out.splitlines().count("#apk") == 1
    expected = json.loads((FIXTURES / "alpine318-aarch64" / "expected.json").read_text())
    for name, version in expected["facts"].items():
        # Debian's own libssl3 is installed too: apk's, of another architecture, is qualified.
        key = f"{name}:aarch64" if name == "libssl3" else name
        assert parsed.facts[key] == version, name
    assert parsed.facts["libssl3"]  # dpkg says amd64 is native: keyed by name
    assert parsed.facts["bash"]  # the host's dpkg packages are still there


def test_keys_do_not_depend_on_a_foreign_architecture_being_installed() -> None:
    # The same amd64 host before and after 'dpkg --add-architecture i386' and
    # libc6:i386: its amd64 packages keep their keys, only the i386 ones are new.
    with_i386 = (ALL_FIXTURES / "packages" / "multiarch-native" / "output.txt").read_text()
    without = "\n".join(line for line in with_i386.split("\n") if "\ti386\t" not in line)
    before, after = COLLECTOR.parse(without).facts, COLLECTOR.parse(with_i386).facts
    assert set(after) - set(before) == {"libc6:i386", "libstdc++6:i386"}
    assert {k: after[k] for k in before} == before
