"""The Markdown report: a short summary for a pull-request comment or an email.

Verdict, counts by state, hosts not collected completely, then the top findings
(drift first, then incomplete), capped at :data:`MAX_ROWS` rows. No links.

Collected data is hostile: every key, value, reason and error is shown in a code
span, where Markdown and HTML mean nothing (no emphasis, links, mentions or tags),
and is escaped so it cannot leave the span or the table cell: newlines become
``↵``, control characters ``\\xNN`` (:func:`driftcheck.printable.printable`), the
span's backtick fence is longer than any backtick run inside, and ``|`` becomes
``\\|`` (GitHub's table syntax, honoured inside code spans). Other text
(host, role, collector names) backslash-escapes Markdown's and HTML's metacharacters.
"""

from __future__ import annotations

import re

from driftcheck.findings import DriftReport, Finding, State
from driftcheck.printable import printable

from .common import (
    accepted_by,
    cause_members,
    cause_of,
    causes_line,
    collector_label,
    key_label,
    listed_findings,
    per_host,
    plural,
    since_label,
    volatile_total,
)

#: Findings listed at most; the rest are counted ("... and N more").
MAX_ROWS = 50

_PUNCT = re.compile(r"([\\`*_\[\]<>|&~#!])")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_PIPE = re.compile(r"(\\*)\|")


def text(value: str) -> str:
    """Plain text for a table cell: Markdown and HTML metacharacters backslash-escaped."""
    return _PUNCT.sub(r"\\\1", printable(_NEWLINE.sub(" ", value)))


def _pipe(match: re.Match[str]) -> str:
    # A table cell ends at a "|" that is not preceded by an escaping backslash; a
    # run of backslashes in the data is padded to an even length so the last one
    # cannot pair with our "\|" (an odd run shows one extra backslash).
    run = match.group(1)
    return run + ("\\" if len(run) % 2 else "") + "\\|"


def code(value: str) -> str:
    """``value`` as an inert code span that stays inside its table cell."""
    value = printable(_NEWLINE.sub("↵", value))
    if not value.strip():
        return "(empty)" if not value else f"(whitespace: {len(value)})"
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {_PIPE.sub(_pipe, value)} {fence}"


def _values(finding: Finding, report: DriftReport) -> str:
    lines = [f"{text(host)}: {code(shown)}" for host, shown in per_host(finding)]
    if finding.explanation:
        lines.append(f"why: {code(finding.explanation)}")
    if finding.note:
        lines.append(f"note: {code(finding.note)}")
    since = since_label(finding, report)
    if since:
        lines.append(text(since))
    cause = cause_of(finding, report)
    if cause:
        lines.append(f"cause: {code(cause)}")
    return "<br>".join(lines)


def render(report: DriftReport) -> str:
    """The report as GitHub-flavoured Markdown (tables; no links, no raw HTML but <br>)."""
    out = [
        *_verdict(report),
        *_causes(report),
        *_uncollected(report),
        *_findings(report),
        *_set_aside(report),
    ]
    return "\n".join(out) + "\n"


def _verdict(report: DriftReport) -> list[str]:
    """Heading, verdict sentence, counts by state and how many hosts were collected."""
    complete = len(report.hosts) - len(report.uncollected)
    return [
        f"## driftcheck: {report.verdict}",
        "",
        f"**Verdict: {report.verdict}** (exit status {report.exit_code}): "
        f"{text(report.subject)}, "
        f"{plural(report.compared_keys, 'key')} compared, "
        f"report generated {text(report.generated_at)}.",
        "",
        "| state | findings |",
        "|---|---:|",
        *(f"| {state} | {n} |" for state, n in report.counts.items()),
        "",
        f"Hosts collected completely: {complete} of {len(report.hosts)}.",
    ]


def _causes(report: DriftReport) -> list[str]:
    """The cause groups as a list, each with what follows from it."""
    if not report.causes:
        return []
    out = ["", f"### Causes: {causes_line(report)}", ""]
    for cause in report.causes:
        out.append(f"- {text(cause.title)} (role {text(cause.role)})")
        out += [f"  - {code(member)}" for member in cause_members(report, cause)]
    return out


def _uncollected(report: DriftReport) -> list[str]:
    """The table of hosts not collected completely, if any."""
    if not report.uncollected:
        return []
    return [
        "",
        "### Hosts not collected completely",
        "",
        "| host | environment | status | why |",
        "|---|---|---|---|",
        *(
            f"| {text(h.name)} | {text(h.environment)} | {text(h.status)} | {code(h.error)} |"
            for h in report.uncollected
        ),
    ]


def _findings(report: DriftReport) -> list[str]:
    """The first :data:`MAX_ROWS` findings, drift first, then incomplete."""
    listed = listed_findings(report)
    out = ["", "### Findings", ""]
    if not listed:
        return [*out, "No drift and no unknown data."]
    out += [
        "| role | collector | key | state | values per host |",
        "|---|---|---|---|---|",
    ]
    out += [
        f"| {text(f.role)} | {text(collector_label(f.collector))} | {code(key_label(f))} "
        f"| {f.state.value} | {_values(f, report)} |"
        for f in listed[:MAX_ROWS]
    ]
    if len(listed) > MAX_ROWS:
        out += ["", f"... and {len(listed) - MAX_ROWS} more (see the JSON or HTML report)."]
    return out


def _set_aside(report: DriftReport) -> list[str]:
    """What the rules accepted (counted) and the stale waivers (listed)."""
    waived, ignored = report.counts[State.WAIVED.value], report.counts[State.IGNORED.value]
    out = [
        "",
        f"Not drift: {waived} waived, {ignored} ignored by the inventory's rules; "
        f"{plural(volatile_total(report), 'difference')} in volatile keys skipped.",
    ]
    accepted = [f for f in report.findings if f.state is State.WAIVED]
    if accepted:
        out += ["", "| waived | role | hosts | accepted by |", "|---|---|---|---|"]
        out += [
            f"| {code(key_label(f))} | {text(f.role)} | {text(', '.join(f.differing))} "
            f"| {code(accepted_by(f))} |"
            for f in accepted[:MAX_ROWS]
        ]
        if len(accepted) > MAX_ROWS:
            out += ["", f"... and {len(accepted) - MAX_ROWS} more waived."]
    if report.stale_waivers:
        out += [
            "",
            f"Stale waivers ({len(report.stale_waivers)}): they match nothing any more; "
            "remove them or fix their selector.",
            "",
        ]
        out += [
            f"- line {w.line}: {code(w.key)}"
            f"{' (' + text(w.collector) + ')' if w.collector else ''}, "
            f"owner {text(w.owner)}, expires {w.expires.isoformat()}: {code(w.reason)}"
            for w in report.stale_waivers
        ]
    return out
