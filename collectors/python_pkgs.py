"""``python``: Python packages of the OS's python3 and of each configured virtualenv.

Packages are read from their installed metadata (``*.dist-info/METADATA``,
``*.egg-info/PKG-INFO`` or an ``*.egg-info`` file, ``*.egg/EGG-INFO/PKG-INFO``),
not from pip: pip may be absent, takes ~300 ms to start and prints warnings,
while the ``Name:`` and ``Version:`` headers are what pip itself reports.

The system interpreter is named by path (``/usr/bin/python3``, else RHEL 8's
``/usr/libexec/platform-python``), never found through PATH, where
/usr/local/bin comes first and a source-built or pyenv python3 may win. It is
asked once (``-I``: no PYTHON* variables, no user site) for its site-packages
directories, in the order it searches them: Debian's dist-packages, RHEL's lib64
and /usr/local directories are distribution patches that a hard-coded glob would
have to guess, and the order decides which copy of a package is imported.
Virtualenvs are not run at all: their ``lib/python*/site-packages`` is read.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from driftcheck.model import CollectSettings, ParseResult

from .base import Collector

# Output, one scope after another:
#   S<TAB>system | S<TAB>/path/of/venv      a scope begins
#   I<TAB>3.11.2                            the system interpreter's version
#   C<TAB>version|version_info<TAB>VALUE    a venv's pyvenv.cfg version line
#   D<TAB>DIR                               a site-packages directory, in search order
#   P<TAB>NAME-1.0.dist-info                a distribution's metadata directory, then
#   N<TAB>NAME / V<TAB>VERSION              its Name: and Version: headers
#   E<TAB>MESSAGE                           the scope could not be read (incomplete)
_SCAN = r"""
# scan DIR: the Name:/Version: headers of every distribution in DIR. Only the
# header block (up to the first empty line) counts: the long description that
# follows may contain anything, "Version:" lines included.
scan() {
  _d=$1
  if [ ! -r "$_d" ] || [ ! -x "$_d" ]; then
    printf 'E\tcannot read %s (permission denied)\n' "$_d"
    return 0
  fi
  set --
  for _f in "$_d"/*.dist-info/METADATA "$_d"/*.egg-info/PKG-INFO "$_d"/*.egg-info \
      "$_d"/*.egg/EGG-INFO/PKG-INFO; do
    [ -f "$_f" ] || continue
    if [ -r "$_f" ]; then
      set -- "$@" "$_f"
    else
      printf 'E\tcannot read %s (permission denied)\n' "$_f"
    fi
  done
  [ $# -eq 0 ] || awk '
    FNR == 1 {
      n = FILENAME
      sub(/\/(METADATA|PKG-INFO)$/, "", n); sub(/\/EGG-INFO$/, "", n); sub(/.*\//, "", n)
      print "P\t" n
      h = 1; nn = 0; vv = 0
    }
    h && ($0 == "" || $0 == "\r") { h = 0 }
    h && !nn && /^Name:/ { v = $0; sub(/^Name:[ \t]*/, "", v); print "N\t" v; nn = 1 }
    h && !vv && /^Version:/ { v = $0; sub(/^Version:[ \t]*/, "", v); print "V\t" v; vv = 1 }
  ' "$@"
}
"""

_SYSTEM = r"""
py=
for c in /usr/bin/python3 /usr/libexec/platform-python; do
  if [ -x "$c" ]; then py=$c; break; fi
done
"""

_NOT_APPLICABLE = r"""
if [ -z "$py" ]; then
  echo 'no system python3 (/usr/bin/python3) and no virtualenv configured' >&2
  exit 193
fi
"""

_SYSTEM_SCAN = r"""
if [ -n "$py" ]; then
  printf 'S\tsystem\n'
  _code='import site, sys
print("%d.%d.%d" % sys.version_info[:3])
print("\n".join(site.getsitepackages()))'
  if out=$("$py" -I -c "$_code" 2>&1); then
    printf '%s\n' "$out" | {
      read -r ver && printf 'I\t%s\n' "$ver"
      while IFS= read -r d; do
        if [ -n "$d" ] && [ -d "$d" ]; then printf 'D\t%s\n' "$d"; scan "$d"; fi
      done
    }
  else
    printf 'E\t%s failed: %s\n' "$py" "$(printf '%s\n' "$out" | tail -n 1)"
  fi
fi
"""

# A configured virtualenv that is not there is an error (incomplete), not silence.
_VENVS = r"""
for v in @VENVS@; do
  printf 'S\t%s\n' "$v"
  if [ ! -e "$v" ]; then
    # [ -e ] is also false when a parent directory cannot be searched: say so,
    # it is not the same as a virtualenv that was never created.
    case $(ls -d -- "$v" 2>&1 >/dev/null) in
      *"ermission denied"*) printf 'E\tpermission denied\n' ;;
      *) printf 'E\tno such directory\n' ;;
    esac
    continue
  fi
  if [ ! -d "$v" ]; then printf 'E\tnot a directory\n'; continue; fi
  if [ ! -r "$v" ] || [ ! -x "$v" ]; then printf 'E\tpermission denied\n'; continue; fi
  if [ -r "$v/pyvenv.cfg" ]; then
    awk '{ k = $0; sub(/=.*/, "", k); gsub(/[ \t]/, "", k) }
      (k == "version" || k == "version_info") && index($0, "=") {
        v = substr($0, index($0, "=") + 1); gsub(/^[ \t]+|[ \t\r]+$/, "", v)
        print "C\t" k "\t" v
      }' "$v/pyvenv.cfg"
  fi
  found=
  for d in "$v"/lib/python*/site-packages; do
    [ -d "$d" ] || continue
    found=1
    printf 'D\t%s\n' "$d"
    scan "$d"
  done
  [ -n "$found" ] || printf 'E\tnot a virtualenv: no lib/python*/site-packages\n'
done
"""


def shell(settings: CollectSettings) -> str:
    """The system interpreter's packages, then each configured virtualenv's."""
    parts = [_SCAN, _SYSTEM]
    if not settings.python:
        parts.append(_NOT_APPLICABLE)
    parts.append(_SYSTEM_SCAN)
    if settings.python:
        venvs = " ".join(shlex.quote(v) for v in settings.python)
        parts.append(_VENVS.replace("@VENVS@", venvs))
    return "".join(parts)


def canonical_name(name: str) -> str:
    """A distribution name normalised per PEP 503 (``Zope.Interface`` -> ``zope-interface``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


_META_SUFFIX = re.compile(r"\.(dist-info|egg-info|egg)$")
_FINAL = re.compile(r"^(\d+\.\d+\.\d+)\.final\.0$")


def _from_directory(dirname: str) -> tuple[str, str]:
    """(name, version) from a metadata directory's name: ``requests-2.31.0.dist-info``.

    Used only when the headers are missing. Names in these directory names have
    '-' escaped to '_', so the first '-' ends the name; a version may be absent
    (Debian's ``cryptography.egg-info``).
    """
    stem = _META_SUFFIX.sub("", dirname)
    name, _, rest = stem.partition("-")
    return name, rest.split("-")[0]


@dataclass
class _Scope:
    """What one scope (the system interpreter or a virtualenv) has shown so far."""

    python: str = ""
    venv_cfg: dict[str, str] = field(default_factory=dict)
    #: canonical name -> {directory index -> versions}
    packages: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    directories: int = 0


def parse(raw: str) -> ParseResult:
    """``SCOPE:name`` -> version, and ``SCOPE`` -> the interpreter's version.

    SCOPE is ``system`` or the virtualenv's path; names are PEP 503 normalised.
    A package present in several site directories of one scope (pip installed
    over the distribution's copy) is listed with every version, in search order
    (the first is the one imported), joined with ", ".
    """
    scopes: dict[str, _Scope] = {}
    scope: _Scope | None = None
    dist: list[str] | None = None  # [directory name, Name:, Version:]

    def finish_dist() -> None:
        nonlocal dist
        if dist is not None and scope is not None and scope.directories:
            fallback_name, fallback_version = _from_directory(dist[0])
            name = dist[1].strip() or fallback_name
            version = dist[2].strip() or fallback_version
            if name and version:
                versions = scope.packages.setdefault(canonical_name(name), {})
                versions.setdefault(scope.directories, set()).add(version)
        dist = None

    for line in raw.splitlines():
        kind, tab, value = line.partition("\t")
        if not tab:
            continue
        if kind in ("P", "D", "S", "E"):
            finish_dist()
        if kind == "S" and value:
            scope = scopes.setdefault(value, _Scope())
        elif scope is None:
            continue
        elif kind == "I":
            scope.python = value.strip()
        elif kind == "C":
            key, _, cfg_value = value.partition("\t")
            scope.venv_cfg.setdefault(key, cfg_value.strip())
        elif kind == "D":
            scope.directories += 1
        elif kind == "P":
            dist = [value, "", ""]
        elif kind == "N" and dist is not None and not dist[1]:
            dist[1] = value
        elif kind == "V" and dist is not None and not dist[2]:
            dist[2] = value
        elif kind == "E" and value:
            scope.errors.append(value)
    finish_dist()
    return _facts(scopes)


def _facts(scopes: dict[str, _Scope]) -> ParseResult:
    facts: dict[str, str] = {}
    errors: dict[str, str] = {}
    for key, scope in scopes.items():
        python = scope.python or scope.venv_cfg.get("version", "")
        if not python and "version_info" in scope.venv_cfg:
            info = scope.venv_cfg["version_info"]
            python = _FINAL.sub(r"\1", info)
        if python:
            facts[key] = python
        for name, by_directory in scope.packages.items():
            ordered: list[str] = []
            for index in sorted(by_directory):
                ordered.extend(v for v in sorted(by_directory[index]) if v not in ordered)
            facts[f"{key}:{name}"] = ", ".join(ordered)
        if scope.errors:
            more = len(scope.errors) - 1
            errors[key] = scope.errors[0] + (f" (and {more} more)" if more else "")
    return ParseResult(dict(sorted(facts.items())), dict(sorted(errors.items())))


COLLECTOR = Collector(
    name="python",
    description="Python packages (Name/Version of installed metadata) of the OS's python3 "
    "and of each configured virtualenv",
    shell=shell,
    parse=parse,
    timeout=lambda s: 30.0 + 10.0 * len(s.python),
)
