"""The labs on this machine: list them, stop detached ones, clean up after crashed ones.

A lab is *in use* while its owner process runs, or once it was detached
(``Lab(..., detached=True)`` / ``Lab.detach()``) until :func:`stop_detached`
removes it.  Anything else with a state file, or carrying the lab prefix
without one, is a leftover that :func:`cleanup_stale` removes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from driftcheck.lab.errors import LabError, require_root
from driftcheck.lab.names import (
    MARKER_RE,
    NETNS_RE,
    NS_FILE_RE,
    RUN_DIR_RE,
    STATE_DIR,
    parse_lab_id,
)
from driftcheck.lab.state import LabRecord, read_records, state_dir_lock
from driftcheck.lab.system import cmdline, comm, iter_procs, mounts
from driftcheck.lab.teardown import MARKED_COMMANDS, teardown


@dataclass(frozen=True)
class LabInfo:
    """A running lab as :func:`list_labs` reports it."""

    lab_id: str
    workdir: Path
    #: True when the lab outlives its owner process (stop it with stop_detached).
    detached: bool
    #: The process that created the lab (it may be gone when detached).
    owner_pid: int
    #: Host name -> port on 127.0.0.1 (empty while the lab is still coming up).
    hosts: Mapping[str, int]
    identity_file: Path
    known_hosts: Path


def _info(record: LabRecord) -> LabInfo:
    return LabInfo(
        lab_id=record.lab_id,
        workdir=Path(record.workdir),
        detached=record.detached,
        owner_pid=record.owner_pid,
        hosts=MappingProxyType(dict(record.hosts)),
        identity_file=Path(record.identity_file),
        known_hosts=Path(record.known_hosts),
    )


def list_labs() -> list[LabInfo]:
    """Every lab in use on this machine: detached ones and those of live processes."""
    require_root()
    return [_info(rec) for _, rec in read_records() if rec is not None and rec.in_use()]


def _select_detached(records: list[LabRecord], lab_id: str | None) -> list[LabRecord]:
    """The records :func:`stop_detached` acts on; LabError for an unusable ``lab_id``."""
    if lab_id is None:
        return [rec for rec in records if rec.detached]
    wanted = parse_lab_id(lab_id)
    if wanted is None:
        raise LabError(f"invalid lab id {lab_id!r}; use the 8 hex digits that list_labs shows")
    for rec in records:
        if rec.lab_id != wanted:
            continue
        if rec.in_use() and not rec.detached:
            raise LabError(
                f"lab {wanted} is not detached: it belongs to running process "
                f"{rec.owner_pid}; stop it there (Lab.down) or end that process"
            )
        return [rec]  # detached, or a leftover of a dead process: both go
    known = ", ".join(rec.lab_id for rec in records if rec.in_use()) or "none"
    raise LabError(f"no lab {wanted} on this machine; running labs: {known}")


def stop_detached(lab_id: str | None = None) -> list[str]:
    """Tear down detached labs: every one, or only ``lab_id``; return the ids stopped.

    ``lab_id`` may also name a lab whose owner process died without tearing
    it down.  A lab still owned by a live process is refused (LabError): that
    process stops it.
    """
    require_root()
    stopped: list[str] = []
    errors: list[str] = []
    with state_dir_lock():
        records = [rec for _, rec in read_records() if rec is not None]
        for rec in _select_detached(records, lab_id):
            _, failed = teardown(rec)
            if failed:
                errors += failed
            else:
                stopped.append(rec.lab_id)
    if errors:
        raise LabError(f"stopping detached lab(s) incomplete: {'; '.join(errors)}")
    return stopped


def _orphans() -> dict[str, LabRecord]:
    """Records rebuilt from resource names alone, per lab id."""
    found: dict[str, LabRecord] = {}

    def rec(lab_id: str) -> LabRecord:
        return found.setdefault(lab_id, LabRecord(lab_id=lab_id))

    if os.path.isdir("/run/netns"):
        for name in sorted(os.listdir("/run/netns")):
            if m := NETNS_RE.fullmatch(name):
                rec(m.group(1)).netns.append(name)
    # The run-dir bind mount is listed before the namespace files it holds,
    # so teardown (reverse order) unmounts the files first.
    for mp, fstype in mounts():
        if m := RUN_DIR_RE.fullmatch(mp):
            rec(m.group(1)).mounts.insert(0, mp)
        elif fstype == "nsfs" and (m := NS_FILE_RE.fullmatch(mp)):
            rec(m.group(1)).mounts.append(mp)
            rec(m.group(1)).ns_files.append(mp)
    for entry in STATE_DIR.iterdir():
        if (m := RUN_DIR_RE.fullmatch(str(entry))) and entry.is_dir():
            # Only the fixed run dir: without a state file the workdir is unknown.
            rec(m.group(1)).dirs.append(str(entry))
    for proc in iter_procs():
        if comm(proc.pid) in MARKED_COMMANDS and (m := MARKER_RE.search(cmdline(proc.pid))):
            rec(m.group(1) or m.group(2))  # found by its marker during teardown
    return found


def cleanup_stale() -> list[str]:
    """Remove the leftovers of labs whose owning process is gone.

    Reads every state file in :data:`STATE_DIR`; for each lab whose owner
    process no longer exists (checked by pid *and* start time and boot id)
    and that was not detached, it kills the lab's processes, deletes its
    network namespaces, unmounts its namespace files and removes its
    directories.  Resources carrying the lab prefix but no state file at all
    (a crash in the tiny window before the state was written) are removed
    too.  Labs in use are never touched.  Returns a description of
    everything removed.
    """
    require_root()
    removed: list[str] = []
    errors: list[str] = []
    with state_dir_lock():
        # List resources *before* reading the state files: a live lab writes
        # its state before it creates anything, so any resource seen here
        # whose lab has no state file below is truly orphaned.
        orphans = _orphans()
        for path, record in read_records():
            if record is None:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(f"unreadable state {path}")
                continue
            orphans.pop(record.lab_id, None)  # handled here, not as an orphan
            if record.in_use():
                continue
            r, e = teardown(record)
            removed += r
            errors += e
        for lab_id in sorted(orphans):
            r, e = teardown(orphans[lab_id])
            removed += r
            errors += e
    if errors:
        raise LabError(f"stale lab cleanup incomplete: {'; '.join(errors)}")
    return removed
