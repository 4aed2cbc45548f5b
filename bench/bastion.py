"""The same hosts reached directly and through one bastion (needs root).

Builds N ordinary lab hosts and one bastion lab host that shares the machine's
network (so it can reach the hosts' loopback listeners: the very same hosts,
directly or through it). Side by side, in one run, R rounds each:

- driftcheck, direct;
- driftcheck through the bastion (one shared connection, a direct-tcpip channel
  per host);
- what a user would otherwise run: OpenSSH ``ssh -J`` per host (16 at once via
  xargs -P), sending the same combined script, one bastion login per host.

Reports wall time per round, controller CPU per round (for OpenSSH: the ssh
processes' own CPU) and the bastion's logins per round, counted in its sshd log.

Run: python3 bench/bastion.py [--hosts 50] [--rounds 3] [--jobs 16]
"""

from __future__ import annotations

import argparse
import resource
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from driftcheck.collectors import BY_NAME
from driftcheck.inventory import load_inventory
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import CollectSettings, HostStatus
from driftcheck.redact import Redactor
from driftcheck.runner import plan_sections
from driftcheck.script import build_script, new_marker
from driftcheck.service import collect
from driftcheck.storage import Store
from driftcheck.transports.base import REMOTE_COMMAND

#: One cheap collector: the numbers are the cost of reaching the hosts.
COLLECTORS = (BY_NAME["os"],)


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def logins(lab: Lab) -> int:
    return lab.log_text("bastion").count("Accepted publickey")


def driftcheck_rounds(lab: Lab, inv: Path, rounds: int, jobs: int, tmp: Path) -> list[float]:
    """[wall, CPU, bastion logins] per round, averaged."""
    inventory = load_inventory(inv)
    store = Store(f"sqlite:///{tmp / (inv.stem + '.db')}")
    redactor = Redactor(b"b" * 32)
    collect(inventory, store, redactor, jobs, COLLECTORS)  # warm-up: imports, first logins
    totals = [0.0, 0.0, 0.0]
    for _ in range(rounds):
        c0, t0, l0 = cpu(resource.RUSAGE_SELF), time.perf_counter(), logins(lab)
        _, snaps = collect(inventory, store, redactor, jobs, COLLECTORS)
        totals[0] += time.perf_counter() - t0
        totals[1] += cpu(resource.RUSAGE_SELF) - c0
        totals[2] += logins(lab) - l0
        bad = [f"{s.host}: {s.error}" for s in snaps if s.status is not HostStatus.OK]
        assert not bad, f"incomplete hosts: {bad[:3]} ({len(bad)} in all)"
    return [t / rounds for t in totals]


def openssh_rounds(lab: Lab, inv: dict[str, Any], rounds: int, jobs: int, tmp: Path) -> list[float]:
    """The same script over ``ssh -J`` per host, ``jobs`` at once."""
    host = load_inventory(tmp / "direct.yaml").hosts[0]
    script = tmp / "script.sh"
    script.write_text(
        build_script(plan_sections(COLLECTORS, CollectSettings(), host), new_marker())
    )
    ports = " ".join(
        str(h["port"]) for env in inv["environments"].values() for h in env["hosts"].values()
    )
    jump = f"root@127.0.0.1:{lab.hosts['bastion'].port}"
    # -F: the lab's client config (key, known_hosts, strict checking), for the jump too.
    one = (
        f"ssh -F {lab.ssh_config} -J {jump} -p PORT root@127.0.0.1 '{REMOTE_COMMAND}' "
        f"< {script} > /dev/null 2>&1"
    )
    command = f"printf '%s\\n' {ports} | xargs -P {jobs} -I PORT sh -c {shlex.quote(one)}"
    totals = [0.0, 0.0, 0.0]
    for _ in range(rounds):
        c0, t0, l0 = cpu(resource.RUSAGE_CHILDREN), time.perf_counter(), logins(lab)
        subprocess.run(command, shell=True, check=True)
        totals[0] += time.perf_counter() - t0
        totals[1] += cpu(resource.RUSAGE_CHILDREN) - c0
        totals[2] += logins(lab) - l0
    return [t / rounds for t in totals]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir, Lab(Path(tmpdir) / "lab") as lab:
        tmp = Path(tmpdir)
        specs = [
            LabHostSpec(f"h{i:03d}", "production" if i % 2 else "staging")
            for i in range(args.hosts)
        ]
        specs.append(LabHostSpec("bastion", "infra", bastion=True, network="machine"))
        started = time.perf_counter()
        lab.up(specs)
        print(
            f"lab of {args.hosts} hosts and a bastion up in {time.perf_counter() - started:.1f} s"
        )
        inv = lab.inventory({})
        (tmp / "direct.yaml").write_text(yaml.safe_dump(inv))
        inv["defaults"]["proxy_jump"] = f"root@127.0.0.1:{lab.hosts['bastion'].port}"
        (tmp / "bastion.yaml").write_text(yaml.safe_dump(inv))
        rows = {
            "driftcheck, direct": driftcheck_rounds(
                lab, tmp / "direct.yaml", args.rounds, args.jobs, tmp
            ),
            "driftcheck, one bastion": driftcheck_rounds(
                lab, tmp / "bastion.yaml", args.rounds, args.jobs, tmp
            ),
            "OpenSSH ssh -J per host": openssh_rounds(lab, inv, args.rounds, args.jobs, tmp),
        }
        print(f"{args.hosts} hosts, {args.jobs} at once, mean of {args.rounds} rounds")
        print(f"{'':<26} {'wall s':>7} {'CPU s':>7} {'bastion logins':>15}")
        for label, (wall, used, count) in rows.items():
            print(f"{label:<26} {wall:7.2f} {used:7.2f} {count:15.0f}")


if __name__ == "__main__":
    main()
