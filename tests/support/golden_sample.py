"""A fixed report with every state and hostile collected values (see test_golden.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from driftcheck.collectors import BY_NAME
from driftcheck.findings import DriftReport
from driftcheck.inventory import parse_inventory
from driftcheck.model import HostSnapshot, HostStatus, SectionResult, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.since import HistoryEntry
from tests.support.helpers import snapshot

SCRIPT = "<script>alert(1)</script>"
PIPES = "a | b || c \\| d"
TICKS = "``x`` `y`"
LINES = "line1\nline2\r\n| --- |\n# heading"

INVENTORY = """\
defaults: {transport: local}
environments:
  production:
    hosts:
      prod1: {roles: [web]}
      prod2: {roles: [web]}
      prod-db1: {roles: [db]}
  staging:
    hosts:
      stg1: {roles: [web]}
      stg-db1: {roles: [db]}
compare: {reference: production, targets: [staging]}
rules:
  ignore:
    - {collector: sysctl, key: kernel.printk, reason: "staging logs <more> | louder"}
  waivers:
    - {collector: packages, key: openssl, reason: "upgrade in CHG-1 `soon`", owner: alice,
       expires: 2026-12-31}
    - {collector: packages, key: gone, reason: nothing left, owner: bob, expires: 2026-06-30}
"""


def hostile() -> DriftReport:
    """A fixed report with every state and hostile collected values."""
    inv = parse_inventory(INVENTORY, Path("golden.yaml"))
    prod_pkgs = {
        "openssl": "3.0.1",
        "nginx": "1.22",
        "evil|pkg": "1.0",
        SCRIPT: "1",
        "libssl3": "3.0.20",
    }
    prod_sysctl = {
        "kernel.printk": "4 4 1 7",
        "vm.swappiness": "10",
        "net.ipv4.ip_forward": "0",
        "net.ipv4.conf.all.forwarding": "0",
    }
    # ip_forward and what the kernel sets with it: one cause group.
    forwarding = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.forwarding": "1"}
    snaps = {
        "prod1": snapshot(
            "prod1",
            "production",
            ["web"],
            {"packages": prod_pkgs, "sysctl": prod_sysctl, "apps": {"myapp": "1.0"}},
        ),
        "prod2": snapshot(
            "prod2",
            "production",
            ["web"],
            {
                "packages": prod_pkgs,
                "sysctl": {**prod_sysctl, "vm.swappiness": "60"},
                "apps": {"myapp": "1.0"},
            },
        ),
        "stg1": snapshot(
            "stg1",
            "staging",
            ["web"],
            {
                "packages": {
                    "openssl": "3.0.2",
                    "evil|pkg": TICKS,
                    SCRIPT: LINES,
                    "curl": PIPES,
                    "libssl3t64": f"3.5.9 {SCRIPT}",
                },
                "package_relations": {
                    "libssl3t64": {"provides": ["libssl3"], "replaces": ["libssl3"]}
                },
                "sysctl": {**prod_sysctl, "kernel.printk": "7 4 1 7", **forwarding},
                "apps": SectionResult(
                    "apps", SectionStatus.ERROR, error=f"exit status 3: {SCRIPT} {PIPES}"
                ),
            },
        ),
        "prod-db1": snapshot(
            "prod-db1",
            "production",
            ["db"],
            {"packages": {"postgresql": "15"}, "sysctl": {}, "apps": {}},
        ),
        "stg-db1": snapshot(
            "stg-db1", "staging", ["db"], {}, HostStatus.FAILED, f"refused {TICKS}\n{SCRIPT}"
        ),
    }
    collectors = [
        BY_NAME["packages"],
        BY_NAME["package_relations"],
        BY_NAME["sysctl"],
        BY_NAME["apps"],
    ]
    return build_report(
        inv,
        snaps,
        collectors,
        "2026-02-03T04:05:06+00:00",
        run_started_at="2026-02-03T04:00:00+00:00",
        today=date(2026, 2, 3),
        history=_LastNight(snaps),
    )


class _LastNight:
    """One earlier run, a day before, in which every host had the same facts but
    stg1's openssl (so its drift is new in this run and the rest a day old)."""

    def __init__(self, snaps: dict[str, HostSnapshot]) -> None:
        self.snaps = snaps

    def section_history(self, host: str, collector: str) -> list[HistoryEntry]:
        if collector not in self.snaps[host].sections:
            return []
        return [HistoryEntry(1, "2026-02-02T04:00:10+00:00", f"{host}/{collector}")]

    def facts_of(self, digest: str) -> dict[str, Any] | None:
        host, collector = digest.split("/")
        facts = dict(self.snaps[host].sections[collector].facts)
        if (host, collector) == ("stg1", "packages"):
            facts["openssl"] = "3.0.1"
        return facts
