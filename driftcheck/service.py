"""The library calls behind the CLI: collect into storage, build a report."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from driftcheck.collectors import REGISTRY, Collector
from driftcheck.drift import volatile_matcher
from driftcheck.errors import DriftcheckError
from driftcheck.findings import DriftReport, Finding, State, TrendPoint, WaiverRecord
from driftcheck.inventory import Inventory
from driftcheck.model import Host, HostSnapshot
from driftcheck.pipeline import build_report
from driftcheck.redact import Redactor
from driftcheck.runner import DEFAULT_JOBS, collect_all, now_iso
from driftcheck.since import HistoryEntry
from driftcheck.storage import PruneResult, RunInfo, Store
from driftcheck.timeline import FactChange, host_changes, pick_run
from driftcheck.when import parse_iso

#: Runs shown in the HTML report's drift-over-time chart.
TREND_RUNS = 14


def inventory_key(inventory: Inventory) -> str:
    """How runs remember their inventory: its absolute path."""
    return str(inventory.path.resolve())


def collect(
    inventory: Inventory,
    store: Store,
    redactor: Redactor,
    jobs: int = DEFAULT_JOBS,
    collectors: Sequence[Collector] = REGISTRY,
    on_host: Callable[[HostSnapshot], None] | None = None,
) -> tuple[int, list[HostSnapshot]]:
    """Collect every host of ``inventory`` into a new run; return (run id, snapshots).

    A run is marked finished only when every host has been stored, so an
    interrupted collection is never used for a report.
    """
    run_id = store.start_run(inventory_key(inventory), now_iso())
    snapshots = []
    for snap in collect_all(inventory.hosts, collectors, inventory.collect, redactor, jobs):
        store.add_snapshot(run_id, snap)
        snapshots.append(snap)
        if on_host is not None:
            on_host(snap)
    store.finish_run(run_id, now_iso())
    return run_id, snapshots


@dataclass(frozen=True)
class RunHistory:
    """The finished runs of one inventory before one run: what "since" is read from."""

    store: Store
    inventory: str
    run_id: int

    def section_history(self, host: str, collector: str) -> list[HistoryEntry]:
        """See :meth:`driftcheck.since.History.section_history`."""
        return self.store.section_history(self.inventory, host, collector, self.run_id)

    def facts_of(self, digest: str) -> dict[str, Any] | None:
        """See :meth:`driftcheck.since.History.facts_of`."""
        return self.store.facts_of(digest)


def latest_report(
    inventory: Inventory, store: Store, collectors: Sequence[Collector] = REGISTRY
) -> DriftReport:
    """Compare the hosts as the latest finished run saw them."""
    return run_report(inventory, store, choose_run(inventory, store), collectors)


def choose_run(
    inventory: Inventory, store: Store, run_id: int | None = None, at: str | None = None
) -> RunInfo:
    """The finished run of ``inventory`` a command reads (see :func:`pick_run`)."""
    # Two inventories may share a database: only this one's runs count.
    key = inventory_key(inventory)
    return pick_run(store, key, str(inventory.path), run_id, at, datetime.now(UTC))


def run_report(
    inventory: Inventory,
    store: Store,
    run: RunInfo,
    collectors: Sequence[Collector] = REGISTRY,
    pair: tuple[str, str] | None = None,
    keys: str | None = None,
    trend: int = 0,
    snapshots: Mapping[str, HostSnapshot] | None = None,
) -> DriftReport:
    """Compare the hosts as ``run`` saw them, with since when from the runs before it.
    ``pair``: only these two hosts; ``keys``: only the keys this glob matches;
    ``trend``: the drift and incomplete counts of up to that many runs, this one
    the last (for the HTML report's chart; each earlier run is compared again);
    ``snapshots``: the run's snapshots when the caller has read them already."""
    if snapshots is None:
        snapshots = store.snapshots(run.id)
    if keys is not None:
        snapshots = {h: only_keys(snap, keys) for h, snap in snapshots.items()}
    history = RunHistory(store, inventory_key(inventory), run.id)
    report = build_report(
        inventory, snapshots, collectors, now_iso(), run.started_at, history=history, pair=pair
    )
    if trend > 1 and pair is None and keys is None:
        earlier = run_summaries(inventory, store, None, trend - 1, collectors, before=run.id)
        _, _, drift, unknown, _ = summarize(report, None)
        points = [TrendPoint(r.run.id, r.run.started_at, r.drift, r.incomplete) for r in earlier]
        points.append(TrendPoint(run.id, run.started_at, drift, unknown))
        report = dc_replace(report, trend=tuple(points))
    return report


def only_keys(snap: HostSnapshot, glob: str) -> HostSnapshot:
    """``snap`` with each section's facts and key errors limited to keys ``glob``
    matches (the section's status stays: an unreadable section is still unknown)."""
    match = re.compile(fnmatch.translate(glob)).fullmatch
    sections = {
        name: dc_replace(
            sec,
            facts={k: v for k, v in sec.facts.items() if match(k)},
            errors={k: v for k, v in sec.errors.items() if match(k)},
        )
        for name, sec in snap.sections.items()
    }
    return dc_replace(snap, sections=sections)


@dataclass(frozen=True)
class RunSummary:
    """One finished run as ``driftcheck history`` lists it."""

    run: RunInfo
    hosts: int
    complete: int
    drift: int
    incomplete: int
    accepted: int


def summarize(report: DriftReport, hosts: set[str] | None) -> tuple[int, int, int, int, int]:
    """(hosts, collected completely, drift, incomplete, waived or ignored) of a report,
    counting only findings about ``hosts`` (every host when None)."""

    def about(finding: Finding) -> bool:
        return hosts is None or bool(hosts & set(finding.differing))

    rows = [h for h in report.hosts if hosts is None or h.name in hosts]
    drift = sum(f.state.is_drift and about(f) for f in report.findings)
    unknown = sum(f.state is State.INCOMPLETE and about(f) for f in report.findings)
    accepted = sum(f.state in (State.WAIVED, State.IGNORED) and about(f) for f in report.findings)
    return len(rows), sum(h.complete for h in rows), drift, unknown, accepted


def run_summaries(
    inventory: Inventory,
    store: Store,
    hosts: set[str] | None = None,
    last: int = 20,
    collectors: Sequence[Collector] = REGISTRY,
    before: int | None = None,
) -> list[RunSummary]:
    """The last ``last`` finished runs of ``inventory`` (before run ``before``, when
    given), oldest first, each compared as it was (with today's rules: the inventory
    is read as it is now)."""
    runs = [r for r in store.runs(inventory_key(inventory)) if before is None or r.id < before]
    out = []
    for run in runs[-last:]:
        snapshots = store.snapshots(run.id)
        report = build_report(inventory, snapshots, collectors, now_iso(), run.started_at)
        out.append(RunSummary(run, *summarize(report, hosts)))
    return out


def changes(
    inventory: Inventory,
    store: Store,
    hosts: Sequence[Host],
    since: datetime | None,
    collectors: Sequence[Collector] = REGISTRY,
) -> list[FactChange]:
    """What changed on each of ``hosts`` from one finished run to the next, since
    ``since`` (every run when None), oldest first; volatile keys skipped."""
    volatile = volatile_matcher(collectors, dict(inventory.include_volatile))
    by_name = {c.name: c for c in collectors}
    key = inventory_key(inventory)
    out: list[FactChange] = []
    for host in hosts:
        series = store.host_series(key, host.name)
        out.extend(host_changes(store, series, host.name, by_name, volatile, since))
    return sorted(out, key=lambda c: (c.run_id, c.host, c.collector, c.key))


def prune_runs(
    inventory: Inventory,
    store: Store,
    keep_days: int | None,
    keep_runs: int | None,
    now: datetime,
) -> tuple[list[RunInfo], PruneResult]:
    """Delete the finished runs of ``inventory`` older than ``keep_days`` or beyond
    the newest ``keep_runs`` (the newest run always stays), then every blob only
    they used; returns the runs removed and the counts."""
    runs = store.runs(inventory_key(inventory))
    keep = set(r.id for r in runs[-1:])
    if keep_runs is not None:
        keep |= {r.id for r in runs[-keep_runs:]} if keep_runs > 0 else set()
    else:
        keep |= {r.id for r in runs}
    if keep_days is not None:
        cutoff = now - timedelta(days=keep_days)
        keep -= {r.id for r in runs[:-1] if (parse_iso(r.started_at) or now) < cutoff}
    doomed = [r for r in runs if r.id not in keep]
    result = store.prune(inventory_key(inventory), [r.id for r in doomed])
    store.compact()
    return doomed, result


@dataclass(frozen=True)
class WaiverStatus:
    """One waiver of the inventory as ``driftcheck waivers`` lists it."""

    waiver: WaiverRecord
    #: active, expiring (within the days asked), expired
    state: str
    #: findings of the latest run it covers; None when there is no run to look at
    covers: int | None

    @property
    def stale(self) -> bool:
        """True when the latest run has no drift this waiver covers."""
        return self.covers == 0


def waiver_status(
    inventory: Inventory, store: Store, days: int, today: date
) -> tuple[list[WaiverStatus], RunInfo | None]:
    """Every waiver with its state on ``today`` and what it covers in the latest run
    (None for each when nothing was collected yet), and that run."""
    records = [w.record() for w in inventory.rules.waivers]
    try:
        run = choose_run(inventory, store)
    except DriftcheckError:
        run = None
    used: dict[WaiverRecord, int] | None = None
    if run is not None:
        report = run_report(inventory, store, run)
        used = dict.fromkeys(records, 0)
        for f in report.findings:
            if f.waiver is not None and f.waiver in used:
                used[f.waiver] += 1
    out = []
    for w in records:
        if today > w.expires:
            state = "expired"
        elif (w.expires - today).days <= days:
            state = "expiring"
        else:
            state = "active"
        out.append(WaiverStatus(w, state, None if used is None else used[w]))
    return out, run
