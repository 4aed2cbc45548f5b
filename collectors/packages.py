"""``packages``: installed OS packages and their versions (dpkg, apk, rpm)."""

from __future__ import annotations

from collections import defaultdict

from driftcheck.model import ParseResult

from .base import Collector

# One block per package database found on the host, each headed "#dpkg", "#apk"
# or "#rpm". dpkg and rpm print "name<TAB>arch<TAB>version" lines (dpkg with the
# status letters first); apk prints the P:/V:/A: lines of its installed database.
#: sh opening "if ...; then": read rpm when no other package manager was found
#: ($found empty), else only from a system database that exists outside HOME.
#: Shared with config_origin, so both keep the same read-only rule.
RPM_SYSTEM_DB = r"""db=$(rpm -E '%{_dbpath}' 2>/dev/null) || db=
  case $db in */.rpmdb) db= ;; esac
  if [ -z "$found" ] || { [ -n "$db" ] && { [ -e "$db/rpmdb.sqlite" ] ||
      [ -e "$db/Packages.db" ] || [ -e "$db/Packages" ]; }; }; then"""

SHELL = """\
found=
if command -v dpkg-query >/dev/null 2>&1; then
  echo '#dpkg'
  # The native architecture: its packages are keyed by name alone, so the keys do
  # not change when a foreign architecture is added (dpkg --add-architecture).
  printf '#native %s\n' "$(dpkg --print-architecture 2>/dev/null)"
  dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Architecture}\\t${Version}\\n' || exit
  found=1
fi
# apk: read the installed database itself, which is what apk reads: no process of
# apk's (that would load repository indexes and warn about stale ones), and name,
# version and arch in fields of their own ("apk info -v" and "apk list" glue name
# and version with '-', which both may contain). Blank lines end a record; the
# description of a virtual package (apk add --virtual) is kept to recognise it.
# apk-tools 3 and usr-merged systems (Wolfi) keep the database under /usr/lib.
for db in /lib/apk/db/installed /usr/lib/apk/db/installed; do
  [ -f "$db" ] || continue
  echo '#apk'
  sed -n -e '/^[PVA]:/p' -e '/^T:virtual meta package$/p' -e '/^$/p' "$db" || exit
  found=1
  break
done
# rpm also exists on dpkg systems (Debian's rpm package), where its database is a
# per-user ~/.rpmdb: "rpm -qa" creates it when missing (a write on a read-only
# run) and fails for a user whose HOME is not writable, and what it lists is not
# the system's packages. So next to another package manager, read rpm only from
# a database that already exists outside HOME.
if command -v rpm >/dev/null 2>&1; then
  @RPM_SYSTEM_DB@
    echo '#rpm'
    printf '#native %s\n' "$(rpm -E '%{_arch}' 2>/dev/null)"
    rpm -qa --qf '%{NAME}\\t%{ARCH}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n' || exit
  fi
fi
"""

# dpkg status letters (second letter of db:Status-Abbrev) that mean "not installed".
DPKG_NOT_INSTALLED = frozenset({"n", "c"})
_DPKG_STATES = {"U": "unpacked", "F": "half-configured", "H": "half-installed"}
_HEADERS = {"#dpkg": "dpkg", "#apk": "apk", "#rpm": "rpm"}
#: What a virtual apk package is reported as: its version is only the time it was
#: made (apk add --virtual NAME writes YYYYMMDD.HHMMSS), which differs between any
#: two hosts and says nothing; the packages it pulls in are listed on their own.
APK_VIRTUAL = "(virtual)"


SHELL = SHELL.replace("@RPM_SYSTEM_DB@", RPM_SYSTEM_DB)


class _ApkReader:
    """Turns the P:/V:/A: lines of apk's installed database into packages.

    Records are separated by blank lines; one without a version is not an
    installed package (apk never writes one) and is skipped like any other line
    that makes no sense.
    """

    def __init__(self, found: dict[tuple[str, str], list[str]]) -> None:
        self.found = found
        self._reset()

    def _reset(self) -> None:
        self.name = self.version = self.arch = ""
        self.virtual = False

    def feed(self, line: str) -> None:
        """Fold one line into the current record; a blank line ends it."""
        if not line.strip():
            self.finish()
        elif line.startswith("P:"):
            if self.name:  # a new record without a blank line before it
                self.finish()
            self.name = line[2:]
        elif line.startswith("V:"):
            self.version = line[2:]
        elif line.startswith("A:"):
            self.arch = line[2:]
        elif line == "T:virtual meta package":
            self.virtual = True

    def finish(self) -> None:
        """End the current record, keeping it when it names an installed package."""
        if self.name and self.version:
            version = APK_VIRTUAL if self.virtual else self.version
            self.found[(self.name, self.arch)].append(version)
        self._reset()


def parse(raw: str) -> ParseResult:
    """Package name -> version.

    The key is ``name`` for packages of the host's native architecture and
    architecture-independent ones (``all``, ``noarch``), and ``name:arch`` for a
    foreign architecture (multiarch), so an identical peer gives identical keys
    whether or not it also has a foreign architecture. Output captured before the
    native architecture was printed keys ``name:arch`` only where one name has
    several architectures. Several versions of one package (rpm kernels) are
    joined with ", ". A package left half-installed is reported with its state; a
    virtual apk package as ``(virtual)``.
    """
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    #: (name, arch) -> True when native (or arch-independent) by the package manager's
    #: own word, False when foreign, absent when its manager said nothing (apk)
    native_of: dict[tuple[str, str], bool] = {}
    apk = _ApkReader(found)
    manager = ""
    native: set[str] = set()
    for line in raw.splitlines():
        if line in _HEADERS:
            apk.finish()
            manager, native = _HEADERS[line], set()
            continue
        if line.startswith("#native ") and manager in ("dpkg", "rpm"):
            native = set(line.split()[1:])
            continue
        if manager == "apk":
            apk.feed(line)
            continue
        fields = line.split("\t")
        if manager == "dpkg" and len(fields) == 4:
            status, name, arch, version = fields
            if len(status) < 2 or status[1] in DPKG_NOT_INSTALLED or not name:
                continue
            state = _DPKG_STATES.get(status[1])
            found[(name, arch)].append(f"{version} ({state})" if state else version)
        elif manager == "rpm" and len(fields) == 3 and fields[0]:
            name, arch, version = fields
            found[(name, arch)].append(version)
        else:
            continue
        if native:
            native_of[(name, arch)] = arch in native or arch in _ANY_ARCH or not arch
    apk.finish()
    return ParseResult(_keyed(found, native_of))


#: Architectures whose packages install the same everywhere.
_ANY_ARCH = frozenset({"all", "noarch"})


def _keyed(
    found: dict[tuple[str, str], list[str]], native_of: dict[tuple[str, str], bool]
) -> dict[str, object]:
    """Facts keyed by name, or name:arch where the architecture is foreign."""
    archs: dict[str, set[str]] = defaultdict(set)
    for name, arch in found:
        archs[name].add(arch)
    facts: dict[str, object] = {}
    for (name, arch), versions in found.items():
        # Without a native architecture (apk, older captures): the old rule.
        plain = native_of.get((name, arch), len(archs[name]) == 1)
        facts[name if plain else f"{name}:{arch}"] = ", ".join(sorted(set(versions)))
    return dict(sorted(facts.items()))


COLLECTOR = Collector(
    name="packages",
    description="installed packages and versions (dpkg-query -W; apk's installed "
    "database; rpm -qa)",
    shell=SHELL,
    parse=parse,
    requires=("dpkg-query", "rpm", "apk"),
    timeout=120.0,
)
