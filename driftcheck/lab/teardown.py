"""Removing everything a lab created, shared by ``Lab.down()`` and the lab registry.

Only ever acts on what a :class:`~driftcheck.lab.state.LabRecord` names, and
re-checks each resource before removing it, so it can run from any process
(the lab's own, ``cleanup_stale`` in the next test run, ``stop_detached``).
Already-gone resources are never errors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from driftcheck.lab.commands import one_line, run
from driftcheck.lab.errors import LabError
from driftcheck.lab.names import (
    NETNS_PREFIX,
    NETNS_RE,
    process_marker,
    run_dir,
    safe_to_remove,
    state_file,
)
from driftcheck.lab.state import LabRecord
from driftcheck.lab.system import (
    alive,
    ancestors_and_self,
    cmdline,
    comm,
    iter_procs,
    mounted,
    mounts,
    ns_inode,
    nsfs_inode,
    rmtree,
    umount,
)

# Only these programs carry a lab's netns path in their command line (the socat
# listeners and their forked children, nsenter on its way into a host).  A
# shell that merely greps for the path is somebody else's and is left alone.
MARKED_COMMANDS = frozenset({"socat", "nsenter"})
#: Helper programs a lab runs outside its hosts (see Lab.spawn).
HELPER_COMMANDS = frozenset({"ssh-agent"})


def carries_marker(pid: int, marker: str | tuple[str, ...]) -> bool:
    """True for a socat/nsenter process whose command line names ``marker`` (or one of them)."""
    markers = (marker,) if isinstance(marker, str) else marker
    if comm(pid) not in MARKED_COMMANDS:
        return False
    line = cmdline(pid)
    return any(m in line for m in markers)


def _lab_processes(record: LabRecord, marker: tuple[str, ...]) -> dict[int, int]:
    """pid -> start time of every live process that belongs to the lab.

    A process belongs to the lab when it is one of the recorded pids (same
    start time and the lab marker in its command line), is a socat or nsenter
    carrying the marker, lives in one of the lab's mount or network namespaces
    (sshd sessions, hang sleepers, port holders, anything started by exec()),
    or descends from one of those.
    """
    ns_inodes = {
        ino
        for path in [*record.ns_files, *(f"/run/netns/{n}" for n in record.netns)]
        if (ino := nsfs_inode(path)) is not None
    }
    procs = {p.pid: p for p in iter_procs() if p.state not in ("Z", "X")}
    targets: dict[int, int] = {}
    # Helpers the lab started outside any host (ssh-agent) name the lab's own
    # directory; found also when the lab died before it recorded their pid.
    own_dir = f"{record.workdir.rstrip('/')}/{NETNS_PREFIX}{record.lab_id}/"
    for pid, start in record.pids:
        proc = procs.get(pid)
        if proc is not None and proc.start == start and carries_marker(pid, marker):
            targets[pid] = start
    for proc in procs.values():
        if record.workdir and comm(proc.pid) in HELPER_COMMANDS and own_dir in cmdline(proc.pid):
            targets[proc.pid] = proc.start
    for proc in procs.values():
        if proc.pid not in targets and (
            carries_marker(proc.pid, marker)
            or (
                ns_inodes
                and (
                    ns_inode(proc.pid, "mnt") in ns_inodes or ns_inode(proc.pid, "net") in ns_inodes
                )
            )
        ):
            targets[proc.pid] = proc.start
    # Descendants (socat children, sshd privsep children, session shells).
    children: dict[int, list[int]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    todo = list(targets)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in targets:
                targets[child] = procs[child].start
                todo.append(child)
    for pid in ancestors_and_self():
        targets.pop(pid, None)
    return targets


def kill_lab_processes(record: LabRecord) -> tuple[list[str], list[str]]:
    """SIGKILL every process of the lab; return (what was removed, errors)."""
    # The run dir marks what enters a host without entering a network
    # namespace (a bastion in the machine's network).
    marker = (process_marker(record.lab_id), f"{run_dir(record.lab_id)}/")
    removed: list[str] = []
    errors: list[str] = []
    # Repeat: a listener killed mid-fork may leave a child that enters the
    # namespaces a moment later.
    for _ in range(4):
        targets = _lab_processes(record, marker)
        if not targets:
            break
        for pid, start in targets.items():
            name = comm(pid)
            # Re-check identity right before the signal: pids can be reused.
            if not alive(pid, start):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                removed.append(f"process {pid} ({name})")
        deadline = time.monotonic() + 5.0
        while any(alive(pid, start) for pid, start in targets.items()):
            if time.monotonic() > deadline:
                stuck = [str(pid) for pid, start in targets.items() if alive(pid, start)]
                errors.append(f"processes did not die: {', '.join(stuck)}")
                break
            time.sleep(0.005)
    return removed, errors


def teardown(record: LabRecord) -> tuple[list[str], list[str]]:
    """Remove everything ``record`` names; return (what was removed, errors).

    The state file goes last, and only when nothing failed, so that a later
    cleanup retries whatever is left.
    """
    removed, errors = kill_lab_processes(record)

    for name in record.netns:
        if not NETNS_RE.fullmatch(name) or not os.path.lexists(f"/run/netns/{name}"):
            continue
        proc = run(["ip", "netns", "delete", name], check=False)
        if proc.returncode == 0:
            removed.append(f"netns {name}")
        elif os.path.lexists(f"/run/netns/{name}"):
            errors.append(f"ip netns delete {name}: {one_line(proc.stderr)}")

    # Unmount in reverse creation order: the namespace files first, then the
    # private directory they live in.  Once no process is left in a host's
    # mount namespace, dropping its last reference frees the namespace and
    # with it the overlay, proc, sysfs and /dev mounts inside.
    for path in reversed(record.mounts):
        if not mounted(path):
            continue
        try:
            umount(path)
            removed.append(f"mount {path}")
        except LabError as exc:
            errors.append(str(exc))

    for path in reversed(record.dirs):
        if not os.path.lexists(path):
            continue
        if not safe_to_remove(path):
            errors.append(f"refusing to remove {path}: not a lab directory")
            continue
        # Never let rmtree descend into a mount: detach anything left below.
        for mp, _ in reversed(mounts()):
            if mp.startswith(path.rstrip("/") + "/"):
                with contextlib.suppress(LabError):
                    umount(mp)
        failures = rmtree(path)
        if failures:
            errors.append(f"could not remove {path}: {failures[0]}")
        else:
            removed.append(f"dir {path}")

    record_file = state_file(record.lab_id)
    if not errors and record_file.exists():
        with contextlib.suppress(FileNotFoundError):
            record_file.unlink()
            removed.append(f"state {record_file} of lab {NETNS_PREFIX}{record.lab_id}")
    return removed, errors
