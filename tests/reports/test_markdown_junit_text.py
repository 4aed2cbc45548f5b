"""The Markdown, JUnit and text renderers: escaping, structure, counts."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from markdown_it import MarkdownIt

from driftcheck.collectors import BY_NAME
from driftcheck.findings import DriftReport
from driftcheck.model import SectionResult, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.reports import Format, junit_report, markdown_report, render, text_report
from driftcheck.reports.common import show_value
from tests.support.golden_sample import LINES, PIPES, SCRIPT, TICKS, hostile
from tests.support.helpers import inventory, snapshot


class _Cells(HTMLParser):
    """Tags, and the text of every table row's cells, of rendered Markdown."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _as_html(markdown: str) -> _Cells:
    # Raw HTML allowed, as on GitHub: the safety must come from our escaping.
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    cells = _Cells()
    cells.feed(md.render(markdown))
    return cells


def test_markdown_tables_survive_hostile_values() -> None:
    cells = _as_html(render(hostile(), Format.MARKDOWN))
    # No tag from collected data: only what the renderer itself writes.
    assert set(cells.tags) <= {
        "h2",
        "h3",
        "p",
        "strong",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "code",
        "br",
        "ul",
        "li",
    }
    widths = {len(row) for row in cells.rows}
    assert widths == {2, 4, 5}, cells.rows  # counts, hosts, findings: never split or merged
    findings = {row[2]: row[4] for row in cells.rows if len(row) == 5}
    lines = {key: cell.split("\n") for key, cell in findings.items()}
    assert "stg1: " + LINES.replace("\r\n", "↵").replace("\n", "↵") in lines[SCRIPT]
    assert f"stg1: {TICKS}" in lines["evil|pkg"]
    # An odd run of backslashes before a pipe gains one backslash, never a cell.
    assert "stg1: " + PIPES.replace("\\|", "\\\\|") in lines["curl"]


@pytest.mark.parametrize(
    "value",
    [
        SCRIPT,
        PIPES,
        TICKS,
        LINES,
        "`",
        "``",
        "a\\",
        "\\|",
        "\\\\|",
        "[x](http://e.com)",
        "*b*",
        " lead",
        "trail ",
        "|",
        "&lt;",
        "<br>",
        "\x1b[31mred",
    ],
)
def test_markdown_code_span_is_exact_and_inert(value: str) -> None:
    row = f"| {markdown_report.code(value)} | {markdown_report.text(value)} |"
    cells = _as_html(f"| a | b |\n|---|---|\n{row}\n")
    assert cells.tags.count("td") == 2, row
    assert not set(cells.tags) - {"table", "thead", "tbody", "tr", "th", "td", "code"}
    # Control characters are shown, escaped, as on every terminal output.
    expected = value.replace("\r\n", "↵").replace("\n", "↵").replace("\x1b", "\\x1b")
    shown_code, shown_text = cells.rows[-1]
    if not re.search(r"(?<!\\)(\\\\)*\\\|", expected):  # no odd backslash run before "|"
        assert shown_code == expected.strip() or shown_code == expected, row
    plain = value.replace("\n", " ").replace("\x1b", "\\x1b").replace("\r", "")
    assert shown_text == plain.strip(), row  # table cells are trimmed


def test_markdown_caps_rows() -> None:
    inv = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
    facts = {f"k{i:03}": str(i) for i in range(60)}
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"sysctl": facts}),
        "stg1": snapshot("stg1", "staging", ["web"], {"sysctl": {}}),
    }
    report = build_report(inv, snaps, [BY_NAME["sysctl"]], "now")
    text = render(report, Format.MARKDOWN)
    assert text.count("| sysctl |") == markdown_report.MAX_ROWS
    assert "... and 10 more" in text


def _outcome(case: object) -> str:
    results = list(getattr(case, "result", []))
    for kind, name in ((Failure, "failure"), (Error, "error"), (Skipped, "skipped")):
        if any(isinstance(r, kind) for r in results):
            return name
    return "passed"


def test_junit_parses_with_consistent_counts() -> None:
    xml = JUnitXml.fromstring(render(hostile(), Format.JUNIT))
    suites = {s.name: s for s in xml}
    assert list(suites) == ["driftcheck.db", "driftcheck.web"]
    for suite in xml:
        outcomes = [_outcome(case) for case in suite]
        assert suite.tests == len(outcomes)
        assert suite.failures == outcomes.count("failure")
        assert suite.errors == outcomes.count("error")
        assert suite.skipped == outcomes.count("skipped")
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (6, 2, 4, 0)
    web = {case.name: case for case in suites["driftcheck.web"]}
    assert {c.classname for c in web.values()} == {"driftcheck.web"}
    assert list(web) == ["packages", "sysctl", "apps"]
    failures = [r for r in web["packages"].result if isinstance(r, Failure)]
    assert sorted(f.message for f in failures) == [
        f"changed: {SCRIPT}",
        "changed: evil|pkg",
        "extra: curl",
        "missing: nginx",
        "renamed: libssl3",
    ]
    changed = next(f for f in failures if f.message == f"changed: {SCRIPT}")
    assert changed.type == "changed"
    assert changed.text.startswith("prod1: 1\nprod2: 1\nstg1: line1\nline2\n")
    (error,) = web["apps"].result
    assert isinstance(error, Error) and error.type == "incomplete"
    assert SCRIPT in (error.text or "")
    # An unreachable host is an error in every collector of its role, never a pass.
    db = list(suites["driftcheck.db"])
    assert [_outcome(c) for c in db] == ["error"] * 3
    assert "waived: openssl" in (web["packages"].system_out or "")


def test_junit_clean_report_passes_and_not_applicable_is_skipped() -> None:
    inv = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
    na = SectionResult("packages", SectionStatus.NOT_APPLICABLE, error="not applicable: no dpkg")
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"sysctl": {"a": "1"}, "packages": na}),
        "stg1": snapshot("stg1", "staging", ["web"], {"sysctl": {"a": "1"}, "packages": na}),
    }
    report = build_report(inv, snaps, [BY_NAME["sysctl"], BY_NAME["packages"]], "now")
    assert report.exit_code == 0
    xml = JUnitXml.fromstring(junit_report.render(report))
    cases = {c.name: _outcome(c) for s in xml for c in s}
    assert cases == {"sysctl": "passed", "packages": "skipped"}
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (2, 0, 0, 1)


def test_junit_escapes_and_drops_what_xml_cannot_carry() -> None:
    inv = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"sysctl": {"k\x01]]>": "1"}}),
        "stg1": snapshot("stg1", "staging", ["web"], {"sysctl": {"k\x01]]>": "\x1b[2J\x00"}}),
    }
    report = build_report(inv, snaps, [BY_NAME["sysctl"]], "now")
    xml = JUnitXml.fromstring(junit_report.render(report))
    (failure,) = next(iter(next(iter(xml)))).result
    assert failure.message == "changed: k\\x01]]>"
    assert "stg1: \\x1b[2J\\x00" in failure.text


def _report_with(value: str) -> DriftReport:
    inv = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"sysctl": {"k": "1"}}),
        "stg1": snapshot("stg1", "staging", ["web"], {"sysctl": {"k": value}}),
    }
    return build_report(inv, snaps, [BY_NAME["sysctl"]], "now")


def test_text_is_plain_unless_colour_is_asked() -> None:
    report = hostile()
    plain = text_report.render(report)
    assert "\x1b" not in plain
    assert "role web, packages" in plain and "drift, incomplete" in plain
    assert "stale waiver" in plain
    coloured = text_report.render(report, color=True, width=100)
    assert "\x1b[" in coloured
    # The Format-level entry point is plain by default (files, pipes).
    assert render(report, Format.TEXT) == plain


def test_text_shows_markup_and_escapes_as_data() -> None:
    out = text_report.render(_report_with("[bold red]x[/] \x1b]0;pwned\x07"), color=True)
    assert "[bold red]x[/]" in out
    assert "\x1b]0;" not in out and "\\x1b]0;pwned\\x07" in out


def test_a_symlink_is_shown_as_where_it_points() -> None:
    assert show_value({"type": "symlink", "link": "../shadow", "broken": False}) == (
        "symlink -> ../shadow"
    )
    assert show_value({"type": "symlink", "link": "gone", "broken": True}) == (
        "symlink -> gone (broken)"
    )
