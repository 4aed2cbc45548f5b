"""How a report is built, in one place: compare, merge renamed packages, explain,
then since when.

Each step takes a :class:`DriftReport` and returns a new one, so a caller without
history (a test, a benchmark) stops after ``explain`` and nothing else differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from driftcheck.collectors import Collector
from driftcheck.drift import compare
from driftcheck.explain import explain
from driftcheck.findings import DriftReport
from driftcheck.inventory import Inventory
from driftcheck.model import HostSnapshot
from driftcheck.renames import renames
from driftcheck.since import History, since_when


def build_report(
    inventory: Inventory,
    snapshots: Mapping[str, HostSnapshot],
    collectors: Sequence[Collector],
    generated_at: str,
    run_started_at: str | None = None,
    today: date | None = None,
    history: History | None = None,
) -> DriftReport:
    """The report on ``snapshots``: findings, their explanations and, with ``history``,
    since when each drift has been there."""
    report = compare(inventory, snapshots, collectors, generated_at, run_started_at, today)
    report = renames(report, snapshots)
    report = explain(report, snapshots)
    if history is not None:
        report = since_when(report, snapshots, history)
    return report
