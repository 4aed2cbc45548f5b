"""The JSON report: the machine-readable contract documented in the README."""

from __future__ import annotations

from typing import Any

from driftcheck.findings import DriftReport, Finding, WaiverRecord
from driftcheck.printable import printable_json

from .common import age_words

SCHEMA = "driftcheck-report/1"


def waiver_json(w: WaiverRecord) -> dict[str, Any]:
    """A waiver as the JSON report (and ``driftcheck waivers -f json``) writes it."""
    return {
        "key": w.key,
        "collector": w.collector,
        "reason": w.reason,
        "owner": w.owner,
        "expires": w.expires.isoformat(),
        "line": w.line,
    }


def _finding(f: Finding, report: DriftReport) -> dict[str, Any]:
    return {
        "role": f.role,
        "collector": f.collector,
        "key": f.key,
        "state": f.state.value,
        "values": f.values,
        "reference_hosts": list(f.reference_hosts),
        "detail": [
            {
                "host": c.host,
                "path": c.path,
                "reference": c.reference,
                "target": c.target,
                **({"diff": c.diff} if c.diff else {}),
            }
            for c in f.detail
        ],
        "reasons": f.reasons,
        **({"note": f.note} if f.note else {}),
        **({"explanation": f.explanation} if f.explanation else {}),
        **(
            {"since": f.since, "runs_held": f.runs_held, "age": age_words(f, report)}
            if f.since
            else {}
        ),
        **({"underlying_state": f.underlying.value} if f.underlying else {}),
        **({"waiver": waiver_json(f.waiver)} if f.waiver else {}),
        **({"cause": f.cause} if f.cause else {}),
        **({"mapped_values": f.mapped_values} if f.mapped_values is not None else {}),
    }


def as_dict(report: DriftReport) -> dict[str, Any]:
    """The report as plain JSON-ready data, keys in a stable order."""
    total, uncollected = len(report.hosts), len(report.uncollected)
    return {
        "schema": SCHEMA,
        "generated_at": report.generated_at,
        "inventory": report.inventory,
        "reference": report.reference,
        "targets": list(report.targets),
        **(
            {"pair": {"reference": report.pair[0], "target": report.pair[1]}} if report.pair else {}
        ),
        "run_started_at": report.run_started_at,
        "summary": {
            "verdict": report.verdict,
            "exit_code": report.exit_code,
            "findings": len(report.findings),
            "by_state": report.counts,
            "hosts": {
                "total": total,
                "ok": total - uncollected,
                "incomplete": uncollected,
            },
            "compared_keys": report.compared_keys,
            "volatile_skipped": report.volatile_skipped,
            "stale_waivers": len(report.stale_waivers),
            "drift_causes": report.drift_causes[1],
        },
        "causes": [
            {
                "id": c.id,
                "role": c.role,
                "collector": c.collector,
                "key": c.key,
                "title": c.title,
                "members": c.members,
            }
            for c in report.causes
        ],
        "hosts": [
            {
                "name": h.name,
                "environment": h.environment,
                "roles": list(h.roles),
                "status": h.status,
                "error": h.error,
                "collected_at": h.collected_at,
                "not_applicable": h.not_applicable,
            }
            for h in report.hosts
        ],
        "findings": [_finding(f, report) for f in report.findings],
        "stale_waivers": [waiver_json(w) for w in report.stale_waivers],
    }


def render(report: DriftReport) -> str:
    """The report as indented JSON text."""
    # Still plain JSON; the few characters json.dumps leaves raw that a terminal
    # would act on are \u escapes, so the report is also safe to print.
    return printable_json(as_dict(report)) + "\n"
