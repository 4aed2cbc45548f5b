"""The HTML report in a real browser: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: it launches /usr/bin/chromium (the
``chromium`` Debian package, installed by .ci/run). Reports are built from data,
as in test_json_html.py, written to tmp_path and opened over file://.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from driftcheck.collectors import BY_NAME
from driftcheck.findings import DriftReport
from driftcheck.model import HostStatus
from driftcheck.pipeline import build_report
from driftcheck.reports import Format, render
from tests.support.helpers import inventory, snapshot

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/driftcheck-report.png")
HOSTILE = '<script>alert(1)</script>" onmouseover="alert(2)'
CLOSER = "</script><script>alert(3)</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Watched:
    """A page whose dialogs, console errors and uncaught exceptions are recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def page(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Watched(context.new_page())
    context.close()


def open_report(page: Page, report: DriftReport, path: Path) -> None:
    path.write_text(render(report, Format.HTML), encoding="utf-8")
    page.goto(path.as_uri(), wait_until="load")


def _file(mode: str, content: str, extra: str) -> dict[str, Any]:
    value: dict[str, Any] = {
        "type": "file",
        "mode": mode,
        "owner": "root",
        "group": "root",
        "size": len(content),
        "sha256": extra * 32,
        "content": content,
    }
    # More than six differences inside: the detail is folded when JavaScript runs.
    value.update({f"x{i}": extra for i in range(4)})
    return value


def rich() -> DriftReport:
    """Two roles, three collectors, a host that could not be collected."""
    inv = inventory(
        {
            "prod-web1": ("production", ["web"]),
            "prod-db1": ("production", ["db"]),
            "stg-web1": ("staging", ["web"]),
            "stg-db1": ("staging", ["db"]),
            "stg-db2": ("staging", ["db"]),
        }
    )
    conf = "listen 80\nworkers 4\n"
    snaps = {
        "prod-web1": snapshot(
            "prod-web1",
            "production",
            ["web"],
            {
                "files": {"/etc/app.conf": _file("0644", conf, "ab")},
                "sysctl": {"net.core.somaxconn": "4096"},
                "packages": {"nginx": "1.22.1", "curl": "7.88.1"},
            },
        ),
        "stg-web1": snapshot(
            "stg-web1",
            "staging",
            ["web"],
            {
                "files": {"/etc/app.conf": _file("0600", conf + "debug on\n", "cd")},
                "sysctl": {"net.core.somaxconn": "128"},
                "packages": {"nginx": "1.22.0"},
            },
        ),
        "prod-db1": snapshot(
            "prod-db1",
            "production",
            ["db"],
            {"files": {}, "sysctl": {}, "packages": {"postgresql": "15.8"}},
        ),
        "stg-db1": snapshot(
            "stg-db1",
            "staging",
            ["db"],
            {"files": {}, "sysctl": {"vm.swappiness": "10"}, "packages": {"postgresql": "15.6"}},
        ),
        "stg-db2": snapshot(
            "stg-db2", "staging", ["db"], {}, HostStatus.FAILED, "connection refused"
        ),
    }
    collectors = [BY_NAME["files"], BY_NAME["sysctl"], BY_NAME["packages"]]
    return build_report(inv, snaps, collectors, "2026-01-01T00:00:00Z")


def visible_keys(page: Page) -> list[str]:
    """The key cell of every finding row the user can see."""
    keys: list[str] = page.eval_on_selector_all(
        "tr.f",
        "rows => rows.filter(r => r.checkVisibility()).map(r => r.cells[0].textContent.trim())",
    )
    return sorted(keys)


def keys_of(report: DriftReport, **match: str) -> list[str]:
    """The keys of the findings that match, as the report shows them."""
    out = []
    for f in report.findings:
        hosts = {*f.values, *f.reasons}
        if all(
            (want in hosts) if name == "host" else getattr(f, name) == want
            for name, want in match.items()
        ):
            out.append("(all)" if f.key == "*" else f.key)
    return sorted(out)


def test_filters_show_the_matching_rows(page: Watched, tmp_path: Path) -> None:
    report = rich()
    p = page.page
    open_report(p, report, tmp_path / "report.html")
    every = keys_of(report)
    assert len(every) >= 6
    assert visible_keys(p) == every
    assert p.locator("#filters").is_visible()

    p.select_option("#f-state", "changed")
    assert visible_keys(p) == keys_of(report, state="changed")
    assert p.locator("#f-status").text_content() == (
        f"Showing {len(keys_of(report, state='changed'))} of {len(every)} findings."
    )
    p.select_option("#f-state", "")

    p.select_option("#f-collector", "packages")
    assert visible_keys(p) == keys_of(report, collector="packages")
    # Collector blocks with nothing left to show are hidden with their headings.
    assert not p.get_by_role("heading", name="sysctl (1)").first.is_visible()
    p.select_option("#f-collector", "")

    p.select_option("#f-role", "db")
    assert visible_keys(p) == keys_of(report, role="db")
    assert not p.get_by_role("heading", name="Role web").is_visible()
    p.select_option("#f-role", "")

    p.select_option("#f-host", "stg-db2")
    assert visible_keys(p) == ["(all)"] == keys_of(report, host="stg-db2")
    p.select_option("#f-host", "stg-web1")
    assert visible_keys(p) == keys_of(report, host="stg-web1")
    p.select_option("#f-host", "")

    p.fill("#f-text", "SOMAXCONN")  # case-insensitive, over keys and values
    assert visible_keys(p) == ["net.core.somaxconn"]
    p.fill("#f-text", "1.22.0")
    assert visible_keys(p) == ["nginx"]
    p.fill("#f-text", "connection refused")  # reasons are searchable too
    assert visible_keys(p) == ["(all)"]
    p.fill("#f-text", "no such thing")
    assert visible_keys(p) == []

    # Combined filters, then "Show all" with the keyboard.
    p.fill("#f-text", "")
    p.select_option("#f-role", "web")
    p.select_option("#f-state", "missing")
    assert visible_keys(p) == keys_of(report, role="web", state="missing") == ["curl"]
    p.focus("button[type=reset]")
    p.keyboard.press("Enter")
    # (not wait_for_function: its polling evaluates a string, which this page's CSP
    # refuses, as it should)
    expect(p.locator("tr.f.off")).to_have_count(0)
    assert visible_keys(p) == every
    assert page.errors == [] and page.dialogs == []


def test_a_file_diff_opens(page: Watched, tmp_path: Path) -> None:
    p = page.page
    open_report(p, rich(), tmp_path / "report.html")
    details = p.locator("tr.detail details").first
    diff = details.locator("pre.diff")
    assert details.get_attribute("open") is None  # many changes: folded with JS on
    assert not diff.is_visible()
    details.locator("summary").click()
    assert diff.is_visible()
    assert "+debug on" in diff.inner_text()
    assert page.errors == []


def test_without_javascript_everything_shows(browser: Browser, tmp_path: Path) -> None:
    context = browser.new_context(java_script_enabled=False)
    p = context.new_page()
    report = rich()
    open_report(p, report, tmp_path / "report.html")
    assert visible_keys(p) == keys_of(report)
    assert not p.locator("#filters").is_visible()
    assert p.locator("details:not([open])").count() == 0
    assert p.locator("pre.diff").first.is_visible()
    context.close()


def test_print_shows_everything_without_filters(page: Watched, tmp_path: Path) -> None:
    p = page.page
    report = rich()
    open_report(p, report, tmp_path / "report.html")
    p.select_option("#f-state", "extra")
    assert visible_keys(p) == keys_of(report, state="extra")
    p.emulate_media(media="print")
    assert not p.locator("#filters").is_visible()
    assert visible_keys(p) == keys_of(report)
    assert p.locator("pre.diff").first.is_visible()  # folded detail, printed open
    p.emulate_media(media="screen")


def test_readable_on_a_phone(browser: Browser, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    p = context.new_page()
    open_report(p, rich(), tmp_path / "report.html")
    # Wide tables scroll inside their box; the page itself does not scroll sideways.
    assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    p.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    context.close()


def hostile() -> DriftReport:
    inv = inventory(
        {
            "prod1": ("production", ["web"]),
            "stg1": ("staging", ["web"]),
            "stg2": ("staging", ["web"]),
        }
    )
    ref = {"/etc/app.conf": _file("0644", f"a=1\nb={CLOSER}\n", "ab")}
    tgt = {"/etc/app.conf": _file("0600", f"a=1\n{HOSTILE}\nb={HOSTILE}\n", "cd")}
    snaps = {
        "prod1": snapshot(
            "prod1",
            "production",
            ["web"],
            {"files": ref, "sysctl": {HOSTILE: "1", f"k{CLOSER}": CLOSER, "x": "1"}},
        ),
        "stg1": snapshot("stg1", "staging", ["web"], {"files": tgt, "sysctl": {"x": HOSTILE}}),
        "stg2": snapshot(
            "stg2", "staging", ["web"], {}, HostStatus.FAILED, f"refused {HOSTILE} {CLOSER}"
        ),
    }
    return build_report(inv, snaps, [BY_NAME["files"], BY_NAME["sysctl"]], "2026-01-01T00:00:00Z")


def test_hostile_data_stays_text(page: Watched, tmp_path: Path) -> None:
    p = page.page
    open_report(p, hostile(), tmp_path / "hostile.html")
    # Our script ran (the CSP let it), and it is the only script on the page.
    assert p.locator("#filters").is_visible()
    assert p.evaluate("document.scripts.length") == 1
    assert p.evaluate("document.querySelectorAll('[onmouseover]').length") == 0
    # Hover and click everywhere the data is shown; search for the payload.
    for cell in p.locator("tr.f td, tr.f th, .uncollected li").all():
        cell.hover()
    p.locator("tr.detail summary").first.click()
    p.fill("#f-text", "<script>alert(1)</script>")
    assert len(visible_keys(p)) >= 3
    assert p.get_by_text("refused <script>alert(1)</script>", exact=False).first.is_visible()
    p.wait_for_timeout(200)
    assert page.dialogs == []
    assert page.errors == []


def big(n_per_block: int = 2500) -> DriftReport:
    """4 x n_per_block findings: two roles, two collectors, every key changed."""
    inv = inventory(
        {
            "prod-web1": ("production", ["web"]),
            "prod-db1": ("production", ["db"]),
            "stg-web1": ("staging", ["web"]),
            "stg-db1": ("staging", ["db"]),
        }
    )

    def facts(side: str) -> dict[str, Any]:
        return {
            "sysctl": {f"net.k{i:05d}": f"{side}{i}" for i in range(n_per_block)},
            "packages": {f"pkg{i:05d}": f"1.{i}-{side}" for i in range(n_per_block)},
        }

    snaps = {
        "prod-web1": snapshot("prod-web1", "production", ["web"], facts("p")),
        "prod-db1": snapshot("prod-db1", "production", ["db"], facts("p")),
        "stg-web1": snapshot("stg-web1", "staging", ["web"], facts("s")),
        "stg-db1": snapshot("stg-db1", "staging", ["db"], facts("s")),
    }
    return build_report(inv, snaps, [BY_NAME["sysctl"], BY_NAME["packages"]], "now")


def test_ten_thousand_findings_stay_responsive(page: Watched, tmp_path: Path) -> None:
    report = big()
    assert len(report.findings) == 10_000
    t0 = time.perf_counter()
    html = render(report, Format.HTML)
    rendered = time.perf_counter() - t0
    path = tmp_path / "big.html"
    path.write_text(html, encoding="utf-8")
    p = page.page
    t0 = time.perf_counter()
    p.goto(path.as_uri(), wait_until="load")
    load_wall = time.perf_counter() - t0
    load_nav = p.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    # One filter change, timed in the page: the filter pass plus the style and
    # layout it causes (forced by reading a size afterwards).
    filter_ms = p.evaluate(
        """() => {
        const s = document.getElementById('f-collector');
        const t0 = performance.now();
        s.value = 'packages';
        s.dispatchEvent(new Event('change', {bubbles: true}));
        document.body.getBoundingClientRect();
        return performance.now() - t0;
    }"""
    )
    assert p.locator("#f-status").text_content() == "Showing 5000 of 10000 findings."
    t0 = time.perf_counter()
    p.fill("#f-text", "pkg01234")  # a real typed search, round trip from Python
    search_wall = time.perf_counter() - t0
    assert p.locator("#f-status").text_content() == "Showing 2 of 10000 findings."
    print(
        f"\n10k findings: html {len(html) / 1e6:.1f} MB rendered in {rendered:.2f} s; "
        f"browser load {load_wall:.2f} s wall, loadEventEnd {load_nav:.0f} ms; "
        f"filter click {filter_ms:.0f} ms in page; typed search {search_wall * 1000:.0f} ms wall"
    )
    assert load_wall < 5 and load_nav < 5000
    assert filter_ms < 1000
    assert search_wall < 1
    assert page.errors == []


def test_screenshot(page: Watched, tmp_path: Path) -> None:
    p = page.page
    open_report(p, rich(), tmp_path / "report.html")
    shot = tmp_path / "driftcheck-report.png"
    p.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, SCREENSHOT)
    print(f"\nscreenshot: {shot} (copied to {SCREENSHOT})")
