"""Since when: the first run in which the differing host had its current value."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import text

from driftcheck.collectors import BY_NAME
from driftcheck.findings import DriftReport, Finding, State
from driftcheck.inventory import parse_inventory
from driftcheck.model import HostStatus, SectionResult, SectionStatus
from driftcheck.reports.common import age_words, since_label
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


INV3 = """\
defaults: {transport: local}
environments:
  production: {hosts: {prod1: {roles: [web]}, prod2: {roles: [web]}}}
  staging: {hosts: {stg1: {roles: [web]}}}
compare: {reference: production, targets: [staging]}
"""


def night3(store: Store, key: str, when: str, values: dict[str, str]) -> None:
    """One finished run of prod1, prod2, stg1 with these values of sysctl ``a``."""
    run = store.start_run(key, when)
    for host, value in values.items():
        env = "staging" if host.startswith("stg") else "production"
        snap = snapshot(host, env, ["web"], {"sysctl": {"a": value}})
        snap.collected_at = when
        store.add_snapshot(run, snap)
    store.finish_run(run, when)


def report3(tmp_path: Path, nights: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    inv_path = tmp_path / "inv.yaml"
    inv_path.write_text(INV3)
    inv = parse_inventory(INV3, inv_path)
    store = Store(f"sqlite:///{tmp_path / 'dc.db'}")
    for when, values in nights:
        night3(store, inventory_key(inv), when, values)
    (finding,) = latest_report(inv, store, [BY_NAME["sysctl"]]).findings
    return {"since": finding.since, "runs": finding.runs_held, "state": finding.state.value}


def test_a_change_on_the_reference_side_dates_the_drift(tmp_path: Path) -> None:
    # The case: sysctl -w on production between run 1 and run 2; staging never
    # moved, yet the drift began in run 2.
    got = report3(
        tmp_path,
        [
            ("2026-11-01T02:00:00+00:00", {"prod1": "1", "prod2": "1", "stg1": "1"}),
            ("2026-11-02T02:00:00+00:00", {"prod1": "5", "prod2": "5", "stg1": "1"}),
            ("2026-11-03T02:00:00+00:00", {"prod1": "5", "prod2": "5", "stg1": "1"}),
        ],
    )
    assert got == {"since": "2026-11-02T02:00:00+00:00", "runs": 2, "state": "changed"}


def test_an_inconsistent_finding_follows_the_odd_reference_host(tmp_path: Path) -> None:
    # prod2 is the odd one out from run 2 on; stg1 and prod1 never changed.
    got = report3(
        tmp_path,
        [
            ("2026-11-01T02:00:00+00:00", {"prod1": "7200", "prod2": "7200", "stg1": "7200"}),
            ("2026-11-02T02:00:00+00:00", {"prod1": "7200", "prod2": "600", "stg1": "7200"}),
            ("2026-11-03T02:00:00+00:00", {"prod1": "7200", "prod2": "600", "stg1": "7200"}),
        ],
    )
    assert got == {"since": "2026-11-02T02:00:00+00:00", "runs": 2, "state": "inconsistent"}


def test_new_in_this_run_and_age_in_words() -> None:
    base = Finding("web", "sysctl", "a", State.CHANGED, {"p": "1", "s": "2"}, ("p",))
    report = DriftReport(
        "now",
        "inv",
        "production",
        ("staging",),
        "2026-11-13T02:00:00+00:00",
        (),
        (base,),
        {},
        1,
        (),
    )
    cases = [
        (("2026-11-13T02:00:05+00:00", 1), "new in this run"),
        (("2026-11-01T02:00:00+00:00", 9), "for 12 days, 9 runs"),
        (("2026-11-12T20:00:00+00:00", 2), "for 6 hours, 2 runs"),
        (("2026-11-12T02:00:00+00:00", 2), "for 1 day, 2 runs"),
    ]
    for (since, runs), words in cases:
        finding = replace(base, since=since, runs_held=runs)
        assert age_words(finding, report) == words
        assert since_label(finding, report) == f"since {since} ({words})"
    assert age_words(base, report) == ""  # no history: nothing claimed
