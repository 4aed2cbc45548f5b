"""`driftcheck lab up/list/down`: a lab a person can play with, and that goes away."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftcheck.cli import app
from tests.support.helpers import run_driftcheck

pytestmark = pytest.mark.lab

SPEC = """\
hosts:
  prod-web1: {environment: production, roles: [web], files: {/etc/app.conf: "a = 1\n"}}
  stg-web1: {environment: staging, roles: [web], sysctls: {net.core.somaxconn: "1024"},
             file_modes: {/etc/app.conf: "0600"}, files: {/etc/app.conf: "a = 1\n"}}
"""


def driftcheck(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_driftcheck(cwd, *args, cwd=cwd, timeout=120)


def test_up_check_down(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(SPEC)
    up = driftcheck("lab", "up", "lab.yaml", "--dir", "mylab", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    lab_id = up.stdout.split("lab ", 1)[1].split()[0]
    try:
        listed = driftcheck("lab", "list", cwd=tmp_path)
        assert f"{lab_id} (detached)" in listed.stdout and "stg-web1" in listed.stdout
        check = driftcheck("check", "-i", "mylab/inventory.yaml", cwd=tmp_path)
        assert check.returncode == 1, check.stderr
        assert '"key": "net.core.somaxconn"' in check.stdout
        assert '"key": "/etc/app.conf"' in check.stdout  # planted files are collected
    finally:
        down = driftcheck("lab", "down", lab_id, cwd=tmp_path)
    assert down.returncode == 0 and lab_id in down.stdout
    assert lab_id not in driftcheck("lab", "list", cwd=tmp_path).stdout
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert f"dclab-{lab_id}" not in netns.stdout


def test_bad_spec_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(SPEC.replace("environment: staging", "environmnt: staging"))
    up = driftcheck("lab", "up", "lab.yaml", cwd=tmp_path)
    assert up.returncode == 2
    assert up.stderr.startswith("driftcheck: error: lab.yaml:4:") and up.stderr.count("\n") == 1


def test_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lab.yaml").write_text(SPEC)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(
        app, ["lab", "up", str(tmp_path / "lab.yaml"), "--dir", str(tmp_path / "mylab")]
    )
    assert result.exit_code == 2
    assert "the lab needs root" in result.stderr
    assert not (tmp_path / "mylab").exists()
