"""The text report: tables for a terminal, drawn with rich.

Colour only when asked (the command line asks when stdout is a terminal); the
default, used for files and pipes, is plain text. Collected data goes into
``rich.text.Text`` objects, so ``[bold]``-style markup in it means nothing, and
control characters (terminal escape sequences) are shown as ``\\xNN``
(:func:`driftcheck.printable.printable`, as everywhere else on a terminal).
"""

from __future__ import annotations

import io
import shutil

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

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
    since_label,
    volatile_total,
)

#: Findings shown per role and collector; the rest are counted.
MAX_ROWS = 50
#: Width of plain output (files, pipes): stable whatever the terminal.
PLAIN_WIDTH = 120

_STYLE = {
    State.CHANGED: "yellow",
    State.RENAMED: "yellow",
    State.MISSING: "red",
    State.EXTRA: "magenta",
    State.INCONSISTENT: "cyan",
    State.INCOMPLETE: "bold red",
}


def _safe(value: str) -> Text:
    """Collected data as inert text: no markup, no control characters."""
    return Text(printable(value))


def render(report: DriftReport, color: bool = False, width: int | None = None) -> str:
    """The report as terminal text; ANSI colours only when ``color`` is true."""
    if width is None:
        width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns if color else PLAIN_WIDTH
    console = Console(
        file=io.StringIO(),
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=width,
        highlight=False,
        emoji=False,
        markup=False,
    )
    _print_verdict(console, report)
    _print_causes(console, report)
    _print_uncollected(console, report)
    _print_findings(console, report)
    _print_set_aside(console, report)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def _print_verdict(console: Console, report: DriftReport) -> None:
    """The headline with the exit status, then the findings per state."""
    verdict_style = "green" if report.exit_code == 0 else "bold red"
    headline = Text("driftcheck: ")
    headline.append(report.verdict, style=verdict_style)
    headline.append(
        f" (exit status {report.exit_code}): {report.subject}, "
        f"{report.compared_keys} keys compared, "
        f"generated {report.generated_at}"
    )
    console.print(headline)
    counts = Table(box=box.SIMPLE, show_header=True, title=None)
    counts.add_column("state")
    counts.add_column("findings", justify="right")
    for state in State:
        n = report.counts[state.value]
        counts.add_row(Text(state.value, style=_STYLE.get(state, "") if n else "dim"), str(n))
    console.print(counts)


def _print_causes(console: Console, report: DriftReport) -> None:
    """The cause groups, each with the findings that follow from it indented."""
    if not report.causes:
        return
    console.print(Text(causes_line(report) + ":"))
    for cause in report.causes:
        console.print(_safe(f"  {cause.title} (role {cause.role})"))
        for member in cause_members(report, cause):
            console.print(_safe(f"      {member}"))


def _print_uncollected(console: Console, report: DriftReport) -> None:
    """How many hosts were collected completely, and why the others were not."""
    bad = report.uncollected
    console.print(
        Text(f"hosts collected completely: {len(report.hosts) - len(bad)} of {len(report.hosts)}")
    )
    if not bad:
        return
    hosts = Table(title="hosts not collected completely", box=box.SIMPLE, title_justify="left")
    for column in ("host", "environment", "status", "why"):
        hosts.add_column(column, overflow="fold")
    for h in bad:
        hosts.add_row(_safe(h.name), _safe(h.environment), _safe(h.status), _safe(h.error))
    console.print(hosts)


def _print_findings(console: Console, report: DriftReport) -> None:
    """One table per role and collector, at most :data:`MAX_ROWS` rows each."""
    listed = listed_findings(report)
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in listed:
        groups.setdefault((f.role, f.collector), []).append(f)
    for (role, collector), findings in sorted(groups.items()):
        table = Table(
            title=f"role {role}, {collector_label(collector)}",
            title_justify="left",
            box=box.SIMPLE,
            show_lines=False,
        )
        table.add_column("state", no_wrap=True)
        table.add_column("key", overflow="fold", ratio=1)
        table.add_column("values per host", overflow="fold", ratio=2)
        for f in findings[:MAX_ROWS]:
            table.add_row(
                Text(f.state.value, style=_STYLE.get(f.state, "")),
                _safe(key_label(f)),
                _values(f, since_label(f, report), cause_of(f, report)),
            )
        if len(findings) > MAX_ROWS:
            table.caption = f"... and {len(findings) - MAX_ROWS} more"
        console.print(table)
    if not listed:
        console.print(Text("no drift and no unknown data", style="green"))


def _values(f: Finding, since: str, cause: str) -> Text:
    """Each host's value (or why it is unknown), then the explanation, the note,
    since when and the cause it follows from."""
    values = Text("\n").join(_safe(f"{host}: {shown}") for host, shown in per_host(f))
    extras = (("why", f.explanation), ("note", f.note), ("when", since), ("cause", cause))
    for label, extra in extras:
        if extra:
            values.append("\n")
            values.append_text(_safe(f"{label}: {extra}"))
    return values


def _print_set_aside(console: Console, report: DriftReport) -> None:
    """What the rules accepted (the waived findings with who accepted them and until
    when), the volatile keys skipped, and the stale waivers."""
    waived, ignored = report.counts[State.WAIVED.value], report.counts[State.IGNORED.value]
    console.print(
        Text(
            f"not drift: {waived} waived, {ignored} ignored by the inventory's rules; "
            f"{volatile_total(report)} differences in volatile keys skipped"
        )
    )
    for f in [f for f in report.findings if f.state is State.WAIVED][:MAX_ROWS]:
        hosts = ", ".join(f.differing)
        console.print(
            _safe(f"  waived {key_label(f)} ({f.role}, {f.collector}) on {hosts}: {accepted_by(f)}")
        )
    if waived > MAX_ROWS:
        console.print(Text(f"  ... and {waived - MAX_ROWS} more waived"))
    for w in report.stale_waivers:
        console.print(
            _safe(
                f"stale waiver (matches nothing), line {w.line}: {w.key} "
                f"owner {w.owner}, expires {w.expires.isoformat()}: {w.reason}"
            )
        )
