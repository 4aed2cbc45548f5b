"""``services``: systemd units, their enabled state and (where systemd runs) their active state.

The enabled state comes from ``systemctl list-unit-files``, which also works when
systemd is installed but not running (a container, a chroot, this project's lab
hosts): systemctl then reads the unit directories itself.  Instances enabled
through a ``*.wants/`` symlink (``getty@tty1.service``) are not listed by it, so
the section adds the instance links found under ``/etc/systemd/system``.

The active state is only asked for when systemd is the running service manager
(``/run/systemd/system`` exists); elsewhere it is left out rather than guessed.
Only units that are *not* inactive are reported: whether an inactive unit is
loaded at all depends on what referenced it lately, so listing inactive units
would make two identical hosts differ.  A service stopped in staging therefore
shows as ``<unit>:active`` missing there.

Hosts without systemctl (Alpine's OpenRC, most containers) are "not applicable".
"""

from __future__ import annotations

import re

from driftcheck.model import ParseResult

from .base import Collector

# Header lines the section writes before each block; a unit line never starts with '#'.
_UNIT_FILES = "#unit-files"
_INSTANCES = "#enabled-instances"
_ACTIVE = "#active"

SHELL = f"""\
if ! command -v systemctl >/dev/null 2>&1; then
  echo 'no systemctl: systemd is not the service manager on this host' >&2
  exit 193
fi
echo '{_UNIT_FILES}'
systemctl list-unit-files --no-legend --no-pager --full || exit
echo '{_INSTANCES}'
for l in /etc/systemd/system/*.wants/*@?*.* /etc/systemd/system/*.requires/*@?*.*; do
  if [ -L "$l" ]; then printf '%s\\n' "${{l##*/}}"; fi
done
if [ -d /run/systemd/system ]; then
  echo '{_ACTIVE}'
  systemctl list-units --no-legend --no-pager --full --plain || exit
fi
exit 0
"""

#: A unit name: systemd's name characters (bytes outside them appear \x-escaped) and the
#: suffix of a unit type it knows; anything else on a line is not a unit.
_TYPES = r"\.(?:service|socket|target|device|mount|automount|swap|timer|path|slice|scope)"
_UNIT = re.compile(r"[A-Za-z0-9:_.\\@-]+" + _TYPES)
# An instance has a non-empty name after the "@" ("getty@tty1.service", not "getty@.service").
_INSTANCE = re.compile(r"[A-Za-z0-9:_.\\-]+@[A-Za-z0-9:_.\\@-]+" + _TYPES)
_STATE = re.compile(r"[a-z][a-z-]*")
# Where --plain does not drop it (older systemd), failed and not-found units carry a
# bullet column before the name: "\u25cf" in a UTF-8 locale, "*" in the C locale.
_BULLETS = {"\u25cf", "*"}

#: Units and states that change by nature, never drift:
#: - scopes (login sessions, containers, ``systemd-run --scope``) are transient;
#: - ``session-*`` and ``user-<uid>.slice`` exist while someone is logged in, and
#:   the per-user manager ``user@<uid>.service`` runs only then;
#: - mounts below /run (``run-user-1000.mount``, credentials, docker netns) and the
#:   transient units ``systemd-run`` names ``run-u<n>``, ``run-r<random hex>``, ``run-p<pid>-i<n>``;
#: - device units mirror the hardware, disk UUIDs differ on every host;
#: - container runtime and snap mounts carry layer ids and revisions;
#: - a crashed process's ``systemd-coredump@`` instance.
VOLATILE = (
    "*.scope",
    "*.scope:active",
    "session-*",
    "user-*.slice",
    "user-*.slice:active",
    "user@*.service:active",
    "user-runtime-dir@*.service:active",
    "run-*.mount",
    "run-*.mount:active",
    "run-u[0-9]*",
    "run-r" + "[0-9a-f]" * 8 + "*",
    "run-p[0-9]*-i[0-9]*",
    "*.device:active",
    "*by\\x2d*uuid*",
    "var-lib-docker-*",
    "var-lib-containers-*",
    "snap-*",
    "systemd-coredump@*",
)


def _unit_file_line(line: str) -> tuple[str, str] | None:
    """``UNIT STATE [PRESET]`` -> (unit, state), None for headers, footers and garbage."""
    fields = line.split()
    if len(fields) < 2 or not _UNIT.fullmatch(fields[0]) or not _STATE.fullmatch(fields[1]):
        return None
    return fields[0], fields[1]


def _active_line(line: str) -> tuple[str, str] | None:
    """``[●] UNIT LOAD ACTIVE SUB DESCRIPTION`` -> (unit, active state), or None."""
    fields = line.split()
    if fields and fields[0] in _BULLETS:
        fields = fields[1:]
    if len(fields) < 4 or not _UNIT.fullmatch(fields[0]):
        return None
    if not _STATE.fullmatch(fields[1]) or not _STATE.fullmatch(fields[2]):
        return None
    return fields[0], fields[2]


def parse(raw: str) -> ParseResult:
    """Unit -> enabled state, and ``<unit>:active`` -> active state.

    ``ssh.service`` -> ``"enabled"`` (any ``list-unit-files`` state: enabled,
    disabled, static, masked, alias, indirect, generated, enabled-runtime, ...);
    an instance enabled through a wants symlink -> ``"enabled"``;
    ``ssh.service:active`` -> ``"active"`` / ``"failed"`` / ``"activating"`` ...
    only for units that are not inactive, and only where systemd runs.
    The sub-state (running, exited, waiting) is left out: it moves by itself.
    """
    facts: dict[str, str] = {}
    block = ""
    instances: set[str] = set()
    # split("\n"), not splitlines(): a description may hold U+2028 or U+0085.
    for raw_line in raw.split("\n"):
        line = raw_line.rstrip("\r")
        if line in (_UNIT_FILES, _INSTANCES, _ACTIVE):
            block = line
            continue
        if block == _UNIT_FILES:
            found = _unit_file_line(line)
            if found:
                facts[found[0]] = found[1]
        elif block == _INSTANCES:
            if _INSTANCE.fullmatch(line):
                instances.add(line)
        elif block == _ACTIVE:
            found = _active_line(line)
            if found and found[1] != "inactive":
                facts[f"{found[0]}:active"] = found[1]
    for unit in instances:
        # list-unit-files reports the template; a listed name always wins.
        facts.setdefault(unit, "enabled")
    return ParseResult(dict(sorted(facts.items())))


COLLECTOR = Collector(
    name="services",
    description="systemd units: enabled state (systemctl list-unit-files, also offline) and "
    "active state where systemd runs (systemctl list-units)",
    shell=SHELL,
    parse=parse,
    timeout=60.0,
    volatile=VOLATILE,
)
