"""Reading history: which run a command reads, two hosts compared, what changed on a
host from run to run, and pruning old runs (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from driftcheck.collectors import BY_NAME
from driftcheck.errors import DriftcheckError
from driftcheck.findings import Finding
from driftcheck.inventory import Inventory, parse_inventory
from driftcheck.service import (
    changes,
    choose_run,
    inventory_key,
    prune_runs,
    run_report,
    run_summaries,
)
from driftcheck.storage import Blob, Run, Store
from driftcheck.when import point
from tests.support.helpers import snapshot

INV = """\
defaults: {transport: local}
environments:
  production: {hosts: {prod1: {roles: [web]}, prod2: {roles: [web]}}}
  staging: {hosts: {stg1: {roles: [web]}}}
  dev: {hosts: {dev1: {roles: [db]}}}
compare: {reference: production, targets: [staging]}
rules:
  ignore:
    - {collector: sysctl, key: net.c, reason: each host has its own name}
"""
SYSCTL = [BY_NAME["sysctl"]]
NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)


def inv_at(tmp_path: Path) -> Inventory:
    path = tmp_path / "inv.yaml"
    path.write_text(INV)
    return parse_inventory(INV, path)


def night(store: Store, inv: Inventory, day: int, stg1: dict[str, str]) -> int:
    """A finished run on 2026-11-DAY at 02:00: prod hosts steady, stg1 as given."""
    when = f"2026-11-{day:02d}T02:00:00+00:00"
    run = store.start_run(inventory_key(inv), when)
    for host, env, roles, facts in (
        ("prod1", "production", ["web"], {"a": "1", "b": "1", "net.c": "prod1"}),
        ("prod2", "production", ["web"], {"a": "1", "b": "1", "net.c": "prod2"}),
        ("stg1", "staging", ["web"], stg1 | {"net.c": "stg1"}),
        ("dev1", "dev", ["db"], {"a": "7", "net.c": "dev1"}),
    ):
        snap = snapshot(host, env, roles, {"sysctl": facts})
        snap.collected_at = when
        store.add_snapshot(run, snap)
    store.finish_run(run, when)
    return run


@pytest.fixture
def three(store: Store, tmp_path: Path) -> tuple[Inventory, Store, list[int]]:
    """Run 1 clean, run 2 stg1's a drifts, run 3 a drifts further and b too."""
    inv = inv_at(tmp_path)
    runs = [
        night(store, inv, 1, {"a": "1", "b": "1"}),
        night(store, inv, 2, {"a": "2", "b": "1"}),
        night(store, inv, 3, {"a": "3", "b": "5"}),
    ]
    return inv, store, runs


def test_run_chosen_by_id_by_time_or_latest(three: tuple[Inventory, Store, list[int]]) -> None:
    inv, store, runs = three
    assert choose_run(inv, store).id == runs[2]
    assert choose_run(inv, store, run_id=runs[0]).id == runs[0]
    assert choose_run(inv, store, at="2026-11-02").id == runs[1]  # a date: its end
    assert choose_run(inv, store, at="2026-11-02T01:00:00+00:00").id == runs[0]
    with pytest.raises(DriftcheckError, match=r"--at 2026-10-01: no finished run"):
        choose_run(inv, store, at="2026-10-01")
    with pytest.raises(DriftcheckError, match=r"--run 999: no such run of .*history"):
        choose_run(inv, store, run_id=999)
    with pytest.raises(DriftcheckError, match="not a time"):
        choose_run(inv, store, at="last tuesday")


def test_the_report_as_it_was(three: tuple[Inventory, Store, list[int]]) -> None:
    inv, store, runs = three

    def drift(run_id: int) -> list[Finding]:
        report = run_report(inv, store, choose_run(inv, store, run_id), SYSCTL)
        return [f for f in report.findings if f.state.is_drift]

    assert drift(runs[0]) == []
    (a,) = drift(runs[1])
    assert (a.key, a.values["stg1"], a.since, a.runs_held) == (
        "a",
        "2",
        "2026-11-02T02:00:00+00:00",
        1,
    )


def test_two_hosts_of_any_environments(three: tuple[Inventory, Store, list[int]]) -> None:
    inv, store, _ = three
    latest = choose_run(inv, store)
    rep = run_report(inv, store, latest, SYSCTL, pair=("prod2", "stg1"))
    assert rep.pair == ("prod2", "stg1") and rep.subject == (
        "stg1 (staging) compared with prod2 (production)"
    )
    assert {f.key: f.state.value for f in rep.findings} == {
        "a": "changed",
        "b": "changed",
        "net.c": "ignored",
    }
    # Two hosts with no role in common: compared all the same, role-free rules apply.
    other = run_report(inv, store, latest, SYSCTL, pair=("dev1", "stg1"))
    assert {f.role for f in other.findings} == {"db/web"}
    assert {f.key: f.state.value for f in other.findings}["net.c"] == "ignored"
    only = run_report(inv, store, latest, SYSCTL, pair=("prod2", "stg1"), keys="b")
    assert [f.key for f in only.findings] == ["b"]


def test_what_changed_from_run_to_run(three: tuple[Inventory, Store, list[int]]) -> None:
    inv, store, runs = three
    found = changes(inv, store, [inv.host("stg1")], None, SYSCTL)
    assert [(c.run_id, c.key, c.before, c.after) for c in found] == [
        (runs[1], "a", "1", "2"),
        (runs[2], "a", "2", "3"),
        (runs[2], "b", "1", "5"),
    ]
    since = point("2026-11-03", "--since", NOW, end_of_day=False)
    assert len(changes(inv, store, [inv.host("stg1")], since, SYSCTL)) == 2
    assert changes(inv, store, [inv.host("prod1")], None, SYSCTL) == []


def test_history_counts(three: tuple[Inventory, Store, list[int]]) -> None:
    inv, store, runs = three
    rows = run_summaries(inv, store, None, 20, SYSCTL)
    assert [(r.run.id, r.drift, r.accepted) for r in rows] == [
        (runs[0], 0, 1),
        (runs[1], 1, 1),
        (runs[2], 2, 1),
    ]
    assert [r.drift for r in run_summaries(inv, store, {"prod1"}, 20, SYSCTL)] == [0, 0, 0]


def test_prune_removes_old_runs_and_only_their_blobs(
    three: tuple[Inventory, Store, list[int]],
) -> None:
    inv, store, runs = three
    with store.engine.connect() as con:
        blobs_before = con.execute(select(func.count()).select_from(Blob)).scalar_one()
    removed, result = prune_runs(inv, store, None, 2, NOW)
    assert [r.id for r in removed] == [runs[0]] and result.runs == 1
    # Run 1's stg1 facts ({a: 1, b: 1}) were its own; the prod facts are shared.
    assert result.blobs == 1 and result.sections == 4
    with store.engine.connect() as con:
        assert con.execute(select(func.count()).select_from(Blob)).scalar_one() == blobs_before - 1
        assert con.execute(select(func.count()).select_from(Run)).scalar_one() == 2
    # What is kept still reads whole; "since" reaches back as far as what is kept.
    (a, b) = [
        f for f in run_report(inv, store, choose_run(inv, store), SYSCTL).findings if f.key in "ab"
    ]
    assert (a.values["stg1"], b.values["stg1"]) == ("3", "5")
    removed, _ = prune_runs(inv, store, 0, None, NOW)
    assert [r.id for r in removed] == [runs[1]]  # the newest run always stays
