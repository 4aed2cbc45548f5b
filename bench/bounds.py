"""What one runaway host costs the controller: peak memory and database growth (needs root).

Builds one lab host with a 300 MB text file in ``collect.files`` (and
``file_max_bytes`` raised so that the file counts as text, as in the field test
that found the problem), then collects it in a fresh interpreter per scenario,
so each peak RSS is that scenario's alone:

- ``big file``: the files section prints 300 MB, then os and sysctl follow;
- ``endless``: a section printing ``yes`` until its 10 s timeout, then os and sysctl.

Printed per scenario: the collector process's peak RSS (getrusage ru_maxrss),
the database file's size, how the sections ended and the time taken.

Run: python3 bench/bounds.py [--mb 300]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIG = "/srv/big.txt"


def write_big_file(path: Path, megabytes: int) -> None:
    """A text file of distinct lines (compressible about as much as real text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = 0
    with path.open("w", encoding="ascii") as f:
        while f.tell() < megabytes * 1_000_000:
            f.write(
                "".join(
                    f"{i:010d} setting_{i % 977} = value-{i * 7919 % 100003}\n"
                    for i in range(line, line + 10_000)
                )
            )
            line += 10_000


def child(inventory: str, db: str, scenario: str) -> None:
    """Collect in this process and print one JSON line with what it cost."""
    from driftcheck.collectors import BY_NAME, Collector  # noqa: PLC0415 - child only
    from driftcheck.inventory import load_inventory  # noqa: PLC0415
    from driftcheck.model import ParseResult  # noqa: PLC0415
    from driftcheck.redact import Redactor  # noqa: PLC0415
    from driftcheck.runner import collect_all  # noqa: PLC0415
    from driftcheck.storage import Store  # noqa: PLC0415

    endless = Collector(
        "endless",
        "prints forever",
        "yes 'endless output line'",
        lambda _t: ParseResult(),
        timeout=10.0,
    )
    first = BY_NAME["files"] if scenario == "big file" else endless
    collectors = (first, BY_NAME["os"], BY_NAME["sysctl"])
    store = Store(f"sqlite:///{db}")
    started = time.perf_counter()
    inv = load_inventory(Path(inventory))
    host = inv.host("runaway")
    run = store.start_run(inventory, "now")
    (snap,) = collect_all([host], collectors, inv.collect, Redactor(b"b" * 32), 1)
    store.add_snapshot(run, snap)
    store.finish_run(run, "later")
    elapsed = time.perf_counter() - started
    store.close()
    print(
        json.dumps(
            {
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "seconds": elapsed,
                "host": f"{snap.status.value}: {snap.error[:160]}",
                "sections": {
                    n: f"{s.status.value} {s.error[:60]}" for n, s in snap.sections.items()
                },
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--child", nargs=3, metavar=("INVENTORY", "DB", "SCENARIO"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from driftcheck.lab import Lab, LabHostSpec  # noqa: PLC0415 - parent only

    with tempfile.TemporaryDirectory() as tmpdir, Lab(Path(tmpdir) / "lab") as lab:
        tmp = Path(tmpdir)
        # The staging host only makes the inventory valid; it is never collected.
        lab.up([LabHostSpec("runaway", "production"), LabHostSpec("other", "staging")])
        write_big_file(lab.upper_dir("runaway") / BIG.lstrip("/"), args.mb)
        inv = lab.write_inventory(
            tmp / "inv.yaml",
            {"files": [BIG, "/etc/os-release"], "file_max_bytes": 2 * args.mb * 1_000_000},
        )
        for scenario in ("big file", "endless"):
            db = tmp / f"{scenario.replace(' ', '-')}.db"
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(inv), str(db), scenario],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{scenario}: the collecting process failed:\n{proc.stderr}")
            result = json.loads(proc.stdout.splitlines()[-1])
            size = sum(p.stat().st_size for p in tmp.glob(db.name + "*"))
            print(
                f"{scenario}: peak RSS {result['peak_rss_mib']:.0f} MiB, database "
                f"{size / 2**20:.2f} MiB, {result['seconds']:.1f} s; host {result['host']}"
            )
            for name, how in result["sections"].items():
                print(f"    {name:<8} {how}")


if __name__ == "__main__":
    main()
