"""The command line: exit-status bitmask, one-line errors, no tracebacks for user mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftcheck.cli import app
from driftcheck.collectors import BY_NAME, REGISTRY

LOCAL = """\
defaults: {transport: local, command_timeout: 60}
environments:
  production: {hosts: {here-prod: {roles: [web]}}}
  staging: {hosts: {here-stg: {roles: [web]}}}
compare: {reference: production, targets: [staging]}
collect:
  files: [/etc/os-release]
  apps: {python: "python3 -c 'print(1)'"}
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRIFTCHECK_KEY_FILE", str(tmp_path / "hmac.key"))
    monkeypatch.setenv("DRIFTCHECK_DB", f"sqlite:///{tmp_path / 'dc.db'}")
    (tmp_path / "inv.yaml").write_text(LOCAL)
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_local_hosts_on_one_machine_are_clean(env: Path) -> None:
    code, out, err = invoke("check", "-i", str(env / "inv.yaml"))
    assert code == 0, err
    report = json.loads(out)
    assert report["summary"]["verdict"] == "clean"
    assert all(isinstance(h["not_applicable"], dict) for h in report["hosts"])
    assert report["summary"]["compared_keys"] > 100
    assert "clean: no findings; 2/2 hosts collected completely" in err


def test_quiet_prints_nothing_when_clean(env: Path) -> None:
    code, _, err = invoke(
        "check", "-q", "-i", str(env / "inv.yaml"), "-o", str(env / "r.html"), "-f", "html"
    )
    assert code == 0 and err == ""
    assert (env / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_collect_then_report_then_show(env: Path) -> None:
    assert invoke("collect", "-i", str(env / "inv.yaml"))[0] == 0
    code, out, _ = invoke("report", "-i", str(env / "inv.yaml"), "-f", "html")
    assert code == 0 and "Verdict: <strong>clean</strong>" in out
    code, out, _ = invoke("show", "here-stg", "-i", str(env / "inv.yaml"), "-c", "apps")
    assert code == 0 and "python\t1" in out
    code, out, _ = invoke("show", "here-stg", "-i", str(env / "inv.yaml"), "-f", "json")
    assert code == 0 and set(json.loads(out)["sections"]) == set(BY_NAME)
    code, out, _ = invoke("hosts", "-i", str(env / "inv.yaml"))
    assert code == 0 and out.count(" ok") == 2


def test_failing_app_command_is_incomplete(env: Path) -> None:
    (env / "inv.yaml").write_text(LOCAL.replace("print(1)", "import sys; sys.exit(3)"))
    code, out, _ = invoke("check", "-i", str(env / "inv.yaml"))
    assert code == 4
    (finding,) = json.loads(out)["findings"]
    assert finding["state"] == "incomplete" and "exit status 3" in finding["reasons"]["here-stg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report",), "no finished collection yet"),
        (("show", "nobody"), "no host named 'nobody'"),
        (("show", "here-stg"), "here-stg: never collected"),
        (("show", "here-stg", "-c", "nope"), "--collector 'nope': unknown"),
    ],
)
def test_user_errors_are_one_line_exit_2(env: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = invoke(*args, "-i", str(env / "inv.yaml"))
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_inventory_is_exit_2_with_the_line(env: Path) -> None:
    (env / "inv.yaml").write_text(LOCAL.replace("command_timeout: 60", "command_timeout: soon"))
    code, _, err = invoke("collect", "-i", str(env / "inv.yaml"))
    assert code == 2
    assert err.startswith(f"driftcheck: error: {env / 'inv.yaml'}:1: defaults.command_timeout")


def test_missing_inventory(env: Path) -> None:
    code, _, err = invoke("collect", "-i", str(env / "missing.yaml"))
    assert code == 2 and "no such inventory file" in err


def test_unknown_format_is_a_usage_error(env: Path) -> None:
    assert invoke("report", "-i", str(env / "inv.yaml"), "-f", "pdf")[0] == 2


def test_collectors_lists_every_collector() -> None:
    code, out, _ = invoke("collectors")
    assert code == 0
    named = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert named == [c.name for c in REGISTRY]
    assert "volatile, never drift: kernel.random.*" in out


def test_report_uses_only_runs_of_its_own_inventory(env: Path) -> None:
    (env / "other.yaml").write_text(LOCAL.replace("here-prod", "there-prod"))
    assert invoke("collect", "-i", str(env / "other.yaml"))[0] == 0
    code, _, err = invoke("report", "-i", str(env / "inv.yaml"))
    assert code == 2 and "no finished collection yet" in err
