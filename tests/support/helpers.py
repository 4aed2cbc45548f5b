"""Small builders for the pure-core tests (snapshots and inventories as data)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from driftcheck.collectors import Collector
from driftcheck.inventory import Inventory, parse_inventory
from driftcheck.model import (
    CollectSettings,
    HostSnapshot,
    HostStatus,
    SectionResult,
    SectionStatus,
)
from driftcheck.script import RawSection, Section, SectionReader, build_script, new_marker
from driftcheck.transports.local import LocalTransport


def inventory(hosts: dict[str, tuple[str, list[str]]]) -> Inventory:
    """An inventory of local hosts: name -> (environment, roles)."""
    envs: dict[str, list[str]] = {}
    for name, (env, roles) in hosts.items():
        envs.setdefault(env, []).append(f"      {name}: {{roles: [{', '.join(roles)}]}}")
    text = "defaults: {transport: local}\nenvironments:\n"
    for env, lines in envs.items():
        text += f"  {env}:\n    hosts:\n" + "\n".join(lines) + "\n"
    targets = [e for e in envs if e != "production"]
    text += f"compare: {{reference: production, targets: [{', '.join(targets)}]}}\n"
    return parse_inventory(text, Path("test.yaml"))


def snapshot(
    host: str,
    env: str,
    roles: list[str],
    sections: dict[str, dict[str, Any] | SectionResult],
    status: HostStatus = HostStatus.OK,
    error: str = "",
) -> HostSnapshot:
    """A snapshot whose sections are given as facts (OK) or as SectionResult."""
    built = {
        name: value
        if isinstance(value, SectionResult)
        else SectionResult(name, SectionStatus.OK, dict(value))
        for name, value in sections.items()
    }
    return HostSnapshot(
        host, env, tuple(roles), status, "2026-01-01T00:00:00+00:00", error=error, sections=built
    )


def run_driftcheck(
    folder: Path, *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would, with its key file and database
    kept in ``folder``."""
    env = {
        **os.environ,
        "DRIFTCHECK_KEY_FILE": str(folder / "hmac.key"),
        "DRIFTCHECK_DB": f"sqlite:///{folder / 'dc.db'}",
    }
    return subprocess.run(
        [sys.executable, "-m", "driftcheck", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def run_section_locally(collector: Collector, settings: CollectSettings) -> RawSection:
    """``collector``'s section run on this machine as a collection runs it: framed
    script, ``local`` transport, output split as it streams."""
    marker = new_marker()
    section = Section(collector.name, collector.shell_for(settings), 60, collector.requires)
    reader = SectionReader.for_sections(marker, [section])
    LocalTransport().run(build_script([section], marker), 120, reader)
    return reader.sections([collector.name])[collector.name]
