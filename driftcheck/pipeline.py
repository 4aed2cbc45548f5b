"""How a report is built, in one place: compare, merge renamed packages, explain,
group findings under their causes, then since when.

Each step takes a :class:`DriftReport` and returns a new one, so a caller without
history (a test, a benchmark) stops after ``explain`` and nothing else differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from driftcheck.causes import group_causes
from driftcheck.collectors import Collector
from driftcheck.drift import compare, compare_pair
from driftcheck.explain import explain
from driftcheck.filediffs import file_diffs
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
    pair: tuple[str, str] | None = None,
) -> DriftReport:
    """The report on ``snapshots``: findings, their explanations and, with ``history``,
    since when each drift has been there. With ``pair`` (reference host, target host)
    only those two hosts are compared (``driftcheck diff``)."""
    if pair is not None:
        report = compare_pair(
            inventory, snapshots, collectors, pair, generated_at, run_started_at, today
        )
    else:
        report = compare(inventory, snapshots, collectors, generated_at, run_started_at, today)
    report = renames(report, snapshots)
    report = explain(report, snapshots)
    report = group_causes(report, snapshots)
    report = file_diffs(report, snapshots)
    if history is not None:
        report = since_when(report, snapshots, history)
    return report
