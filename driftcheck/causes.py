"""One cause, one group: findings that the evidence says follow from another one.

A reader shown ten rows has to find the one cause; grouped, the report says "12
findings from 3 causes" and shows each cause with its consequences under it. A
group is made only where the evidence says so, on the same role and the same
differing hosts:

- **a package**: its version differs (or it is missing, extra, renamed), and
  config files it owns (``config_origin``) differ too;
- **kernel links**: ``net.ipv4.ip_forward`` (or ``net.ipv4.conf.all.forwarding``)
  sets every interface's ``forwarding`` and clears ``conf.all.accept_redirects``
  (the kernel's ``inet_forward_change``); ``net.ipv6.conf.all.forwarding`` sets
  every interface's IPv6 ``forwarding``;
- **a service of a missing package**: a unit (``nginx.service``, ``sysv:nginx``,
  ``openrc:nginx``) named like a package that is missing or extra in the same way.

Pure: a report and its snapshots in, the report with ``causes`` and each member's
``cause`` out.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import replace

from driftcheck.findings import Cause, DriftReport, Finding, State
from driftcheck.model import SETTING_SEP, HostSnapshot

#: cause key -> globs of the sysctl keys the kernel changes with it
KERNEL_LINKS: dict[str, tuple[str, ...]] = {
    "net.ipv4.ip_forward": ("net.ipv4.conf.*.forwarding", "net.ipv4.conf.all.accept_redirects"),
    "net.ipv4.conf.all.forwarding": (
        "net.ipv4.conf.*.forwarding",
        "net.ipv4.conf.all.accept_redirects",
        "net.ipv4.ip_forward",
    ),
    "net.ipv6.conf.all.forwarding": ("net.ipv6.conf.*.forwarding",),
}
_PRESENCE = (State.MISSING, State.EXTRA)


def _owners(snapshots: Mapping[str, HostSnapshot], finding: Finding) -> set[str]:
    """The packages that own the file of a ``files`` finding, on any of its hosts."""
    path = finding.key.split(SETTING_SEP, 1)[0]
    out: set[str] = set()
    for host in finding.values:
        snap = snapshots.get(host)
        sec = snap.sections.get("config_origin") if snap is not None else None
        origin = sec.facts.get(path) if sec is not None and sec.status.complete else None
        if isinstance(origin, dict) and origin.get("package"):
            out.update(n.strip().split(":")[0] for n in str(origin["package"]).split(","))
    return out


def _unit_stem(key: str) -> str:
    """``nginx`` for nginx.service, nginx.service:active, sysv:nginx, openrc:nginx."""
    for prefix in ("sysv:", "openrc:"):
        if key.startswith(prefix):
            return key[len(prefix) :].split(":", maxsplit=1)[0]
    return key.removesuffix(":active").rsplit(".", 1)[0]


def _package_members(
    cause: Finding, drift: Iterable[Finding], snapshots: Mapping[str, HostSnapshot]
) -> list[Finding]:
    name = cause.key.split(":")[0]
    members = []
    for f in drift:
        if (f.collector == "files" and name in _owners(snapshots, f)) or (
            f.collector == "services"
            and cause.state in _PRESENCE
            and f.state is cause.state
            and _unit_stem(f.key) == name
        ):
            members.append(f)
    return members


def _kernel_members(cause: Finding, drift: Iterable[Finding]) -> list[Finding]:
    globs = KERNEL_LINKS.get(cause.key, ())
    return [
        f
        for f in drift
        if f.collector == "sysctl"
        and f.key != cause.key
        and any(fnmatch.fnmatchcase(f.key, g) for g in globs)
    ]


def _title(cause: Finding) -> str:
    hosts = ", ".join(cause.differing)
    if cause.collector == "packages":
        what = {
            State.MISSING: "missing",
            State.EXTRA: "installed only",
            State.RENAMED: "replaced",
        }.get(cause.state, "at another version")
        return f"package {cause.key} {what} on {hosts}"
    return f"{cause.key} differs on {hosts} (the kernel links other settings to it)"


def _rank(finding: Finding) -> int | None:
    """The order causes are tried in, None for a finding that causes nothing here:
    packages first, then the kernel links in their table's order (ip_forward is the
    cause and conf.all.forwarding its consequence, not the other way round)."""
    if finding.collector == "packages":
        return -1
    if finding.collector == "sysctl" and finding.key in KERNEL_LINKS:
        return list(KERNEL_LINKS).index(finding.key)
    return None


def _members(
    cause: Finding, pool: list[Finding], snapshots: Mapping[str, HostSnapshot]
) -> list[Finding]:
    if cause.collector == "packages":
        return _package_members(cause, pool, snapshots)
    return _kernel_members(cause, pool)


def group_causes(report: DriftReport, snapshots: Mapping[str, HostSnapshot]) -> DriftReport:
    """The report with its cause groups (see the module docstring)."""
    drift = [f for f in report.findings if f.state.is_drift]
    ranked = sorted((r, i) for i, f in enumerate(drift) if (r := _rank(f)) is not None)
    taken: dict[int, str] = {}
    causes: list[Cause] = []
    for _, index in ranked:
        cause = drift[index]
        if id(cause) in taken:
            continue  # already explained by another cause (conf.all.forwarding by ip_forward)
        pool = [
            f
            for f in drift
            if id(f) not in taken and f.role == cause.role and f.differing == cause.differing
        ]
        members = [m for m in _members(cause, pool, snapshots) if m is not cause]
        if not members:
            continue
        ident = f"cause-{len(causes) + 1}"
        causes.append(
            Cause(ident, cause.role, cause.collector, cause.key, _title(cause), len(members))
        )
        for f in (cause, *members):
            taken[id(f)] = ident
    if not causes:
        return report
    findings = tuple(
        replace(f, cause=taken[id(f)]) if id(f) in taken else f for f in report.findings
    )
    return replace(report, findings=findings, causes=tuple(causes))
