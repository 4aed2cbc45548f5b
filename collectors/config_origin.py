"""``config_origin``: which package owns each configured file, and was it edited since.

Evidence, never drift (``compare=False``): it explains a finding of the ``files``
collector ("staging edited the conffile nginx-common shipped", "nobody's package
owns this file").

The files are exactly those the ``files`` collector reads: its shell is reused,
with only its per-file function replaced by one that prints the path (so globs,
directories, ``dir_max_files`` and the quoting are the files collector's own).
Then, for all paths at once:

* dpkg: one ``dpkg-query -S`` (ownership, diversions), one ``dpkg --verify`` of the
  owning packages (an ``5`` in the digest column means the content differs);
* rpm: one ``rpm -qf`` listing the owning packages' files with their flags (so a
  file rpm does not checksum, %ghost or %verify(not md5), is "cannot tell", not
  "unmodified"), one ``rpm -V --nodeps --noscripts`` of the owning packages; read
  only from a system database (see ``packages``: Debian's rpm has none);
* apk: the installed database itself (``R:`` file names, ``Z:`` checksums:
  ``Q1`` + base64 SHA-1, ``Q2`` + base64 SHA-256), compared with the file's hash;
  a sensitive file (see ``file_rules``) is not hashed, so it is "cannot tell".

``collect.exclude`` applies here too: the walk is the files collector's own.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from driftcheck.model import CollectSettings, ParseResult

from . import files
from .base import Collector
from .packages import RPM_SYSTEM_DB

# Output (every line tab-separated, one record a line):
#   P<TAB>file|link|other|unreadable<TAB>PATH    an existing non-directory path
#   T<TAB>ENTRY                     a glob or directory over dir_max_files (files' own line)
#   #dpkg | #rpm | #apk             the block of one package database
#   S<TAB>LINE                      a dpkg-query -S stdout line
#   V<TAB>LINE                      a dpkg --verify / rpm -V stdout line
#   X<TAB>WHAT<TAB>RC               a query that failed: nothing of its kind can be told
#   Q<TAB>PATH<TAB>FILEFLAGS<TAB>VERIFYFLAGS<TAB>NAME   rpm: an owner of PATH
#   N<TAB>LINE                      rpm: "file PATH is not owned by any package"
#   A<TAB>PKG<TAB>Z<TAB>PATH        apk: PKG's database lists PATH with checksum Z (or -)
#   H<TAB>SHA1<TAB>SHA256<TAB>PATH  apk: the file's hashes
_FILE = """\
# config_origin: only the path of each existing non-directory (no reading); a
# symlink is a link here even where files describes what it points to.
_dc_file() {
  p=$1
  if [ -L "$p" ]; then k=link
  elif [ ! -e "$p" ] || [ -d "$p" ]; then return 0
  elif [ ! -f "$p" ]; then k=other
  elif [ ! -r "$p" ]; then k=unreadable
  else k=file; fi
  printf 'P\\t%s\\t%s\\n' "$k" "$p"
}
"""

_MAIN = r"""
list=$(_dc_paths)
[ -n "$list" ] || exit 0
printf '%s\n' "$list"
paths=$(printf '%s\n' "$list" | awk '/^P\t/ { sub(/^P\t[a-z]*\t/, ""); print }')
[ -n "$paths" ] || exit 0
nl='
'
found=
if command -v dpkg-query >/dev/null 2>&1; then
  echo '#dpkg'
  # Arguments with * ? [ \ are fnmatch patterns to dpkg -S: escape them.
  IFS=$nl; set -f
  set -- $(printf '%s\n' "$paths" | sed 's/[][*?\\]/\\&/g')
  unset IFS; set +f
  out=$(dpkg-query -S -- "$@" 2>/dev/null); rc=$?
  # 1: some path is owned by no package; 2: dpkg-query itself failed.
  if [ "$rc" -gt 1 ]; then printf 'X\tdpkg-query\t%s\n' "$rc"; fi
  [ -z "$out" ] || printf '%s\n' "$out" | awk '{ print "S\t" $0 }'
  pkgs=$(printf '%s\n' "$out" | awk -F': ' '
    /^(diversion by |local diversion )/ || NF < 2 { next }
    { n = split($1, a, ", ")
      for (i = 1; i <= n; i++) if (a[i] ~ /^[a-z0-9][a-z0-9+.:-]*$/) print a[i] }
  ' | sort -u)
  if [ -n "$pkgs" ]; then
    set -f; set -- $pkgs; set +f
    out=$(dpkg --verify --verify-format rpm -- "$@" 2>/dev/null); rc=$?
    # 1: it reports a difference; 2: it failed.
    if [ "$rc" -gt 1 ]; then printf 'X\tdpkg-verify\t%s\n' "$rc"; fi
    [ -z "$out" ] || printf '%s\n' "$out" | awk '{ print "V\t" $0 }'
  fi
  found=1
fi
for db in /lib/apk/db/installed /usr/lib/apk/db/installed; do
  [ -f "$db" ] || continue
  echo '#apk'
  DC_PATHS=$paths awk '
    BEGIN { n = split(ENVIRON["DC_PATHS"], a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1 }
    function flush() {
      if (f != "") print "A\t" pkg "\t" (z == "" ? "-" : z) "\t" f
      f = ""; z = ""
    }
    /^$/ { flush(); pkg = ""; dir = ""; next }
    /^P:/ { flush(); pkg = substr($0, 3); next }
    /^F:/ { flush(); dir = substr($0, 3); next }
    /^R:/ { flush(); p = (dir == "" ? "" : "/" dir) "/" substr($0, 3); if (p in want) f = p; next }
    /^Z:/ { if (f != "") z = substr($0, 3); next }
    END { flush() }
  ' "$db" || printf 'X\tapk\t%s\n' "$?"
  IFS=$nl; set -f
  for p in $paths; do
    [ -f "$p" ] && [ ! -L "$p" ] && [ -r "$p" ] || continue
    # A secret's plain checksum is never printed (files keys it; this has no scrub):
    # whether apk's copy was edited stays unknown for it.
    if _dc_sensitive "$p"; then continue; fi
    s1=$(sha1sum < "$p") && s2=$(sha256sum < "$p") || continue
    printf 'H\t%s\t%s\t%s\n' "${s1%% *}" "${s2%% *}" "$p"
  done
  unset IFS; set +f
  found=1
  break
done
# rpm: only from a database outside HOME (Debian's rpm package keeps a per-user
# ~/.rpmdb that "rpm -q" would create); see the packages collector.
if command -v rpm >/dev/null 2>&1; then
  @RPM_SYSTEM_DB@
    echo '#rpm'
    IFS=$nl; set -f; set -- $paths; unset IFS; set +f
    out=$(rpm -qf --qf '[%{FILENAMES}\t%{FILEFLAGS}\t%{FILEVERIFYFLAGS}\t%{=NAME}\n]' -- "$@" \
      2>/dev/null | DC_PATHS=$paths awk -F'\t' '
        BEGIN { n = split(ENVIRON["DC_PATHS"], a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1 }
        NF == 4 && ($1 in want) { print "Q\t" $0; next }
        /^file .* is not owned by any package$/ { print "N\t" $0 }
      ' | sort -u)
    [ -z "$out" ] || printf '%s\n' "$out"
    pkgs=$(printf '%s\n' "$out" | awk -F'\t' '$1 == "Q" { print $5 }' | sort -u)
    if [ -n "$pkgs" ]; then
      set -f; set -- $pkgs; set +f
      rpm -V --nodeps --noscripts -- "$@" 2>/dev/null | awk '{ print "V\t" $0 }'
    fi
  fi
fi
exit 0
"""


_MAIN = _MAIN.replace("@RPM_SYSTEM_DB@", RPM_SYSTEM_DB)


def shell(settings: CollectSettings) -> str:
    """List the files the ``files`` collector reads, then ask the package databases."""
    if not settings.files:
        return ":"
    return (
        files.shell_functions(settings)
        + _FILE
        + "_dc_paths() {\n"
        + files.walk_configured(settings)
        + "}\n"
        + _MAIN
    )


#: dpkg --verify / rpm -V: 8 (old rpm) or 9 result characters, or "missing", an
#: attribute letter (c = config file) or blank, then the path.
_VERIFY = re.compile(r"^(missing|[.?SM5DLUGTPN]{8,9})\s+(?:[a-z]\s+)?(/.*)$")
#: after the path: dpkg's " (strerror)" of a "missing" file, rpm's file state
#: ("(replaced)", "(not installed)", "(net shared)", "(wrong color)").
_SUFFIX = re.compile(r" \(([^()]*)\)$")
_NOT_OWNED = re.compile(r"^file (/.*) is not owned by any package$")
_DPKG_PKG = re.compile(r"^[a-z0-9][a-z0-9+.:-]*$")
#: the lines each database's block may hold
_TAGS = {"dpkg": {"X", "S", "V"}, "rpm": {"X", "Q", "N", "V"}, "apk": {"X", "A", "H"}}
_RPMFILE_GHOST = 1 << 6
_RPMVERIFY_FILEDIGEST = 1


@dataclass
class _Origin:
    """What the package databases say about one path."""

    owners: set[str] = field(default_factory=set)
    #: the database told whether the path is owned (else: unknown)
    told: bool = False
    #: verify results: True modified, False not, None cannot tell
    verdicts: list[bool | None] = field(default_factory=list)
    #: owned, but the content is not checksummed by the package database
    unverifiable: bool = False
    #: the file at this path is not the owners' (a diversion), or cannot be told
    error: str = ""


def _verdict(flags: str) -> bool | None:
    """True when a verify line says the content differs; None when it could not check."""
    if flags == "missing":
        return None  # the path exists (we saw it): dpkg/rpm could not stat it
    if flags[0] == "S" or flags[2] == "5":
        return True
    if flags[2] == "?":
        return None
    return False  # only metadata (mode, owner, mtime) differs


class _Reader:
    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.managers: list[str] = []
        self.failed: set[str] = set()
        self.origin: dict[str, dict[str, _Origin]] = {}
        self.hashes: dict[str, tuple[str, str]] = {}
        self.apk_sums: dict[str, list[str]] = {}

    def at(self, path: str) -> _Origin:
        return self.origin.setdefault(self.managers[-1], {}).setdefault(path, _Origin())

    def line(self, line: str) -> None:
        if line in ("#dpkg", "#rpm", "#apk"):
            self.managers.append(line[1:])
            return
        tag, _, rest = line.partition("\t")
        if tag == "P":
            kind, _, path = rest.partition("\t")
            if kind in ("file", "link", "other", "unreadable") and path.startswith("/"):
                self.kinds[path] = kind
        elif tag == "T" and rest:
            self.errors[rest] = (
                "more entries than collect.dir_max_files; only the first ones (sorted) were read"
            )
        elif not self.managers or tag not in _TAGS[self.managers[-1]]:
            return  # garbage, or a line of another database's block
        elif tag == "X":
            self.failed.add(f"{self.managers[-1]}:{rest.split(chr(9))[0]}")
        elif tag == "S":
            self.dpkg_search(rest)
        elif tag == "V":
            self.verify(rest)
        elif tag == "Q":
            self.rpm_owner(rest)
        elif tag == "N":
            m = _NOT_OWNED.match(rest)
            if m and m.group(1) in self.kinds:
                self.at(m.group(1)).told = True
        elif tag == "A":
            parts = rest.split("\t", 2)
            if len(parts) == 3 and parts[2] in self.kinds and parts[0]:
                self.at(parts[2]).owners.add(parts[0])
                self.apk_sums.setdefault(parts[2], []).append(parts[1])
        elif tag == "H":
            parts = rest.split("\t", 2)
            if len(parts) == 3:
                self.hashes[parts[2]] = (parts[0], parts[1])

    def dpkg_search(self, rest: str) -> None:
        """One ``dpkg-query -S`` line: owners, or a diversion of the path."""
        head, sep, path = rest.partition(": ")
        if not sep or path not in self.kinds:
            return
        origin = self.at(path)
        if head.startswith("diversion by ") and head.endswith(" from"):
            # The path is diverted: the file here is the diverting package's, or nobody's.
            origin.error = "diverted-from:" + head[len("diversion by ") : -len(" from")]
        elif head == "local diversion from":
            origin.error = "diverted-from:"
        elif head.startswith(("diversion by ", "local diversion ")):
            # "... to: PATH": the file here is a diverted package's; dpkg -S does not say whose.
            origin.error = "diverted-to"
        else:
            names = head.split(", ")
            if all(_DPKG_PKG.match(n) for n in names):
                origin.owners.update(names)

    def verify(self, rest: str) -> None:
        m = _VERIFY.match(rest)
        if not m:
            return
        flags, path = m.groups()
        verdict = _verdict(flags)
        suffix = _SUFFIX.search(path)
        if path not in self.kinds and suffix:
            # the file is not the package's as installed, or could not be checked
            path, verdict = path[: suffix.start()], None
        if path in self.kinds:
            self.at(path).verdicts.append(verdict)

    def rpm_owner(self, rest: str) -> None:
        parts = rest.split("\t")
        if len(parts) != 4 or parts[0] not in self.kinds or not parts[3]:
            return
        path, fileflags, verifyflags, name = parts
        origin = self.at(path)
        origin.told = True
        origin.owners.add(name)
        try:
            ghost = int(fileflags) & _RPMFILE_GHOST
            digest = int(verifyflags) & _RPMVERIFY_FILEDIGEST
        except ValueError:
            ghost, digest = 1, 0
        if ghost or not digest:
            origin.unverifiable = True


def _combine(verdicts: list[bool | None]) -> bool | None:
    """Modified when any says so; else unknown when any cannot tell; else not (none: not)."""
    if True in verdicts:
        return True
    return None if None in verdicts else False


def _apk_modified(sums: list[str], hashes: tuple[str, str] | None) -> bool | None:
    """Compare apk's ``Z:`` checksums (Q1 = base64 SHA-1, Q2 = base64 SHA-256) with the file."""
    if hashes is None or len(sums) != 1:
        return None
    z = sums[0]
    try:
        digest = base64.b64decode(z[2:], validate=True).hex()
    except (binascii.Error, ValueError):
        return None
    if z.startswith("Q1") and len(digest) == 40:
        return digest != hashes[0]
    if z.startswith("Q2") and len(digest) == 64:
        return digest != hashes[1]
    return None


def _fold(manager: str, path: str, o: _Origin, r: _Reader) -> tuple[str | None, bool | None, str]:
    """(package, modified, error) for one path as one database tells it."""
    kind = r.kinds[path]
    owners = set(o.owners)
    if manager == "dpkg":
        if "dpkg:dpkg-query" in r.failed:
            return None, None, "dpkg-query -S failed"
        if o.error == "diverted-to":
            return None, None, "dpkg diverts another path here; its owner is not told"
        if o.error.startswith("diverted-from:"):
            diverter = o.error.split(":", 1)[1]
            owners = {n for n in owners if n.split(":")[0] == diverter}
        modified: bool | None = None
        if owners and kind == "file" and "dpkg:dpkg-verify" not in r.failed:
            modified = _combine(o.verdicts)
    elif manager == "rpm":
        if not o.told:
            return None, None, "rpm -qf did not tell who owns it"
        modified = None
        if owners and kind == "file" and not o.unverifiable:
            modified = _combine(o.verdicts)
    else:  # apk
        modified = None
        if owners and kind == "file" and "apk:apk" not in r.failed:
            modified = _apk_modified(r.apk_sums.get(path, []), r.hashes.get(path))
        if "apk:apk" in r.failed:
            return None, None, "reading apk's installed database failed"
    return (", ".join(sorted(owners)) or None), (modified if owners else None), ""


def parse(raw: str) -> ParseResult:
    """Path -> ``{"package": NAME | "A, B" | None, "modified": True | False | None}``.

    Only existing non-directory paths get a fact. ``package`` is None when no
    package owns the file (or, for a diverted path, when the file there is the
    administrator's); ``modified`` is None when it cannot be told (no owner, a
    symlink or unreadable file, a file the package database does not checksum).
    """
    r = _Reader()
    for line in raw.split("\n"):
        r.line(line)
    facts: dict[str, object] = {}
    errors = dict(r.errors)
    for path in r.kinds:
        if not r.managers:
            errors[path] = "no package database (dpkg, rpm, apk) found"
            continue
        packages: list[str] = []
        verdicts: list[bool | None] = []
        problem = ""
        for manager in dict.fromkeys(r.managers):
            o = r.origin.get(manager, {}).get(path, _Origin())
            package, modified, error = _fold(manager, path, o, r)
            if error:
                problem = error
            elif package is not None:
                packages.append(package)
                verdicts.append(modified)
        if problem and not packages:
            errors[path] = problem
            continue
        facts[path] = {
            "package": ", ".join(packages) or None,
            "modified": _combine(verdicts) if verdicts else None,
        }
    return ParseResult(facts, errors)


COLLECTOR = Collector(
    name="config_origin",
    description="owning package of each configured file and whether it was edited since "
    "install (dpkg-query -S + dpkg --verify; rpm -qf + rpm -V; apk's installed database); "
    "evidence only",
    shell=shell,
    parse=parse,
    requires=("dpkg-query", "rpm", "apk"),
    timeout=lambda s: 60.0 + 2.0 * len(s.files),
    # Evidence for explanations ("modified after install"), never drift itself.
    compare=False,
)
