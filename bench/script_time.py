"""Run time of the combined collection script on one lab host (needs root).

Builds one lab host, builds the script every collector in the registry
contributes (with the demo's files and apps), runs it inside the host with
``sh -s`` ROUNDS times and prints the median and the slowest sections; this is
the host-side cost of one collection, the part SSH cannot make faster.

Run: python3 bench/script_time.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

from driftcheck.collectors import REGISTRY
from driftcheck.demo import collect_settings
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import AppSource, CollectSettings
from driftcheck.script import Section, build_script, new_marker, split_output


def settings() -> CollectSettings:
    demo = collect_settings()
    files = tuple(str(f) for f in demo["files"])  # type: ignore[attr-defined]
    return CollectSettings(
        files=(*files, "/etc/ssh/", "/etc/default/*"),
        apps=(AppSource("myapp", "command", "echo 2.4.1"), AppSource("libc", "package", "libc6")),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--collectors", help="comma-separated subset (default: all)")
    args = parser.parse_args()
    s = settings()
    chosen = [c for c in REGISTRY if not args.collectors or c.name in args.collectors.split(",")]
    with Lab() as lab:
        lab.up([LabHostSpec("bench", "production")])
        totals: list[float] = []
        per_section: dict[str, list[float]] = {c.name: [] for c in chosen}
        for _ in range(args.rounds):
            for c in chosen:  # each section alone, for the per-section table
                marker = new_marker()
                script = build_script([Section(c.name, c.shell_for(s), 60, c.requires)], marker)
                t0 = time.perf_counter()
                lab.exec("bench", ["sh", "-s"], input=script)
                per_section[c.name].append(time.perf_counter() - t0)
            marker = new_marker()
            sections = [Section(c.name, c.shell_for(s), 60, c.requires) for c in chosen]
            script = build_script(sections, marker)
            t0 = time.perf_counter()
            proc = lab.exec("bench", ["sh", "-s"], input=script)
            totals.append(time.perf_counter() - t0)
            raw = split_output(
                proc.stdout.encode(), proc.stderr.encode(), marker, [c.name for c in chosen]
            )
            bad = {n: r.status.value for n, r in raw.items() if r.status.value not in ("ok", "n/a")}
            assert not bad, bad
    print(f"{len(chosen)} collectors, {len(script)} bytes of script")
    print(
        f"whole script on one lab host: median {statistics.median(totals) * 1000:.0f} ms "
        f"over {args.rounds} runs (nsenter + sh start included)"
    )
    for name, times in sorted(per_section.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  {name:<14} {statistics.median(times) * 1000:6.0f} ms (alone, incl. ~start-up)")


if __name__ == "__main__":
    main()
