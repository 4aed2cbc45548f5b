"""``sysctl``: runtime value of every kernel parameter (``sysctl -a``)."""

from __future__ import annotations

from driftcheck.model import ParseResult

from .base import Collector, scrub_all

# Values that change by themselves or identify the host: counters, random
# values, per-boot keys. Documented in the README; never drift.
VOLATILE = (
    "kernel.random.*",
    "kernel.hostname",
    "kernel.domainname",
    "kernel.ns_last_pid",
    "kernel.pty.nr",
    "kernel.perf_event_max_sample_rate",
    "fs.dentry-state",
    "fs.dentry-negative",
    "fs.inode-nr",
    "fs.inode-state",
    "fs.file-nr",
    "fs.aio-nr",
    "fs.quota.*",
    "net.netfilter.nf_conntrack_count",
    "net.core.netdev_rss_key",
    "net.ipv4.tcp_fastopen_key",
    "dev.cdrom.*",
)


# busybox sysctl (Alpine) exits 1 when any key cannot be read, and on every host
# with IPv6 some cannot (net.ipv6.conf.*.stable_secret): the same keys on every
# host, so that is not a failure; no output at all still is. The errors stay on
# stderr, where the report can show them.
SHELL = """\
out=$(sysctl -a); rc=$?
[ -n "$out" ] || exit "$rc"
printf '%s\\n' "$out"
"""


def parse(raw: str) -> ParseResult:
    """``key = value`` lines; a key printed on several lines gets them joined by newlines.

    Tabs inside values (``net.ipv4.tcp_rmem = 4096\\t131072\\t6291456``) are kept:
    they are the kernel's own separators.
    """
    facts: dict[str, str] = {}
    for line in raw.splitlines():
        key, sep, value = line.partition(" = ")
        if not sep:
            # "key =" with an empty value has no trailing space after '='
            if line.endswith(" =") and " " not in line[:-2]:
                key, value = line[:-2], ""
            else:
                continue
        key = key.strip()
        if not key or " " in key:
            continue
        facts[key] = f"{facts[key]}\n{value}" if key in facts else value
    return ParseResult(dict(facts))


COLLECTOR = Collector(
    name="sysctl",
    description="runtime kernel parameters (sysctl -a)",
    shell=SHELL,
    parse=parse,
    requires=("sysctl",),
    timeout=30.0,
    volatile=VOLATILE,
    # net.ipv4.tcp_fastopen_key and friends are real secrets.
    scrub=scrub_all,
)
