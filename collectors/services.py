"""``services``: what the host's service manager is told to start, and what it runs.

Three sources, each read wherever it exists, so that two hosts with the same
packages give the same keys whatever runs as PID 1:

- **systemd** unit files: ``UNIT`` -> enabled state from ``systemctl
  list-unit-files``. That also works when systemd is installed but not running
  (a container, a chroot, this project's lab hosts): systemctl then reads the
  unit directories itself. What it reports there is true of the configuration,
  what systemd would start if it booted this root, not of what runs: ``pid1``
  says what does. Instances enabled through a ``*.wants/`` symlink
  (``getty@tty1.service``) are not listed by it, so the section adds the
  instance links found under ``/etc/systemd/system``.
- **sysv-init** scripts: ``sysv:NAME`` -> the runlevels in which the script is
  started (an ``S`` link in ``/etc/rcN.d``, ``rcS.d`` as ``"S"``), sorted: what
  ``chkconfig --list`` shows as ``on``; a ``K`` link or none is off, so
  ``update-rc.d NAME disable`` empties the list. Every executable in
  /etc/init.d is listed (``[]`` when started nowhere), backup copies
  (``.dpkg-old``, ``.rpmsave``, ``~``...) aside. Debian keeps these links in
  step with systemd (``systemctl enable`` runs ``update-rc.d``), so a host with
  systemd and one without compare their sysv keys like for like, instead of one
  set of keys vanishing and another appearing.
- **OpenRC** (Alpine, Gentoo), where ``/etc/runlevels`` exists:
  ``openrc:NAME`` -> the runlevels it was added to (``rc-update add NAME
  default``), sorted, ``[]`` for a script in no runlevel; and where OpenRC has
  run (``/run/openrc``), ``openrc:NAME:active`` -> ``started``.

``pid1`` -> the name of PID 1 (``systemd``, ``init``, ``tini``...): which
manager really runs the services; unreadable (``hidepid``) it is an error.
The active state of units is only asked for when systemd is the running
service manager (``/run/systemd/system`` exists); elsewhere it is left out
rather than guessed. Only units that are *not* inactive are reported: whether
an inactive unit is loaded at all depends on what referenced it lately, so
listing inactive units would make two identical hosts differ.  A service
stopped in staging therefore shows as ``<unit>:active`` missing there.

Keys cannot collide: a unit name always ends with its type (``.service``,
``.socket``...) or ``:active``; the others start with ``sysv:`` or
``openrc:``, or are ``pid1``. Hosts with neither systemctl, nor /etc/init.d,
nor /etc/runlevels are "not applicable". Everything read is world-readable:
the section sees the same as any user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from driftcheck.model import ParseResult

from .base import DENIED, Collector

# Header lines the section writes before each block; a unit line never starts with '#'.
_UNIT_FILES = "#unit-files"
_INSTANCES = "#enabled-instances"
_ACTIVE = "#active"
_INIT_D = "#init.d"
_RC_D = "#rc.d"
_RUNLEVELS = "#runlevels"
_STARTED = "#started"
_BLOCKS = (_UNIT_FILES, _INSTANCES, _ACTIVE, _INIT_D, _RC_D, _RUNLEVELS, _STARTED)
#: ``#pid1 NAME``, or ``#pid1?`` when /proc/1/comm cannot be read.
_PID1 = "#pid1"

# PID 1 is read with the shell's own `read`, and the init scripts with globs and
# `test`: builtins, so the section needs no tool beyond systemctl where it is used.
# A name holding a newline would split a line, and one starting with "#" could pass
# for a block header: such files are skipped (no manager would run a service by
# that name).
SHELL = f"""\
if ! command -v systemctl >/dev/null 2>&1 && [ ! -d /etc/init.d ] && [ ! -d /etc/runlevels ]; then
  echo 'no systemctl, /etc/init.d or /etc/runlevels: no service manager to read' >&2
  exit 193
fi
if read -r pid1 2>/dev/null </proc/1/comm; then
  printf '%s %s\\n' '{_PID1}' "$pid1"
else
  echo '{_PID1}?'
fi
if command -v systemctl >/dev/null 2>&1; then
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
fi
nl='
'
echo '{_INIT_D}'
for f in /etc/init.d/*; do
  case $f in *"$nl"* | */\\#*) continue ;; esac
  if [ -f "$f" ] && [ -x "$f" ]; then printf '%s\\n' "${{f##*/}}"; fi
done
echo '{_RC_D}'
for l in /etc/rc[0-6S].d/[SK]*; do
  case $l in *"$nl"*) continue ;; esac
  [ -L "$l" ] || [ -e "$l" ] || continue
  d=${{l%/*}}; d=${{d#/etc/rc}}
  printf '%s %s\\n' "${{d%.d}}" "${{l##*/}}"
done
if [ -d /etc/runlevels ]; then
  echo '{_RUNLEVELS}'
  for l in /etc/runlevels/*/*; do
    case $l in *"$nl"* | */\\#*) continue ;; esac
    [ -L "$l" ] || [ -e "$l" ] || continue
    d=${{l%/*}}
    printf '%s %s\\n' "${{d##*/}}" "${{l##*/}}"
  done
fi
if [ -d /run/openrc ]; then
  echo '{_STARTED}'
  for l in /run/openrc/started/*; do
    case $l in *"$nl"* | */\\#*) continue ;; esac
    if [ -L "$l" ] || [ -e "$l" ]; then printf '%s\\n' "${{l##*/}}"; fi
  done
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


#: Why ``pid1`` is unknown: /proc/1 hidden from the collecting user (hidepid) or no /proc.
PID1_HIDDEN = "PID 1 is not visible to the collecting user (/proc hidepid?): " + DENIED
# Copies package managers and editors leave next to a script: never run as a service.
_BACKUP = re.compile(r".*(?:\.dpkg-[a-z]+|\.rpm(?:save|new|orig)|\.ucf-[a-z]+|\.apk-new|~|,v)")
#: sysv-rc's own runlevel drivers in /etc/init.d (they run the links): not services.
_RC_DRIVERS = frozenset({"rc", "rcS"})
# "S20ssh" / "K01ssh": start or kill link, order number, the script's name.
_RC_LINK = re.compile(r"([SK])[0-9]*(.+)")


@dataclass
class _Parsed:
    """What the lines of one section said, block by block."""

    facts: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    instances: set[str] = field(default_factory=set)
    scripts: set[str] = field(default_factory=set)
    #: sysv: script name -> runlevels with a start link
    starts: dict[str, set[str]] = field(default_factory=dict)
    #: OpenRC: service name -> runlevels; None where the host has no /etc/runlevels
    runlevels: dict[str, set[str]] | None = None
    started: set[str] = field(default_factory=set)

    def take(self, block: str, line: str) -> None:
        """One line of ``block``."""
        if block == _UNIT_FILES:
            found = _unit_file_line(line)
            if found:
                self.facts[found[0]] = found[1]
        elif block == _INSTANCES:
            if _INSTANCE.fullmatch(line):
                self.instances.add(line)
        elif block == _ACTIVE:
            found = _active_line(line)
            if found and found[1] != "inactive":
                self.facts[f"{found[0]}:active"] = found[1]
        elif block == _INIT_D:
            if line and line not in _RC_DRIVERS and not _BACKUP.fullmatch(line):
                self.scripts.add(line)
        elif block == _RC_D:
            level, _, link = line.partition(" ")
            kind = _RC_LINK.fullmatch(link)
            if kind and kind.group(1) == "S" and level:
                self.starts.setdefault(kind.group(2), set()).add(level)
        elif block == _RUNLEVELS and self.runlevels is not None:
            level, _, name = line.partition(" ")
            if level and name:
                self.runlevels.setdefault(name, set()).add(level)
        elif block == _STARTED and line:
            self.started.add(line)

    def result(self) -> ParseResult:
        """The facts, with the init scripts' keys added."""
        facts = dict(self.facts)
        for unit in self.instances:
            # list-unit-files reports the template; a listed name always wins.
            facts.setdefault(unit, "enabled")
        for name in self.scripts:
            if self.runlevels is None:
                facts[f"sysv:{name}"] = sorted(self.starts.get(name, ()))
            else:
                facts[f"openrc:{name}"] = sorted(self.runlevels.get(name, ()))
                if name in self.started:
                    facts[f"openrc:{name}:active"] = "started"
        return ParseResult(dict(sorted(facts.items())), self.errors)


def parse(raw: str) -> ParseResult:
    """Unit -> enabled state, ``<unit>:active`` -> active state, init scripts, ``pid1``.

    ``ssh.service`` -> ``"enabled"`` (any ``list-unit-files`` state: enabled,
    disabled, static, masked, alias, indirect, generated, enabled-runtime, ...);
    an instance enabled through a wants symlink -> ``"enabled"``;
    ``ssh.service:active`` -> ``"active"`` / ``"failed"`` / ``"activating"`` ...
    only for units that are not inactive, and only where systemd runs.
    The sub-state (running, exited, waiting) is left out: it moves by itself.
    ``sysv:ssh`` -> ``["2", "3", "4", "5"]``; ``openrc:sshd`` -> ``["default"]``,
    ``openrc:sshd:active`` -> ``"started"``; ``pid1`` -> ``"systemd"``.
    """
    seen = _Parsed()
    block = ""
    # split("\n"), not splitlines(): a description may hold U+2028 or U+0085.
    for raw_line in raw.split("\n"):
        line = raw_line.rstrip("\r")
        if line in _BLOCKS:
            block = line
            if line == _RUNLEVELS and seen.runlevels is None:
                seen.runlevels = {}
        elif line == _PID1 + "?":
            seen.errors["pid1"] = PID1_HIDDEN
        elif line.startswith(_PID1 + " "):
            seen.facts["pid1"] = line[len(_PID1) + 1 :]
        else:
            seen.take(block, line)
    return seen.result()


COLLECTOR = Collector(
    name="services",
    description="services: systemd units' enabled state (systemctl list-unit-files, also "
    "offline) and active state where systemd runs (list-units); sysv-init scripts' start "
    "runlevels (/etc/init.d, /etc/rc?.d); OpenRC runlevels (/etc/runlevels); PID 1",
    shell=SHELL,
    parse=parse,
    timeout=60.0,
    volatile=VOLATILE,
)
