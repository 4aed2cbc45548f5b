"""The library calls behind the CLI: collect into storage, build a report."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from driftcheck.collectors import REGISTRY, Collector
from driftcheck.drift import DriftReport, Finding, compare
from driftcheck.errors import DriftcheckError
from driftcheck.inventory import Inventory
from driftcheck.model import HostSnapshot
from driftcheck.redact import Redactor
from driftcheck.runner import DEFAULT_JOBS, collect_all, now_iso
from driftcheck.storage import Store


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


def latest_report(
    inventory: Inventory, store: Store, collectors: Sequence[Collector] = REGISTRY
) -> DriftReport:
    """Compare the hosts as the latest finished run saw them."""
    # Two inventories may share a database: report only this one's runs.
    run = store.latest_run(inventory_key(inventory))
    if run is None:
        raise DriftcheckError(
            f"{store.url}: no finished collection yet; run "
            f"'driftcheck collect -i {inventory.path}' first"
        )
    snapshots = store.snapshots(run.id)
    report = compare(inventory, snapshots, collectors, now_iso(), run.started_at)
    return replace(
        report,
        findings=since_when(report.findings, snapshots, store, inventory_key(inventory), run.id),
    )


def since_when(
    findings: tuple[Finding, ...],
    snapshots: Mapping[str, HostSnapshot],
    store: Store,
    inventory: str,
    run_id: int,
) -> tuple[Finding, ...]:
    """Each drift finding with the time its current value was first seen, unchanged
    since, on the host that differs: when the drift started, as far as history goes.

    Consecutive runs that stored the same facts blob are one step (content
    addressing makes "unchanged" a hash comparison), so long quiet histories cost
    little.
    """
    cache: dict[str, dict[str, Any]] = {}
    # One history query per (host, collector), not one per finding.
    histories: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
    out = []
    for finding in findings:
        host = next((h for h in finding.values if h not in finding.reference_hosts), None)
        if not finding.state.is_drift or host is None or host not in snapshots:
            out.append(finding)
            continue
        value = finding.values[host]
        since = snapshots[host].collected_at
        previous_hash: str | None = ""
        where = (host, finding.collector)
        if where not in histories:
            histories[where] = store.section_history(inventory, host, finding.collector, run_id)
        for at, digest in histories[where]:
            if digest is None:
                break  # not collected then: history says nothing further back
            if digest != previous_hash:
                if digest not in cache:
                    cache[digest] = store.facts_of(digest)
                if cache[digest].get(finding.key) != value:
                    break
                previous_hash = digest
            since = at
        out.append(replace(finding, since=since))
    return tuple(out)
