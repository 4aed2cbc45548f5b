"""Renamed packages: one finding where a package went by another name on one side.

Debian's 64-bit time_t transition renamed libssl3 to libssl3t64 (and some 1,200
others); rpm packages obsolete older names. Compared by name, such a pair is a
"missing" and an unrelated "extra" finding. When the ``package_relations``
evidence says the new name provides or replaces the old one on the hosts that
have it, the two become one ``renamed`` finding keyed by the reference's name.
Pure: a report and its snapshots in, a report out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from driftcheck.findings import DriftReport, Finding, State
from driftcheck.model import HostSnapshot, SectionStatus

PACKAGES, EVIDENCE = "packages", "package_relations"


def renames(report: DriftReport, snapshots: Mapping[str, HostSnapshot]) -> DriftReport:
    """The report with each missing + extra package pair that is one rename merged."""
    relations = {h: _relations(s) for h, s in snapshots.items()}
    merged: dict[int, Finding] = {}
    dropped: set[int] = set()
    findings = report.findings
    candidates = [i for i, f in enumerate(findings) if f.collector == PACKAGES]
    missing = [i for i in candidates if findings[i].state is State.MISSING]
    extra = [i for i in candidates if findings[i].state is State.EXTRA]
    for m in missing:
        for e in extra:
            if e in dropped or m in dropped:
                continue
            found = _rename(findings[m], findings[e], relations)
            if found is not None:
                merged[m], dropped = found, dropped | {m, e}
    out = [merged.get(i, f) for i, f in enumerate(findings) if i in merged or i not in dropped]
    return replace(report, findings=tuple(out))


def _relations(snap: HostSnapshot) -> dict[str, set[str]]:
    """package -> the names it provides or replaces on this host (none if not read)."""
    sec = snap.sections.get(EVIDENCE)
    if sec is None or sec.status is not SectionStatus.OK:
        return {}
    out: dict[str, set[str]] = {}
    for name, rel in sec.facts.items():
        if isinstance(rel, dict):
            out[name] = {str(n) for n in (*rel.get("provides", ()), *rel.get("replaces", ()))}
    return out


def _targets(finding: Finding) -> list[str]:
    return [h for h in finding.values if h not in finding.reference_hosts]


def _rename(
    missing: Finding, extra: Finding, relations: Mapping[str, Mapping[str, set[str]]]
) -> Finding | None:
    """One ``renamed`` finding when ``extra``'s package stands in for ``missing``'s on
    the same hosts, by the evidence of the hosts that have the newer name."""
    if missing.role != extra.role or set(_targets(missing)) != set(_targets(extra)):
        return None
    old, new, hosts = missing.key, extra.key, _targets(missing)
    refs = missing.reference_hosts
    if _stands_in(new, old, hosts, relations):
        how = f"{new} on {', '.join(hosts)} provides or replaces {old}"
    elif _stands_in(old, new, refs, relations):
        how = f"{old} on the reference provides or replaces {new}, which {', '.join(hosts)} has"
    else:
        return None
    values: dict[str, Any] = {h: missing.values.get(h) for h in refs}
    values |= {h: f"{new} {extra.values.get(h)}" for h in hosts}
    return Finding(missing.role, PACKAGES, old, State.RENAMED, values, refs, note=f"renamed: {how}")


def _stands_in(
    new: str, old: str, hosts: Sequence[str], relations: Mapping[str, Mapping[str, set[str]]]
) -> bool:
    """True when, on every one of ``hosts``, package ``new`` provides or replaces ``old``."""
    return bool(hosts) and all(old in relations.get(h, {}).get(new, set()) for h in hosts)
