"""Since when: each drift finding with the time its differing value first appeared.

Pure over a :class:`History`: the store answers it for one inventory's earlier
finished runs (see :class:`driftcheck.service.RunHistory`), tests answer it from
a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol

from driftcheck.findings import DriftReport
from driftcheck.model import HostSnapshot


class History(Protocol):
    """The earlier runs a report's "since" is read from."""

    def section_history(self, host: str, collector: str) -> list[tuple[str, str | None]]:
        """(collected_at, facts blob hash or None when not collected) of ``host``'s
        ``collector`` section in the runs before this one, newest first."""
        ...

    def facts_of(self, digest: str) -> dict[str, Any] | None:
        """The facts stored under a blob hash; None when they cannot be read (a
        damaged blob): history then says nothing from there back."""
        ...


def since_when(
    report: DriftReport, snapshots: Mapping[str, HostSnapshot], history: History
) -> DriftReport:
    """The report with each drift finding's ``since``: the time its current value was
    first seen, unchanged since, on the host that differs; when the drift started,
    as far as history goes.

    Consecutive runs that stored the same facts blob are one step (content
    addressing makes "unchanged" a hash comparison), so long quiet histories cost
    little.
    """
    cache: dict[str, dict[str, Any] | None] = {}
    # One history query per (host, collector), not one per finding.
    histories: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    out = []
    for finding in report.findings:
        host = next((h for h in finding.values if h not in finding.reference_hosts), None)
        if not finding.state.is_drift or host is None or host not in snapshots:
            out.append(finding)
            continue
        value = finding.values[host]
        since = snapshots[host].collected_at
        previous_hash: str | None = ""
        where = (host, finding.collector)
        if where not in histories:
            histories[where] = history.section_history(host, finding.collector)
        for at, digest in histories[where]:
            if digest is None:
                break  # not collected then: history says nothing further back
            if digest != previous_hash:
                if digest not in cache:
                    cache[digest] = history.facts_of(digest)
                facts = cache[digest]
                if facts is None or facts.get(finding.key) != value:
                    break
                previous_hash = digest
            since = at
        out.append(replace(finding, since=since))
    return replace(report, findings=tuple(out))
