"""Facts about the running system read from /proc, and small actions on it.

Processes (identified by pid *and* start time, because pids are reused),
namespaces, mounts, TCP ports and directory removal.  Nothing here knows
about labs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftcheck.lab.commands import run
from driftcheck.lab.errors import LabError
from driftcheck.lab.names import LAB_ADDRESS

# --------------------------------------------------------------- processes


@dataclass(frozen=True)
class Proc:
    """One line of the process table."""

    pid: int
    ppid: int
    start: int  # clock ticks after boot; with the pid it identifies a process
    state: str


def read_proc(pid: int) -> Proc | None:
    """Parse /proc/PID/stat; None when the process is gone."""
    try:
        # Bytes, not text: a program name need not be UTF-8, and a process we
        # cannot decode must still be found (and killed) at teardown.
        data = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    return Proc(pid=pid, ppid=int(rest[1]), start=int(rest[19]), state=rest[0])


def start_time(pid: int) -> int:
    """Start time of ``pid`` (0 when it is already gone)."""
    proc = read_proc(pid)
    return proc.start if proc else 0


def iter_procs() -> Iterator[Proc]:
    """Every process currently in /proc."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = read_proc(int(entry))
            if proc is not None:
                yield proc


def alive(pid: int, start: int) -> bool:
    """True while the process ``pid`` that started at ``start`` still runs."""
    proc = read_proc(pid)
    # A zombie is dead for our purposes: it holds no resources and cannot be killed.
    return proc is not None and proc.start == start and proc.state not in ("Z", "X")


def cmdline(pid: int) -> str:
    """The command line of ``pid`` with NULs as spaces ('' when gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def comm(pid: int) -> str:
    """The short program name of ``pid`` ('?' when gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_bytes().decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def ancestors_and_self() -> set[int]:
    """Our own process and its ancestors (and 0, 1): never to be killed."""
    pids = {0, 1}
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        proc = read_proc(pid)
        pid = proc.ppid if proc else 0
    return pids


def boot_id() -> str:
    """This boot's id: pids and start times mean nothing across reboots."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


# -------------------------------------------------------------- namespaces


def ns_inode(pid: int, kind: str) -> int | None:
    """Inode of the ``kind`` ("mnt", "net", ...) namespace of ``pid``."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/{kind}")  # e.g. "mnt:[4026532301]"
    except OSError:
        return None
    match = re.search(r"\[(\d+)\]", link)
    return int(match.group(1)) if match else None


def nsfs_inode(path: str) -> int | None:
    """Inode of the namespace bind-mounted at ``path``, or None if it is not one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    # An unmounted persistence file is a plain empty file whose inode number
    # means nothing; only trust it when it lives on nsfs.
    return st.st_ino if st.st_dev == os.stat("/proc/self/ns/net").st_dev else None


# ------------------------------------------------------------------ mounts


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts() -> list[tuple[str, str]]:
    """(mount point, fstype) of every mount in our mount namespace, in mount order."""
    result: list[tuple[str, str]] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype = right.split()[0] if right else ""
        if len(fields) >= 5:
            result.append((_unescape_mount(fields[4]), fstype))
    return result


def mounted(path: str) -> bool:
    """True when something is mounted on ``path``."""
    return any(mp == path for mp, _ in mounts())


def umount(path: str) -> None:
    """Unmount every mount stacked on ``path``; lazily when it is busy."""
    for _ in range(16):
        if not mounted(path):
            return
        proc = run(["umount", path], check=False)
        if proc.returncode != 0 and mounted(path):
            run(["umount", "--lazy", path])
    raise LabError(f"could not unmount {path}")


def rmtree(path: str) -> list[str]:
    """Delete a directory tree; return failures other than already-gone files."""
    failures: list[str] = []

    def onerror(func: Any, fpath: str, exc_info: Any) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            failures.append(f"{fpath}: {exc_info[1]}")

    shutil.rmtree(path, onerror=onerror)
    return failures


# ----------------------------------------------------------------- network


def unused_network(candidates: Sequence[str]) -> str:
    """The first ``X.Y.Z`` of ``candidates`` whose /24 no address or route of ours overlaps.

    The default route does not count: it overlaps everything, and what it
    leads to is not on this machine.
    """
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    addrs = run(["ip", "-4", "-o", "addr", "show"]).stdout.split("\n")
    routes = run(["ip", "-4", "-o", "route", "show", "table", "all"]).stdout.split("\n")
    for line in addrs:
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    for line in routes:
        fields = line.split()
        if fields and fields[0] not in ("default", "broadcast", "local", "unreachable"):
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(fields[0], strict=False))
    for prefix in candidates:
        net = ipaddress.ip_network(f"{prefix}.0/24")
        if not any(net.overlaps(u) for u in used):
            return prefix
    raise LabError(
        f"every network for hosts behind bastions ({', '.join(candidates)}) is in use here"
    )


# ------------------------------------------------------------------- ports


def free_port(exclude: set[int]) -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now.

    The caller binds it a moment later; the (rare) race with another program
    is handled by retrying there.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LAB_ADDRESS, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port
    raise LabError(f"could not find a free TCP port on {LAB_ADDRESS}")


def listening(pid: int, port: int, address: str = LAB_ADDRESS) -> bool:
    """True when process ``pid`` itself holds a LISTEN socket on address:port.

    /proc/PID/net/tcp lists the sockets of ``pid``'s own network namespace.
    """
    # The kernel prints the address as the hex of its in-memory (network order) u32.
    want = f"{socket.inet_aton(address)[::-1].hex().upper()}:{port:04X}"
    inodes: set[str] = set()
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    for line in lines:
        cols = line.split()
        if len(cols) > 9 and cols[1] == want and cols[3] == "0A":
            inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return False
    # The port might be held by someone else; make sure it is this process.
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False
