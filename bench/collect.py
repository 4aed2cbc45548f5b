"""Collection throughput over real SSH against namespace lab hosts (needs root).

Builds N lab hosts on 127.0.0.1, then collects all of them R times with the real
pipeline (fabric transport, one combined script per host, storage in SQLite) and
reports hosts per second and the controller's own CPU time per host (the lab's
sshd processes are separate processes and are not counted).

Run: python3 bench/collect.py [--hosts 20] [--rounds 5] [--jobs 16]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from driftcheck.collectors import BY_NAME, REGISTRY, Collector
from driftcheck.inventory import load_inventory
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import HostStatus
from driftcheck.redact import Redactor
from driftcheck.service import collect
from driftcheck.storage import Store


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    label: str, inv_path: Path, collectors: tuple[Collector, ...], rounds: int, jobs: int, tmp: Path
) -> None:
    inventory = load_inventory(inv_path)
    store = Store(f"sqlite:///{tmp / (label + '.db')}")
    redactor = Redactor(b"b" * 32)
    collect(inventory, store, redactor, jobs, collectors)  # warm-up: imports, first logins
    wall, used, hosts = 0.0, 0.0, 0
    for _ in range(rounds):
        c0, t0 = cpu(), time.perf_counter()
        _, snaps = collect(inventory, store, redactor, jobs, collectors)
        wall += time.perf_counter() - t0
        used += cpu() - c0
        hosts += len(snaps)
        bad = [s.host for s in snaps if s.status is not HostStatus.OK]
        assert not bad, f"incomplete hosts: {bad}"
    print(
        f"{label:<22} {hosts:5d} host collections  {hosts / wall:7.1f} hosts/s  "
        f"{used / hosts * 1000:6.1f} ms controller CPU/host  {wall / rounds:6.2f} s/round"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir, Lab(Path(tmpdir) / "lab") as lab:
        tmp = Path(tmpdir)
        started = time.perf_counter()
        lab.up(
            [
                LabHostSpec(f"h{i:03d}", "production" if i % 2 else "staging")
                for i in range(args.hosts)
            ]
        )
        print(f"lab of {args.hosts} hosts up in {time.perf_counter() - started:.1f} s")
        inv = lab.write_inventory(tmp / "inv.yaml", {"files": ["/etc/os-release", "/etc/passwd"]})
        measure("os only (SSH cost)", inv, (BY_NAME["os"],), args.rounds, args.jobs, tmp)
        measure("all collectors", inv, REGISTRY, args.rounds, args.jobs, tmp)


if __name__ == "__main__":
    main()
