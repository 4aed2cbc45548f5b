"""The combined script: building it, running it under a real sh, splitting the output."""

from __future__ import annotations

import subprocess
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from driftcheck.model import SectionStatus
from driftcheck.script import (
    CUT_EVIDENCE_BYTES,
    NOT_APPLICABLE_RC,
    STDERR_MAX_BYTES,
    Section,
    SectionReader,
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
    reader = SectionReader(MARKER)
    result = LocalTransport().run(script, 2, reader)
    assert result.timed_out and time.monotonic() - started < 10
    assert reader.sections(["slow"])["slow"].status in (
        SectionStatus.TRUNCATED,
        SectionStatus.MISSING,
    )


# -- bounded reading: each section capped as it streams ---------------------------


def frame(name: str, body: bytes, rc: str = "0") -> bytes:
    """One section as the script prints it on stdout."""
    return f"{MARKER} BEGIN {name}\n".encode() + body + f"\n{MARKER} END {name} {rc}\n".encode()


def read_in_chunks(
    stdout: bytes, sizes: list[int], names: list[str], **caps: int
) -> dict[str, object]:
    reader = SectionReader(MARKER, caps)
    pos, i = 0, 0
    while pos < len(stdout):
        size = sizes[i % len(sizes)] if sizes else len(stdout)
        reader.stdout(stdout[pos : pos + size])
        pos, i = pos + size, i + 1
    return dict(reader.sections(names))


BODIES = st.lists(
    st.sampled_from(
        [b"x", b"\n", MARKER.encode(), MARKER[:-3].encode(), b" END s0 0", b" BEGIN b", b"\xe9"]
    ),
    max_size=30,
).map(b"".join)


@given(
    bodies=st.lists(BODIES, min_size=1, max_size=4),
    sizes=st.lists(st.integers(1, 70), max_size=5),
    ended=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_any_chunking_reads_the_same_sections(
    bodies: list[bytes], sizes: list[int], ended: bool
) -> None:
    names = [f"s{i}" for i in range(len(bodies))]
    stdout = b"".join(frame(n, b) for n, b in zip(names, bodies, strict=True))
    if not ended:  # the last END line never came
        stdout = stdout[: stdout.rindex(f"{MARKER} END".encode())]
    whole = read_in_chunks(stdout, [], names)
    assert read_in_chunks(stdout, sizes, names) == whole
    # Content is kept as it came, unless it forges a frame with the real marker
    # (which the host cannot know).
    for name, body in zip(names[:-1], bodies[:-1], strict=True):
        if MARKER.encode() not in body:
            assert whole[name].stdout == body.decode("utf-8", "backslashreplace")  # type: ignore[attr-defined]


def test_a_section_over_its_cap_is_cut_and_later_sections_still_arrive() -> None:
    big = b"line of runaway output\n" * 200_000  # 4.6 MB
    stdout = frame("big", big) + frame("next", b"fine")
    out = read_in_chunks(stdout, [65536, 1000, 7], ["big", "next"], big=1 << 20)
    cut, later = out["big"], out["next"]
    assert cut.status is SectionStatus.TRUNCATED  # type: ignore[attr-defined]
    assert cut.cut == "output over 1 MiB, cut"  # type: ignore[attr-defined]
    # Only whole lines of its beginning are kept, as evidence.
    assert len(cut.stdout) <= CUT_EVIDENCE_BYTES and cut.stdout.endswith("output\n")  # type: ignore[attr-defined]
    assert later.status is SectionStatus.OK and later.stdout == "fine"  # type: ignore[attr-defined]


def test_a_cut_without_any_newline_still_finds_the_next_frame() -> None:
    stdout = frame("zeros", b"\0" * (3 << 20)) + frame("next", b"fine\n")
    out = read_in_chunks(stdout, [65536], ["zeros", "next"], zeros=1 << 20)
    assert out["zeros"].status is SectionStatus.TRUNCATED and out["zeros"].stdout == ""  # type: ignore[attr-defined]
    assert out["next"].stdout == "fine\n"  # type: ignore[attr-defined]


def test_what_is_kept_never_grows_past_the_cap() -> None:
    reader = SectionReader(MARKER, {"endless": 1 << 20})
    reader.stdout(f"{MARKER} BEGIN endless\n".encode())
    chunk = b"y\n" * 32768
    for _ in range(2000):  # 125 MiB
        reader.stdout(chunk)
        assert reader.held <= 1 << 20
    assert reader.held <= CUT_EVIDENCE_BYTES
    assert reader.received > 2000 * len(chunk)


def test_the_host_cap_cuts_what_comes_after_it() -> None:
    stdout = frame("a", b"a" * 600 + b"\n") + frame("b", b"b" * 600 + b"\n") + frame("c", b"")
    reader = SectionReader(MARKER, host_max=1000)
    reader.stdout(stdout)
    out = reader.sections(["a", "b", "c"])
    assert out["a"].status is SectionStatus.OK
    assert out["b"].cut == "host output over 0.976562 KiB in all sections, cut"
    assert out["c"].status is SectionStatus.OK  # nothing to keep, nothing cut


def test_stderr_keeps_its_end_and_never_cuts_the_section() -> None:
    noise = b"".join(b"warning %d\n" % i for i in range(100_000))  # ~1.1 MB
    stderr = (
        f"{MARKER} BEGIN a\n".encode()
        + noise
        + b"the real reason\n"
        + (f"\n{MARKER} END a\n".encode())
    )
    out = split_output(frame("a", b"ok"), stderr, MARKER, ["a"])["a"]
    assert out.status is SectionStatus.OK and out.stdout == "ok"
    assert out.stderr.endswith("warning 99999\nthe real reason\n")
    assert len(out.stderr) <= STDERR_MAX_BYTES and out.stderr.startswith("warning ")


def test_the_receive_limit_tells_the_transport_to_hang_up() -> None:
    reader = SectionReader(MARKER, receive_max=100)
    reader.stdout(b"x" * 100)
    assert reader.hang_up() == ""
    reader.stderr(b"x")
    assert reader.hang_up() == "output over 0.0976562 KiB received, stopped reading"


def test_local_transport_caps_an_endless_section_and_keeps_reading() -> None:
    from driftcheck.transports.local import LocalTransport  # noqa: PLC0415

    sections = [
        Section("endless", "yes 'runaway output'", 2, max_bytes=1 << 20),
        Section("zeros", "head -c 20000000 /dev/zero", 30, max_bytes=1 << 20),
        Section("next", "echo fine", 10),
    ]
    # Local pipes carry GB/s: no receive limit here, this is about the section cap.
    reader = SectionReader(MARKER, {s.name: s.max_bytes for s in sections}, receive_max=1 << 40)
    result = LocalTransport().run(build_script(sections, MARKER), 60, reader)
    out = reader.sections([s.name for s in sections])
    assert result.rc == 0 and not result.cut_short
    assert out["endless"].status is SectionStatus.TRUNCATED
    assert out["endless"].cut == "output over 1 MiB, cut" and out["endless"].rc == "124"
    assert out["zeros"].cut == "output over 1 MiB, cut" and out["zeros"].rc == "0"
    assert out["next"].status is SectionStatus.OK and out["next"].stdout == "fine\n"
    assert reader.received > 20_000_000 and reader.held < 2 * CUT_EVIDENCE_BYTES


def test_local_transport_hangs_up_past_the_receive_limit() -> None:
    from driftcheck.transports.local import LocalTransport  # noqa: PLC0415

    sections = [Section("endless", "yes", 60), Section("next", "echo fine", 10)]
    reader = SectionReader(MARKER, receive_max=8 << 20)
    started = time.monotonic()
    result = LocalTransport().run(build_script(sections, MARKER), 60, reader)
    assert time.monotonic() - started < 20
    assert result.rc is None and result.cut_short == "output over 8 MiB received, stopped reading"
    out = reader.sections(["endless", "next"])
    assert out["endless"].status is SectionStatus.TRUNCATED
    assert out["next"].status is SectionStatus.MISSING
