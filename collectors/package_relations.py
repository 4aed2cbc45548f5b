"""``package_relations``: which packages stand in for others (Provides, Replaces, Obsoletes).

Evidence, never drift (``compare=False``): when one side has ``libssl3`` and the
other ``libssl3t64`` (Debian's 64-bit time_t rename), or an rpm that obsoletes an
older name, the two are one rename, not an unrelated missing and extra package.
The engine's rename step (:mod:`driftcheck.renames`) reads these facts.

Only packages that declare a relation are listed: a few dozen lines on a Debian
host, where the full ``Provides`` list of every package would be thousands.
"""

from __future__ import annotations

import re

from driftcheck.model import ParseResult

from .base import Collector
from .packages import DPKG_NOT_INSTALLED, RPM_SYSTEM_DB

# dpkg: "STATUS<TAB>name<TAB>provides<TAB>replaces" for installed packages with either;
# rpm: "name<TAB><TAB>obsoleted names," (rpm names what an rpm replaces Obsoletes).
SHELL = """\
found=
if command -v dpkg-query >/dev/null 2>&1; then
  echo '#dpkg'
  dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Provides}\\t${Replaces}\\n' |
    awk -F '\\t' '$3 != "" || $4 != ""' || exit
  found=1
fi
if command -v rpm >/dev/null 2>&1; then
  @RPM_SYSTEM_DB@
    echo '#rpm'
    rpm -qa --qf '%{NAME}\\t\\t[%{OBSOLETENAME},]\\n' | awk -F '\\t' '$3 != ""' || exit
  fi
fi
""".replace("@RPM_SYSTEM_DB@", RPM_SYSTEM_DB)

#: One name in a dependency field: "libssl3 (= 3.5.9-1)", "awk:any", "a | b".
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9+._-]*)")


def _names(field: str) -> list[str]:
    """The package names a relation field lists, versions and alternatives dropped."""
    out: list[str] = []
    for part in re.split(r"[,|]", field):
        m = _NAME.match(part)
        if m and m[1] not in out:
            out.append(m[1])
    return out


def parse(raw: str) -> ParseResult:
    """Package name -> {"provides": [...], "replaces": [...]} (names only)."""
    facts: dict[str, object] = {}
    manager = ""
    for line in raw.splitlines():
        if line in ("#dpkg", "#rpm"):
            manager = line[1:]
            continue
        fields = line.split("\t")
        if manager == "dpkg" and len(fields) == 4:
            status, name, provides, replaces = fields
            if len(status) < 2 or status[1] in DPKG_NOT_INSTALLED or not name:
                continue
        elif manager == "rpm" and len(fields) == 3 and fields[0]:
            name, provides, replaces = fields
        else:
            continue
        relation = {"provides": _names(provides), "replaces": _names(replaces)}
        if relation["provides"] or relation["replaces"]:
            facts[name] = relation
    return ParseResult(dict(sorted(facts.items())))


COLLECTOR = Collector(
    name="package_relations",
    description="packages that provide, replace or obsolete others (dpkg-query -W "
    "Provides/Replaces; rpm -qa Obsoletes); evidence only",
    shell=SHELL,
    parse=parse,
    requires=("dpkg-query", "rpm"),
    timeout=60.0,
    # Evidence for the rename step (libssl3 -> libssl3t64), never drift itself.
    compare=False,
)
