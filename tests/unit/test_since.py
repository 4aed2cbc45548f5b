"""Since when: the first run in which the differing host had its current value."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from driftcheck.collectors import BY_NAME
from driftcheck.inventory import parse_inventory
from driftcheck.model import HostStatus, SectionResult, SectionStatus
from driftcheck.service import inventory_key, latest_report
from driftcheck.storage import Store
from tests.support.helpers import snapshot

INV = """\
defaults: {transport: local}
environments:
  production: {hosts: {prod1: {roles: [web]}}}
  staging: {hosts: {stg1: {roles: [web]}}}
compare: {reference: production, targets: [staging]}
"""


def night(store: Store, key: str, when: str, stg: dict[str, str], ok: bool = True) -> None:
    run = store.start_run(key, when)
    prod = snapshot("prod1", "production", ["web"], {"sysctl": {"a": "1", "b": "1"}})
    stg_snap = snapshot("stg1", "staging", ["web"], {"sysctl": stg})
    if not ok:
        stg_snap = snapshot(
            "stg1",
            "staging",
            ["web"],
            {"sysctl": SectionResult("sysctl", SectionStatus.MISSING, error="down")},
            HostStatus.FAILED,
            "down",
        )
    for snap in (prod, stg_snap):
        snap.collected_at = when
        store.add_snapshot(run, snap)
    store.finish_run(run, when)


def test_since_is_when_the_current_value_first_appeared(tmp_path: Path) -> None:
    inv_path = tmp_path / "inv.yaml"
    inv_path.write_text(INV)
    inv = parse_inventory(INV, inv_path)
    store = Store(f"sqlite:///{tmp_path / 'dc.db'}")
    key = inventory_key(inv)
    night(store, key, "2026-11-01", {"a": "1", "b": "1"})
    night(store, key, "2026-11-02", {"a": "2", "b": "1"})  # a drifts here
    night(store, key, "2026-11-03", {"a": "2", "b": "1"})
    night(store, key, "2026-11-04", {"a": "2", "b": "1"}, ok=False)  # stg1 down
    night(store, key, "2026-11-05", {"a": "2", "b": "3"})  # b drifts here
    night(store, key, "2026-11-06", {"a": "2", "b": "3"})
    report = latest_report(inv, store, [BY_NAME["sysctl"]])
    since = {f.key: f.since for f in report.findings}
    # a: the down night breaks what history can vouch for
    assert since == {"a": "2026-11-05", "b": "2026-11-05"}
    night(store, key, "2026-11-07", {"a": "2", "b": "3"})
    since = {f.key: f.since for f in latest_report(inv, store, [BY_NAME["sysctl"]]).findings}
    assert since == {"a": "2026-11-05", "b": "2026-11-05"}


def test_since_goes_back_through_quiet_history(tmp_path: Path) -> None:
    inv_path = tmp_path / "inv.yaml"
    inv_path.write_text(INV)
    inv = parse_inventory(INV, inv_path)
    store = Store(f"sqlite:///{tmp_path / 'dc.db'}")
    key = inventory_key(inv)
    night(store, key, "2026-10-01", {"a": "1", "b": "1"})
    for day in range(2, 20):
        night(store, key, f"2026-10-{day:02d}", {"a": "9", "b": "1"})
    (finding,) = latest_report(inv, store, [BY_NAME["sysctl"]]).findings
    assert finding.key == "a" and finding.since == "2026-10-02"


def test_a_damaged_blob_in_history_ends_what_it_can_vouch_for(tmp_path: Path) -> None:
    inv_path = tmp_path / "inv.yaml"
    inv_path.write_text(INV)
    inv = parse_inventory(INV, inv_path)
    store = Store(f"sqlite:///{tmp_path / 'dc.db'}")
    key = inventory_key(inv)
    night(store, key, "2026-10-01", {"a": "1", "b": "1"})
    night(store, key, "2026-10-02", {"a": "9", "b": "2"})  # a drifts here; b too, for a night
    night(store, key, "2026-10-03", {"a": "9", "b": "1"})
    night(store, key, "2026-10-04", {"a": "9", "b": "1"})
    with store.engine.begin() as db:  # the 10-02 facts of stg1 go bad on disk
        db.execute(
            text(
                "update blobs set data = x'00' where hash = (select facts_hash from sections"
                " join snapshots on snapshots.id = snapshot_id"
                " where host = 'stg1' and collected_at = '2026-10-02')"
            )
        )
    (finding,) = latest_report(inv, store, [BY_NAME["sysctl"]]).findings
    assert finding.key == "a" and finding.since == "2026-10-03"
