"""Renderers: the JSON contract, and an HTML page that is self-contained and inert."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

from driftcheck.collectors import BY_NAME
from driftcheck.findings import DriftReport
from driftcheck.model import HostStatus, SectionResult, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.reports import RENDERERS, Format, render
from tests.support.helpers import inventory, snapshot

HOSTILE = '<script>alert(1)</script>" onmouseover="alert(2)'


def sample() -> DriftReport:
    inv = inventory(
        {
            "prod1": ("production", ["web"]),
            "stg1": ("staging", ["web"]),
            "stg2": ("staging", ["web"]),
        }
    )
    ref = {
        "/etc/app.conf": {
            "type": "file",
            "mode": "0644",
            "owner": "root",
            "group": "root",
            "size": 4,
            "sha256": "ab" * 32,
            "content": "a=1\n",
        }
    }
    tgt = {
        "/etc/app.conf": {**ref["/etc/app.conf"], "mode": "0600", "content": f"a=1\n{HOSTILE}\n"}
    }
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"files": ref, "sysctl": {HOSTILE: "1"}}),
        "stg1": snapshot("stg1", "staging", ["web"], {"files": tgt, "sysctl": {}}),
        "stg2": snapshot("stg2", "staging", ["web"], {}, HostStatus.FAILED, f"refused {HOSTILE}"),
    }
    return build_report(inv, snaps, [BY_NAME["files"], BY_NAME["sysctl"]], "2026-01-01T00:00:00Z")


def test_every_format_has_a_renderer() -> None:
    assert set(RENDERERS) == set(Format)
    for fmt in Format:
        assert render(sample(), fmt)


def test_json_contract() -> None:
    data = json.loads(render(sample(), Format.JSON))
    assert list(data)[:2] == ["schema", "generated_at"]
    assert {"summary", "hosts", "findings"} <= set(data)
    assert data["summary"]["verdict"] == "drift, incomplete"
    assert data["summary"]["exit_code"] == 5
    assert {h["name"]: h["status"] for h in data["hosts"]} == {
        "prod1": "ok",
        "stg1": "ok",
        "stg2": "failed",
    }
    for f in data["findings"]:
        assert {"role", "collector", "key", "state", "values"} <= set(f)
    by_key = {(f["collector"], f["key"]): f for f in data["findings"]}
    assert by_key[("files", "/etc/app.conf")]["state"] == "changed"
    assert by_key[("sysctl", HOSTILE)]["state"] == "missing"
    assert by_key[("*", "*")]["reasons"] == {"stg2": f"refused {HOSTILE}"}


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.style = ""
        self.script = ""
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self._in = tag if tag in ("style", "script") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.style += data
        elif self._in == "script":
            self.script += data


def test_html_is_self_contained_and_collected_data_is_inert() -> None:
    page = render(sample(), Format.HTML)
    scan = _Scan()
    scan.feed(page)
    # One script: the static filter code, with no collected data in it.
    assert scan.tags.count("script") == 1
    assert "alert" not in scan.script and "prod1" not in scan.script
    assert not [a for a, _ in scan.attrs if a.startswith("on") or a == "src"]
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The CSP allows exactly the inline stylesheet and script the page ships.
    style = base64.b64encode(hashlib.sha256(scan.style.encode()).digest()).decode()
    script = base64.b64encode(hashlib.sha256(scan.script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp is not None
    assert csp.group(1) == (
        f"default-src 'none'; style-src 'sha256-{style}'; script-src 'sha256-{script}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )


def test_html_shows_summary_then_values_side_by_side() -> None:
    page = render(sample(), Format.HTML)
    assert page.index("Summary") < page.index("Role web")
    assert "mode 0600" in page and "mode 0644" in page
    assert "+&lt;script&gt;" in page  # the content diff line, escaped
    # stg2 could not be collected: it is never shown as matching the reference.
    assert "same as reference" not in page
    assert page.count(">not collected<") == 2  # its files and sysctl cells


def test_not_applicable_sections_are_listed_per_host() -> None:
    inv = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
    na = SectionResult(
        "packages",
        SectionStatus.NOT_APPLICABLE,
        error="not applicable: none of dpkg-query, rpm, apk found",
    )
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"packages": {"bash": "5.2"}}),
        "stg1": snapshot("stg1", "staging", ["web"], {"packages": na}),
    }
    report = build_report(inv, snaps, [BY_NAME["packages"]], "now")
    data = json.loads(render(report, Format.JSON))
    assert data["hosts"][1]["not_applicable"] == {"packages": na.error}
    assert data["hosts"][0]["not_applicable"] == {}
    assert ">packages</span>" in render(report, Format.HTML)
