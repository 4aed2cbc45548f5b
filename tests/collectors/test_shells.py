"""Every collector's shell runs cleanly on this real Debian machine (local transport).

Parsers are covered by fixtures; this checks the other half of a collector: the
sh it sends exits 0 and produces something its parser understands.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME, REGISTRY, Collector
from driftcheck.model import AppSource, CollectSettings, SectionStatus
from driftcheck.script import Section, build_script, new_marker, split_output
from tests.support.helpers import run_section_locally


def run_section(collector: Collector, settings: CollectSettings) -> tuple[SectionStatus, str]:
    raw = run_section_locally(collector, settings)
    return raw.status, raw.stdout


@pytest.fixture
def settings(tmp_path: Path) -> CollectSettings:
    (tmp_path / "text.conf").write_text("a = 1\n")
    (tmp_path / "blob.bin").write_bytes(b"\0\1\2")
    return CollectSettings(
        files=(str(tmp_path / "text.conf"), str(tmp_path / "absent"), str(tmp_path / "blob.bin")),
        apps=(
            AppSource("echo", "command", "echo 1.0"),
            AppSource("libc", "package", "libc6"),
            AppSource("release", "file", "/etc/debian_version"),
        ),
    )


@pytest.mark.parametrize("collector", REGISTRY, ids=lambda c: c.name)
def test_shell_exits_zero_and_parses(collector: Collector, settings: CollectSettings) -> None:
    status, stdout = run_section(collector, settings)
    assert status is SectionStatus.OK, stdout
    assert collector.parse(stdout).facts


def test_files_section_ok_when_last_path_is_binary(settings: CollectSettings) -> None:
    status, stdout = run_section(BY_NAME["files"], settings)
    facts = BY_NAME["files"].parse(stdout).facts
    assert status is SectionStatus.OK
    assert facts[settings.files[2]]["content_note"] == "binary file"
    assert facts[settings.files[0] + "#a"] == "1"  # a key/value file, compared per setting
    assert settings.files[1] not in facts


def test_sysctl_section_is_ok_when_busybox_cannot_read_some_keys(busybox_bin: str) -> None:
    # Alpine's busybox sysctl exits 1 over keys like stable_secret that no host can read.
    marker = new_marker()
    script = build_script(
        [Section("sysctl", BY_NAME["sysctl"].shell_for(CollectSettings()), 60)], marker
    )
    proc = subprocess.run(
        ["/usr/bin/busybox", "sh", "-s"],
        input=script.encode(),
        capture_output=True,
        env={"PATH": busybox_bin},
        check=False,
    )
    raw = split_output(proc.stdout, proc.stderr, marker, ["sysctl"])["sysctl"]
    assert raw.status is SectionStatus.OK
    assert "net.core.somaxconn" in BY_NAME["sysctl"].parse(raw.stdout).facts
