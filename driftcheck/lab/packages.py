"""Debian packages for real package drift: what apt offers, what is installed, the .deb cache.

On the real machine this only *reads* the package state (apt-cache,
dpkg-query) and downloads into :data:`DEB_CACHE`; installing and removing
(:func:`apply_packages`) happens inside a lab host, with the host's own dpkg
database in its overlay.  Debian's archive moves on (security
updates replace versions), so callers pick versions at run time with
:func:`available_versions` and :func:`installed_version` instead of
hard-coding them.
"""

from __future__ import annotations

import functools
import os
import posixpath
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from driftcheck.lab.commands import failure, one_line, run
from driftcheck.lab.errors import LabError
from driftcheck.lab.runtime import HostRuntime
from driftcheck.lab.spec import LabHostSpec, check_package

#: Downloaded .deb files, kept across labs so that repeated runs download nothing.
DEB_CACHE = Path("/var/cache/driftcheck-lab/debs")

Wanted = tuple[str, str]  # (package, version)

# Packages are copied to the host's own /tmp (a tmpfs of its mount namespace),
# so the .deb files never end up in its overlay upper dir.
_DEBS_IN_HOST = "/tmp/driftcheck-lab-debs"
_DPKG_ENV: Mapping[str, str] = {"DEBIAN_FRONTEND": "noninteractive"}


def _apt_env() -> dict[str, str]:
    # English messages (we quote them), and never a prompt.  Built per call:
    # PATH may change at run time.
    return {**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}


def _madison(name: str) -> list[str]:
    # apt-cache lists versions newest first; the same version may appear once
    # per archive (bookworm, -updates, -security) and source packages end in
    # "Sources".  It exits 0 and prints nothing for unknown names.
    proc = run(["apt-cache", "madison", name], env=_apt_env(), check=False)
    versions: list[str] = []
    for line in proc.stdout.splitlines():
        fields = [part.strip() for part in line.split("|")]
        if (
            len(fields) == 3
            and fields[0] == name
            and not fields[2].endswith(" Sources")
            and fields[1] not in versions
        ):
            versions.append(fields[1])
    return versions


def apt_update() -> str:
    """Run ``apt-get update``; return '' on success, else its error as one line."""
    proc = run(
        ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=120"],
        env=_apt_env(),
        timeout=600,
        check=False,
    )
    return "" if proc.returncode == 0 else failure(proc, "apt-get update")


def available_versions(name: str) -> list[str]:
    """Versions of Debian package ``name`` that apt can download, newest first.

    Reads ``apt-cache madison``; when apt knows no version at all (a fresh
    machine has no package lists) it runs ``apt-get update`` once and asks
    again.  An unknown package gives an empty list.
    """
    check_package(name, None)
    versions = _madison(name)
    if not versions:
        apt_update()
        versions = _madison(name)
    return versions


def installed_version(name: str) -> str | None:
    """The version of ``name`` installed on this (the real) machine, or None."""
    check_package(name, None)
    proc = run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}\t${Version}\n", name],
        env=_apt_env(),
        check=False,
    )
    for line in proc.stdout.splitlines():
        status, _, version = line.partition("\t")
        # Second letter of the abbreviated status: 'i' = installed and configured
        # ("rc" = removed, only its configuration files are left).
        if status[1:2] == "i":
            return version
    return None


def deb_file_name(name: str, version: str, arch: str) -> str:
    """The file name apt gives a .deb (an epoch's ':' is written %3a)."""
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


def _cached(cache: Path, name: str, version: str) -> Path | None:
    for arch in ("all", _native_arch()):
        path = cache / deb_file_name(name, version, arch)
        if path.is_file():
            return path
    return None


@functools.cache
def _native_arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def _identify(deb: Path) -> tuple[str, str, str]:
    out = run(["dpkg-deb", "-W", "--showformat=${Package}\t${Version}\t${Architecture}", str(deb)])
    name, version, arch = out.stdout.split("\t")
    return name, version, arch.strip()


def _download_error(
    missing: list[Wanted], proc: subprocess.CompletedProcess[str], update_error: str
) -> LabError:
    """The most useful explanation of a failed download."""
    for name, version in missing:
        versions = _madison(name)
        if not versions:
            return LabError(
                f"package {name} (version {version}) is unknown to apt: apt-cache madison "
                f"{name} finds nothing; check the name and the machine's apt sources"
            )
        if version not in versions:
            return LabError(
                f"package {name} has no version {version} in apt's archive; available "
                f"versions: {', '.join(versions)}; pick one of those"
            )
    detail = failure(proc, "apt-get download " + shlex.join(f"{n}={v}" for n, v in missing))
    if update_error:
        detail += f" (and {update_error})"
    return LabError(f"downloading packages failed: {detail}")


def fetch_debs(wanted: Iterable[Wanted], cache: Path = DEB_CACHE) -> dict[Wanted, Path]:
    """Make sure a .deb of every (package, version) is in ``cache``; return their paths.

    Cached files are reused, so a repeated lab downloads nothing.  The rest is
    downloaded with one ``apt-get download``; when that fails (package lists
    missing or stale) ``apt-get update`` runs once and the download is
    retried.  A version apt does not have raises :class:`LabError` naming the
    package, the version and the versions that exist.
    """
    result: dict[Wanted, Path] = {}
    missing: list[Wanted] = []
    for name, version in sorted(set(wanted)):
        check_package(name, version)
        path = _cached(cache, name, version)
        if path is None:
            missing.append((name, version))
        else:
            result[(name, version)] = path
    if not missing:
        return result
    cache.mkdir(mode=0o755, parents=True, exist_ok=True)
    # Download into a private directory, then rename: a concurrent lab or an
    # interrupted download never leaves a partial file under the final name.
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=cache))
    try:
        argv = [
            "apt-get",
            "download",
            "-q",
            # apt would drop to user _apt, which cannot write into our cache.
            "-o",
            "APT::Sandbox::User=root",
            *(f"{name}={version}" for name, version in missing),
        ]
        proc = run(argv, cwd=tmp, env=_apt_env(), timeout=600, check=False)
        update_error = ""
        if proc.returncode != 0:
            update_error = apt_update()
            proc = run(argv, cwd=tmp, env=_apt_env(), timeout=600, check=False)
        if proc.returncode != 0:
            raise _download_error(missing, proc, update_error)
        for deb in sorted(tmp.glob("*.deb")):
            name, version, arch = _identify(deb)
            target = cache / deb_file_name(name, version, arch)
            os.replace(deb, target)
            result[(name, version)] = target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    absent = [f"{n}={v}" for n, v in missing if (n, v) not in result]
    if absent:
        raise LabError(
            f"apt-get download did not deliver {', '.join(absent)}: {one_line(proc.stdout)}"
        )
    return result


def removals(packages: Mapping[str, str | None]) -> list[str]:
    """Package names a spec removes."""
    return [name for name, version in packages.items() if version is None]


def installs(packages: Mapping[str, str | None]) -> list[Wanted]:
    """(package, version) pairs a spec installs."""
    return [(name, version) for name, version in packages.items() if version is not None]


def check_release_installs(spec: LabHostSpec, machine_release: str) -> None:
    """Refuse exact-version installs on a host of another Debian release.

    The .deb files come from this machine's apt, i.e. from the machine's own
    release: dpkg -i of those into, say, a trixie root would mix releases and
    break in ways no real host shows.  Removals use the host's own dpkg and
    are fine, and a host of the machine's own release can take its debs.
    """
    wanted = installs(spec.packages)
    if spec.release is None or spec.release == machine_release or not wanted:
        return
    names = ", ".join(f"{n}={v}" for n, v in wanted)
    raise LabError(
        f"host {spec.name} (release {spec.release}) cannot install {names}: the .debs come "
        f"from this machine's apt ({machine_release or 'unknown release'}), not from "
        f"{spec.release}; remove packages there (version null) or leave release out"
    )


def apply_packages(rt: HostRuntime, debs: Callable[[], Mapping[Wanted, Path]]) -> None:
    """Remove, then install the host spec's packages with dpkg inside the host's chroot.

    Removal falls back to ``--force-depends``; installing takes the .debs from
    ``debs()`` (which waits for the lab's downloads) and resolves no
    dependencies.  Everything dpkg writes lands in the host's overlay.
    """
    gone = removals(rt.spec.packages)
    if gone:
        argv = ["dpkg", "--remove", *gone]
        if rt.run(argv, env=_DPKG_ENV, check=False).returncode != 0:
            # Installed packages depend on it.  The host is throw-away:
            # breaking their dependencies is exactly the drift asked for.
            rt.run(["dpkg", "--remove", "--force-depends", *gone], env=_DPKG_ENV)
    wanted = installs(rt.spec.packages)
    if not wanted:
        return
    files = debs()  # waits for the lab's downloads
    paths = [str(files[pair]) for pair in wanted]
    # Copy from the real machine's cache (visible in the host's mount
    # namespace outside the chroot) into the host root.
    run(
        [
            "nsenter",
            f"--mount={rt.mnt_file}",
            "sh",
            "-c",
            'mkdir -p "$0" && exec cp -- "$@" "$0"',
            f"{rt.root}{_DEBS_IN_HOST}",
            *paths,
        ]
    )
    inside = [f"{_DEBS_IN_HOST}/{posixpath.basename(p)}" for p in paths]
    # man-db's trigger rebuilds the whole man page index after any package
    # that ships man pages (~2.5 s per host); Debian's own switch turns it off.
    rt.run(["rm", "-f", "/var/lib/man-db/auto-update"])
    argv = ["dpkg", "--install", *inside]
    proc = rt.run(argv, env=_DPKG_ENV, timeout=600, check=False)
    if proc.returncode != 0:
        # dpkg -i resolves no dependencies: the usual reason.
        names = ", ".join(f"{n}={v}" for n, v in wanted)
        raise LabError(
            f"installing {names} failed: {failure(proc, shlex.join(argv))}; "
            "add missing dependencies to the host's packages too"
        )
    rt.run(["rm", "-rf", _DEBS_IN_HOST])
