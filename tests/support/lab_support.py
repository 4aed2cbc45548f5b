"""Helpers shared by the lab tests: an SSH client, and probes for what a lab left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from driftcheck.lab import NETNS_PREFIX, STATE_DIR, Lab
from driftcheck.lab.lab import ssh_argv
from tests.support.paths import REPO


def ssh(
    lab: Lab, host: str, command: str, *, connect_timeout: int = 5, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """The system OpenSSH client with strict host key checking, as a user would run it."""
    return ssh_port(
        lab.identity_file,
        lab.known_hosts,
        lab.hosts[host].port,
        command,
        connect_timeout=connect_timeout,
        timeout=timeout,
    )


def ssh_port(
    identity: Path,
    known_hosts: Path,
    port: int,
    command: str,
    *,
    connect_timeout: int = 5,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """:func:`ssh` to a port, for labs built by another process."""
    argv = ssh_argv(identity, known_hosts, port, command, connect_timeout)
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )


def proc_state(pid: int) -> str | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes().decode("utf-8", "replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()[0]


def live_lab_processes(lab_id: str, ns_inodes: set[int] | None = None) -> list[str]:
    """Non-zombie processes that carry the lab marker or live in its namespaces."""
    marker = f"/run/netns/{NETNS_PREFIX}{lab_id}-".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if proc_state(pid) in (None, "Z", "X"):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            inodes = {
                int(re.sub(r"\D", "", os.readlink(f"/proc/{pid}/ns/{kind}")))
                for kind in ("mnt", "net")
            }
        except OSError:
            continue
        if marker in cmdline or inodes & (ns_inodes or set()):
            args = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid}: {args}")
    return found


def lab_netns(lab_id: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [
        line.split()[0] for line in out.splitlines() if line.startswith(f"{NETNS_PREFIX}{lab_id}-")
    ]


def mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith(prefix) or mp == str(path):
            result.append(mp)
    return result


def lab_mounts(lab_id: str) -> list[str]:
    """Mount points of the lab (its run dir and namespace files live under STATE_DIR)."""
    needle = f"{NETNS_PREFIX}{lab_id}"
    return [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if needle in line.split()[4]
    ]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def ns_inodes(lab_id: str) -> set[int]:
    """Inodes of the lab's network and mount namespaces, from their bind mounts."""
    paths = [f"/run/netns/{name}" for name in lab_netns(lab_id)]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if re.fullmatch(rf"{STATE_DIR}/{NETNS_PREFIX}{lab_id}/\d+\.(mnt|uts)", mp):
            paths.append(mp)
    return {os.stat(p).st_ino for p in paths}


def spawn_python(script: str, *args: str) -> subprocess.Popen[str]:
    """Run ``script`` in a fresh interpreter that imports this checkout of driftcheck."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def write_lab_inventory(
    lab: Lab, path: Path, hosts: set[str], collect: Mapping[str, object], **defaults: Any
) -> Path:
    """The lab's inventory with only ``hosts``, ``defaults`` updated (None removes a
    default), written as YAML to ``path``."""
    inv: dict[str, Any] = lab.inventory(collect)
    inv["defaults"].update(defaults)
    inv["defaults"] = {k: v for k, v in inv["defaults"].items() if v is not None}
    for env in inv["environments"].values():
        env["hosts"] = {n: h for n, h in env["hosts"].items() if n in hosts}
    path.write_text(yaml.safe_dump(inv, sort_keys=False))
    return path


def timed_up(lab: Lab, specs: Any, timings: dict[str, float]) -> Lab:
    """Bring ``lab`` up with ``specs``, recording how long it took as timings["up"]."""
    started = time.monotonic()
    lab.up(specs)
    timings["up"] = time.monotonic() - started
    return lab
