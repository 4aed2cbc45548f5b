"""``sysctl``: runtime value of every kernel parameter (``sysctl -a``).

Some parameters only root may read (``kernel.cad_pid``, ``net.core.bpf_jit_*``,
``vm.mmap_rnd_bits``, ``net.ipv6.conf.*.stable_secret``...). Collected as
another user, ``sysctl -a`` leaves them out and says so on stderr only, which
the parser never sees; left at that, they would be reported *missing*. So the
section also lists the files of /proc/sys that exist, are readable by their
owner, and that the collecting user may not read; those keys are errors
("permission denied"), unknown rather than absent. Write-only files
(``vm.drop_caches``, ``net.ipv4.route.flush``) have no value for anyone, root
included, and are not listed.
"""

from __future__ import annotations

from driftcheck.model import ParseResult

from .base import DENIED, Collector, scrub_all

# Values that change by themselves or identify the host: counters, random
# values, per-boot keys. Documented in the README; never drift.
#: Header before the section's list of unreadable /proc/sys files; no sysctl line
#: looks like it (every one is "key = value").
_UNREADABLE = "#unreadable"

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
# Then the keys this user may not read: owner-readable files (-perm -400 leaves
# out the write-only ones) that test -r refuses; test -r asks the kernel the
# same question open() would (the sysctl table's mode, per network namespace).
SHELL = f"""\
out=$(sysctl -a); rc=$?
[ -n "$out" ] || exit "$rc"
printf '%s\\n' "$out"
echo '{_UNREADABLE}'
find /proc/sys -type f -perm -400 2>/dev/null | while IFS= read -r f; do
  [ -r "$f" ] || printf '%s\\n' "${{f#/proc/sys/}}"
done
exit 0
"""

#: The read of this file returns nothing, even for root (a write-only trigger with
#: mode 0600, mm/vmstat.c): no host ever has its value, so it is never unknown either.
_NO_VALUE = frozenset({"vm.stat_refresh"})


def _key(path: str) -> str:
    """A /proc/sys path as sysctl names it: "/" becomes ".", and a "." in a name "/"."""
    return ".".join(part.replace(".", "/") for part in path.split("/"))


def parse(raw: str) -> ParseResult:
    """``key = value`` lines; a key printed on several lines gets them joined by newlines.

    Tabs inside values (``net.ipv4.tcp_rmem = 4096\\t131072\\t6291456``) are kept:
    they are the kernel's own separators. The paths listed after ``#unreadable``
    become errors: keys that exist but that the collecting user may not read.
    """
    facts: dict[str, str] = {}
    lines = raw.splitlines()
    end = lines.index(_UNREADABLE) if _UNREADABLE in lines else len(lines)
    for line in lines[:end]:
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
    errors = {
        key: DENIED
        for key in sorted({_key(path) for path in lines[end + 1 :] if path.strip()})
        if " " not in key and not key.startswith(".") and key not in facts and key not in _NO_VALUE
    }
    return ParseResult(dict(facts), errors)


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
