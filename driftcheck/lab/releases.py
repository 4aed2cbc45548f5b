"""Root trees of other Debian releases, built once with debootstrap and cached.

A lab host with ``release: trixie`` runs on an overlay whose lower layer is
:data:`RELEASE_CACHE`/trixie instead of the machine's own ``/``: a genuine
other Debian release (its own sshd, dpkg database, libraries and /etc), which
differs from the machine in thousands of facts, as a real fleet does.

The tree is built by ``debootstrap --variant=minbase``, plus openssh-server
and a few server packages installed by the tree's own apt, in a temporary
folder beside the cache entry, then renamed into place: the rename is the
commit, so an interrupted build is never mistaken for a complete one.  A
lock file per release serialises builders (threads of one lab as well as
concurrent test processes); a waiting builder finds the finished tree and
reuses it.

A cached tree is only ever read (it is a lower layer of mounted overlays, and
overlayfs does not allow changing those); delete the release's folder to have
it rebuilt.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from driftcheck.lab.commands import one_line, run
from driftcheck.lab.errors import LabError
from driftcheck.lab.spec import RELEASES
from driftcheck.lab.system import mounts, rmtree, umount

#: One complete root tree per release (RELEASE_CACHE/<release>), plus <release>.json.
RELEASE_CACHE = Path("/var/cache/driftcheck-lab/releases")
#: What a release root gets beyond minbase: sshd for the lab's own access and the
#: everyday tools of a server, so collectors find what a real host has.
RELEASE_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "systemd",
    "cron",
    "procps",
    "iproute2",
    "sudo",
)
#: debootstrap's own default, used when apt's sources name no Debian archive.
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Files a complete tree must have: the lab runs the release's own sshd.
_REQUIRED = ("etc/debian_version", "usr/sbin/sshd", "usr/bin/dpkg-query")
_BUILD_PREFIX = ".build-"
# debootstrap downloads and unpacks ~100 packages, apt ~40 more: about a minute
# each here, but a slow mirror needs far longer.
_BUILD_TIMEOUT = 1800.0
# A waiting builder gives the one holding the lock time for both steps.
_LOCK_WAIT = 2 * _BUILD_TIMEOUT + 60.0
_SOURCES_LIST = Path("/etc/apt/sources.list")
_SOURCES_DIR = Path("/etc/apt/sources.list.d")


def release_dir(release: str, cache: Path = RELEASE_CACHE) -> Path:
    """Where the complete root tree of ``release`` lives (whether built or not)."""
    return cache / release


def machine_release() -> str:
    """The codename of the machine's own Debian release (VERSION_CODENAME), or ''."""
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return ""
    match = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.MULTILINE)
    return match.group(1) if match else ""


def _deb822_uris(text: str) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of every deb entry of a deb822 .sources file."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "\t", "#")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def _one_line_uris(text: str) -> Iterator[tuple[str, list[str]]]:
    """(URI, [suite]) of every ``deb`` line of a sources.list file."""
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            yield words[1], [words[2]]


def debian_mirror() -> str:
    """The Debian archive apt uses here (not the security archive), for debootstrap.

    Reads /etc/apt/sources.list and sources.list.d (both formats) and takes
    the first entry that serves the machine's own release or one of its
    -updates/-backports suites from a Debian archive ("/debian" path).
    """
    entries: list[tuple[str, list[str]]] = []
    with contextlib.suppress(OSError):
        entries += _one_line_uris(_SOURCES_LIST.read_text())
    if _SOURCES_DIR.is_dir():
        for path in sorted(_SOURCES_DIR.iterdir()):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if path.suffix == ".sources":
                    entries += _deb822_uris(path.read_text())
                elif path.suffix == ".list":
                    entries += _one_line_uris(path.read_text())
    own = machine_release()
    for uri, suites in entries:
        if not uri.rstrip("/").endswith("/debian"):
            continue
        ours = not own or any(s == own or s.startswith(f"{own}-") for s in suites)
        if ours and not all(s.endswith("-security") for s in suites):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


@contextlib.contextmanager
def _build_lock(cache: Path, release: str) -> Iterator[int]:
    """Hold the release's lock file (flock: threads and processes alike wait).

    Yields the lock's file descriptor: the build's commands keep it open, so a
    debootstrap or dpkg that outlives a killed builder still holds the lock
    and the next builder waits for it instead of deleting the folder under it.
    Hence no explicit unlock: closing the last descriptor releases it.
    """
    path = cache / f".{release}.lock"
    with open(path, "a") as handle:
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"another build of the {release} root has held {path} for over "
                        f"{_LOCK_WAIT / 60:.0f} minutes; end it (or what a killed build left "
                        "running with that file open) and try again"
                    ) from None
                time.sleep(0.2)
        yield handle.fileno()


def _discard(tree: Path) -> None:
    """Remove a (partial) build: unmount what debootstrap left mounted, then delete."""
    prefix = str(tree).rstrip("/") + "/"
    for mp, _ in reversed(mounts()):
        if mp.startswith(prefix):
            with contextlib.suppress(LabError):
                umount(mp)
    # Never descend into a mount that could not be removed (it may be /proc).
    if not any(mp.startswith(prefix) for mp, _ in mounts()):
        rmtree(str(tree))


def _kill_stragglers(tree: Path) -> None:
    """Kill processes our build left running inside ``tree``: a daemon that a
    package's postinst started despite policy-rc.d would otherwise outlive us."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            root = os.readlink(f"/proc/{entry}/root")
            if root == str(tree) or root.startswith(str(tree) + "/"):
                os.kill(int(entry), signal.SIGKILL)


def _build_env() -> dict[str, str]:
    # The caller's environment carries any proxy settings; the messages we quote
    # are English, and no package may prompt.
    return {**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def _failure_detail(proc: subprocess.CompletedProcess[str], log: Path | None = None) -> str:
    """The lines that say why debootstrap or apt-get failed, as one line."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("E:", "W:"))]
    if log is not None and log.is_file():
        lines += log.read_text(errors="replace").splitlines()[-3:]
    return one_line("\n".join(lines[-5:]), 400) or one_line(proc.stderr, 400) or "no output"


def _build_step(argv: list[str], target: Path, lock_fd: int) -> subprocess.CompletedProcess[str]:
    """Run one build command; it holds the lock too (see _build_lock)."""
    try:
        return run(argv, env=_build_env(), timeout=_BUILD_TIMEOUT, check=False, pass_fds=[lock_fd])
    finally:
        _kill_stragglers(target)


def _debootstrap(release: str, target: Path, mirror: str, lock_fd: int) -> None:
    """Run debootstrap (minbase) into ``target``; a failure is one LabError line."""
    argv = ["debootstrap", "--variant=minbase", "--components=main", release, str(target), mirror]
    proc = _build_step(argv, target, lock_fd)
    if proc.returncode != 0:
        detail = _failure_detail(proc, target / "debootstrap" / "debootstrap.log")
        raise LabError(
            f"building the {release} root with debootstrap failed (exit {proc.returncode}): "
            f"{detail}; check the mirror {mirror} and the network"
        )


def _install_packages(release: str, target: Path, lock_fd: int) -> None:
    """Install :data:`RELEASE_PACKAGES` into a fresh minbase tree with its own apt.

    Not ``debootstrap --include``: debootstrap's simple resolver installs the
    included packages in one dpkg call, which fails on trixie (systemd
    pre-depends on libsystemd-shared of the same batch, pulled in by cron).
    apt orders that correctly.  It runs in a throw-away mount namespace, so
    the /proc and /dev it needs vanish with it even if we are killed, and
    policy-rc.d keeps every package's service from starting on the machine.
    """
    policy = target / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# driftcheck lab build: start no service\nexit 101\n")
    os.chmod(policy, 0o755)
    t = shlex.quote(str(target))
    apt = f"chroot {t} apt-get -q -y -o DPkg::Lock::Timeout=120"
    script = "; ".join(
        [
            "set -e",
            f"mount -t proc proc {t}/proc",
            f"mount --rbind /dev {t}/dev",
            f"{apt} update",
            f"{apt} install --no-install-recommends {shlex.join(RELEASE_PACKAGES)}",
            f"{apt} clean",
        ]
    )
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    proc = _build_step(argv, target, lock_fd)
    policy.unlink()
    if proc.returncode != 0:
        raise LabError(
            f"installing {', '.join(RELEASE_PACKAGES)} into the {release} root failed "
            f"(exit {proc.returncode}): {_failure_detail(proc)}; check the network"
        )


def _finish_tree(tree: Path) -> None:
    """Make a fresh tree fit to be shared by many hosts as a read-only lower layer."""
    missing = [name for name in _REQUIRED if not (tree / name).exists()]
    if missing:
        raise LabError(f"the build left an incomplete tree in {tree}: no {', '.join(missing)}")
    # openssh-server's postinst generated host keys: every host gets its own
    # instead, and a shared cache holds no private key.
    for key in (tree / "etc" / "ssh").glob("ssh_host_*_key*"):
        key.unlink()
    # Package lists are ~50 MB per release and useless inside a host, which has
    # no network; dpkg's own database stays.
    lists = tree / "var" / "lib" / "apt" / "lists"
    for entry in lists.iterdir() if lists.is_dir() else ():
        if entry.is_file() and entry.name != "lock":
            entry.unlink()
    # debootstrap copied the machine's own name and resolver; a host sets its own name.
    (tree / "etc" / "hostname").write_text("localhost\n")


def tree_size(tree: Path) -> int:
    """Bytes the tree occupies on disk (hard links counted once)."""
    seen: set[int] = set()
    total = 0
    for folder, dirs, files in os.walk(tree):
        for name in dirs + files:
            st = os.lstat(os.path.join(folder, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def build_release(release: str, cache: Path = RELEASE_CACHE) -> Path:
    """Build the root tree of ``release`` unless it is cached; return its path.

    Safe to call from several threads and processes at once: one builds, the
    others wait for it and reuse its tree.  Writes ``<release>.json`` beside
    the tree with the mirror, the packages, the build time and the size.
    """
    if release not in RELEASES:
        raise LabError(f"unknown release {release!r}; supported releases: {', '.join(RELEASES)}")
    final = release_dir(release, cache)
    if final.is_dir():  # renamed into place only when complete
        return final
    if shutil.which("debootstrap") is None:
        raise LabError(
            f"lab hosts with release: {release} need debootstrap; apt-get install debootstrap"
        )
    cache.mkdir(mode=0o755, parents=True, exist_ok=True)
    with _build_lock(cache, release) as lock_fd:
        if final.is_dir():  # built by whoever held the lock before us
            return final
        # Leftovers of a build that was killed (we hold the lock: nobody else builds).
        for old in cache.glob(f"{_BUILD_PREFIX}{release}-*"):
            _discard(old)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_BUILD_PREFIX}{release}-", dir=cache))
        os.chmod(tmp, 0o755)  # the root of every host built on it
        mirror = debian_mirror()
        started = time.monotonic()
        try:
            _debootstrap(release, tmp, mirror, lock_fd)
            _install_packages(release, tmp, lock_fd)
            _finish_tree(tmp)
            os.rename(tmp, final)
        except BaseException:
            _discard(tmp)
            raise
        info = {
            "release": release,
            "mirror": mirror,
            "packages": list(RELEASE_PACKAGES),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.monotonic() - started, 1),
            "bytes": tree_size(final),
        }
        (cache / f"{release}.json").write_text(json.dumps(info, indent=1) + "\n")
    return final
