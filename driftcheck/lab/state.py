"""The state file of a lab: what it created, written *before* it is created.

One JSON file per lab under :data:`~driftcheck.lab.names.STATE_DIR` lets
another process (``cleanup_stale``, ``stop_detached``, ``list_labs``) find and
remove a lab whose own process is gone, and tells it whether that lab is
still in use: its owner process lives, or the lab was detached to outlive it.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from driftcheck.lab.names import STATE_DIR, parse_lab_id, state_file
from driftcheck.lab.system import alive, boot_id

#: Version 1 had no "detached", "hosts", "identity_file" and "known_hosts".
STATE_VERSION = 2

ResourceList = Literal["netns", "ns_files", "mounts", "dirs"]


@dataclass
class LabRecord:
    """Everything one lab created or will create, and who owns it."""

    lab_id: str
    boot_id: str = ""
    owner_pid: int = 0
    owner_start: int = 0
    workdir: str = ""
    #: Set once a detached lab is fully up: it then outlives its owner process.
    detached: bool = False
    identity_file: str = ""
    known_hosts: str = ""
    #: Host name -> port on 127.0.0.1, once the lab is up.
    hosts: dict[str, int] = field(default_factory=dict)
    netns: list[str] = field(default_factory=list)
    ns_files: list[str] = field(default_factory=list)
    #: In creation order; teardown unmounts in reverse.
    mounts: list[str] = field(default_factory=list)
    #: (pid, start time) of the processes the lab started itself.
    pids: list[tuple[int, int]] = field(default_factory=list)
    #: In creation order; teardown removes in reverse.
    dirs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to the state file."""
        return {
            "version": STATE_VERSION,
            "lab_id": self.lab_id,
            "boot_id": self.boot_id,
            "owner_pid": self.owner_pid,
            "owner_start": self.owner_start,
            "workdir": self.workdir,
            "detached": self.detached,
            "identity_file": self.identity_file,
            "known_hosts": self.known_hosts,
            "hosts": dict(self.hosts),
            "netns": list(self.netns),
            "ns_files": list(self.ns_files),
            "mounts": list(self.mounts),
            "pids": [list(p) for p in self.pids],
            "dirs": list(self.dirs),
        }

    @classmethod
    def from_json(cls, data: object) -> LabRecord:
        """Parse a state file's object; ValueError when it is not a lab record."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        lab_id = parse_lab_id(str(data.get("lab_id", "")))
        if lab_id is None:
            raise ValueError("no valid lab_id")

        def strings(key: str) -> list[str]:
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} is not a list of strings")
            return value

        hosts = data.get("hosts", {})
        if not isinstance(hosts, dict) or not all(isinstance(p, int) for p in hosts.values()):
            raise ValueError("hosts is not an object of ports")
        return cls(
            lab_id=lab_id,
            boot_id=str(data.get("boot_id", "")),
            owner_pid=int(data.get("owner_pid", 0)),
            owner_start=int(data.get("owner_start", 0)),
            workdir=str(data.get("workdir", "")),
            detached=data.get("detached") is True,
            identity_file=str(data.get("identity_file", "")),
            known_hosts=str(data.get("known_hosts", "")),
            hosts={str(k): int(v) for k, v in hosts.items()},
            netns=strings("netns"),
            ns_files=strings("ns_files"),
            mounts=strings("mounts"),
            pids=[(int(pid), int(start)) for pid, start in data.get("pids", [])],
            dirs=strings("dirs"),
        )

    def owner_alive(self) -> bool:
        """True while the process that made the lab runs (same boot, pid, start time)."""
        return self.boot_id == boot_id() and alive(self.owner_pid, self.owner_start)

    def in_use(self) -> bool:
        """True for a lab that must be left alone by :func:`cleanup_stale`."""
        # Everything of a lab from an earlier boot is gone except its
        # directories: such a record is stale even when detached.
        return self.boot_id == boot_id() and (self.detached or self.owner_alive())


@contextlib.contextmanager
def state_dir_lock() -> Iterator[None]:
    """Serialise the processes that scan and tear down labs (not lab creation)."""
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON via a temp file + rename, so a reader never sees a torn file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_records() -> Iterator[tuple[Path, LabRecord | None]]:
    """Every state file in STATE_DIR with its record (None when unreadable)."""
    if not STATE_DIR.is_dir():
        return
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            record: LabRecord | None = LabRecord.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            continue  # removed by a concurrent teardown
        except (OSError, ValueError, TypeError):
            record = None
        yield path, record


class LabState:
    """The state file of a lab being built or running in this process (thread-safe)."""

    def __init__(self, record: LabRecord) -> None:
        self._record = record
        self._lock = threading.Lock()
        self.path = state_file(record.lab_id)

    @contextlib.contextmanager
    def change(self) -> Iterator[LabRecord]:
        """Change the record; it is written to the state file when the block ends."""
        with self._lock:
            yield self._record
            STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_json_atomic(self.path, self._record.to_json())

    def add(self, key: ResourceList, *values: str) -> None:
        """Record resources *before* creating them."""
        with self.change() as record:
            getattr(record, key).extend(values)

    def add_pid(self, pid: int, start: int) -> None:
        """Record a process the lab started."""
        with self.change() as record:
            record.pids.append((pid, start))

    def snapshot(self) -> LabRecord:
        """A copy of the record that later changes do not affect."""
        with self._lock:
            return copy.deepcopy(self._record)
