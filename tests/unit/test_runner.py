"""The runner: one script per host, each section scrubbed then parsed, hosts in parallel.

Hosts here are this machine through the real ``local`` transport (``sh -s``), and
a real refused TCP port for a host that cannot be reached; the collectors are
small real declarations, so every path runs the same code a fleet run does.
"""

from __future__ import annotations

import socket
from pathlib import Path

from driftcheck.collectors import BY_NAME, Collector
from driftcheck.model import (
    CollectSettings,
    Host,
    HostStatus,
    ParseResult,
    SectionStatus,
)
from driftcheck.redact import Redactor
from driftcheck.runner import (
    collect_all,
    collect_host,
    finish_section,
    plan_sections,
)
from driftcheck.script import HOST_MAX_BYTES, SECTION_MAX_BYTES, RawSection
from driftcheck.transports import Transports

REDACTOR = Redactor(b"k" * 32)


def lines(text: str) -> ParseResult:
    """key=value lines as facts."""
    return ParseResult(dict(line.split("=", 1) for line in text.splitlines() if "=" in line))


def broken(_text: str) -> ParseResult:
    raise ValueError("cannot read this")


ECHO = Collector("echo", "prints two facts", "echo a=1; echo b=2", lines)
FAILS = Collector("fails", "exits 3", "echo oops >&2; exit 3", lines)
NO_TOOL = Collector("no_tool", "needs a missing tool", "true", lines, requires=("no-such-tool",))
BAD_PARSER = Collector("bad_parser", "parser raises", "echo x=1", broken)


def host(name: str = "here", transport: str = "local", port: int = 22) -> Host:
    return Host(
        name,
        "production",
        ("web",),
        "127.0.0.1",
        port,
        "root",
        None,
        Path("/nonexistent/known_hosts"),
        2.0,
        30.0,
        transport,
    )


def free_port() -> int:
    """A loopback port with no listener: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_plan_caps_each_section_timeout_at_the_host_command_timeout() -> None:
    slow = Collector("slow", "slow", "true", lines, timeout=lambda s: 1000.0 + len(s.files))
    quick = Collector("quick", "quick", "true", lines, timeout=5.0)
    sections = plan_sections([slow, quick], CollectSettings(files=("/a",)), host())
    assert [(s.name, s.timeout) for s in sections] == [("slow", 30.0), ("quick", 5.0)]


def test_a_parser_failure_is_an_error_never_empty_facts() -> None:
    raw = RawSection("bad_parser", SectionStatus.OK, "x=1\n", "", "0")
    result = finish_section(BAD_PARSER, raw, REDACTOR)
    assert result.status is SectionStatus.ERROR
    assert result.error == "parser failed: ValueError: cannot read this"
    assert result.facts == {}


def test_output_is_scrubbed_before_it_is_parsed_or_kept() -> None:
    scrubbing = Collector(
        "secret", "", "", lines, scrub=lambda raw, redactor: redactor.scrub_text(raw)
    )
    raw = RawSection("secret", SectionStatus.OK, "password=hunter2hunter2\n", "token=abc\n", "0")
    result = finish_section(scrubbing, raw, REDACTOR)
    assert "hunter2" not in result.raw and "hunter2" not in str(result.facts)
    assert "abc" not in result.stderr


def test_one_host_in_one_round_trip_with_a_status_per_section() -> None:
    snap = collect_host(host(), [ECHO, FAILS, NO_TOOL], CollectSettings(), REDACTOR, Transports())
    sections = snap.sections
    assert sections["echo"].status is SectionStatus.OK
    assert sections["echo"].facts == {"a": "1", "b": "2"}
    assert sections["fails"].status is SectionStatus.ERROR
    assert sections["fails"].error == "exit status 3: oops"
    assert sections["no_tool"].status is SectionStatus.NOT_APPLICABLE
    assert sections["no_tool"].error == "not applicable: none of no-such-tool found"
    # One section failed: the host is partial, and says which and why.
    assert snap.status is HostStatus.PARTIAL
    assert snap.error == "fails: exit status 3: oops"


def test_every_section_complete_makes_the_host_ok() -> None:
    snap = collect_host(host(), [ECHO, NO_TOOL], CollectSettings(), REDACTOR, Transports())
    assert snap.status is HostStatus.OK and snap.error == ""


def test_an_unreachable_host_is_failed_with_every_section_missing() -> None:
    down = host("down", transport="ssh", port=free_port())
    snap = collect_host(down, [ECHO, FAILS], CollectSettings(), REDACTOR, Transports())
    assert snap.status is HostStatus.FAILED
    assert snap.error.startswith("connection refused by 127.0.0.1:")
    assert {n: s.status for n, s in snap.sections.items()} == {
        "echo": SectionStatus.MISSING,
        "fails": SectionStatus.MISSING,
    }


def test_collect_all_yields_every_host_once() -> None:
    hosts = [host(f"h{i}") for i in range(5)] + [host("down", "ssh", free_port())]
    snaps = list(collect_all(hosts, [ECHO], CollectSettings(), REDACTOR, jobs=3))
    assert sorted(s.host for s in snaps) == ["down", "h0", "h1", "h2", "h3", "h4"]
    assert {s.host: s.status for s in snaps}["down"] is HostStatus.FAILED
    assert all(s.status is HostStatus.OK for s in snaps if s.host != "down")


def test_output_that_cannot_be_scrubbed_is_not_kept() -> None:
    def scrub_fails(_raw: str, _redactor: Redactor) -> str:
        raise RuntimeError("scrubber bug")

    leaky = Collector("leaky", "", "", lines, scrub=scrub_fails)
    raw = RawSection("leaky", SectionStatus.OK, "password=hunter2hunter2\n", "", "0")
    result = finish_section(leaky, raw, REDACTOR)
    assert result.status is SectionStatus.ERROR
    assert result.error == "scrubbing secrets failed, nothing kept: RuntimeError: scrubber bug"
    assert (result.raw, result.stderr, result.facts) == ("", "", {})


def with_errors(text: str) -> ParseResult:
    """Facts, and one key that exists but could not be read (as apps does for a
    failing command)."""
    return ParseResult(lines(text).facts, {"app": "command failed (exit status 3): no access"})


def test_a_key_that_could_not_be_read_makes_the_host_partial() -> None:
    unread = Collector("unread", "", "echo a=1", with_errors)
    snap = collect_host(host(), [ECHO, unread], CollectSettings(), REDACTOR, Transports())
    assert snap.sections["unread"].status is SectionStatus.OK  # the rest still compares
    assert snap.status is HostStatus.PARTIAL
    assert snap.error == "unread: app: command failed (exit status 3): no access"


def test_unreadable_evidence_does_not_make_the_host_partial() -> None:
    # Evidence-only collectors explain findings; what they could not read is not
    # compared, so it cannot leave a comparison incomplete.
    evidence = Collector("evidence", "", "echo a=1", with_errors, compare=False)
    snap = collect_host(host(), [ECHO, evidence], CollectSettings(), REDACTOR, Transports())
    assert snap.status is HostStatus.OK


def test_a_section_over_its_cap_is_cut_not_parsed_and_the_rest_is_collected() -> None:
    # 30 MB of one long line after a first line: over the 8 MiB every section may send.
    flood = Collector(
        "flood", "", "echo a=1; head -c 30000000 /dev/zero | tr '\\0' y", lines, timeout=30.0
    )
    snap = collect_host(host(), [flood, ECHO], CollectSettings(), REDACTOR, Transports())
    cut = snap.sections["flood"]
    assert cut.status is SectionStatus.TRUNCATED and cut.facts == {}
    assert cut.error == "output over 8 MiB, cut"
    assert cut.raw == "a=1\n"  # whole lines of its beginning, as evidence
    assert snap.sections["echo"].facts == {"a": "1", "b": "2"}
    assert snap.status is HostStatus.PARTIAL and snap.error == "flood: output over 8 MiB, cut"


def test_file_content_may_send_what_the_inventory_allows_up_to_half_a_host() -> None:
    files = BY_NAME["files"]
    assert ECHO.max_output_for(CollectSettings()) == SECTION_MAX_BYTES
    small = CollectSettings(file_max_bytes=4096, dir_max_files=10)
    assert files.max_output_for(small) == SECTION_MAX_BYTES
    assert files.max_output_for(CollectSettings(file_max_bytes=65536)) == 65536 * 200
    assert files.max_output_for(CollectSettings(file_max_bytes=10**9)) == HOST_MAX_BYTES // 2
    sections = plan_sections([files], CollectSettings(file_max_bytes=65536), host())
    assert sections[0].max_bytes == 65536 * 200
