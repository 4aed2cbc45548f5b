"""One cause, one group: a package and its files, kernel-linked sysctls, a service
of a missing package; and nothing grouped without the evidence."""

from __future__ import annotations

from typing import Any

from driftcheck.collectors import BY_NAME
from driftcheck.findings import DriftReport
from driftcheck.pipeline import build_report
from tests.support.helpers import inventory, snapshot

INV = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
COLLECTORS = [
    BY_NAME[n]
    for n in ("packages", "services", "sysctl", "sysctl_config", "files", "config_origin")
]
BASE: dict[str, dict[str, Any]] = {
    n: {} for n in ("packages", "services", "sysctl", "sysctl_config", "files", "config_origin")
}


def report(prod: dict[str, dict[str, Any]], stg: dict[str, dict[str, Any]]) -> DriftReport:
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {**BASE, **prod}),
        "stg1": snapshot("stg1", "staging", ["web"], {**BASE, **stg}),
    }
    return build_report(INV, snaps, COLLECTORS, "now")


def grouped(rep: DriftReport) -> dict[str, list[str]]:
    return {c.title: [f"{f.collector} {f.key}" for f in rep.members(c)] for c in rep.causes}


FORWARDING = {
    "net.ipv4.ip_forward": "0",
    "net.ipv4.conf.all.forwarding": "0",
    "net.ipv4.conf.default.forwarding": "0",
    "net.ipv4.conf.lo.forwarding": "0",
    "net.ipv4.conf.all.accept_redirects": "1",
    "net.core.somaxconn": "4096",
}


def test_ip_forward_and_what_the_kernel_flips_with_it_are_one_cause() -> None:
    on = {k: "1" for k in FORWARDING if "forward" in k} | {
        "net.ipv4.conf.all.accept_redirects": "0",
        "net.core.somaxconn": "1024",  # a drift of its own: not in the group
    }
    rep = report({"sysctl": FORWARDING}, {"sysctl": FORWARDING | on})
    assert grouped(rep) == {
        "net.ipv4.ip_forward differs on stg1 (the kernel links other settings to it)": [
            "sysctl net.ipv4.ip_forward",
            "sysctl net.ipv4.conf.all.accept_redirects",
            "sysctl net.ipv4.conf.all.forwarding",
            "sysctl net.ipv4.conf.default.forwarding",
            "sysctl net.ipv4.conf.lo.forwarding",
        ]
    }
    assert rep.drift_causes == (6, 2)  # six findings, two causes


def test_a_package_version_and_the_files_it_owns() -> None:
    origin = {"/etc/nginx/nginx.conf": {"package": "nginx-common", "modified": False}}
    rep = report(
        {
            "packages": {"nginx-common": "1.22.1-9"},
            "files": {"/etc/nginx/nginx.conf#worker_processes": "auto"},
            "config_origin": origin,
        },
        {
            "packages": {"nginx-common": "1.24.0-1"},
            "files": {"/etc/nginx/nginx.conf#worker_processes": "4"},
            "config_origin": origin,
        },
    )
    assert grouped(rep) == {
        "package nginx-common at another version on stg1": [
            "packages nginx-common",
            "files /etc/nginx/nginx.conf#worker_processes",
        ]
    }


def test_a_service_of_a_missing_package() -> None:
    rep = report(
        {"packages": {"nginx": "1.22.1-9"}, "services": {"nginx.service": "enabled"}},
        {"packages": {}, "services": {}},
    )
    assert grouped(rep) == {
        "package nginx missing on stg1": ["packages nginx", "services nginx.service"]
    }


def test_no_group_without_evidence() -> None:
    # A file whose owner is not known, and a service named like no missing package.
    rep = report(
        {
            "packages": {"nginx": "1.22.1-9"},
            "files": {"/etc/x.conf#a": "1"},
            "services": {"cron.service": "enabled"},
        },
        {"packages": {"nginx": "1.24.0-1"}, "files": {"/etc/x.conf#a": "2"}, "services": {}},
    )
    assert rep.causes == () and all(not f.cause for f in rep.findings)
