"""History that does not grow without bound: database size over nightly runs, then
after ``prune``, beside what a user would keep instead.

Collects this machine once (all collectors), stores it as HOSTS hosts for NIGHTS
nightly runs in SQLite (unchanged hosts; and again with one sysctl of one host
changing each night), measures the file, then prunes to the newest KEEP runs
(``driftcheck prune --keep-runs``: runs, sections and every blob only they used,
then VACUUM) and measures again. The alternative is what a team without driftcheck
keeps: each night each host's facts as a gzipped JSON file (``ansible -m setup
--tree`` and gzip, say), old nights deleted with ``find -mtime +KEEP -delete``.

Run: python3 bench/prune.py [--hosts 20] [--nights 30] [--keep 7]
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from storage import collect_base, db_bytes, store_nights  # bench/storage.py

from driftcheck.model import HostSnapshot
from driftcheck.storage import Store


def pruned(path: Path, keep: int) -> tuple[int, float, int]:
    """(bytes after pruning to the newest ``keep`` runs, seconds it took, blobs removed)."""
    store = Store(f"sqlite:///{path}")
    runs = store.runs("bench")
    started = time.perf_counter()
    result = store.prune("bench", [r.id for r in runs[:-keep]])
    store.compact()
    seconds = time.perf_counter() - started
    store.close()
    return db_bytes(path), seconds, result.blobs


def json_dumps(
    base: HostSnapshot, folder: Path, hosts: int, nights: int, keep: int
) -> tuple[int, int]:
    """(bytes of NIGHTS nights of gzipped JSON per host, bytes of the newest KEEP)."""
    sizes = []
    for night in range(nights):
        total = 0
        for i in range(hosts):
            facts = {n: s.facts for n, s in base.sections.items()}
            facts["sysctl"] = {**facts["sysctl"], "kernel.hostname": f"h{i}"}
            path = folder / f"night{night:02d}-h{i}.json.gz"
            path.write_bytes(gzip.compress(json.dumps(facts, sort_keys=True).encode()))
            total += path.stat().st_size
        sizes.append(total)
    return sum(sizes), sum(sizes[-keep:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--keep", type=int, default=7)
    args = parser.parse_args()
    base = collect_base()
    print(
        f"{datetime.now(UTC):%Y-%m-%d}: {args.hosts} hosts x {args.nights} nights, keep {args.keep}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for change in (False, True):
            path = Path(tmp) / f"bench-{change}.db"
            sizes, _ = store_nights(base, path, args.hosts, args.nights, change=change)
            after, seconds, blobs = pruned(path, args.keep)
            what = "one sysctl changes nightly" if change else "unchanged hosts"
            print(
                f"driftcheck, {what}: {sizes[0] / 2**20:.2f} MiB after 1 night, "
                f"{sizes[-1] / 2**20:.2f} MiB after {args.nights}, {after / 2**20:.2f} MiB "
                f"after prune ({blobs} blobs removed, {seconds * 1000:.0f} ms)"
            )
        folder = Path(tmp) / "dumps"
        folder.mkdir()
        total, kept = json_dumps(base, folder, args.hosts, args.nights, args.keep)
        print(
            f"gzipped JSON per host per night: {total / args.nights / 2**20:.2f} MiB per night, "
            f"{total / 2**20:.2f} MiB after {args.nights}, {kept / 2**20:.2f} MiB after deleting "
            f"all but {args.keep} nights"
        )


if __name__ == "__main__":
    main()
