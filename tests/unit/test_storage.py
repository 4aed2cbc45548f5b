"""Storage: round trips, content addressing, finished runs only."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from driftcheck.errors import DriftcheckError
from driftcheck.model import HostStatus, SectionResult, SectionStatus
from driftcheck.storage import CONNECT_TIMEOUT, DAMAGED, Store, engine_options
from tests.support.helpers import snapshot


def store_at(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'dc.db'}")


def test_round_trip(store: Store) -> None:
    run = store.start_run("inv.yaml", "t0")
    facts = {"k": "v", "nested": {"a": [1, 2]}}
    snap = snapshot("h1", "production", ["web"], {"sysctl": facts})
    snap.sections["sysctl"].raw = "k = v\n"
    store.add_snapshot(run, snap)
    store.finish_run(run, "t1")
    loaded = store.snapshots(run)["h1"]
    assert loaded.sections["sysctl"].facts == facts
    assert loaded.roles == ("web",) and loaded.status is HostStatus.OK
    assert store.latest_snapshot("h1", raw=True).sections["sysctl"].raw == "k = v\n"  # type: ignore[union-attr]


def test_unfinished_runs_are_never_reported(store: Store) -> None:
    done = store.start_run("inv.yaml", "t0")
    store.add_snapshot(done, snapshot("h1", "production", ["web"], {"os": {"a": "1"}}))
    store.finish_run(done, "t1")
    half = store.start_run("inv.yaml", "t2")
    store.add_snapshot(half, snapshot("h1", "production", ["web"], {"os": {"a": "2"}}))
    latest = store.latest_run()
    assert latest is not None and latest.id == done
    assert store.latest_snapshot("h1").sections["os"].facts == {"a": "1"}  # type: ignore[union-attr]


def test_unchanged_sections_are_not_stored_again(store: Store) -> None:
    facts = {f"net.key{i}": str(i) for i in range(2000)}
    for night in range(5):
        run = store.start_run("inv.yaml", f"t{night}")
        snap = snapshot("h1", "production", ["web"], {"sysctl": facts})
        snap.sections["sysctl"].raw = "\n".join(f"{k} = {v}" for k, v in facts.items())
        store.add_snapshot(run, snap)
        store.finish_run(run, f"t{night}")
    with store.engine.connect() as db:
        assert db.execute(text("select count(*) from blobs")).scalar() == 2  # facts + raw, once
        assert db.execute(text("select count(*) from sections")).scalar() == 5


def test_failed_sections_keep_status_and_error(store: Store) -> None:
    run = store.start_run("inv.yaml", "t0")
    sec = SectionResult("packages", SectionStatus.TIMEOUT, error="section timed out", rc="124")
    store.add_snapshot(
        run, snapshot("h1", "staging", ["web"], {"packages": sec}, HostStatus.PARTIAL, "slow")
    )
    store.finish_run(run, "t1")
    got = store.snapshots(run)["h1"]
    assert got.status is HostStatus.PARTIAL and got.error == "slow"
    assert got.sections["packages"].status is SectionStatus.TIMEOUT
    assert got.sections["packages"].error == "section timed out"


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store_at(tmp_path)
    mode = sqlite3.connect(tmp_path / "dc.db").execute("pragma journal_mode").fetchone()
    assert mode == ("wal",)


def test_bad_urls_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(DriftcheckError, match="not a usable database URL"):
        Store("nonsense://")
    with pytest.raises(DriftcheckError, match="cannot open the database"):
        Store(f"sqlite:///{tmp_path}/no/such/dir/x.db")


def test_database_password_never_shown() -> None:
    with pytest.raises(DriftcheckError) as info:
        Store("postgresql+psycopg://app:S3cretPw@127.0.0.1:1/x")
    assert "S3cretPw" not in str(info.value) and "app:***@" in str(info.value)
    assert "\n" not in str(info.value)


def store_one(store: Store) -> tuple[int, str]:
    """A run of one host with two sections; returns the run and the sysctl facts' hash."""
    run = store.start_run("inv.yaml", "t0")
    snap = snapshot("h1", "production", ["web"], {"sysctl": {"k": "v"}, "os": {"id": "debian"}})
    snap.sections["sysctl"].raw = "k = v\n"
    store.add_snapshot(run, snap)
    store.finish_run(run, "t1")
    with store.engine.connect() as db:
        digest = db.execute(
            text("select facts_hash from sections where collector = 'sysctl' limit 1")
        ).scalar_one()
    return run, str(digest)


def damage(store: Store, digest: str, data: bytes) -> None:
    """Overwrite a blob's stored bytes behind the store's back, as a bad disk would."""
    with store.engine.begin() as db:
        db.execute(text("update blobs set data = :d where hash = :h"), {"d": data, "h": digest})


@pytest.mark.parametrize(
    "data",
    [
        zlib.compress(b'{"k":"forged"}'),  # decompresses, but not to what the hash says
        b"not zlib at all",
        zlib.compress(b'{"k":"v"}')[:-3],  # cut short
    ],
    ids=["other content", "not compressed", "truncated"],
)
def test_a_damaged_blob_makes_only_its_section_incomplete(store: Store, data: bytes) -> None:
    run, digest = store_one(store)
    damage(store, digest, data)
    got = store.snapshots(run)["h1"]
    assert got.sections["sysctl"].status is SectionStatus.ERROR
    assert got.sections["sysctl"].error == DAMAGED and got.sections["sysctl"].facts == {}
    assert got.sections["os"].facts == {"id": "debian"}  # the rest still reads
    assert got.status is HostStatus.PARTIAL and got.error == f"sysctl: {DAMAGED}"
    assert store.facts_of(digest) is None


def test_the_next_collection_stores_a_damaged_blob_again(store: Store) -> None:
    run, digest = store_one(store)
    damage(store, digest, b"garbage")
    again, _ = store_one(store)  # the same facts, collected the next night
    for r in (again, run):  # the old snapshot shares the blob: it heals too
        assert store.snapshots(r)["h1"].sections["sysctl"].facts == {"k": "v"}
    assert store.facts_of(digest) == {"k": "v"}


def test_damaged_raw_output_is_reported_not_raised(store: Store) -> None:
    store_one(store)
    with store.engine.connect() as db:
        raw_hash = db.execute(
            text("select raw_hash from sections where collector = 'sysctl' limit 1")
        ).scalar_one()
    damage(store, str(raw_hash), zlib.compress(b"\xff\xfe"))
    shown = store.latest_snapshot("h1", raw=True)
    assert shown is not None and shown.sections["sysctl"].error == DAMAGED
    plain = store.latest_snapshot("h1")  # reports never read the raw output
    assert plain is not None and plain.sections["sysctl"].facts == {"k": "v"}


def good_database(tmp_path: Path) -> Path:
    store = store_at(tmp_path)
    store_one(store)
    store.close()
    with sqlite3.connect(tmp_path / "dc.db") as con:  # everything into the main file
        con.execute("pragma wal_checkpoint(truncate)")
    return tmp_path / "dc.db"


def drop_table(db: Path, table: str) -> None:
    with sqlite3.connect(db) as con:
        con.execute("pragma foreign_keys=off")
        con.execute(f"drop table {table}")


@pytest.mark.parametrize(
    ("damage_it", "why"),
    [
        (lambda db: db.write_text("name,value\nnot,sqlite\n"), "file is not a database"),
        (lambda db: db.write_bytes(db.read_bytes()[:8192]), "database disk image is malformed"),
        (lambda db: drop_table(db, "sections"), "table sections missing"),
        (lambda db: drop_table(db, "driftcheck_meta"), "table driftcheck_meta missing"),
    ],
    ids=["not sqlite", "truncated", "table missing", "no schema table"],
)
def test_a_damaged_database_file_is_one_line_saying_what_to_do(
    tmp_path: Path, damage_it: Callable[[Path], object], why: str
) -> None:
    damage_it(good_database(tmp_path))
    with pytest.raises(DriftcheckError) as info:
        Store(f"sqlite:///{tmp_path / 'dc.db'}").latest_run()
    message = str(info.value)
    assert message == (
        f"--db sqlite:///{tmp_path / 'dc.db'}: not a driftcheck database or damaged ({why}); "
        "restore it from a backup or point --db at a new file"
    )


def test_a_snapshot_whose_sections_are_gone_is_damaged_not_empty(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    run, _ = store_one(store)
    with store.engine.begin() as db:
        db.execute(text("delete from sections"))
    got = store.snapshots(run)["h1"]
    assert got.status is HostStatus.FAILED and got.error == DAMAGED


def test_an_unreachable_postgresql_is_one_line_and_does_not_wait_forever() -> None:
    with pytest.raises(DriftcheckError) as info:
        Store("postgresql+psycopg://app@127.0.0.1:1/x")
    assert "cannot reach the database (connection failed" in str(info.value)
    assert "check that the server runs" in str(info.value) and "\n" not in str(info.value)
    store_options = engine_options("postgresql+psycopg://app@db/x")
    assert store_options == {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    assert engine_options("postgresql+psycopg://app@db/x?connect_timeout=3") == {}
