"""Explanations: the first answers a sysadmin wants about a finding.

For a file (or a setting inside one): was it edited by hand after its package
installed it, or does it come with another version of that package? For a
kernel parameter: is the runtime value what the sysctl config files set, or was
it changed at runtime and would a reboot undo it? The evidence comes from the
``config_origin``, ``packages`` and ``sysctl_config`` collectors of the same
snapshots. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from driftcheck.findings import DriftReport, Finding
from driftcheck.model import SETTING_SEP, HostSnapshot


def _facts(
    snapshots: Mapping[str, HostSnapshot], host: str, collector: str
) -> dict[str, Any] | None:
    """The host's facts of ``collector``, or None when they were not collected: then
    the evidence says nothing (never "not persisted" for want of looking)."""
    snap = snapshots.get(host)
    section = snap.sections.get(collector) if snap is not None else None
    if section is None or section.status.value != "ok":
        return None
    return section.facts


def _file_reason(finding: Finding, snapshots: Mapping[str, HostSnapshot]) -> str:
    path = finding.key.split(SETTING_SEP, 1)[0]
    origins = {h: (_facts(snapshots, h, "config_origin") or {}).get(path) for h in finding.values}
    owners: set[str] = {
        str(o["package"]) for o in origins.values() if isinstance(o, dict) and o.get("package")
    }
    if not owners:
        return ""
    reasons = []
    edited = sorted(h for h, o in origins.items() if isinstance(o, dict) and o.get("modified"))
    if edited:
        package = next(iter(owners))
        reasons.append(f"modified after install on {', '.join(edited)} (package {package})")
    for package in sorted(owners):
        names = [n.strip() for n in str(package).split(",")]
        versions = {
            h: (_facts(snapshots, h, "packages") or {}).get(names[0].split(":")[0])
            for h in finding.values
        }
        if len({v for v in versions.values() if v is not None}) > 1:
            shown = ", ".join(f"{h} {v}" for h, v in versions.items())
            reasons.append(f"package {names[0]} version differs ({shown})")
    if not reasons:
        reasons.append(f"unmodified files of package {', '.join(sorted(owners))}")
    return "; ".join(reasons)


def _norm(value: Any) -> str:
    # The kernel prints vectors with tabs, config files with spaces.
    return " ".join(str(value).split())


def _sysctl_reason(finding: Finding, snapshots: Mapping[str, HostSnapshot]) -> str:
    reasons = []
    for host, runtime in finding.values.items():
        if runtime is None:
            continue
        config = _facts(snapshots, host, "sysctl_config")
        if config is None:
            continue
        configured = config.get(finding.key)
        if not isinstance(configured, dict) or configured.get("value") is None:
            if host not in finding.reference_hosts:
                reasons.append(f"{host}: set at runtime, not persisted in any sysctl config file")
            continue
        where = configured.get("file", "a sysctl config file")
        if _norm(configured["value"]) != _norm(runtime):
            reasons.append(
                f"{host}: runtime {runtime} differs from {configured['value']} set in {where}"
                " (changed at runtime; a reboot restores the file's value)"
            )
        elif host not in finding.reference_hosts:
            reasons.append(f"{host}: persisted in {where}")
    return "; ".join(reasons)


def explain(report: DriftReport, snapshots: Mapping[str, HostSnapshot]) -> DriftReport:
    """The report with each finding's explanation where the evidence gives one."""
    out = []
    for finding in report.findings:
        reason = ""
        if finding.collector == "files":
            reason = _file_reason(finding, snapshots)
        elif finding.collector == "sysctl":
            reason = _sysctl_reason(finding, snapshots)
        out.append(replace(finding, explanation=reason) if reason else finding)
    return replace(report, findings=tuple(out))
