"""The demo scenario end to end: the report flags exactly the planted drift.

Real SSH to namespace hosts, real dpkg (an older tzdata and an extra package
from Debian's archive, a removed package), real per-namespace sysctls, real
files: precision and recall must both be 100%.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from driftcheck.demo import PLANTED_SECRETS

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "driftcheck", "demo", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return out, proc


def test_demo_succeeds_and_says_where_the_report_is(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr
    assert "open the report:" in proc.stderr
    assert str((out / "report.html").resolve()) in proc.stderr
    assert "MISSED" not in proc.stderr and "UNEXPECTED" not in proc.stderr
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_report_has_exactly_the_planted_drift(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, _ = demo_run
    report = json.loads((out / "report.json").read_text())
    found = {(f["collector"], f["key"], f["state"]) for f in report["findings"]}
    assert found == {
        ("packages", "tzdata", "changed"),
        ("packages", "hello", "extra"),
        ("packages", "less", "missing"),
        ("sysctl", "net.core.somaxconn", "changed"),
        ("sysctl", "net.ipv4.tcp_keepalive_time", "inconsistent"),
        ("files", "/etc/myapp/app.conf#database.password", "changed"),
        ("files", "/etc/myapp/app.conf#database.pool_size", "changed"),
        ("files", "/etc/myapp/secrets.env", "changed"),
        ("apps", "myapp", "changed"),
    }
    assert report["summary"]["hosts"] == {"total": 3, "ok": 3, "incomplete": 0}
    by_key = {f["key"]: f for f in report["findings"]}
    assert by_key["myapp"]["values"] == {
        "prod-web1": "2.4.1",
        "prod-web2": "2.4.1",
        "stg-web1": "2.5.0-rc1",
    }
    mode = next(d for d in by_key["/etc/myapp/secrets.env"]["detail"] if d["path"] == "mode")
    assert (mode["reference"], mode["target"]) == ("0600", "0644")


def test_planted_secrets_appear_nowhere(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, proc = demo_run
    for secret in PLANTED_SECRETS:
        assert secret not in proc.stdout + proc.stderr
        for path in out.iterdir():
            assert secret.encode() not in path.read_bytes(), path


def test_demo_leaves_no_lab_behind(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, proc = demo_run
    lab_id = re.search(r"\(lab ([0-9a-f]+)\)", proc.stderr)
    assert lab_id, proc.stderr
    # Only this demo's lab: other labs may be running on the same machine.
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert f"dclab-{lab_id[1]}" not in netns.stdout
    assert f"dclab-{lab_id[1]}" not in Path("/proc/self/mountinfo").read_text()
