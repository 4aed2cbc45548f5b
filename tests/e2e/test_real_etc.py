"""End to end on real other Debian releases, with all of /etc collected.

Production is a bookworm host and staging a trixie host, each a debootstrapped
root tree (the lab's ``release`` hosts) reached over SSH, with ``collect.files:
[/etc/]`` whole. Two releases differ in hundreds of real facts; what matters is
that the run finishes and is stored, nothing is an internal error, every planted
difference is found, and none of the representation artefacts a real /etc used
to produce comes back (a Perl file that crashed the INI parser, libssl3 against
libssl3t64 as two unrelated findings, ...).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from driftcheck.lab import Lab, LabHostSpec
from tests.support.helpers import run_driftcheck

pytestmark = pytest.mark.lab

#: Debian's /etc/perl/Net/libnet.cfg (perl 5.36): configparser crashed on it once.
LIBNET = (
    "# Prior to perl 5.8.8-7, libnet was a seperate package with a debconf\n"
    "return do '/etc/libnet.cfg' if -f '/etc/libnet.cfg';\n\n"
    "{\n\tnntp_hosts => [ qw {} ],\n\tinet_domain => undef,\n\tftp_int_passive => 0,\n}\n"
)
SYSCTL = "net.core.somaxconn"
HASH = "$6$Zq9tT1bQ$" + "k" * 86


def files(pool: int, env: str, spaces: str) -> dict[str, str]:
    return {
        "/etc/myapp/app.ini": f"[db]\nhost = db.internal\npool = {pool}\n",
        "/etc/myapp/libnet.cfg": LIBNET,
        # The same sshd setting, written with other whitespace: sshd splits on it.
        "/etc/ssh/sshd_config.d/accept.conf": f"AcceptEnv LANG{spaces}LC_*\n",
        # The same mount table, with other comments.
        "/etc/fstab": f"# {env}: edited by hand\nproc /proc proc defaults 0 0\n",
    }


SPECS = [
    LabHostSpec("prod-web1", "production", release="bookworm", files=files(20, "production", " ")),
    LabHostSpec(
        "stg-web1",
        "staging",
        release="trixie",
        files={
            **files(5, "staging", "   "),
            "/etc/myapp/extra.conf": "debug = true\n",
            # A shadow backup with a real-looking sha512-crypt hash: sensitive by name.
            "/etc/shadow-": f"root:{HASH}:19000:0:99999:7:::\n",
        },
        file_modes={"/etc/myapp/app.ini": 0o600},
        sysctls={SYSCTL: "1234"},
    ),
]

#: (collector, key, state) of every planted difference.
PLANTED = {
    ("files", "/etc/myapp/app.ini#db.pool", "changed"),
    ("files", "/etc/myapp/app.ini", "changed"),  # its mode
    ("files", "/etc/myapp/extra.conf#debug", "extra"),
    ("sysctl", SYSCTL, "changed"),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("real-etc")
    lab = Lab(work / "lab")
    try:
        lab.up(SPECS)
        inventory = work / "inventory.yaml"
        data = lab.inventory({"files": ["/etc/"], "dir_max_files": 5000})
        inventory.write_text(yaml.safe_dump(data))
        out = work / "report.json"
        proc = run_driftcheck(work, "check", "-i", str(inventory), "-o", str(out), cwd=work)
        assert proc.returncode in (1, 5), proc.stderr  # drift (two releases), maybe unknowns
        assert "internal error" not in proc.stderr, proc.stderr
        yield json.loads(out.read_text())
    finally:
        lab.down()


def found(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["collector"], f["key"], f["state"]) for f in report["findings"]}


def test_the_run_finishes_and_every_host_is_stored(report: dict[str, Any]) -> None:
    hosts = {h["name"]: (h["status"], h["error"]) for h in report["hosts"]}
    assert hosts == {"prod-web1": ("ok", ""), "stg-web1": ("ok", "")}
    texts = json.dumps(report)
    assert "internal error" not in texts and "parser failed" not in texts


def test_every_planted_difference_is_found(report: dict[str, Any]) -> None:
    assert found(report) >= PLANTED


def test_all_of_etc_is_compared(report: dict[str, Any]) -> None:
    keys = {f["key"] for f in report["findings"] if f["collector"] == "files"}
    assert report["summary"]["compared_keys"] > 1000
    # Real release differences in /etc are found too (debian_version, os-release).
    assert "/etc/debian_version" in keys


def test_a_file_that_is_not_ini_is_compared_as_text_and_equal(report: dict[str, Any]) -> None:
    assert not [f for f in report["findings"] if f["key"].startswith("/etc/myapp/libnet.cfg")]


def test_t64_renames_are_one_finding_each(report: dict[str, Any]) -> None:
    packages = {(f["key"], f["state"]) for f in report["findings"] if f["collector"] == "packages"}
    assert ("libssl3", "renamed") in packages
    names = {k for k, _ in packages}
    # No t64 package left as an "extra" whose old name is "missing".
    pairs = [n for n in names if n.endswith("t64") and n.removesuffix("t64") in names]
    assert pairs == []


def test_no_host_internal_error_in_any_section(report: dict[str, Any]) -> None:
    incomplete = [f for f in report["findings"] if f["state"] == "incomplete"]
    reasons = [why for f in incomplete for why in f["reasons"].values()]
    assert not [r for r in reasons if "internal" in r or "parser failed" in r], reasons


def test_no_drift_from_how_a_fact_is_written(report: dict[str, Any]) -> None:
    keys = {f["key"] for f in report["findings"] if f["collector"] == "files"}
    assert not [
        k for k in keys if k.startswith(("/etc/ssh/sshd_config.d/accept.conf", "/etc/fstab"))
    ]


def test_password_hashes_are_never_read(report: dict[str, Any]) -> None:
    text = json.dumps(report)
    assert HASH not in text and "$y$" not in text and "$6$" not in text
    (backup,) = [f for f in report["findings"] if f["key"] == "/etc/shadow-"]
    assert backup["values"]["stg-web1"]["content_note"] == "sensitive: content not read"
