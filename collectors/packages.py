"""``packages``: installed OS packages and their versions (dpkg; rpm when present)."""

from __future__ import annotations

from collections import defaultdict

from driftcheck.inventory import CollectSettings
from driftcheck.model import ParseResult

from .base import Collector

SHELL = """\
if command -v dpkg-query >/dev/null 2>&1; then
  echo '#dpkg'
  dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Architecture}\\t${Version}\\n' || exit
fi
if command -v rpm >/dev/null 2>&1; then
  echo '#rpm'
  rpm -qa --qf '%{NAME}\\t%{ARCH}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n' || exit
fi
"""

# dpkg status letters (second letter of db:Status-Abbrev) that mean "not installed".
_DPKG_ABSENT = {"n", "c"}
_DPKG_STATES = {"U": "unpacked", "F": "half-configured", "H": "half-installed"}


def shell(_settings: CollectSettings) -> str:
    """The section's shell; it takes no parameters."""
    return SHELL


def parse(raw: str) -> ParseResult:
    """Package name -> version.

    The key is ``name`` or, when one name is installed for several architectures
    (multiarch), ``name:arch``. Several versions of one package (rpm kernels) are
    joined with ", ". A package left half-installed is reported with its state.
    """
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    manager = ""
    for line in raw.splitlines():
        if line in ("#dpkg", "#rpm"):
            manager = line[1:]
            continue
        fields = line.split("\t")
        if manager == "dpkg" and len(fields) == 4:
            status, name, arch, version = fields
            if len(status) < 2 or status[1] in _DPKG_ABSENT or not name:
                continue
            state = _DPKG_STATES.get(status[1])
            found[(name, arch)].append(f"{version} ({state})" if state else version)
        elif manager == "rpm" and len(fields) == 3 and fields[0]:
            name, arch, version = fields
            found[(name, arch)].append(version)
    archs: dict[str, set[str]] = defaultdict(set)
    for name, arch in found:
        archs[name].add(arch)
    facts: dict[str, object] = {}
    for (name, arch), versions in found.items():
        key = name if len(archs[name]) == 1 else f"{name}:{arch}"
        facts[key] = ", ".join(sorted(set(versions)))
    return ParseResult(dict(sorted(facts.items())))


COLLECTOR = Collector(
    name="packages",
    description="installed packages and versions (dpkg-query -W; rpm -qa)",
    shell=shell,
    parse=parse,
    requires=("dpkg-query", "rpm"),
    timeout=lambda _s: 120.0,
)
