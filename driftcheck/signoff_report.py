"""The sign-off as a change ticket reads it: Markdown or a self-contained HTML page.

Release, verdict, the evidence in numbers, each approver (time, key fingerprint,
comment, override) and what the policy still lacks. Values from the bundle are
escaped for their medium (Markdown code spans, HTML autoescape).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jinja2

from driftcheck.findings import State
from driftcheck.reports.markdown_report import code, text
from driftcheck.signoff import Approval

DRIFT_STATES = tuple(s.value for s in State if s.is_drift)


def _evidence(predicate: Mapping[str, Any], subjects: int) -> list[str]:
    counts = predicate.get("counts", {})
    drift = sum(
        counts.get(s, 0) for s in ("changed", "renamed", "missing", "extra", "inconsistent")
    )
    return [
        f"{subjects} host snapshots of {', '.join(predicate.get('targets', []))} and "
        f"{predicate.get('reference')} (run {predicate.get('run', {}).get('id')}, "
        f"{predicate.get('run', {}).get('started_at')})",
        f"{predicate.get('compared_keys', 0)} keys compared: {drift} drift, "
        f"{counts.get('incomplete', 0)} incomplete, {counts.get('waived', 0)} waived, "
        f"{counts.get('ignored', 0)} ignored",
    ]


def render_markdown(
    bundle: Mapping[str, Any], approvals: Sequence[Approval], gaps: Sequence[str], checked: bool
) -> str:
    """The sign-off as GitHub-flavoured Markdown."""
    stmt = bundle["statement"]
    p = stmt["predicate"]
    subjects = len(stmt["subject"]) - 1
    out = [
        f"## Sign-off: release {text(str(p.get('release')))}",
        "",
        f"**Verdict: {text(str(p.get('result')))}**; "
        + ("**sign-off complete under the policy**" if not gaps else "**sign-off not complete**"),
        "",
        *(f"- {text(line)}" for line in _evidence(p, subjects)),
        *(
            f"- waiver: {code(w['key'])} owner {text(w['owner'])}, until {w['expires']}: "
            f"{code(w['reason'])}"
            for w in p.get("waivers", [])
        ),
        *(
            f"- incomplete: {text(h['host'])}: {code(h['reason'])}"
            for h in p.get("incomplete_hosts", [])
        ),
        "",
        "| approver | at | key | comment | override |",
        "|---|---|---|---|---|",
        *(
            f"| {text(a.principal)} | {text(a.at)} | {code(a.key_fingerprint)} | {code(a.comment)} "
            f"| {code(a.override or '')} |"
            for a in approvals
        ),
        "",
        "Signatures verified against allowed_signers."
        if checked
        else "Signatures not verified here (give --allowed-signers, or run driftcheck verify).",
    ]
    if gaps:
        out += ["", "### Still missing", "", *(f"- {text(g)}" for g in gaps)]
    return "\n".join(out) + "\n"


def render_html(
    bundle: Mapping[str, Any], approvals: Sequence[Approval], gaps: Sequence[str], checked: bool
) -> str:
    """The sign-off as one self-contained HTML page (autoescaped, no script)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("driftcheck.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    stmt = bundle["statement"]
    p = stmt["predicate"]
    return env.get_template("signoff.html.j2").render(
        p=p,
        evidence=_evidence(p, len(stmt["subject"]) - 1),
        approvals=approvals,
        gaps=gaps,
        checked=checked,
    )
