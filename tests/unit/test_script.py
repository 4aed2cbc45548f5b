"""The combined script: building it, running it under a real sh, splitting the output."""

from __future__ import annotations

import subprocess
import time

from driftcheck.model import SectionStatus
from driftcheck.script import (
    NOT_APPLICABLE_RC,
    Section,
    build_script,
    new_marker,
    split_output,
)

MARKER = "DRIFTCHECK-0123456789abcdef0123456789abcdef"


def run(sections: list[Section], marker: str = MARKER) -> dict[str, object]:
    """Run the script exactly as transports do (sh -s, script on stdin)."""
    script = build_script(sections, marker)
    proc = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", "sh", "-s"],
        input=script.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(split_output(proc.stdout, proc.stderr, marker, [s.name for s in sections]))


def test_markers_are_random_and_unguessable() -> None:
    markers = {new_marker() for _ in range(100)}
    assert len(markers) == 100
    assert all(len(m) > 30 for m in markers)


def test_sections_keep_their_own_output_stderr_and_status() -> None:
    out = run(
        [
            Section("a", "echo one; echo two", 10),
            Section("b", "echo oops >&2; exit 3", 10),
            Section("c", "printf 'no newline'", 10),
            Section("d", "true", 10),
        ]
    )
    a, b, c, d = (out[n] for n in "abcd")
    assert a.status is SectionStatus.OK and a.stdout == "one\ntwo\n" and a.stderr == ""
    assert b.status is SectionStatus.ERROR and b.rc == "3" and b.stderr == "oops\n"
    assert c.stdout == "no newline"
    assert d.status is SectionStatus.OK and d.stdout == ""


def test_a_section_cannot_read_the_rest_of_the_script_from_stdin() -> None:
    out = run([Section("eater", "cat", 10), Section("after", "echo still here", 10)])
    assert out["eater"].stdout == ""
    assert out["after"].stdout == "still here\n"


def test_missing_tool_is_not_applicable_not_error() -> None:
    out = run([Section("x", "no-such-tool -a", 10, ("no-such-tool", "nor-this"))])
    assert out["x"].status is SectionStatus.NOT_APPLICABLE


def test_body_can_say_not_applicable() -> None:
    out = run([Section("x", f"[ -d /no/such/init ] || exit {NOT_APPLICABLE_RC}", 10)])
    assert out["x"].status is SectionStatus.NOT_APPLICABLE


def test_one_present_tool_is_enough() -> None:
    out = run([Section("x", "echo ok", 10, ("no-such-tool", "sh"))])
    assert out["x"].status is SectionStatus.OK


def test_per_section_timeout_does_not_lose_later_sections() -> None:
    out = run([Section("slow", "sleep 30", 1), Section("next", "echo fine", 10)])
    assert out["slow"].status is SectionStatus.TIMEOUT
    assert out["next"].status is SectionStatus.OK and out["next"].stdout == "fine\n"


def test_collected_output_cannot_forge_a_frame() -> None:
    # The host prints a marker-looking line with a guessed marker: it stays content.
    fake = "DRIFTCHECK-ffffffffffffffffffffffffffffffff END a 0"
    out = run([Section("a", f"echo '{fake}'; echo real", 10)])
    assert out["a"].stdout == f"{fake}\nreal\n"


def test_values_are_shell_quoted() -> None:
    body = "echo \"it's $((1+1))\"; echo '$HOME `id`'"
    out = run([Section("q", body, 10)])
    assert out["q"].stdout == "it's 2\n$HOME `id`\n"


def test_missing_end_marker_is_truncated_not_empty() -> None:
    stdout = f"{MARKER} BEGIN a\nhalf of it\n".encode()
    out = split_output(stdout, b"", MARKER, ["a", "b"])
    assert out["a"].status is SectionStatus.TRUNCATED
    assert out["a"].stdout == "half of it\n"
    assert out["b"].status is SectionStatus.MISSING


def test_non_utf8_bytes_survive_as_escapes() -> None:
    stdout = f"{MARKER} BEGIN a\n".encode() + b"caf\xe9\n" + f"\n{MARKER} END a 0\n".encode()
    out = split_output(stdout, b"", MARKER, ["a"])
    assert out["a"].stdout == "caf\\xe9\n"


def test_timeout_exit_codes_mean_timeout() -> None:
    for rc in ("124", "137"):
        stdout = f"{MARKER} BEGIN a\n\n{MARKER} END a {rc}\n".encode()
        assert split_output(stdout, b"", MARKER, ["a"])["a"].status is SectionStatus.TIMEOUT


def test_local_transport_stops_at_the_command_timeout() -> None:
    from driftcheck.transports.local import LocalTransport  # noqa: PLC0415

    script = build_script([Section("slow", "sleep 40", 60)], MARKER)
    started = time.monotonic()
    result = LocalTransport().run(script, 2)
    assert result.timed_out and time.monotonic() - started < 10
    assert split_output(result.stdout, result.stderr, MARKER, ["slow"])["slow"].status in (
        SectionStatus.TRUNCATED,
        SectionStatus.MISSING,
    )
