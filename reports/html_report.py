"""The HTML report: one self-contained file, Jinja2 with autoescape and StrictUndefined."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from functools import cache
from typing import Any

import jinja2

from driftcheck.findings import WHOLE, DriftReport, Finding, State

from .common import (
    cause_members,
    causes_line,
    collector_label,
    plural,
    show_value,
    since_label,
)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("driftcheck.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The page shows values whole: its cells scroll, and the JSON island is not used.
    env.filters["show"] = lambda value: show_value(value, limit=None)
    env.filters["hosts_json"] = hosts_json
    env.filters["diff_class"] = diff_class
    return env


def hosts_json(finding: Finding) -> str:
    """The hosts a finding involves, as JSON for a ``data-`` attribute (escaped by Jinja)."""
    return json.dumps(sorted({*finding.values, *finding.reasons}), ensure_ascii=False)


def diff_class(line: str) -> str:
    """The CSS class of one unified-diff line (colour is never the only cue: the
    line keeps its +/- sign)."""
    if line.startswith(("---", "+++")):
        return "head"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "")


#: The chart's size and margins, in SVG user units.
_CHART = {"width": 480, "height": 120, "left": 36, "right": 470, "top": 8, "bottom": 96}


def _trend(report: DriftReport) -> dict[str, Any] | None:
    """The drift-over-time chart's coordinates (None with fewer than two runs)."""
    points = report.trend
    if len(points) < 2:
        return None
    top = max(max(p.drift, p.incomplete) for p in points) or 1
    left, right, y0, y1 = _CHART["left"], _CHART["right"], _CHART["top"], _CHART["bottom"]
    step = (right - left) / (len(points) - 1)

    def y(n: int) -> float:
        return round(y1 - (y1 - y0) * n / top, 1)

    shown = [
        {
            "x": round(left + i * step, 1),
            "y_drift": y(p.drift),
            "y_incomplete": y(p.incomplete),
            "run": p.run_id,
            "at": p.started_at,
            "drift": p.drift,
            "incomplete": p.incomplete,
        }
        for i, p in enumerate(points)
    ]
    return {
        **_CHART,
        "max": top,
        "points": shown,
        "drift": " ".join(f"{p['x']},{p['y_drift']}" for p in shown),
        "incomplete": " ".join(f"{p['x']},{p['y_incomplete']}" for p in shown),
        "first": points[0].started_at[:10],
        "last": points[-1].started_at[:10],
    }


def _sha256(text: str) -> str:
    """A CSP hash source for an inline element's exact text."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


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
    groups: list[dict[str, Any]] = []
    for role in sorted(by_role):
        # Only compared hosts get a column: a host of another environment (dev)
        # was never compared, so it must not read "same as reference".
        refs, columns = report.role_hosts(role)
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


def _by_collector(report: DriftReport) -> list[dict[str, Any]]:
    """Findings per collector and state (every state present), whole hosts first."""
    table: dict[str, dict[str, int]] = {}
    for f in report.findings:
        row = table.setdefault(f.collector, {s.value: 0 for s in State})
        row[f.state.value] += 1
    return [
        {"name": collector_label(name), "counts": table[name], "total": sum(table[name].values())}
        for name in sorted(table, key=lambda n: (n != WHOLE, n))
    ]


def _collected(report: DriftReport) -> list[dict[str, Any]]:
    """Per environment (reference first): hosts fully collected, earliest and latest time."""
    envs = list(dict.fromkeys([report.reference, *report.targets]))
    envs += sorted({h.environment for h in report.hosts} - set(envs))
    out = []
    for env in envs:
        hosts = [h for h in report.hosts if h.environment == env]
        times = sorted(h.collected_at for h in hosts if h.collected_at)
        out.append(
            {
                "environment": env,
                "hosts": len(hosts),
                "collected": sum(h.complete for h in hosts),
                "earliest": times[0] if times else None,
                "latest": times[-1] if times else None,
                "compared": env in (report.reference, *report.targets),
            }
        )
    return out


def _headline(report: DriftReport) -> list[str]:
    """The verdict in plain words, one sentence per fact a manager needs."""
    drift = [f for f in report.findings if f.state.is_drift]
    target, reference = report.sides
    out: list[str] = []
    if drift:
        by_state = {s.value: 0 for s in State if s.is_drift}
        for f in drift:
            by_state[f.state.value] += 1
        parts = ", ".join(f"{n} {s}" for s, n in by_state.items() if n)
        out.append(
            f"{target} does not mirror {reference}: "
            f"{plural(len(drift), 'difference')} to fix ({parts})."
        )
    else:
        out.append(
            f"No drift found: {target} mirrors {reference} in "
            f"{plural(report.compared_keys, 'compared key')}."
        )
    bad_hosts = report.uncollected
    unknown = report.counts[State.INCOMPLETE.value]
    if bad_hosts or unknown:
        what = []
        if bad_hosts:
            what.append(f"{plural(len(bad_hosts), 'host')} not fully collected")
        if unknown:
            what.append(f"{plural(unknown, 'item')} unknown")
        out.append(
            "The comparison is incomplete (" + ", ".join(what) + "): "
            "missing data is never counted as the same."
        )
    accepted = report.counts[State.WAIVED.value] + report.counts[State.IGNORED.value]
    if accepted:
        out.append(f"{plural(accepted, 'known difference')} accepted by rules (waived, ignored).")
    return out


def render(report: DriftReport) -> str:
    """The report as one HTML document with no external resources."""
    env = _environment()
    style = env.get_template("report.css.j2").render()
    # The filters' script is static: collected data reaches it only through the
    # DOM (text nodes and quoted data- attributes), never inside the script text.
    script = env.get_template("report.js.j2").render()
    set_aside = [f for f in report.findings if f.state in _SET_ASIDE]
    shown = [f for f in report.findings if f.state not in _SET_ASIDE]
    envs = {report.reference, *report.targets}
    compared = set(report.pair or {h.name for h in report.hosts if h.environment in envs})
    # The CSP allows exactly this inline stylesheet and this inline script (by
    # hash) and nothing else: no external requests, no other script can run.
    return env.get_template("report.html.j2").render(
        style=style,
        style_hash=_sha256(style),
        script=script,
        script_hash=_sha256(script),
        headline=_headline(report),
        by_collector=_by_collector(report),
        collected=_collected(report),
        uncollected=report.uncollected,
        filter_states=[s.value for s in State if any(f.state is s for f in report.findings)],
        filter_collectors=sorted(
            {f.collector for f in report.findings}, key=lambda n: (n != WHOLE, n)
        ),
        filter_roles=sorted({f.role for f in report.findings}),
        filter_hosts=[h.name for h in report.hosts if h.name in compared],
        label=collector_label,
        since=lambda f: since_label(f, report),
        causes_line=causes_line(report),
        trend=_trend(report),
        cause_title={c.id: c.title for c in report.causes},
        cause_members=lambda c: cause_members(report, c),
        total=len(shown) + len(set_aside),
        report=report,
        counts=report.counts,
        states=[s.value for s in State],
        groups=_groups(report, shown),
        ignored=[f for f in report.findings if f.state is State.IGNORED],
        waived=[f for f in report.findings if f.state is State.WAIVED],
        whole=WHOLE,
        env_of={h.name: h.environment for h in report.hosts},
    )
