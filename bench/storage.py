"""Storage cost of nightly history, on real facts collected from this machine.

Collects this machine once (local transport, all collectors), then stores that
snapshot as HOSTS hosts for NIGHTS nights in SQLite, changing one sysctl on one
host each night, and reports the database size per host snapshot: the first
night, and each further night (content addressing stores unchanged sections
once). For comparison it also reports the size of one row per fact.

Run: python3 bench/storage.py [--hosts 10] [--nights 7]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from driftcheck.collectors import REGISTRY
from driftcheck.model import CollectSettings, Host, HostSnapshot
from driftcheck.redact import Redactor
from driftcheck.runner import collect_host
from driftcheck.storage import Store
from driftcheck.transports import Transports


def db_bytes(path: Path) -> int:
    con = sqlite3.connect(path)
    con.execute("pragma wal_checkpoint(truncate)")
    con.close()
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--nights", type=int, default=7)
    args = parser.parse_args()
    base = collect_base()
    facts = sum(len(s.facts) for s in base.sections.values())
    with tempfile.TemporaryDirectory() as tmp:
        sizes, seconds = store_nights(base, Path(tmp) / "bench.db", args.hosts, args.nights)
        per_fact_rows = one_row_per_fact(base, Path(tmp) / "rows.db")
    later = [(b - a) / args.hosts for a, b in itertools.pairwise(sizes)]
    print(f"one host snapshot: {facts} facts, {len(base.sections)} sections")
    print(
        f"first night:        {sizes[0] / args.hosts / 1024:8.1f} KiB per host snapshot "
        f"(facts + raw output, compressed; "
        "packages/os shared between hosts)"
    )
    if later:
        print(
            f"each later night:   {sum(later) / len(later) / 1024:8.1f} KiB per host snapshot "
            "(unchanged sections not stored again)"
        )
    print(f"one row per fact:   {per_fact_rows / 1024:8.1f} KiB for the same snapshot, every night")
    print(f"store time:         {sum(seconds) / len(seconds) / args.hosts * 1000:8.1f} ms per host")


def collect_base() -> HostSnapshot:
    """This machine collected once with every collector (local transport)."""
    host = Host(
        "bench",
        "production",
        ("web",),
        "bench",
        22,
        "root",
        None,
        Path("/nonexistent"),
        10,
        120,
        "local",
    )
    settings = CollectSettings(files=("/etc/os-release", "/etc/passwd", "/etc/ssh/sshd_config"))
    return collect_host(host, REGISTRY, settings, Redactor(b"b" * 32), Transports())


def store_nights(
    base: HostSnapshot, path: Path, hosts: int, nights: int, change: bool = True
) -> tuple[list[int], list[float]]:
    """Store ``hosts`` copies of ``base`` every night (with ``change``, one sysctl of
    one host changes each night); database size and store time per night."""
    store = Store(f"sqlite:///{path}")
    sizes, seconds = [], []
    for night in range(nights):
        run = store.start_run("bench", f"night {night}")
        started = time.perf_counter()
        for i in range(hosts):
            snap = copy.deepcopy(base)
            snap.host = f"h{i}"
            # Real hosts differ at least in their name, so their sysctl
            # sections are distinct blobs; packages and os are often shared.
            snap.sections["sysctl"].facts["kernel.hostname"] = f"h{i}"
            snap.sections["sysctl"].raw += f"kernel.hostname = h{i}\n"
            if change and i == 0:  # one real change per night on one host
                snap.sections["sysctl"].facts["vm.swappiness"] = str(night)
                snap.sections["sysctl"].raw += f"vm.swappiness = {night}\n"
            store.add_snapshot(run, snap)
        store.finish_run(run, "done")
        seconds.append(time.perf_counter() - started)
        sizes.append(db_bytes(path))
    return sizes, seconds


def one_row_per_fact(base: HostSnapshot, path: Path) -> int:
    """The size of ``base`` stored the naive way: one SQLite row per fact."""
    con = sqlite3.connect(path)
    con.execute("create table facts (host text, collector text, key text, value text)")
    con.executemany(
        "insert into facts values (?, ?, ?, ?)",
        [("h0", c, k, json.dumps(v)) for c, s in base.sections.items() for k, v in s.facts.items()],
    )
    con.commit()
    con.close()
    return path.stat().st_size


if __name__ == "__main__":
    main()
