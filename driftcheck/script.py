"""The one combined collection script per host, and splitting its output back apart.

Every collector contributes a section. All sections run in one ``sh -s`` on the
host (one SSH round trip). Each section is framed on stdout *and* stderr by lines
carrying a random per-run marker, so collected content cannot forge a boundary,
and each has its own timeout, exit status and stderr. A section whose end marker
never arrived is *truncated*, never empty.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from driftcheck.model import SectionStatus

#: Exit statuses of coreutils ``timeout``: 124 after TERM, 137 after the KILL of -k.
TIMEOUT_CODES = frozenset({"124", "137"})
#: A section body exits with this status when what it reads does not exist on the
#: host (e.g. systemd is not the init system): "not applicable", not an error.
NOT_APPLICABLE_RC = 193
#: The script's PATH on every host, set before anything runs: the same wherever the
#: login shell's own PATH points.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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


@dataclass(frozen=True)
class RawSection:
    """What came back for one section."""

    name: str
    status: SectionStatus
    stdout: str
    stderr: str
    rc: str


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


def _decode(data: bytes) -> str:
    # Collected output is mostly UTF-8; anything else is kept visibly and
    # losslessly as \\xNN escapes rather than dropped or crashing a parser.
    return data.decode("utf-8", errors="backslashreplace")


def _frames(data: bytes, marker: str) -> dict[str, tuple[bytes, str | None]]:
    """Map section name -> (content, rc or None when the END marker is missing)."""
    pattern = re.compile(
        rb"^" + re.escape(marker.encode()) + rb" (BEGIN|END) (\S+)(?: (\S+))?$", re.MULTILINE
    )
    out: dict[str, tuple[bytes, str | None]] = {}
    open_name: str | None = None
    start = 0
    for m in pattern.finditer(data):
        kind, name = m.group(1), m.group(2).decode()
        if kind == b"BEGIN":
            if open_name is not None:  # previous section never ended
                out[open_name] = (data[start : m.start()], None)
            open_name, start = name, m.end() + 1
        elif name == open_name:
            # The script prints a newline before END so unterminated output
            # stays on its own line; drop exactly that newline.
            content = data[start : max(start, m.start() - 1)]
            rc = m.group(3).decode() if m.group(3) else ""
            out[name] = (content, rc)
            open_name = None
    if open_name is not None:
        out[open_name] = (data[start:], None)
    return out


def split_output(
    stdout: bytes, stderr: bytes, marker: str, names: Sequence[str]
) -> dict[str, RawSection]:
    """Cut the combined output into one :class:`RawSection` per expected name."""
    out_frames = _frames(stdout, marker)
    err_frames = _frames(stderr, marker)
    result: dict[str, RawSection] = {}
    for name in names:
        err = _decode(err_frames.get(name, (b"", ""))[0])
        if name not in out_frames:
            result[name] = RawSection(name, SectionStatus.MISSING, "", err, "")
            continue
        content, rc = out_frames[name]
        if rc is None:
            status = SectionStatus.TRUNCATED
        elif rc == "0":
            status = SectionStatus.OK
        elif rc in ("na", str(NOT_APPLICABLE_RC)):
            status = SectionStatus.NOT_APPLICABLE
        elif rc in TIMEOUT_CODES:
            status = SectionStatus.TIMEOUT
        else:
            status = SectionStatus.ERROR
        result[name] = RawSection(name, status, _decode(content), err, rc or "")
    return result
