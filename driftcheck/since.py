"""Since when: each finding with the time its drift began, as far as history vouches.

Pure over a :class:`History`: the store answers it for one inventory's earlier
finished runs (see :class:`driftcheck.service.RunHistory`), tests answer it from
a list.

A drift holds while a differing host and the hosts it differs from keep the
values they have now. "Since" is the first run of that unbroken series: a run in
which any of them had another value, was not collected, or whose stored facts
cannot be read ends it. So a sysctl changed on a *production* host dates the drift
from that change, though the staging host never moved; and for an inconsistent
finding the odd host out is the one followed (:attr:`Finding.differing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

from driftcheck.findings import WHOLE, DriftReport, Finding, State
from driftcheck.model import HostSnapshot


class HistoryEntry(NamedTuple):
    """One earlier run as one host's section saw it."""

    run_id: int
    collected_at: str
    #: the facts blob's hash; None when the section was not collected completely
    digest: str | None


class History(Protocol):
    """The earlier runs a report's "since" is read from."""

    def section_history(self, host: str, collector: str) -> Sequence[HistoryEntry]:
        """``host``'s ``collector`` section in the runs before this one, newest first."""
        ...

    def facts_of(self, digest: str) -> dict[str, Any] | None:
        """The facts stored under a blob hash; None when they cannot be read (a
        damaged blob): history then says nothing from there back."""
        ...


_UNKNOWN: Any = object()


@dataclass
class _Lookup:
    """History read once per (host, collector) and blob, shared by every finding."""

    history: History
    runs: dict[tuple[str, str], dict[int, HistoryEntry]]
    blobs: dict[str, dict[str, Any] | None]

    def entries(self, host: str, collector: str) -> dict[int, HistoryEntry]:
        """run id -> entry, newest first."""
        where = (host, collector)
        if where not in self.runs:
            rows = self.history.section_history(host, collector)
            self.runs[where] = {e.run_id: e for e in rows}
        return self.runs[where]

    def value(self, host: str, collector: str, run_id: int, key: str) -> Any:
        """``key``'s value on ``host`` in that run (None when absent), or _UNKNOWN."""
        entry = self.entries(host, collector).get(run_id)
        if entry is None or entry.digest is None:
            return _UNKNOWN
        if entry.digest not in self.blobs:
            self.blobs[entry.digest] = self.history.facts_of(entry.digest)
        facts = self.blobs[entry.digest]
        return _UNKNOWN if facts is None else facts.get(key)


def _held(
    finding: Finding, host: str, snapshots: Mapping[str, HostSnapshot], lookup: _Lookup
) -> tuple[str, int]:
    """(since, runs) for one differing host: back through the runs before this one
    while it and every host it differs from kept their current values."""
    differing = set(finding.differing)
    watched = [host, *(h for h in finding.values if h not in differing)]
    since, runs = snapshots[host].collected_at, 1
    for run_id, entry in lookup.entries(host, finding.collector).items():
        same = all(
            lookup.value(h, finding.collector, run_id, finding.key) == finding.values[h]
            for h in watched
        )
        if not same:
            break
        since, runs = entry.collected_at, runs + 1
    return since, runs


def since_when(
    report: DriftReport, snapshots: Mapping[str, HostSnapshot], history: History
) -> DriftReport:
    """The report with each finding's ``since`` and ``runs_held``: for the differing
    host whose drift is oldest (see the module docstring). Incomplete findings have
    none (what was not read has no age), nor renamed ones (their target value is
    made of two facts).

    Consecutive runs that stored the same facts blob cost one decompression (content
    addressing makes "unchanged" a hash lookup), so long quiet histories cost little.
    """
    lookup = _Lookup(history, {}, {})
    out = []
    for finding in report.findings:
        hosts = [h for h in finding.differing if h in snapshots]
        if (
            finding.state is State.INCOMPLETE
            or finding.key == WHOLE  # a whole section or host: no one value to follow
            # a rename's target value ("libssl3t64 3.5.9") is no fact to look up
            or State.RENAMED in (finding.state, finding.underlying)
            or not hosts
            or finding.collector not in _sections(snapshots, hosts)
        ):
            out.append(finding)
            continue
        since, runs = max((_held(finding, h, snapshots, lookup) for h in hosts), key=_older)
        out.append(replace(finding, since=since, runs_held=runs))
    return replace(report, findings=tuple(out))


def _older(held: tuple[str, int]) -> int:
    """Order by the number of runs held: the longest-held drift is the oldest."""
    return held[1]


def _sections(snapshots: Mapping[str, HostSnapshot], hosts: Sequence[str]) -> set[str]:
    """The collectors every one of ``hosts`` has a section of in this run."""
    return set.intersection(*(set(snapshots[h].sections) for h in hosts))
