"""The HTML report: one self-contained file, Jinja2 with autoescape and StrictUndefined."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from functools import cache
from typing import Any

import jinja2

from driftcheck.drift import WHOLE, DriftReport, Finding, State


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("driftcheck.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["show"] = show_value
    return env


def show_value(value: Any) -> str:
    """A short human-readable form of a fact value (escaped later by Jinja)."""
    if value is None:
        return "(absent)"
    if isinstance(value, dict):
        if "type" in value and "mode" in value:  # a file from the files collector
            bits = [
                str(value.get("type")),
                f"mode {value.get('mode')}",
                f"{value.get('owner')}:{value.get('group')}",
            ]
            if "size" in value:
                bits.append(f"{value['size']} bytes")
            if "sha256" in value:
                bits.append(f"sha256 {str(value['sha256'])[:12]}…")
            if "content_note" in value:
                bits.append(str(value["content_note"]))
            return ", ".join(bits)
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


#: Shown in their own collapsed sections, with their reasons, not among the drift.
_SET_ASIDE = (State.IGNORED, State.WAIVED)


def _finding_order(finding: Finding) -> tuple[bool, str]:
    # Whole-section problems first, then keys alphabetically.
    return (finding.key != WHOLE, finding.key)


def _unknown_hosts(per_collector: dict[str, list[Finding]]) -> dict[str, list[str]]:
    """collector -> hosts whose data for it is unknown (so never "same as reference")."""
    whole_hosts = [h for f in per_collector.get(WHOLE, []) for h in f.reasons]
    unknown: dict[str, list[str]] = defaultdict(lambda: list(whole_hosts))
    for name, findings in per_collector.items():
        unknown[name] = whole_hosts + [h for f in findings if f.key == WHOLE for h in f.reasons]
    return unknown


def _groups(report: DriftReport, findings: list[Finding]) -> list[dict[str, Any]]:
    """Findings grouped by role, then collector, with the host columns of each role."""
    by_role: dict[str, dict[str, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for f in findings:
        by_role[f.role][f.collector].append(f)
    env_of = {h.name: h.environment for h in report.hosts}
    groups: list[dict[str, Any]] = []
    for role in sorted(by_role):
        # Only compared hosts get a column: a host of another environment (dev)
        # was never compared, so it must not read "same as reference".
        compared_envs = {report.reference, *report.targets}
        hosts = [h.name for h in report.hosts if role in h.roles and h.environment in compared_envs]
        refs = [h for h in hosts if env_of[h] == report.reference]
        columns = refs + [h for h in hosts if h not in refs]
        per_collector: dict[str, list[Finding]] = by_role[role]
        # The whole-host group (unreachable hosts) comes first.
        names = sorted(per_collector, key=lambda name: name != WHOLE)
        collectors: list[dict[str, Any]] = [
            {"name": name, "findings": sorted(per_collector[name], key=_finding_order)}
            for name in names
        ]
        groups.append(
            {
                "role": role,
                "columns": columns,
                "references": refs,
                "collectors": collectors,
                "unknown": _unknown_hosts(by_role[role]),
            }
        )
    return groups


def render(report: DriftReport) -> str:
    """The report as one HTML document with no external resources."""
    env = _environment()
    style = env.get_template("report.css.j2").render()
    # The CSP allows exactly this inline stylesheet (by hash) and nothing else: no
    # scripts, no external requests, so collected data can never become active.
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return env.get_template("report.html.j2").render(
        style=style,
        style_hash=f"sha256-{digest}",
        report=report,
        counts=report.counts,
        states=[s.value for s in State],
        groups=_groups(report, [f for f in report.findings if f.state not in _SET_ASIDE]),
        ignored=[f for f in report.findings if f.state is State.IGNORED],
        waived=[f for f in report.findings if f.state is State.WAIVED],
        whole=WHOLE,
        env_of={h.name: h.environment for h in report.hosts},
    )
