"""The diff engine against a plain keyed comparison and a whole-snapshot DeepDiff.

Two snapshots of N facts (default 10,000), 2% of them different, compared by:
- a plain keyed comparison (a dict walk: the floor for any comparison);
- one DeepDiff call over both whole snapshots;
- driftcheck's engine (build_report: compare, then explain), with rules: an ignore,
  a map and a waiver;
and a full report (compare + JSON + HTML) over 100 role pairs.

Run: python3 bench/diff_engine.py [--facts 10000] [--pairs 100]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from deepdiff import DeepDiff

from driftcheck.collectors import BY_NAME
from driftcheck.inventory import parse_inventory
from driftcheck.model import HostSnapshot, HostStatus, SectionResult, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.reports import Format, render

RULES = """\
rules:
  ignore: [{collector: sysctl, key: 'net.ipv4.conf.*.log_martians', reason: bench}]
  map: [{collector: sysctl, key: 'kernel.hostname*', values: {staging: stg, production: prd}}]
  waivers: [{collector: sysctl, key: 'vm.k1*', reason: bench, owner: me, expires: 2099-01-01}]
"""


def facts(n: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = random.Random(seed)
    a = {f"net.ipv4.conf.if{i % 50}.key{i}": str(rng.randint(0, 1 << 20)) for i in range(n)}
    b = dict(a)
    for key in rng.sample(sorted(a), n // 50):  # 2% different
        b[key] = b[key] + "1"
    return a, b


def inventory(pairs: int) -> str:
    prod = ", ".join(f"p{i}: {{roles: [r{i}]}}" for i in range(pairs))
    stg = ", ".join(f"s{i}: {{roles: [r{i}]}}" for i in range(pairs))
    return (
        "defaults: {transport: local}\nenvironments:\n"
        f"  production: {{hosts: {{{prod}}}}}\n  staging: {{hosts: {{{stg}}}}}\n"
        "compare: {reference: production, targets: [staging]}\n" + RULES
    )


def snap(host: str, env: str, role: str, f: dict[str, Any]) -> HostSnapshot:
    return HostSnapshot(
        host,
        env,
        (role,),
        HostStatus.OK,
        "t",
        sections={"sysctl": SectionResult("sysctl", SectionStatus.OK, f)},
    )


def best(fn: Callable[[], object], rounds: int) -> float:
    """The fastest of ``rounds`` runs: on a shared machine the minimum is the run
    least disturbed by others, so it is the repeatable number."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", type=int, default=10_000)
    parser.add_argument("--pairs", type=int, default=100)
    args = parser.parse_args()
    a, b = facts(args.facts, 1)
    inv = parse_inventory(inventory(1), Path("bench.yaml"))
    snaps = {"p0": snap("p0", "production", "r0", a), "s0": snap("s0", "staging", "r0", b)}
    collectors = [BY_NAME["sysctl"]]

    def plain() -> list[str]:
        return [k for k in a.keys() | b.keys() if a.get(k) != b.get(k)]

    def engine() -> object:
        return build_report(inv, snaps, collectors, "now", today=date(2026, 1, 1))

    assert len(plain()) == args.facts // 50
    t_plain = best(plain, 100)
    t_engine = best(engine, 100)
    t_deep = best(lambda: DeepDiff(a, b), 5)
    print(f"{args.facts} facts per snapshot, {args.facts // 50} different (2%)")
    print(f"plain keyed comparison:      {t_plain * 1000:8.2f} ms")
    print(
        f"driftcheck engine (+rules):  {t_engine * 1000:8.2f} ms  "
        f"({t_engine / t_plain:.1f}x the plain comparison)"
    )
    print(
        f"DeepDiff, whole snapshots:   {t_deep * 1000:8.2f} ms  "
        f"(the engine is {t_deep / t_engine:.0f}x faster)"
    )

    pair_facts = [facts(2_000, i) for i in range(args.pairs)]
    big = parse_inventory(inventory(args.pairs), Path("bench.yaml"))
    big_snaps = {}
    for i, (pa, pb) in enumerate(pair_facts):
        big_snaps[f"p{i}"] = snap(f"p{i}", "production", f"r{i}", pa)
        big_snaps[f"s{i}"] = snap(f"s{i}", "staging", f"r{i}", pb)

    def full_report() -> None:
        report = build_report(big, big_snaps, collectors, "now", today=date(2026, 1, 1))
        render(report, Format.JSON)
        render(report, Format.HTML)

    t_full = best(full_report, 3)
    print(
        f"full report, {args.pairs} role pairs x 2,000 facts (2% different), "
        f"compare + JSON + HTML: {t_full:.2f} s"
    )


if __name__ == "__main__":
    main()
