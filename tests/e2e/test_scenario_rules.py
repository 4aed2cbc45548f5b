"""End to end: rules and explanations over real SSH (the issue-5 scenario).

A mapped database host, a per-environment API key declared "differs", a sysctl
in a declared ratio and an actively waived package produce no drift; an expired
waiver is drift again and a stale waiver is reported; the hand-edited conffile
is explained as "modified after install" and the file shipped by another tzdata
version as "package version differs".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftcheck.demo import older_version
from driftcheck.lab import Lab, LabHostSpec, available_versions
from tests.support.helpers import run_driftcheck

pytestmark = pytest.mark.lab

APP = "/etc/myapp/app.ini"
SSH = "/etc/ssh/ssh_config"
CHANGELOG = "/usr/share/doc/tzdata/changelog.Debian.gz"


def app_ini(db_host: str, api_key: str) -> str:
    return f"[db]\nhost = {db_host}\nport = 5432\n[api]\napi_key = {api_key}\n"


RULES = {
    "map": [
        {
            "collector": "files",
            "key": f"{APP}#db.host",
            "values": {"production": "db.example.com", "staging": "db.stg.example.com"},
        }
    ],
    "expect": [
        {
            "collector": "files",
            "key": f"{APP}#api.api_key",
            "relation": "differs",
            "reason": "each environment has its own API key",
        },
        {
            "collector": "sysctl",
            "key": "net.core.somaxconn",
            "relation": "ratio",
            "factor": 2,
            "reason": "staging runs at half the connections",
        },
    ],
    "waivers": [
        {
            "collector": "packages",
            "key": "hello",
            "reason": "demo tool, removed next sprint",
            "owner": "alice",
            "expires": "2099-12-31",
        },
        {
            "collector": "sysctl",
            "key": "net.ipv4.tcp_keepalive_time",
            "reason": "load test",
            "owner": "bob",
            "expires": "2020-01-31",
        },
        {
            "collector": "sysctl",
            "key": "vm.no_such_key",
            "reason": "long gone",
            "owner": "carol",
            "expires": "2099-12-31",
        },
    ],
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("rules")
    ssh_config = Path(SSH).read_text() + "    ServerAliveInterval 30\n"
    specs = [
        LabHostSpec(
            "prod-web1", "production", files={APP: app_ini("db.example.com", "prod-key-5b1e")}
        ),
        LabHostSpec(
            "stg-web1",
            "staging",
            files={APP: app_ini("db.stg.example.com", "stg-key-77c2"), SSH: ssh_config},
            sysctls={"net.core.somaxconn": "2048", "net.ipv4.tcp_keepalive_time": "600"},
            packages={"tzdata": older_version("tzdata"), "hello": available_versions("hello")[0]},
        ),
    ]
    with Lab(tmp / "lab") as lab:
        lab.up(specs)
        inv = lab.inventory({"files": [APP, SSH, CHANGELOG]})
        inv["rules"] = RULES
        (tmp / "inv.yaml").write_text(yaml.safe_dump(inv, sort_keys=False))
        run = run_driftcheck(tmp, "check", "-i", str(tmp / "inv.yaml"), "-o", str(tmp / "r.json"))
        assert run.returncode == 1, run.stderr
        yield json.loads((tmp / "r.json").read_text())


def by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["key"]: f for f in report["findings"]}


def test_intended_differences_are_not_drift(report: dict[str, Any]) -> None:
    keys = by_key(report)
    assert f"{APP}#db.host" not in keys  # mapped
    assert f"{APP}#api.api_key" not in keys  # expected to differ, and does
    assert "net.core.somaxconn" not in keys  # 4096 = 2 x 2048
    assert keys["hello"]["state"] == "waived" and "owner alice" in keys["hello"]["note"]


def test_expired_and_stale_waivers_are_flagged(report: dict[str, Any]) -> None:
    keepalive = by_key(report)["net.ipv4.tcp_keepalive_time"]
    assert keepalive["state"] == "changed"
    assert "waiver expired on 2020-01-31" in keepalive["note"]
    assert [w["owner"] for w in report["stale_waivers"]] == ["carol"]


def test_drift_is_explained(report: dict[str, Any]) -> None:
    keys = by_key(report)
    edited = keys[f"{SSH}#host *.serveraliveinterval"]
    assert edited["state"] == "extra"
    assert edited["explanation"] == "modified after install on stg-web1 (package openssh-client)"
    changelog = keys[CHANGELOG]
    assert changelog["explanation"].startswith("package tzdata version differs")
    # One production host, neither persisting it: which side was set at runtime
    # cannot be told from two hosts, and the explanation says so.
    assert keys["net.ipv4.tcp_keepalive_time"]["explanation"] == (
        "stg-web1: not persisted in any sysctl config file, nor on prod-web1: one of them "
        "was set at runtime (a reboot restores the kernel's default)"
    )


def test_exactly_this_drift(report: dict[str, Any]) -> None:
    drift = {
        (f["collector"], f["key"], f["state"])
        for f in report["findings"]
        if f["state"] not in ("waived", "ignored")
    }
    assert drift == {
        ("packages", "tzdata", "changed"),
        ("sysctl", "net.ipv4.tcp_keepalive_time", "changed"),
        ("files", f"{SSH}#host *.serveraliveinterval", "extra"),
        ("files", CHANGELOG, "changed"),
    }
