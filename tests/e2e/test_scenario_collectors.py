"""End to end: drift planted in every collector is flagged by name, and nothing else.

Two lab hosts over real SSH; staging gets one planted difference per collector
(a disabled service, an extra user, a new listening port, a cron line, a kernel
module, a sysctl set at runtime only, a changed setting in an INI and in a YAML
file, a Python package version in a virtualenv, app versions read from a URL and
from a file). The report must list exactly those: 100% precision and recall.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from driftcheck.lab import Lab, LabHostSpec
from tests.support.helpers import run_driftcheck

pytestmark = pytest.mark.lab

SITE = "/opt/app/venv/lib/python3.11/site-packages"


#: A tiny /version endpoint inside a host, served by the OS's Python.
LISTEN_HTTP = (
    "setsid /usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /opt/app/www "
    "</dev/null >/dev/null 2>&1 &"
)


def host_files(pool: int, cache: int, six: str, web: str, api: str) -> dict[str, str]:
    return {
        "/opt/app/www/version": f"{api}\n",
        "/etc/myapp/app.ini": f"[db]\nhost = db.internal\npool = {pool}\n",
        "/etc/myapp/app.yaml": f"cache:\n  size: {cache}\n  ttl: 60\n",
        "/opt/app/venv/pyvenv.cfg": "home = /usr/bin\nversion = 3.11.2\n",
        f"{SITE}/six-{six}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: six\nVersion: {six}\n"
        ),
        "/opt/web/VERSION": f"{web}\n",
    }


SPECS = [
    LabHostSpec(
        "prod-web1",
        "production",
        files=host_files(20, 128, "1.16.0", "3.1.0", "2.4.1"),
    ),
    LabHostSpec(
        "stg-web1",
        "staging",
        files={
            **host_files(5, 64, "1.15.0", "3.2.0-beta", "2.5.0"),
            "/etc/cron.d/backup": "30 2 * * * root /usr/local/bin/backup\n",
        },
        sysctls={"net.ipv4.tcp_keepalive_time": "600"},
        kernel_state={"/proc/modules": "wireguard 110592 0 - Live 0x0000000000000000 (OE)\n"},
    ),
]

COLLECT = {
    "files": ["/etc/myapp/"],
    "python": ["/opt/app/venv"],
    "apps": {"api": {"url": "http://127.0.0.1:8080/version"}, "web": {"file": "/opt/web/VERSION"}},
}

PLANTED = {
    ("services", "e2scrub_reap.service", "changed"),
    ("users", "deploy", "extra"),
    ("ports", "tcp 0.0.0.0:8081", "extra"),
    ("cron", "/etc/cron.d/backup", "extra"),
    ("cron", "/etc/cron.d/backup: 30 2 * * * root /usr/local/bin/backup", "extra"),
    ("kernel", "module.wireguard", "extra"),
    ("sysctl", "net.ipv4.tcp_keepalive_time", "changed"),
    ("files", "/etc/myapp/app.ini#db.pool", "changed"),
    ("files", "/etc/myapp/app.yaml#cache.size", "changed"),
    ("python", "/opt/app/venv:six", "changed"),
    ("apps", "api", "changed"),
    ("apps", "web", "changed"),
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("scenario")
    with Lab(tmp / "lab") as lab:
        lab.up(SPECS)
        stg = "stg-web1"
        lab.exec(stg, ["systemctl", "--root=/", "disable", "e2scrub_reap.service"])
        lab.exec(stg, ["useradd", "-N", "-M", "-s", "/usr/sbin/nologin", "deploy"])
        lab.exec(
            stg,
            [
                "sh",
                "-c",
                "setsid socat TCP-LISTEN:8081,fork,reuseaddr EXEC:/bin/cat "
                "</dev/null >/dev/null 2>&1 &",
            ],
        )
        for host in ("prod-web1", stg):
            lab.exec(host, ["sh", "-c", LISTEN_HTTP])
        for host, port in ((stg, "8081"), (stg, "8080"), ("prod-web1", "8080")):
            deadline = time.monotonic() + 10
            while f":{port} " not in lab.exec(host, ["ss", "-ltn"]).stdout:
                assert time.monotonic() < deadline, f"listener {port} on {host} did not start"
                time.sleep(0.1)
        inventory = tmp / "inv.yaml"
        inventory.write_text(yaml.safe_dump(lab.inventory(COLLECT)))
        run = run_driftcheck(tmp, "check", "-i", str(inventory), "-o", str(tmp / "r.json"))
        data = json.loads((tmp / "r.json").read_text())
        unknown = [
            (f["collector"], f["key"], f["reasons"])
            for f in data["findings"]
            if f["state"] == "incomplete"
        ]
        assert run.returncode == 1, (run.stderr, unknown)
        yield data


def test_every_planted_difference_and_nothing_else(report: dict[str, Any]) -> None:
    found = {(f["collector"], f["key"], f["state"]) for f in report["findings"]}
    assert found - PLANTED == set(), "unexpected findings"
    assert PLANTED - found == set(), "missed planted drift"
    assert report["summary"]["hosts"] == {"total": 2, "ok": 2, "incomplete": 0}


def test_values_name_what_differs(report: dict[str, Any]) -> None:
    by_key = {(f["collector"], f["key"]): f["values"] for f in report["findings"]}
    assert by_key[("files", "/etc/myapp/app.ini#db.pool")] == {"prod-web1": "20", "stg-web1": "5"}
    assert by_key[("files", "/etc/myapp/app.yaml#cache.size")] == {"prod-web1": 128, "stg-web1": 64}
    assert by_key[("python", "/opt/app/venv:six")] == {"prod-web1": "1.16.0", "stg-web1": "1.15.0"}
    assert by_key[("apps", "api")] == {"prod-web1": "2.4.1", "stg-web1": "2.5.0"}
    assert by_key[("sysctl", "net.ipv4.tcp_keepalive_time")]["stg-web1"] == "600"
    assert by_key[("services", "e2scrub_reap.service")] == {
        "prod-web1": "enabled",
        "stg-web1": "disabled",
    }


def test_runtime_only_sysctl_is_not_in_the_config(report: dict[str, Any]) -> None:
    # Set with sysctl -w only: the config files say nothing of it on either host.
    keys = {f["key"] for f in report["findings"] if f["collector"] == "sysctl_config"}
    assert "net.ipv4.tcp_keepalive_time" not in keys
