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


def _configured(
    finding: Finding, snapshots: Mapping[str, HostSnapshot]
) -> dict[str, dict[str, Any] | None]:
    """host -> what its sysctl config files set for the key (None: nothing), for the
    hosts whose sysctl_config was collected."""
    out: dict[str, dict[str, Any] | None] = {}
    for host in finding.values:
        config = _facts(snapshots, host, "sysctl_config")
        if config is not None:
            entry = config.get(finding.key)
            ok = isinstance(entry, dict) and entry.get("value") is not None
            out[host] = entry if ok else None
    return out


def _unpersisted(
    host: str, finding: Finding, configured: Mapping[str, dict[str, Any] | None]
) -> str:
    """Why ``host``, which sets the key in no sysctl config file, has its value: told
    from the hosts that set it nowhere either (their common value is the kernel's
    default), never guessed from one host alone."""
    value = _norm(finding.values[host])
    peers = {
        h: _norm(finding.values[h])
        for h, c in configured.items()
        if c is None and h != host and finding.values[h] is not None
    }
    persisted = [h for h, c in configured.items() if c is not None]
    if not peers:
        where = ", ".join(f"{h} in {configured[h]['file']}" for h in persisted)  # type: ignore[index]
        return (
            f"{host}: not persisted in any sysctl config file (the kernel's default unless "
            f"set at runtime); set persistently on {where}"
        )
    names = ", ".join(peers)
    if all(v == value for v in peers.values()):
        return f"{host}: the kernel's default, as on {names} (no sysctl config file sets it)"
    others = set(peers.values())
    if len(peers) >= 2 and len(others) == 1:
        return (
            f"{host}: set at runtime, not persisted in any sysctl config file ({names} set it "
            f"nowhere either and have {others.pop()}, the kernel's default)"
        )
    return (
        f"{host}: not persisted in any sysctl config file, nor on {names}: one of them was "
        "set at runtime (a reboot restores the kernel's default)"
    )


def _sysctl_reason(finding: Finding, snapshots: Mapping[str, HostSnapshot]) -> str:
    """For the hosts that differ: persisted, the kernel's default, or set at runtime;
    for any host, a runtime value its config file does not set."""
    configured = _configured(finding, snapshots)
    differing = set(finding.differing)
    reasons = []
    for host, runtime in finding.values.items():
        if runtime is None or host not in configured:
            continue
        entry = configured[host]
        if entry is None:
            if host in differing:
                reasons.append(_unpersisted(host, finding, configured))
            continue
        where = entry.get("file", "a sysctl config file")
        if _norm(entry["value"]) != _norm(runtime):
            reasons.append(
                f"{host}: runtime {runtime} differs from {entry['value']} set in {where}"
                " (changed at runtime; a reboot restores the file's value)"
            )
        elif host in differing:
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
