"""Helpers shared by the renderers (HTML, Markdown, JUnit, terminal text).

Nothing here escapes: each renderer escapes for its own medium.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from driftcheck.findings import WHOLE, Cause, DriftReport, Finding, State

#: The order findings are listed in: drift first, then unknown data.
LISTED = (
    State.CHANGED,
    State.RENAMED,
    State.MISSING,
    State.EXTRA,
    State.INCONSISTENT,
    State.INCOMPLETE,
)

#: Longest value shown in a table cell or a failure text (the JSON has them whole).
MAX_VALUE = 200


def show_value(value: Any, limit: int | None = MAX_VALUE) -> str:
    """A short human-readable form of a fact value (not escaped); ``limit=None`` keeps
    it whole."""
    if value is None:
        text = "(absent)"
    elif isinstance(value, dict):
        if value.get("type") == "symlink" and "mode" not in value:  # a link, not followed
            broken = " (broken)" if value.get("broken") else ""
            text = f"symlink -> {value.get('link')}{broken}"
        elif "type" in value and "mode" in value:  # a file from the files collector
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
            text = ", ".join(bits)
        else:
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    elif isinstance(value, list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def listed_findings(report: DriftReport) -> list[Finding]:
    """Drift (changed, missing, extra, inconsistent), then incomplete; report order within."""
    rank = {s: i for i, s in enumerate(LISTED)}
    chosen = [f for f in report.findings if f.state in rank]
    return sorted(chosen, key=lambda f: rank[f.state])


def collector_label(collector: str) -> str:
    """How a finding's collector is named for people (``*`` is a whole host)."""
    return "(all collectors)" if collector == WHOLE else collector


def key_label(finding: Finding) -> str:
    """How a finding's key is named for people (``*`` is a whole host or section)."""
    if finding.key != WHOLE:
        return finding.key
    return "(whole host)" if finding.collector == WHOLE else "(whole section)"


def per_host(finding: Finding) -> list[tuple[str, str]]:
    """(host, text) pairs: the reasons of an incomplete finding, else the values."""
    if finding.state is State.INCOMPLETE:
        return [(h, f"unknown: {why}") for h, why in finding.reasons.items()]
    return [(h, show_value(v)) for h, v in finding.values.items()]


def roles(report: DriftReport) -> list[str]:
    """Every role compared (target hosts' roles), sorted, plus any role of a finding."""
    found = {r for h in report.hosts if h.environment in report.targets for r in h.roles}
    return sorted(found | {f.role for f in report.findings})


def plural(n: int, word: str) -> str:
    """``n`` and ``word``, with an "s" unless ``n`` is 1."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def age_words(finding: Finding, report: DriftReport) -> str:
    """How long the drift has held, in words: "new in this run", "for 12 days, 9
    runs"; "" when history says nothing (an incomplete finding, no history)."""
    if not finding.since or finding.runs_held < 1:
        return ""
    if finding.runs_held == 1:
        return "new in this run"
    start, now = _when(finding.since), _when(report.run_started_at)
    runs = f"{finding.runs_held} runs"
    if start is None or now is None or now < start:
        return f"for {runs}"
    seconds = (now - start).total_seconds()
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            return f"for {plural(int(seconds // size), unit)}, {runs}"
    return f"for under a minute, {runs}"


def since_label(finding: Finding, report: DriftReport) -> str:
    """ "since TIME (AGE)" for a finding with history, else ""."""
    if not finding.since:
        return ""
    age = age_words(finding, report)
    return f"since {finding.since}" + (f" ({age})" if age else "")


def accepted_by(finding: Finding) -> str:
    """Who accepted a waived finding and until when, in one phrase ("" for none)."""
    w = finding.waiver
    if w is None:
        return ""
    return f"owner {w.owner}, until {w.expires.isoformat()} (line {w.line}): {w.reason}"


def volatile_total(report: DriftReport) -> int:
    """Differences in volatile keys, skipped (never drift)."""
    return sum(report.volatile_skipped.values())


def causes_line(report: DriftReport) -> str:
    """ "12 findings from 3 causes", or "" when no finding is grouped."""
    if not report.causes:
        return ""
    findings, causes = report.drift_causes
    return f"{plural(findings, 'finding')} of drift from {plural(causes, 'cause')}"


def cause_members(report: DriftReport, cause: Cause) -> list[str]:
    """The keys that follow from ``cause``, as people read them."""
    return [
        f"{collector_label(f.collector)} {key_label(f)}"
        for f in report.members(cause)
        if (f.collector, f.key) != (cause.collector, cause.key)
    ]


def cause_of(finding: Finding, report: DriftReport) -> str:
    """The title of the cause group a finding belongs to, or ""."""
    return next((c.title for c in report.causes if c.id == finding.cause), "")
