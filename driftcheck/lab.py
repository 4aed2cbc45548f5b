"""Namespace test lab: real SSH hosts on one machine, built from Linux namespaces.

Each lab host is a genuine OpenSSH server that a client reaches on
``127.0.0.1:PORT``.  A host consists of

* its own network namespace (``dclab-<labid>-<n>``, only ``lo``, up), so every
  ``net.*`` sysctl can differ per host;
* a persistent mount + UTS namespace, kept alive by bind-mounting the namespace
  files under a private directory, holding an overlayfs root whose lower layer
  is the real ``/`` and whose upper layer is a directory of the lab: every write
  inside the host lands in that upper directory, never in the real root.  Inside
  it: proc, sysfs (showing the host's own netns), an rbind of /dev, fresh tmpfs
  on /run and /tmp, and a fresh opaque /root (Debian's default dotfiles plus the
  lab's authorized_keys) so the real machine's root home never shows through;
* its own hostname (UTS namespace and /etc/hostname) and its own, freshly
  generated, ed25519 host key (the real machine's host keys are hidden);
* a ``socat`` listener on 127.0.0.1 in the root namespace that, for each
  connection, runs ``nsenter ... chroot ROOT /usr/sbin/sshd -i`` (inetd mode),
  so each SSH session runs entirely inside the host's namespaces.

Layout: overlay upper/work dirs, keys, known_hosts and logs live in the
workdir (``WORKDIR/dclab-<id>/``); the namespace files and the hosts' root
mount points live in ``/run/driftcheck-lab/dclab-<id>/`` because socat
truncates its EXEC argument at 512 bytes, so those paths must stay short.

Everything the lab creates is recorded in a state file under
:data:`STATE_DIR` *before* it is created, so that :func:`cleanup_stale` can
remove the leftovers of a lab whose process died without tearing down (e.g.
SIGKILL).  Typical use::

    with Lab() as lab:
        lab.up([LabHostSpec("prod-web1", "production"),
                LabHostSpec("stg-web1", "staging", sysctls={"net.core.somaxconn": "1024"})])
        lab.write_inventory(path)
        ...

Needs root and the Debian packages openssh-server, openssh-client, socat,
iproute2, util-linux, mount, procps and coreutils.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import json
import os
import posixpath
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

__all__ = [
    "LAB_ADDRESS",
    "NETNS_PREFIX",
    "STATE_DIR",
    "Fault",
    "Lab",
    "LabError",
    "LabHost",
    "LabHostSpec",
    "cleanup_stale",
    "require_root",
]

#: Where every lab records what it created (one JSON file per lab).
STATE_DIR = Path("/run/driftcheck-lab")
#: Prefix of every lab network namespace, lab directory and temp workdir.
NETNS_PREFIX = "dclab-"
#: The only address the lab ever listens on or hands out.
LAB_ADDRESS = "127.0.0.1"

Fault = Literal["down", "hang", "wrong_host_key"]
_FAULTS: tuple[str, ...] = ("down", "hang", "wrong_host_key")

# Command -> Debian package, checked before anything is created so a missing
# tool gives one clear message instead of a half-built lab.
_REQUIRED_TOOLS: Mapping[str, str] = MappingProxyType(
    {
        "ip": "iproute2",
        "socat": "socat",
        "nsenter": "util-linux",
        "unshare": "util-linux",
        "mount": "mount",
        "umount": "mount",
        "sysctl": "procps",
        "chroot": "coreutils",
        "base64": "coreutils",
        "ssh-keygen": "openssh-client",
        "/usr/sbin/sshd": "openssh-server",
    }
)

# sshd is started with explicit options so that config drift planted in a
# host's /etc/ssh/sshd_config cannot lock the lab itself out.  Only the lab's
# own host key is offered (-h), so the client always sees the per-host key.
_SSHD_ARGS: tuple[str, ...] = (
    "/usr/sbin/sshd",
    "-i",
    "-e",
    "-h",
    "/etc/ssh/ssh_host_ed25519_key",
    "-o",
    "PermitRootLogin=prohibit-password",
    "-o",
    "PubkeyAuthentication=yes",
    "-o",
    "AuthorizedKeysFile=.ssh/authorized_keys",
)
# What a "hang" host runs per connection: it holds the TCP connection open and
# never sends the SSH banner.  It runs inside the host's namespaces so teardown
# finds it by namespace membership even after its socat parent is gone.
_HANG_ARGS: tuple[str, ...] = ("sleep", "3600")

# A clean environment for commands run inside hosts, so results do not depend
# on the caller's locale or PATH.
_HOST_ENV: Mapping[str, str] = MappingProxyType(
    {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
)

_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ENV_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_OWNER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
_SYSCTL_RE = re.compile(r"net(?:\.[A-Za-z0-9_:-]+)+")
# The workdir ends up in overlayfs mount options (where "," and ":" are
# separators) and in shell scripts: keep it to this set.
_WORKDIR_SAFE_RE = re.compile(r"[A-Za-z0-9_./+@-]+")
# socat silently truncates an address argument at 512 bytes, so the EXEC
# command only ever uses the short, fixed-length paths under STATE_DIR.
_SOCAT_MAX_EXEC = 480
_LAB_ID_RE = r"[0-9a-f]{8}"
_RUN_DIR_RE = re.compile(rf"{re.escape(str(STATE_DIR))}/{NETNS_PREFIX}({_LAB_ID_RE})")
_NS_FILE_RE = re.compile(
    rf"{re.escape(str(STATE_DIR))}/{NETNS_PREFIX}({_LAB_ID_RE})/\d+\.(?:mnt|uts)"
)
_NETNS_RE = re.compile(rf"{NETNS_PREFIX}({_LAB_ID_RE})-\d+")
_MARKER_RE = re.compile(rf"/run/netns/{NETNS_PREFIX}({_LAB_ID_RE})-\d+")

# Directories the lab must never delete, whatever a (possibly corrupt) state
# file says.
_NEVER_REMOVE = frozenset(
    {
        "/",
        "/tmp",
        "/var",
        "/var/tmp",
        "/run",
        "/root",
        "/home",
        "/etc",
        "/usr",
        "/work",
        "/srv",
        "/opt",
        "/mnt",
    }
)


class LabError(Exception):
    """A lab operation failed; the message is one user-readable line."""


def require_root() -> None:
    """Raise :class:`LabError` unless the effective user is root.

    Network namespaces, mount namespaces and overlay mounts all need
    CAP_SYS_ADMIN in the initial user namespace.
    """
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network and mount namespaces); run as root")


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class LabHostSpec:
    """What one lab host looks like.

    ``files`` / ``file_modes`` / ``file_owners`` are applied inside the host's
    root (so they never touch the real ``/``); ``sysctls`` may only name
    ``net.*`` keys because only those are per network namespace.
    """

    name: str
    environment: str
    roles: tuple[str, ...] = ("web",)
    files: Mapping[str, str] = field(default_factory=_empty, hash=False)
    file_modes: Mapping[str, int] = field(default_factory=_empty, hash=False)
    file_owners: Mapping[str, str] = field(default_factory=_empty, hash=False)
    sysctls: Mapping[str, str] = field(default_factory=_empty, hash=False)
    fault: Fault | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name):
            raise LabError(
                f"invalid lab host name {self.name!r}: use letters, digits and '-' (max 63)"
            )
        if not isinstance(self.environment, str) or not _ENV_RE.fullmatch(self.environment):
            raise LabError(f"invalid environment {self.environment!r} for host {self.name}")
        roles = (self.roles,) if isinstance(self.roles, str) else tuple(self.roles)
        if not all(isinstance(r, str) and r for r in roles):
            raise LabError(f"roles of host {self.name} must be non-empty strings")
        for path in [*self.files, *self.file_modes, *self.file_owners]:
            _check_host_path(self.name, path)
        for path, content in self.files.items():
            if not isinstance(content, str):
                raise LabError(f"content of {path} on host {self.name} must be str")
        for path, mode in self.file_modes.items():
            if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
                raise LabError(f"invalid mode {mode!r} for {path} on host {self.name}")
        for path, owner in self.file_owners.items():
            if not isinstance(owner, str) or not _OWNER_RE.fullmatch(owner):
                raise LabError(
                    f"invalid owner {owner!r} for {path} on host {self.name}: use 'user:group'"
                )
        sysctls: dict[str, str] = {}
        for key, value in self.sysctls.items():
            # Only net.* keys: anything else is global and would change the
            # real machine.
            if not isinstance(key, str) or not _SYSCTL_RE.fullmatch(key):
                raise LabError(
                    f"sysctl {key!r} on host {self.name} is not allowed: "
                    "only net.* keys are per host"
                )
            text = str(value)
            if not text or "\n" in text:
                raise LabError(f"invalid value {value!r} for sysctl {key} on host {self.name}")
            sysctls[key] = text
        if self.fault is not None and self.fault not in _FAULTS:
            raise LabError(
                f"unknown fault {self.fault!r} for host {self.name}; "
                f"use one of {', '.join(_FAULTS)}"
            )
        # Freeze the mappings so a spec cannot change after validation.
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "files", _frozen(self.files))
        object.__setattr__(self, "file_modes", _frozen(self.file_modes))
        object.__setattr__(self, "file_owners", _frozen(self.file_owners))
        object.__setattr__(self, "sysctls", _frozen(sysctls))


def _check_host_path(host: str, path: object) -> None:
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or path == "/"
        or posixpath.normpath(path) != path
        or path.startswith("//")
        or any(c in path for c in "\0\n")
    ):
        raise LabError(f"invalid path {path!r} on host {host}: use a normalised absolute path")


@dataclass(frozen=True)
class LabHost:
    """A running lab host as a client sees it."""

    spec: LabHostSpec
    address: str
    port: int
    #: "ssh-ed25519 AAAA..." - the key this host's sshd really presents.
    host_public_key: str = ""
    #: Name of the host's network namespace (for ``ip netns exec``).
    netns: str = ""


# --------------------------------------------------------------------------
# small helpers: commands, processes, mounts


def _one_line(text: str, limit: int = 600) -> str:
    line = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command; failures become one-line :class:`LabError` messages."""
    shown = _one_line(shlex.join(argv), 300)
    try:
        proc = subprocess.run(
            list(argv),
            check=False,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
        )
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {argv[0]} ({exc.strerror})") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"command timed out after {timeout:g}s: {shown}") from None
    if check and proc.returncode != 0:
        detail = _one_line(proc.stderr) or _one_line(proc.stdout) or "no output"
        raise LabError(f"command failed (exit {proc.returncode}): {shown}: {detail}")
    return proc


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    start: int  # clock ticks after boot; with the pid it identifies a process
    state: str


def _read_proc(pid: int) -> _Proc | None:
    """Parse /proc/PID/stat; None when the process is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    return _Proc(pid=pid, ppid=int(rest[1]), start=int(rest[19]), state=rest[0])


def _iter_procs() -> Iterator[_Proc]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = _read_proc(int(entry))
            if proc is not None:
                yield proc


def _alive(pid: int, start: int) -> bool:
    proc = _read_proc(pid)
    # A zombie is dead for our purposes: it holds no resources and cannot be killed.
    return proc is not None and proc.start == start and proc.state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _ns_inode(pid: int, kind: str) -> int | None:
    try:
        link = os.readlink(f"/proc/{pid}/ns/{kind}")  # e.g. "mnt:[4026532301]"
    except OSError:
        return None
    match = re.search(r"\[(\d+)\]", link)
    return int(match.group(1)) if match else None


def _nsfs_dev() -> int:
    return os.stat("/proc/self/ns/net").st_dev


def _nsfs_inode(path: str) -> int | None:
    """Inode of the namespace bind-mounted at ``path``, or None if it is not one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    # An unmounted persistence file is a plain empty file whose inode number
    # means nothing; only trust it when it lives on nsfs.
    return st.st_ino if st.st_dev == _nsfs_dev() else None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _mounts() -> list[tuple[str, str]]:
    """(mount point, fstype) of every mount in our mount namespace, in mount order."""
    result: list[tuple[str, str]] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype = right.split()[0] if right else ""
        if len(fields) >= 5:
            result.append((_unescape_mount(fields[4]), fstype))
    return result


def _mounted(path: str) -> bool:
    return any(mp == path for mp, _ in _mounts())


def _umount(path: str) -> None:
    """Unmount every mount stacked on ``path``; lazily when it is busy."""
    for _ in range(16):
        if not _mounted(path):
            return
        proc = _run(["umount", path], check=False)
        if proc.returncode != 0 and _mounted(path):
            _run(["umount", "--lazy", path])
    raise LabError(f"could not unmount {path}")


def _safe_to_remove(path: str) -> bool:
    """Only ever delete lab directories, whatever a state file claims."""
    p = posixpath.normpath(path)
    return (
        p.startswith("/")
        and p not in _NEVER_REMOVE
        and len(Path(p).parts) >= 3
        and Path(p).name.startswith(NETNS_PREFIX)
    )


def _free_port(exclude: set[int]) -> int:
    # Ask the kernel for an unused port.  socat binds it a moment later; the
    # (rare) race with another program is handled by retrying in the caller.
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LAB_ADDRESS, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port
    raise LabError("could not find a free TCP port on 127.0.0.1")


def _listening(pid: int, port: int) -> bool:
    """True when process ``pid`` itself holds a LISTEN socket on 127.0.0.1:port."""
    want = f"0100007F:{port:04X}"
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
    # The port might be held by someone else; make sure it is our socat.
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def _keygen(path: Path, comment: str) -> str:
    """Generate an ed25519 key pair without passphrase; return the public line."""
    for p in (path, path.with_name(path.name + ".pub")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path.with_name(path.name + ".pub").read_text().strip()


def _fresh_root_home(upper: Path) -> None:
    """Give the host a fresh /root, like a newly installed Debian system.

    With lowerdir=/ the host would otherwise see the real machine's /root:
    its dotfiles (a .bashrc that runs e.g. ``pyenv init`` costs ~150 ms per
    SSH command), its credentials and its authorized_keys.  An *opaque* upper
    directory hides the lower one; it is prepared before the overlay is
    mounted, which is the supported way to seed an upper layer.
    """
    home = upper / "root"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o700)
    try:
        os.setxattr(home, "trusted.overlay.opaque", b"y")
    except OSError as exc:
        raise LabError(f"cannot prepare overlay upper dir {home}: {exc.strerror}") from None
    # Debian's own defaults for root (package base-files), when present.
    for name in ("bashrc", "profile"):
        skel = Path(f"/usr/share/base-files/dot.{name}")
        if skel.is_file():
            target = home / f".{name}"
            shutil.copyfile(skel, target)
            os.chmod(target, 0o644)


@contextlib.contextmanager
def _state_dir_lock() -> Iterator[None]:
    STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(STATE_DIR / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    # write + rename so a reader (cleanup_stale in another process) never sees
    # a torn file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# teardown shared by Lab.down() and cleanup_stale()


# Only these programs carry a lab's netns path in their command line (the socat
# listeners and their forked children, nsenter on its way into a host).  A
# shell that merely greps for the path is somebody else's and is left alone.
_MARKED_COMMANDS = frozenset({"socat", "nsenter"})


def _carries_marker(pid: int, marker: str) -> bool:
    return _comm(pid) in _MARKED_COMMANDS and marker in _cmdline(pid)


def _protected_pids() -> set[int]:
    """Our own process and its ancestors: never killed, whatever matches."""
    pids = {0, 1}
    pid = os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        proc = _read_proc(pid)
        pid = proc.ppid if proc else 0
    return pids


def _kill_lab_processes(state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Kill every process that belongs to the lab described by ``state``.

    A process belongs to the lab when it is one of the recorded listener pids
    (same start time and the lab marker in its command line), is a socat or
    nsenter carrying the lab's marker (``/run/netns/dclab-<id>-``) in its
    command line, lives in one of the lab's mount or network namespaces (sshd
    sessions, hang sleepers, anything started by exec()), or descends from one
    of those.
    """
    lab_id = str(state["lab_id"])
    marker = f"/run/netns/{NETNS_PREFIX}{lab_id}-"
    removed: list[str] = []
    errors: list[str] = []
    protected = _protected_pids()
    for _ in range(4):
        # Repeat: a listener killed mid-fork may leave a child that enters the
        # namespaces a moment later.
        ns_inodes = {
            ino
            for path in [
                *state.get("ns_files", []),
                *(f"/run/netns/{n}" for n in state.get("netns", [])),
            ]
            if (ino := _nsfs_inode(str(path))) is not None
        }
        procs = {p.pid: p for p in _iter_procs() if p.state not in ("Z", "X")}
        targets: dict[int, int] = {}
        for pid, start in state.get("pids", []):
            proc = procs.get(int(pid))
            if proc is not None and proc.start == int(start) and _carries_marker(proc.pid, marker):
                targets[proc.pid] = proc.start
        for proc in procs.values():
            if proc.pid in targets:
                continue
            if _carries_marker(proc.pid, marker) or (
                ns_inodes
                and (
                    _ns_inode(proc.pid, "mnt") in ns_inodes
                    or _ns_inode(proc.pid, "net") in ns_inodes
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
        for pid in protected:
            targets.pop(pid, None)
        if not targets:
            break
        for pid, start in targets.items():
            name = _comm(pid)
            # Re-check identity right before the signal: pids can be reused.
            if not _alive(pid, start):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                removed.append(f"process {pid} ({name})")
        deadline = time.monotonic() + 5.0
        while any(_alive(pid, start) for pid, start in targets.items()):
            if time.monotonic() > deadline:
                stuck = [str(pid) for pid, start in targets.items() if _alive(pid, start)]
                errors.append(f"processes did not die: {', '.join(stuck)}")
                break
            time.sleep(0.005)
    return removed, errors


def _teardown(state: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Remove everything ``state`` records; never fails on already-gone resources."""
    removed, errors = _kill_lab_processes(state)

    for name in state.get("netns", []):
        if not _NETNS_RE.fullmatch(str(name)) or not os.path.lexists(f"/run/netns/{name}"):
            continue
        proc = _run(["ip", "netns", "delete", str(name)], check=False)
        if proc.returncode == 0:
            removed.append(f"netns {name}")
        elif os.path.lexists(f"/run/netns/{name}"):
            errors.append(f"ip netns delete {name}: {_one_line(proc.stderr)}")

    # Unmount in reverse creation order: the namespace files first, then the
    # private directory they live in.  Once no process is left in a host's
    # mount namespace, dropping its last reference frees the namespace and
    # with it the overlay, proc, sysfs and /dev mounts inside.
    for path in reversed([str(p) for p in state.get("mounts", [])]):
        if not _mounted(path):
            continue
        try:
            _umount(path)
            removed.append(f"mount {path}")
        except LabError as exc:
            errors.append(str(exc))

    for path in reversed([str(p) for p in state.get("dirs", [])]):
        if not os.path.lexists(path):
            continue
        if not _safe_to_remove(path):
            errors.append(f"refusing to remove {path}: not a lab directory")
            continue
        # Never let rmtree descend into a mount: detach anything left below.
        for mp, _ in reversed(_mounts()):
            if mp.startswith(path.rstrip("/") + "/"):
                with contextlib.suppress(LabError):
                    _umount(mp)
        failures = _rmtree(path)
        if failures:
            errors.append(f"could not remove {path}: {failures[0]}")
        else:
            removed.append(f"dir {path}")

    state_file = STATE_DIR / f"{state['lab_id']}.json"
    if not errors and state_file.exists():
        # Keep the record while something is left, so a later cleanup retries.
        with contextlib.suppress(FileNotFoundError):
            state_file.unlink()
            removed.append(f"state {state_file} of lab {NETNS_PREFIX}{state['lab_id']}")
    return removed, errors


def _rmtree(path: str) -> list[str]:
    """Delete a directory tree; return failures other than already-gone files."""
    failures: list[str] = []

    def onerror(func: Any, fpath: str, exc_info: Any) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            failures.append(f"{fpath}: {exc_info[1]}")

    shutil.rmtree(path, onerror=onerror)
    return failures


def _owner_alive(state: Mapping[str, Any]) -> bool:
    try:
        return state.get("boot_id") == _boot_id() and _alive(
            int(state["owner_pid"]), int(state["owner_start"])
        )
    except (KeyError, TypeError, ValueError):
        return False


def cleanup_stale() -> list[str]:
    """Remove the leftovers of labs whose owning process is gone.

    Reads every state file in :data:`STATE_DIR`; for each lab whose owner
    process no longer exists (checked by pid *and* start time and boot id) it
    kills the lab's processes, deletes its network namespaces, unmounts its
    namespace files and removes its directories.  Resources carrying the lab
    prefix but no state file at all (a crash in the tiny window before the
    state was written) are removed too.  Labs of live processes are never
    touched.  Returns a description of everything removed.
    """
    require_root()
    removed: list[str] = []
    errors: list[str] = []
    with _state_dir_lock():
        # List resources *before* reading the state files: a live lab writes
        # its state before it creates anything, so any resource seen here
        # whose lab has no state file below is truly orphaned.
        orphan_netns: dict[str, list[str]] = {}
        orphan_mounts: dict[str, list[str]] = {}
        if os.path.isdir("/run/netns"):
            for name in sorted(os.listdir("/run/netns")):
                if m := _NETNS_RE.fullmatch(name):
                    orphan_netns.setdefault(m.group(1), []).append(name)
        for mp, fstype in _mounts():
            m = _RUN_DIR_RE.fullmatch(mp) or (
                _NS_FILE_RE.fullmatch(mp) if fstype == "nsfs" else None
            )
            if m:
                orphan_mounts.setdefault(m.group(1), []).append(mp)
        orphan_dirs: dict[str, list[str]] = {}
        for entry in STATE_DIR.iterdir():
            if (m := _RUN_DIR_RE.fullmatch(str(entry))) and entry.is_dir():
                orphan_dirs.setdefault(m.group(1), []).append(str(entry))
        orphan_pids: set[str] = set()
        for proc in _iter_procs():
            if _comm(proc.pid) in _MARKED_COMMANDS and (m := _MARKER_RE.search(_cmdline(proc.pid))):
                orphan_pids.add(m.group(1))

        live: set[str] = set()
        for path in sorted(STATE_DIR.glob("*.json")):
            try:
                state = json.loads(path.read_text())
                lab_id = str(state["lab_id"])
            except (OSError, ValueError, KeyError, TypeError):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(f"unreadable state {path}")
                continue
            if _owner_alive(state):
                live.add(lab_id)
                continue
            r, e = _teardown(state)
            removed += r
            errors += e
            live.add(lab_id)  # handled: not an orphan below

        candidates = set(orphan_netns) | set(orphan_mounts) | set(orphan_dirs) | orphan_pids
        for lab_id in sorted(candidates - live):
            mounts = orphan_mounts.get(lab_id, [])
            synthetic = {
                "lab_id": lab_id,
                "netns": orphan_netns.get(lab_id, []),
                "ns_files": [mp for mp in mounts if _NS_FILE_RE.fullmatch(mp)],
                # The run-dir bind mount first, so reversed() unmounts the files first.
                "mounts": sorted(mounts, key=lambda mp: 0 if _RUN_DIR_RE.fullmatch(mp) else 1),
                "pids": [],
                # Only the fixed run dir: without a state file the workdir is unknown.
                "dirs": orphan_dirs.get(lab_id, []),
            }
            r, e = _teardown(synthetic)
            removed += r
            errors += e
    if errors:
        raise LabError(f"stale lab cleanup incomplete: {'; '.join(errors)}")
    return removed


# --------------------------------------------------------------------------
# the lab


@dataclass
class _HostRuntime:
    spec: LabHostSpec
    index: int
    netns: str
    mnt_file: Path
    uts_file: Path
    hdir: Path
    upper: Path
    work: Path
    root: Path
    port: int = 0
    host_public_key: str = ""
    known_hosts_key: str = ""
    listener: subprocess.Popen[bytes] | None = None
    held_socket: socket.socket | None = None

    def nsenter(self) -> list[str]:
        """Prefix that runs a command inside this host (namespaces + chroot)."""
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            f"--mount={self.mnt_file}",
            f"--uts={self.uts_file}",
            "chroot",
            str(self.root),
        ]


# Strong references on purpose: a Lab dropped without down() must still be
# torn down at interpreter exit.
_LIVE_LABS: set[Lab] = set()


class Lab:
    """A set of namespace-based SSH hosts on 127.0.0.1.  Use as a context manager.

    A ``Lab`` is single-use: ``up()`` once, ``down()`` (idempotent) at the end.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        """Prepare a lab; nothing is created until :meth:`up`.

        ``workdir`` holds the overlay layers, keys and logs; by default a fresh
        temp dir is used and removed again by :meth:`down`.  With an explicit
        ``workdir`` only the lab's own ``dclab-<id>`` subdirectory is removed.
        """
        self.lab_id = secrets.token_hex(4)
        self._owns_workdir = workdir is None
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=NETNS_PREFIX))
        else:
            self.workdir = Path(workdir).absolute()
        self._base = self.workdir / f"{NETNS_PREFIX}{self.lab_id}"
        # Short fixed-length paths for what appears in socat's EXEC command:
        # the namespace files and the hosts' root mount points.
        self._rundir = STATE_DIR / f"{NETNS_PREFIX}{self.lab_id}"
        self._sshdir = self._base / "ssh"
        self.identity_file: Path = self._sshdir / "id_ed25519"
        self.known_hosts: Path = self._sshdir / "known_hosts"
        self.hosts: dict[str, LabHost] = {}
        self._runtime: dict[str, _HostRuntime] = {}
        self._phase = "new"
        self._lock = threading.Lock()
        self._ports: set[int] = set()
        self._state_file = STATE_DIR / f"{self.lab_id}.json"
        self._state: dict[str, Any] = {
            "version": 1,
            "lab_id": self.lab_id,
            "boot_id": "",
            "owner_pid": os.getpid(),
            "owner_start": 0,
            "workdir": str(self.workdir),
            "netns": [],
            "ns_files": [],
            "mounts": [],
            "pids": [],
            "dirs": [],
        }
        _LIVE_LABS.add(self)

    # -- context manager -------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- state -------------------------------------------------------------

    def _record(self, key: str, *values: Any) -> None:
        """Add to the state file *before* the resource is created."""
        with self._lock:
            self._state[key].extend(values)
            _write_json_atomic(self._state_file, self._state)

    # -- up ------------------------------------------------------------------

    def up(self, specs: Sequence[LabHostSpec]) -> None:
        """Create and start every host in ``specs``; on failure nothing is left behind."""
        require_root()
        if self._phase != "new":
            raise LabError("a Lab can be brought up only once; create a new Lab")
        if not specs:
            raise LabError("a lab needs at least one host")
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise LabError(f"duplicate lab host names: {', '.join(dupes)}")
        missing = [
            f"{tool} (Debian package {pkg})"
            for tool, pkg in _REQUIRED_TOOLS.items()
            if not shutil.which(tool)
        ]
        if missing:
            raise LabError(f"the lab needs missing tools: {', '.join(missing)}")
        if not _WORKDIR_SAFE_RE.fullmatch(str(self._base)):
            raise LabError(
                f"lab workdir {self.workdir} must only contain letters, digits and _ . / + @ -"
            )
        try:
            stale = cleanup_stale()
        except LabError as exc:
            # Leftovers of other labs cannot collide with this one (fresh id,
            # fresh ports): say so, but go on.
            warnings.warn(f"driftcheck lab: {exc}", stacklevel=2)
        else:
            if stale:
                # Not an error: report once what an earlier crashed run left.
                ids = sorted(set(re.findall(rf"{NETNS_PREFIX}({_LAB_ID_RE})", " ".join(stale))))
                warnings.warn(
                    f"driftcheck lab: removed {len(stale)} leftovers of crashed lab(s) "
                    f"{', '.join(ids) or '?'}",
                    stacklevel=2,
                )

        self._phase = "up"
        try:
            me = _read_proc(os.getpid())
            self._state["boot_id"] = _boot_id()
            self._state["owner_pid"] = os.getpid()
            self._state["owner_start"] = me.start if me else 0
            dirs = [str(self._rundir), str(self._base)]
            dirs += [str(self.workdir)] if self._owns_workdir else []
            self._record("dirs", *dirs)
            self.workdir.mkdir(parents=True, exist_ok=True)
            STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
            for d in (self._base, self._sshdir, self._base / "hosts", self._rundir):
                d.mkdir(mode=0o700, exist_ok=True)
            # Namespace files can only be bind-mounted onto a private mount
            # (otherwise the bind would propagate and pin the namespace).
            self._record("mounts", str(self._rundir))
            _run(["mount", "--bind", str(self._rundir), str(self._rundir)])
            _run(["mount", "--make-private", str(self._rundir)])
            identity_pub = _keygen(self.identity_file, f"driftcheck-lab-{self.lab_id}")

            # Hosts are independent: build them in parallel (subprocess-bound).
            with ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool:
                futures: list[Future[_HostRuntime]] = [
                    pool.submit(self._setup_host, index, spec, identity_pub)
                    for index, spec in enumerate(specs)
                ]
            for spec, fut in zip(specs, futures, strict=True):
                if (failure := fut.exception()) is not None:
                    if not isinstance(failure, Exception):
                        raise failure  # KeyboardInterrupt and friends stay what they are
                    raise LabError(f"setting up lab host {spec.name}: {failure}") from failure
            for fut in futures:
                rt = fut.result()
                self._runtime[rt.spec.name] = rt
                self.hosts[rt.spec.name] = LabHost(
                    spec=rt.spec,
                    address=LAB_ADDRESS,
                    port=rt.port,
                    host_public_key=rt.host_public_key,
                    netns=rt.netns,
                )
            lines = [
                f"[{LAB_ADDRESS}]:{rt.port} {rt.known_hosts_key}\n" for rt in self._runtime.values()
            ]
            self.known_hosts.write_text("".join(lines))
        except BaseException:
            with contextlib.suppress(LabError):
                self.down()
            raise

    def _setup_host(self, index: int, spec: LabHostSpec, identity_pub: str) -> _HostRuntime:
        netns = f"{NETNS_PREFIX}{self.lab_id}-{index}"
        hdir = self._base / "hosts" / spec.name
        rt = _HostRuntime(
            spec=spec,
            index=index,
            netns=netns,
            mnt_file=self._rundir / f"{index}.mnt",
            uts_file=self._rundir / f"{index}.uts",
            hdir=hdir,
            upper=hdir / "upper",
            work=hdir / "work",
            # Only a mount point; the overlay is visible inside the host's
            # mount namespace alone.
            root=self._rundir / str(index),
        )
        for d in (hdir, rt.upper, rt.work, rt.root):
            d.mkdir(mode=0o755, exist_ok=True)
        _fresh_root_home(rt.upper)

        # 1. network namespace with lo up.
        self._record("netns", netns)
        _run(["ip", "netns", "add", netns])
        _run(["ip", "-n", netns, "link", "set", "lo", "up"])

        # 2. persistent mount+UTS namespace holding the overlay root.  unshare
        #    runs inside the host's netns so that the sysfs mounted below shows
        #    the host's network devices.  /run and /tmp get fresh tmpfs: with
        #    lowerdir=/ they would otherwise show whatever the real machine has
        #    there (or nothing, when they are separate mounts).
        rt.mnt_file.touch()
        rt.uts_file.touch()
        self._record("ns_files", str(rt.mnt_file), str(rt.uts_file))
        self._record("mounts", str(rt.mnt_file), str(rt.uts_file))
        r = shlex.quote(str(rt.root))
        setup = "; ".join(
            [
                "set -e",
                f"mount -t overlay overlay -o lowerdir=/,upperdir={shlex.quote(str(rt.upper))},"
                f"workdir={shlex.quote(str(rt.work))} {r}",
                f"mount -t proc proc {r}/proc",
                f"mount -t sysfs sysfs {r}/sys",
                f"mount --rbind /dev {r}/dev",
                f"mount -t tmpfs -o mode=0755 tmpfs {r}/run",
                f"mount -t tmpfs -o mode=1777 tmpfs {r}/tmp",
                # sshd's privilege separation directory.
                f"mkdir -m 0755 {r}/run/sshd",
                f"hostname {shlex.quote(spec.name)}",
            ]
        )
        _run(
            [
                "nsenter",
                f"--net=/run/netns/{netns}",
                "unshare",
                f"--mount={rt.mnt_file}",
                f"--uts={rt.uts_file}",
                "--propagation",
                "private",
                "sh",
                "-c",
                setup,
            ]
        )

        # 3. the host's own ssh host key (and, for wrong_host_key, a decoy that
        #    goes into known_hosts instead).
        keydir = self._sshdir / spec.name
        keydir.mkdir(mode=0o700, exist_ok=True)
        host_key = keydir / "ssh_host_ed25519_key"
        rt.host_public_key = " ".join(_keygen(host_key, f"root@{spec.name}").split()[:2])
        rt.known_hosts_key = rt.host_public_key
        if spec.fault == "wrong_host_key":
            rt.known_hosts_key = " ".join(
                _keygen(keydir / "decoy_ed25519_key", "decoy").split()[:2]
            )

        # 4. files, written from inside the chroot so that symlinks in the
        #    paths resolve within the host root and never reach the real /.
        _run(
            [*rt.nsenter(), "/bin/sh", "-s"],
            input=self._provision_script(rt, host_key, identity_pub),
        )

        # 5. net.* sysctls (per network namespace, so only this host sees them).
        if spec.sysctls:
            self._set_sysctls(rt)

        # 6. the listener (or, for "down", a port nobody listens on).
        self._start_listener(rt)
        return rt

    def _provision_script(self, rt: _HostRuntime, host_key: Path, identity_pub: str) -> str:
        spec = rt.spec
        q = shlex.quote
        lines = ["set -eu", "umask 022"]

        def put(path: str, content: bytes, mode: int | None = None) -> None:
            lines.append(f"mkdir -p {q(posixpath.dirname(path))}")
            # base64 in a quoted here-document: any content, no quoting issues.
            lines.append(f"base64 -d > {q(path)} <<'DCLAB_EOF'")
            lines.extend(base64.encodebytes(content).decode().splitlines())
            lines.append("DCLAB_EOF")
            if mode is not None:
                lines.append(f"chmod {mode:o} {q(path)}")

        # Only this host's own key: drop the real machine's keys (in the
        # overlay, i.e. whiteouts) so no key is shared between hosts.
        lines.append("rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub")
        put("/etc/ssh/ssh_host_ed25519_key", host_key.read_bytes(), 0o600)
        put(
            "/etc/ssh/ssh_host_ed25519_key.pub",
            host_key.with_name(host_key.name + ".pub").read_bytes(),
            0o644,
        )
        lines.append("mkdir -p /root/.ssh && chmod 700 /root/.ssh")
        put("/root/.ssh/authorized_keys", (identity_pub + "\n").encode(), 0o600)
        put("/etc/hostname", (spec.name + "\n").encode(), 0o644)
        # /run is a fresh tmpfs: give it the login records file a booted
        # Debian has, or sshd logs "logout() returned an error" per session.
        lines.append(": > /run/utmp && chmod 664 /run/utmp && { chgrp utmp /run/utmp || true; }")
        for path, content in spec.files.items():
            put(path, content.encode(), None)
        for path, mode in spec.file_modes.items():
            lines.append(f"chmod {mode:o} {q(path)}")
        for path, owner in spec.file_owners.items():
            # chown runs in the chroot: names resolve against the host's passwd.
            lines.append(f"chown -h {q(owner)} {q(path)}")
        return "\n".join(lines) + "\n"

    def _set_sysctls(self, rt: _HostRuntime) -> None:
        # Safety net: net.* keys visible in a child netns are per-netns, but
        # verify the real machine's values did not move, and undo if they did.
        paths = {key: Path("/proc/sys") / key.replace(".", "/") for key in rt.spec.sysctls}
        before = {key: p.read_text() for key, p in paths.items() if p.exists()}
        argv = ["ip", "netns", "exec", rt.netns, "sysctl", "-q", "-w"]
        argv += [f"{key}={value}" for key, value in rt.spec.sysctls.items()]
        try:
            _run(argv)
        finally:
            for key, old in before.items():
                if paths[key].read_text() != old:
                    paths[key].write_text(old)
                    raise LabError(
                        f"sysctl {key} is not per network namespace; refused and restored"
                    )

    def _start_listener(self, rt: _HostRuntime) -> None:
        if rt.spec.fault == "down":
            # A bound but never listening socket: connections are refused, and
            # no other program (or lab) can take the port while we hold it.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LAB_ADDRESS, 0))
            rt.held_socket = sock
            rt.port = int(sock.getsockname()[1])
            with self._lock:
                self._ports.add(rt.port)
            return
        inner = _HANG_ARGS if rt.spec.fault == "hang" else _SSHD_ARGS
        command = " ".join([*rt.nsenter(), *inner])
        if len(command) > _SOCAT_MAX_EXEC:  # cannot happen with the fixed paths; be loud if it does
            raise LabError(f"socat EXEC command too long ({len(command)} bytes): {command[:80]}...")
        log_path = rt.hdir / "listener.log"
        last_error = ""
        for _ in range(20):
            with self._lock:
                port = _free_port(self._ports)
                self._ports.add(port)
            with open(log_path, "ab") as log:
                # nofork: socat's per-connection child execs nsenter directly,
                # so sshd gets the real TCP socket on stdin/stdout and logs the
                # client's address instead of "UNKNOWN port 65535".  A new
                # session keeps terminal signals for the test run from
                # reaching the listener half-way through teardown.
                proc = subprocess.Popen(
                    [
                        "socat",
                        f"TCP-LISTEN:{port},bind={LAB_ADDRESS},reuseaddr,fork",
                        f"EXEC:{command},nofork",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            info = _read_proc(proc.pid)
            self._record("pids", [proc.pid, info.start if info else 0])
            rt.listener = proc
            # Poll for readiness (no fixed sleeps): ours once socat holds the
            # listening socket, failed if socat exits (port taken meanwhile).
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if _listening(proc.pid, port):
                    rt.port = port
                    return
                time.sleep(0.002)
            else:
                proc.kill()
            proc.wait()
            last_error = _one_line(log_path.read_text(errors="replace"), 300)
            if "Address already in use" not in last_error:
                break
        raise LabError(
            f"socat listener for {rt.spec.name} did not start: {last_error or 'no output'}"
        )

    # -- down ----------------------------------------------------------------

    def down(self) -> None:
        """Tear the lab down: processes, netns, mounts, dirs.  Idempotent.

        Only processes of this lab are killed (recorded listener pids checked
        by start time, plus whatever runs inside the lab's namespaces).
        Already-gone resources are not errors; anything that really cannot be
        removed is reported in one :class:`LabError` after all steps ran.
        """
        if self._phase == "down":
            return
        was_up = self._phase == "up"
        self._phase = "down"
        _LIVE_LABS.discard(self)
        for rt in self._runtime.values():
            if rt.held_socket is not None:
                rt.held_socket.close()
                rt.held_socket = None
        if not was_up:
            # Never brought up: only the temp dir made by __init__ exists.
            if self._owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            return
        with self._lock:
            state = json.loads(json.dumps(self._state))
        _, errors = _teardown(state)
        # Reap our own socat children so they do not linger as zombies.
        for rt in self._runtime.values():
            if rt.listener is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    rt.listener.wait(timeout=5)
        if errors:
            raise LabError(f"lab {self.lab_id} teardown incomplete: {'; '.join(errors)}")

    # -- inventory -------------------------------------------------------------

    def inventory(self, collect: Mapping[str, object] | None = None) -> dict[str, Any]:
        """The project's inventory mapping for this lab (see module docs).

        ``compare.reference`` is ``production`` when present (else the first
        environment); every other environment is a target.
        """
        if not self.hosts:
            raise LabError("the lab is not up")
        envs: dict[str, dict[str, Any]] = {}
        for host in self.hosts.values():
            entry = {"address": host.address, "port": host.port, "roles": list(host.spec.roles)}
            envs.setdefault(host.spec.environment, {"hosts": {}})["hosts"][host.spec.name] = entry
        reference = "production" if "production" in envs else next(iter(envs))
        ordered = {reference: envs[reference], **{k: v for k, v in envs.items() if k != reference}}
        return {
            "defaults": {
                "user": "root",
                "port": 22,
                "identity_file": str(self.identity_file),
                "known_hosts": str(self.known_hosts),
                "connect_timeout": 5,
                "command_timeout": 30,
            },
            "environments": ordered,
            "compare": {"reference": reference, "targets": [k for k in ordered if k != reference]},
            "collect": dict(collect) if collect is not None else {},
        }

    def write_inventory(self, path: Path, collect: Mapping[str, object] | None = None) -> Path:
        """Write :meth:`inventory` as YAML to ``path`` and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            yaml.safe_dump(self.inventory(collect), sort_keys=False, default_flow_style=False)
        )
        return path

    # -- helpers for tests -----------------------------------------------------

    def _host(self, host: str) -> _HostRuntime:
        if self._phase != "up" or host not in self._runtime:
            raise LabError(
                f"unknown lab host {host!r} (lab hosts: {', '.join(self._runtime) or 'none'})"
            )
        return self._runtime[host]

    def exec(
        self,
        host: str,
        argv: Sequence[str],
        check: bool = True,
        *,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host`` (its namespaces and chroot), as root.

        Works for every host, faulty ones included.  With ``check`` a non-zero
        exit raises :class:`LabError` naming the command and its stderr.
        """
        rt = self._host(host)
        proc = _run(
            [*rt.nsenter(), *argv], input=input, timeout=timeout, env=_HOST_ENV, check=False
        )
        if check and proc.returncode != 0:
            detail = _one_line(proc.stderr) or _one_line(proc.stdout) or "no output"
            raise LabError(
                f"on {host}: command failed (exit {proc.returncode}): {shlex.join(argv)}: {detail}"
            )
        return proc

    def write_file(
        self, host: str, path: str, content: str, mode: int | None = None, owner: str | None = None
    ) -> None:
        """Create or replace a file inside ``host`` (from within its chroot)."""
        _check_host_path(host, path)
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1"'
        if mode is not None:
            script += f' && chmod {mode:o} "$1"'
        if owner is not None:
            if not _OWNER_RE.fullmatch(owner):
                raise LabError(f"invalid owner {owner!r}: use 'user:group'")
            script += f' && chown -h {shlex.quote(owner)} "$1"'
        self.exec(host, ["/bin/sh", "-c", script, "sh", path], input=content)

    def ssh_command(self, host: str, command: str, connect_timeout: int = 5) -> list[str]:
        """argv for the system OpenSSH client to run ``command`` on ``host``.

        Strict host key checking against the lab's known_hosts; ``-F
        /dev/null`` keeps the caller's ssh config out of the picture.
        """
        port = self.hosts[host].port if host in self.hosts else self._host(host).port
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.identity_file),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-p",
            str(port),
            f"root@{LAB_ADDRESS}",
            command,
        ]

    def upper_dir(self, host: str) -> Path:
        """The overlay upper directory of ``host``: every change it made to its root."""
        return self._host(host).upper

    def log_text(self, host: str) -> str:
        """The listener/sshd log of ``host`` (sshd runs with ``-e``)."""
        path = self._host(host).hdir / "listener.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _down_live_labs() -> None:
    # Normal interpreter exit without down(): still clean up.  (SIGKILL leaves
    # the work to cleanup_stale.)
    for lab in list(_LIVE_LABS):
        with contextlib.suppress(Exception):
            lab.down()


atexit.register(_down_live_labs)
