"""The one combined collection script per host, and splitting its output back apart.

Every collector contributes a section. All sections run in one ``sh -s`` on the
host (one SSH round trip). Each section is framed on stdout *and* stderr by lines
carrying a random per-run marker, so collected content cannot forge a boundary,
and each has its own timeout, exit status and stderr. A section whose end marker
never arrived is *truncated*, never empty.

The output is read as it arrives (:class:`SectionReader`) and what is kept of it
is bounded: each section up to its own cap, the host up to :data:`HOST_MAX_BYTES`.
A section over its cap is cut (marked truncated, with the reason, never parsed)
while the rest of its output is read and dropped, so the host is not blocked and
later sections still arrive; the framing lines are looked for in what is dropped.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from driftcheck.model import SectionStatus

#: Exit statuses of coreutils ``timeout``: 124 after TERM, 137 after the KILL of -k.
TIMEOUT_CODES = frozenset({"124", "137"})
#: A section body exits with this status when what it reads does not exist on the
#: host (e.g. systemd is not the init system): "not applicable", not an error.
NOT_APPLICABLE_RC = 193
#: The script's PATH on every host, set before anything runs: the same wherever the
#: login shell's own PATH points.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

KiB, MiB = 1 << 10, 1 << 20
#: What one section may keep of its stdout unless the runner gives it another cap.
#: Most sections of a real server are under 100 KiB (a dpkg or rpm list of thousands
#: of packages, a large /etc/passwd, all unit files); sysctl -a grows by ~5 KiB per
#: network interface, so a container host with 1,000 veth interfaces prints ~5 MiB.
#: 8 MiB leaves room for that; what bounds memory is :data:`HOST_MAX_BYTES`.
SECTION_MAX_BYTES = 8 * MiB
#: What one host may keep of its stdout in all sections together; past it every
#: section still receiving output is cut. With the parsing that follows (text is
#: decoded, scrubbed and parsed into facts, a few copies each) one host costs the
#: controller some hundreds of MiB at the very worst, never GiB.
HOST_MAX_BYTES = 64 * MiB
#: Received from one host (kept or dropped) before the transport hangs up: reading
#: and dropping costs CPU (decryption), and a host sending this much is runaway
#: output that its section timeouts did not stop. Later sections are then lost.
RECEIVE_MAX_BYTES = 1024 * MiB
#: Stderr of one section: only its end is kept (storage keeps the last 4 KiB, and
#: the last line says why a command failed).
STDERR_MAX_BYTES = 64 * KiB
#: stderr kept from outside every section: enough for what sudo says when it refuses
OUTSIDE_MAX_BYTES = 4 * KiB
#: What a cut section keeps of its beginning, in whole lines: never parsed, only
#: evidence of what the host printed (``show --raw``).
CUT_EVIDENCE_BYTES = 64 * KiB
#: Longest line that can be a frame line: marker, BEGIN/END, a name and a status.
_FRAME_LINE_MAX = 256

_PRELUDE = f"""\
# driftcheck collection script: read-only, one section per collector.
LC_ALL=C; LANG=C; PATH={PATH}; export LC_ALL LANG PATH
umask 077
if command -v timeout >/dev/null 2>&1; then
  _dc_run() {{ _dc_t=$1; shift; timeout -k 3 "$_dc_t" "$@"; }}
else
  _dc_run() {{ shift; "$@"; }}
fi
_dc_has() {{
  [ $# -eq 0 ] && return 0
  for _dc_tool in "$@"; do command -v "$_dc_tool" >/dev/null 2>&1 && return 0; done
  return 1
}}
# _dc_section NAME TIMEOUT BODY [TOOL...]: run BODY under sh -c with stdin closed
# (a command reading stdin would swallow the rest of this script).
_dc_section() {{
  _dc_n=$1; _dc_s=$2; _dc_b=$3; shift 3
  printf '%s BEGIN %s\\n' "$_dc_m" "$_dc_n"; printf '%s BEGIN %s\\n' "$_dc_m" "$_dc_n" >&2
  if _dc_has "$@"; then _dc_run "$_dc_s" sh -c "$_dc_b" </dev/null; _dc_rc=$?; else _dc_rc=na; fi
  printf '\\n%s END %s %s\\n' "$_dc_m" "$_dc_n" "$_dc_rc"
  printf '\\n%s END %s\\n' "$_dc_m" "$_dc_n" >&2
}}
"""


@dataclass(frozen=True)
class Section:
    """One collector's shell, as placed in the combined script."""

    name: str
    body: str
    timeout: float
    requires: tuple[str, ...] = ()
    #: stdout kept of this section; more is dropped and the section cut
    max_bytes: int = SECTION_MAX_BYTES


@dataclass(frozen=True)
class RawSection:
    """What came back for one section."""

    name: str
    status: SectionStatus
    stdout: str
    stderr: str
    rc: str
    #: Why the section's output was cut (over its cap), or "" when it was not.
    cut: str = ""


def new_marker() -> str:
    """A fresh random marker; the host cannot guess it, so cannot forge a frame."""
    return "DRIFTCHECK-" + secrets.token_hex(16)


def build_script(sections: Sequence[Section], marker: str) -> str:
    """The POSIX sh script that runs every section in order."""
    lines = [_PRELUDE, f"_dc_m={marker}"]
    for s in sections:
        args = [s.name, str(max(1, int(s.timeout))), s.body, *s.requires]
        lines.append("_dc_section " + " ".join(shlex.quote(a) for a in args))
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def _decode(data: bytes | bytearray) -> str:
    # Collected output is mostly UTF-8; anything else is kept visibly and
    # losslessly as \\xNN escapes rather than dropped or crashing a parser.
    return data.decode("utf-8", errors="backslashreplace")


def size_text(n: int) -> str:
    """A byte count as people write it in a reason: 8 MiB, 64 KiB."""
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n / KiB:g} KiB"


@dataclass
class _Frame:
    """One section's output on one stream, as far as it is kept."""

    cap: int
    content: bytearray = field(default_factory=bytearray)
    #: the END line's status; None while (or when) the END line never came
    rc: str | None = None
    cut: str = ""


@dataclass
class _Budget:
    """Bytes of stdout one host may keep in all its sections, and how many it holds."""

    limit: int
    held: int = 0


class _Stream:
    """One stream (stdout or stderr) cut into frames as its bytes arrive.

    A frame line is a whole line starting with the marker. Content is searched for
    "newline + marker" (a C-speed find, so dropping gigabytes stays cheap); only a
    few bytes that may start a frame line are held back between chunks. The
    newline just before a frame line is held too: the script prints it before END
    so that unterminated output stays on its own line, and it is not content.
    With ``budget`` (stdout) a frame keeps its beginning up to its cap; without
    (stderr) it keeps its end.
    """

    def __init__(
        self, marker: str, caps: Mapping[str, int], default_cap: int, budget: _Budget | None
    ) -> None:
        self._marker = marker.encode()
        self._separator = b"\n" + self._marker
        self._pattern = re.compile(re.escape(self._marker) + rb" (BEGIN|END) (\S+)(?: (\S+))?")
        self._caps, self._default_cap, self._budget = caps, default_cap, budget
        self.frames: dict[str, _Frame] = {}
        #: the first bytes outside every frame (stderr only): what sudo or a login
        #: shell said before the script ever ran
        self.outside = bytearray()
        self._open: _Frame | None = None
        self._open_name = ""
        self._pending = b""  # bytes that may start a frame line
        self._line_start = True  # the pending bytes start a line
        self._newline = False  # a newline held back: dropped if an END line follows
        self._closed = False

    def feed(self, data: bytes) -> None:
        """Take the next chunk of the stream."""
        buf = self._pending + data if self._pending else data
        self._pending = buf[self._scan(buf, final=False) :]

    def close(self) -> None:
        """The stream ended: what is pending is content or a last frame line."""
        if self._closed:
            return
        self._closed = True
        self._scan(self._pending, final=True)
        self._pending = b""
        if self._open is not None:  # never ended: a truncated section keeps all it got
            self._flush_newline()

    def _scan(self, buf: bytes, final: bool) -> int:
        """Consume ``buf`` as far as it can be decided; return where that stopped."""
        pos = 0
        while True:
            if self._line_start:
                end = self._frame_line_end(buf, pos, final)
                if end is None:  # may still become a frame line: wait for more
                    return pos
                if end >= 0 and self._frame(buf[pos:end]):
                    pos = end + 1
                    continue
                self._line_start = False
                self._flush_newline()
            found = buf.find(self._separator, pos)
            if found < 0:
                # Hold back what may be the start of "newline + marker".
                stop = len(buf) if final else max(pos, len(buf) - len(self._marker))
                self._content(buf[pos:stop])
                return stop
            self._content(buf[pos:found])
            self._newline, self._line_start = True, True
            pos = found + 1

    def _frame_line_end(self, buf: bytes, pos: int, final: bool) -> int | None:
        """Where the frame line starting at ``pos`` ends; -1 when no frame line
        starts there; None when that cannot be told yet."""
        marker = self._marker
        head = buf[pos : pos + len(marker)]
        if not marker.startswith(head):
            return -1
        if len(head) < len(marker):
            return -1 if final else None
        newline = buf.find(b"\n", pos, pos + _FRAME_LINE_MAX)
        if newline >= 0:
            return newline
        if len(buf) - pos >= _FRAME_LINE_MAX:
            return -1
        return len(buf) if final else None

    def _frame(self, line: bytes) -> bool:
        """Act on a frame line; False when it is not one that frames anything here
        (it is then content, as an END of another section is)."""
        m = self._pattern.fullmatch(line)
        if m is None:
            return False
        name = m[2].decode("utf-8", "backslashreplace")
        if m[1] == b"BEGIN":
            self._flush_newline()  # the previous section never ended: it keeps it
            self._newline = False
            self._release(self.frames.pop(name, None))
            self._open = self.frames[name] = _Frame(self._caps.get(name, self._default_cap))
            self._open_name = name
            return True
        if self._open is None or name != self._open_name:
            return False
        self._newline = False  # the script's own newline before END
        self._open.rc = (m[3] or b"").decode("utf-8", "backslashreplace")
        self._open = None
        return True

    def _flush_newline(self) -> None:
        if self._newline:
            self._newline = False
            self._content(b"\n")

    def _release(self, frame: _Frame | None) -> None:
        if frame is not None and self._budget is not None:
            self._budget.held -= len(frame.content)

    def _content(self, data: bytes) -> None:
        """Keep what the open frame may keep of ``data``; drop the rest."""
        frame = self._open
        budget = self._budget
        if frame is None and budget is None:
            self.outside += data[: max(0, OUTSIDE_MAX_BYTES - len(self.outside))]
        if frame is None or not data or frame.cut:
            return
        if budget is None:  # stderr: its end is what tells why a command failed
            frame.content += data
            if len(frame.content) > 2 * frame.cap:  # trimmed now and then, not per chunk
                del frame.content[: len(frame.content) - frame.cap]
            return
        room = min(frame.cap - len(frame.content), budget.limit - budget.held)
        if len(data) <= room:
            frame.content += data
            budget.held += len(data)
            return
        over_cap = frame.cap - len(frame.content) <= budget.limit - budget.held
        frame.cut = (
            f"output over {size_text(frame.cap)}, cut"
            if over_cap
            else f"host output over {size_text(budget.limit)} in all sections, cut"
        )
        # Only the beginning is kept, in whole lines: evidence, never parsed.
        keep = frame.content.rfind(b"\n", 0, CUT_EVIDENCE_BYTES) + 1
        budget.held -= len(frame.content) - keep
        del frame.content[keep:]


def _stderr_text(frame: _Frame | None) -> str:
    """A section's stderr: its last :data:`STDERR_MAX_BYTES`, from a line start."""
    if frame is None:
        return ""
    data = bytes(frame.content)
    if len(data) > frame.cap:
        data = data[len(data) - frame.cap :]
        data = data[data.find(b"\n") + 1 :]
    return _decode(data)


def _status(frame: _Frame) -> SectionStatus:
    """How a section ended, from its END line's status (or its missing END line)."""
    rc = frame.rc
    if frame.cut or rc is None:
        return SectionStatus.TRUNCATED
    if rc == "0":
        return SectionStatus.OK
    if rc in ("na", str(NOT_APPLICABLE_RC)):
        return SectionStatus.NOT_APPLICABLE
    if rc in TIMEOUT_CODES:
        return SectionStatus.TIMEOUT
    return SectionStatus.ERROR


class SectionReader:
    """A host's output cut into sections as it arrives, with bounded memory.

    Transports write each chunk to :meth:`stdout` or :meth:`stderr` as it comes
    and stop reading when :meth:`hang_up` says why; :meth:`sections` gives the
    result. ``caps`` is stdout kept per section name (default
    :data:`SECTION_MAX_BYTES`), ``host_max`` for all sections together.
    """

    def __init__(
        self,
        marker: str,
        caps: Mapping[str, int] | None = None,
        host_max: int = HOST_MAX_BYTES,
        receive_max: int = RECEIVE_MAX_BYTES,
    ) -> None:
        """A reader for the script framed by ``marker``."""
        self._budget = _Budget(host_max)
        self._out = _Stream(marker, caps or {}, SECTION_MAX_BYTES, self._budget)
        self._err = _Stream(marker, {}, STDERR_MAX_BYTES, None)
        self._receive_max = receive_max
        #: bytes received so far, kept or dropped
        self.received = 0

    @classmethod
    def for_sections(cls, marker: str, sections: Sequence[Section]) -> SectionReader:
        """A reader holding each of ``sections`` to its own cap."""
        return cls(marker, {s.name: s.max_bytes for s in sections})

    @property
    def held(self) -> int:
        """Bytes of stdout kept now, in all sections."""
        return self._budget.held

    def stdout(self, data: bytes) -> None:
        """The next chunk of stdout."""
        self.received += len(data)
        self._out.feed(data)

    def stderr(self, data: bytes) -> None:
        """The next chunk of stderr."""
        self.received += len(data)
        self._err.feed(data)

    def hang_up(self) -> str:
        """Why the transport should stop reading now, or "" to go on."""
        if self.received > self._receive_max:
            return f"output over {size_text(self._receive_max)} received, stopped reading"
        return ""

    def outside_stderr(self) -> str:
        """What the host said on stderr outside every section (sudo's complaint,
        a login banner), its first :data:`OUTSIDE_MAX_BYTES`."""
        return _decode(self._err.outside)

    def sections(self, names: Sequence[str]) -> dict[str, RawSection]:
        """One :class:`RawSection` per expected name (the streams count as ended)."""
        self._out.close()
        self._err.close()
        result: dict[str, RawSection] = {}
        for name in names:
            err = _stderr_text(self._err.frames.get(name))
            frame = self._out.frames.pop(name, None)  # decoded once, then let go
            if frame is None:
                result[name] = RawSection(name, SectionStatus.MISSING, "", err, "")
                continue
            stdout = _decode(frame.content)
            result[name] = RawSection(name, _status(frame), stdout, err, frame.rc or "", frame.cut)
        return result


def split_output(
    stdout: bytes,
    stderr: bytes,
    marker: str,
    names: Sequence[str],
    caps: Mapping[str, int] | None = None,
) -> dict[str, RawSection]:
    """Cut a whole output, already read, into one :class:`RawSection` per name."""
    reader = SectionReader(marker, caps)
    reader.stdout(stdout)
    reader.stderr(stderr)
    return reader.sections(names)
