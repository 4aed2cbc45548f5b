"""The library calls behind the CLI: collect into storage, build a report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from driftcheck.collectors import REGISTRY, Collector
from driftcheck.errors import DriftcheckError
from driftcheck.findings import DriftReport
from driftcheck.inventory import Inventory
from driftcheck.model import HostSnapshot
from driftcheck.pipeline import build_report
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


@dataclass(frozen=True)
class RunHistory:
    """The finished runs of one inventory before one run: what "since" is read from."""

    store: Store
    inventory: str
    run_id: int

    def section_history(self, host: str, collector: str) -> list[tuple[str, str | None]]:
        """See :meth:`driftcheck.since.History.section_history`."""
        return self.store.section_history(self.inventory, host, collector, self.run_id)

    def facts_of(self, digest: str) -> dict[str, Any] | None:
        """See :meth:`driftcheck.since.History.facts_of`."""
        return self.store.facts_of(digest)


def latest_report(
    inventory: Inventory, store: Store, collectors: Sequence[Collector] = REGISTRY
) -> DriftReport:
    """Compare the hosts as the latest finished run saw them."""
    # Two inventories may share a database: report only this one's runs.
    key = inventory_key(inventory)
    run = store.latest_run(key)
    if run is None:
        raise DriftcheckError(
            f"{store.url}: no finished collection yet; run "
            f"'driftcheck collect -i {inventory.path}' first"
        )
    snapshots = store.snapshots(run.id)
    history = RunHistory(store, key, run.id)
    return build_report(
        inventory, snapshots, collectors, now_iso(), run.started_at, history=history
    )
