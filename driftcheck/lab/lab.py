"""The :class:`Lab`: a set of lab hosts brought up and torn down together."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from driftcheck.lab.commands import require_tools, run
from driftcheck.lab.errors import LabError, require_root
from driftcheck.lab.host import BehindLink, HostBuilder
from driftcheck.lab.names import (
    LAB_ADDRESS,
    LAB_ID_PATTERN,
    LAB_SUDO_USER,
    NETNS_PREFIX,
    STATE_DIR,
    netns_name,
    new_lab_id,
    run_dir,
)
from driftcheck.lab.packages import check_release_installs, fetch_debs, installs
from driftcheck.lab.provision import HostScript, keygen
from driftcheck.lab.registry import cleanup_stale
from driftcheck.lab.releases import build_release, machine_release
from driftcheck.lab.runtime import HostRuntime
from driftcheck.lab.spec import (
    BEHIND_NETS,
    LabHost,
    LabHostSpec,
    check_lab,
    check_owner,
    check_path,
)
from driftcheck.lab.state import LabRecord, LabState
from driftcheck.lab.system import boot_id, start_time, unused_network
from driftcheck.lab.teardown import teardown

__all__ = ["Lab"]

# The workdir ends up in overlayfs mount options (where "," and ":" are
# separators) and in shell scripts: keep it to this set.
_WORKDIR_SAFE_RE = re.compile(r"[A-Za-z0-9_./+@-]+")

# Strong references on purpose: a Lab dropped without down() must still be
# torn down at interpreter exit (unless it was detached).
_LIVE_LABS: set[Lab] = set()


class Lab:
    """A set of namespace-based SSH hosts on 127.0.0.1.  Use as a context manager.

    A ``Lab`` is single-use: ``up()`` once, ``down()`` (idempotent) at the end.
    A *detached* lab keeps running after this process exits, until
    :func:`~driftcheck.lab.stop_detached` (or this object's ``down()``).
    """

    def __init__(self, workdir: Path | None = None, *, detached: bool = False) -> None:
        """Prepare a lab; nothing is created until :meth:`up`.

        ``workdir`` holds the overlay layers, keys and logs; by default a fresh
        temp dir is used and removed again by :meth:`down`.  With an explicit
        ``workdir`` only the lab's own ``dclab-<id>`` subdirectory is removed.
        ``detached=True`` is :meth:`detach` in advance.
        """
        self.lab_id = new_lab_id()
        self._owns_workdir = workdir is None
        if workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=NETNS_PREFIX))
        else:
            self.workdir = Path(workdir).absolute()
        self._base = self.workdir / f"{NETNS_PREFIX}{self.lab_id}"
        # Short fixed-length paths for what appears in socat's EXEC command:
        # the namespace files and the hosts' root mount points.
        self._rundir = run_dir(self.lab_id)
        self._sshdir = self._base / "ssh"
        self.identity_file: Path = self._sshdir / "id_ed25519"
        self.known_hosts: Path = self._sshdir / "known_hosts"
        #: An OpenSSH config with the lab's key and known_hosts for every host,
        #: so that ``ssh -F lab.ssh_config -J ...`` works: -J passes -F on to
        #: the jump connection, but not -i or -o.
        self.ssh_config: Path = self._sshdir / "ssh_config"
        self.hosts: dict[str, LabHost] = {}
        self._runtime: dict[str, HostRuntime] = {}
        self._release_roots: dict[str, Path] = {}
        self._phase = "new"  # -> "starting" -> "up" -> "down"
        self._encrypted = 0
        self._detached = detached
        self._state = LabState(
            LabRecord(
                lab_id=self.lab_id,
                owner_pid=os.getpid(),
                workdir=str(self.workdir),
                identity_file=str(self.identity_file),
                known_hosts=str(self.known_hosts),
            )
        )
        _LIVE_LABS.add(self)

    # -- context manager -------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # A detached lab is meant to outlive the block, unless the block failed.
        if not self._detached or exc_type is not None:
            self.down()

    # -- detaching -------------------------------------------------------

    @property
    def detached(self) -> bool:
        """True when the lab outlives this process (see :meth:`detach`)."""
        return self._detached

    def detach(self) -> None:
        """Let the lab outlive this process.

        It is then not torn down at interpreter exit nor by ``cleanup_stale()``
        when this process is gone; ``stop_detached()`` removes it.  Before
        :meth:`up` this takes effect once the lab is fully up, so a lab whose
        process dies half-way through ``up()`` is still cleaned up as stale.
        """
        if self._phase == "down":
            raise LabError(f"lab {self.lab_id} is down; there is nothing to detach")
        self._detached = True
        if self._phase == "up":
            self._mark_detached()

    def _mark_detached(self) -> None:
        with self._state.change() as record:
            record.detached = True
        _LIVE_LABS.discard(self)

    # -- up ----------------------------------------------------------------

    def up(self, specs: Sequence[LabHostSpec]) -> None:
        """Create and start every host in ``specs``; on failure nothing is left behind.

        Packages the specs install are downloaded (or taken from the cache)
        once, while the hosts are being built.  The root tree of every release
        the specs name is built first when it is not cached yet (minutes,
        once per machine; see :mod:`driftcheck.lab.releases`).
        """
        require_root()
        if self._phase != "new":
            raise LabError("a Lab can be brought up only once; create a new Lab")
        if not specs:
            raise LabError("a lab needs at least one host")
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise LabError(f"duplicate lab host names: {', '.join(dupes)}")
        check_lab(specs)
        require_tools()
        own = machine_release()
        for spec in specs:
            check_release_installs(spec, own)
        if not _WORKDIR_SAFE_RE.fullmatch(str(self._base)):
            raise LabError(
                f"lab workdir {self.workdir} must only contain letters, digits and _ . / + @ -"
            )
        _cleanup_stale_with_warning()
        # Before anything of the lab exists: a build creates no lab resource and
        # removes its own partial tree when it fails or is interrupted.
        releases = sorted({spec.release for spec in specs if spec.release is not None})
        self._release_roots = {release: build_release(release) for release in releases}

        self._phase = "starting"
        try:
            self._up(specs)
        except BaseException:
            with contextlib.suppress(LabError):
                self.down()
            raise
        self._phase = "up"
        if self._detached:
            self._mark_detached()

    def _up(self, specs: Sequence[LabHostSpec]) -> None:
        with self._state.change() as record:
            record.boot_id = boot_id()
            record.owner_pid = os.getpid()
            record.owner_start = start_time(os.getpid())
        dirs = [str(self._rundir), str(self._base)]
        self._state.add("dirs", *dirs, *([str(self.workdir)] if self._owns_workdir else []))
        self.workdir.mkdir(parents=True, exist_ok=True)
        STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        for d in (self._base, self._sshdir, self._base / "hosts", self._rundir):
            d.mkdir(mode=0o700, exist_ok=True)
        # Namespace files can only be bind-mounted onto a private mount
        # (otherwise the bind would propagate and pin the namespace).
        self._state.add("mounts", str(self._rundir))
        run(["mount", "--bind", str(self._rundir), str(self._rundir)])
        run(["mount", "--make-private", str(self._rundir)])
        identity_pub = keygen(self.identity_file, f"driftcheck-lab-{self.lab_id}")

        wanted = sorted({pair for spec in specs for pair in installs(spec.packages)})
        links_needed = any(spec.behind is not None for spec in specs)
        # Hosts are independent: build them in parallel (subprocess-bound),
        # while one more thread downloads the packages they will install.
        with (
            ThreadPoolExecutor(max_workers=1) as downloader,
            ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool,
        ):
            debs = downloader.submit(fetch_debs, wanted)
            builder = HostBuilder(
                lab_id=self.lab_id,
                base=self._base,
                rundir=self._rundir,
                state=self._state,
                identity_pub=identity_pub,
                debs=debs.result,
                release_roots=self._release_roots,
                behind_net=unused_network(BEHIND_NETS) if links_needed else BEHIND_NETS[0],
            )
            # Bastions first: the hosts behind them join their namespaces.
            links = _behind_links(self.lab_id, specs, builder.behind_net)
            index = {spec.name: i for i, spec in enumerate(specs)}
            waves = [[s for s in specs if s.bastion], [s for s in specs if not s.bastion]]
            for wave in waves:
                # (A link only when there is one: build(index, spec) stays the
                # two-argument call that tests wrap.)
                futures = [
                    pool.submit(builder.build, index[s.name], s, *_link_of(links, s.name))
                    for s in wave
                ]
                _raise_first_failure(wave, futures, debs)
                for fut in futures:
                    self._runtime[fut.result().spec.name] = fut.result()
        self._publish([self._runtime[spec.name] for spec in specs])

    def _publish(self, runtimes: list[HostRuntime]) -> None:
        """Make the built hosts known: ``hosts``, known_hosts, ssh_config, the state file."""
        for rt in runtimes:
            sudo = rt.spec.login != "root"
            jump = None
            if rt.spec.behind is not None:
                bastion = self._runtime[rt.spec.behind]
                jump = f"{_login_user(bastion.spec)}@{LAB_ADDRESS}:{bastion.port}"
            self.hosts[rt.spec.name] = LabHost(
                spec=rt.spec,
                address=rt.address,
                port=rt.port,
                host_public_key=rt.host_public_key,
                netns=rt.netns,
                user=LAB_SUDO_USER if sudo else "root",
                become="sudo" if sudo else None,
                sudo_password=rt.sudo_password,
                proxy_jump=jump,
            )
        # A host behind a bastion is known under its plain address (port 22).
        lines = [
            f"{rt.address if rt.address != LAB_ADDRESS else f'[{LAB_ADDRESS}]:{rt.port}'}"
            f" {rt.known_hosts_key}\n"
            for rt in runtimes
        ]
        self.known_hosts.write_text("".join(lines))
        self.ssh_config.write_text(_ssh_config(self.identity_file, self.known_hosts))
        with self._state.change() as record:
            record.hosts = {
                name: host.port for name, host in self.hosts.items() if host.address == LAB_ADDRESS
            }

    # -- down ----------------------------------------------------------------

    def down(self) -> None:
        """Tear the lab down: processes, netns, mounts, dirs.  Idempotent.

        Only processes of this lab are killed (recorded listener pids checked
        by start time, plus whatever runs inside the lab's namespaces).
        Already-gone resources are not errors; anything that really cannot be
        removed is reported in one :class:`LabError` after all steps ran.
        Works on a detached lab too.
        """
        if self._phase == "down":
            return
        was_started = self._phase != "new"
        self._phase = "down"
        _LIVE_LABS.discard(self)
        if not was_started:
            # Never brought up: only the temp dir made by __init__ exists.
            if self._owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            return
        _, errors = teardown(self._state.snapshot())
        # Reap our own children so they do not linger as zombies.
        for rt in self._runtime.values():
            if rt.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    rt.process.wait(timeout=5)
        if errors:
            raise LabError(f"lab {self.lab_id} teardown incomplete: {'; '.join(errors)}")

    # -- inventory -------------------------------------------------------------

    def inventory(self, collect: Mapping[str, object] | None = None) -> dict[str, Any]:
        """The project's inventory mapping for this lab.

        A host with a sudo login has ``user`` and ``become: sudo`` in its entry; a
        host behind a bastion has its 192.0.2.N address, port 22 and
        ``proxy_jump``; bastions themselves are left out.
        ``compare.reference`` is ``production`` when present (else the first
        environment); every other environment is a target.
        """
        if not self.hosts:
            raise LabError("the lab is not up")
        envs: dict[str, dict[str, Any]] = {}
        for host in self.hosts.values():
            if host.spec.bastion:  # only ever jumped through, never collected from
                continue
            entry = _inventory_entry(host)
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

    # -- working with hosts ----------------------------------------------------

    def _host(self, host: str) -> HostRuntime:
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
        return self._host(host).run(argv, input=input, timeout=timeout, check=check)

    def write_file(
        self, host: str, path: str, content: str, mode: int | None = None, owner: str | None = None
    ) -> None:
        """Create or replace a file inside ``host`` (from within its chroot)."""
        check_path(host, path)
        script = HostScript()
        script.put(path, content.encode(), mode)
        if owner is not None:
            script.chown(path, check_owner(owner, ""))
        self.exec(host, ["/bin/sh", "-s"], input=script.text())

    def ssh_command(self, host: str, command: str, connect_timeout: int = 5) -> list[str]:
        """argv for the system OpenSSH client to run ``command`` on ``host``."""
        if host not in self.hosts:  # a host of a lab still coming up
            port = self._host(host).port
            return ssh_argv(self.identity_file, self.known_hosts, port, command, connect_timeout)
        h = self.hosts[host]
        return ssh_argv(
            self.identity_file,
            self.known_hosts,
            h.port,
            command,
            connect_timeout,
            user=h.user,
            address=h.address,
            proxy_jump=h.proxy_jump,
        )

    def private_dir(self, name: str) -> Path:
        """A new directory ``name`` in the lab's own directory (removed with the lab)."""
        if self._phase != "up":
            raise LabError("the lab is not up")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
            raise LabError(f"invalid directory name {name!r}; use letters, digits, '_', '.', '-'")
        path = self._base / name
        path.mkdir(mode=0o700)
        return path

    def spawn(self, argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
        """Start a helper process (e.g. ssh-agent) that the lab records and ends with itself.

        Teardown kills it by pid and start time, and only when its command line
        names the lab's own directory, so a reused pid is never hit.
        """
        if self._phase != "up":
            raise LabError("the lab is not up")
        if not any(f"{self._base}/" in arg for arg in argv):
            raise LabError(f"a lab process must name a path in {self._base} in its arguments")
        # A new session: terminal signals aimed at the caller do not reach it.
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, start_new_session=True, **popen
        )
        self._state.add_pid(proc.pid, start_time(proc.pid))
        return proc

    def encrypted_key(self, passphrase: str) -> Path:
        """A passphrase-protected copy of the lab's key, e.g. for an agent (see lab.agent)."""
        if self._phase != "up":
            raise LabError("the lab is not up")
        if len(passphrase) < 5:  # ssh-keygen refuses shorter ones
            raise LabError("use a passphrase of at least 5 characters")
        self._encrypted += 1
        path = self._sshdir / f"id_ed25519_encrypted{self._encrypted}"
        shutil.copyfile(self.identity_file, path)
        os.chmod(path, 0o600)
        shutil.copyfile(self.identity_file.with_suffix(".pub"), path.with_suffix(".pub"))
        run(["ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", str(path)])
        return path

    def upper_dir(self, host: str) -> Path:
        """The overlay upper directory of ``host``: every change it made to its root."""
        return self._host(host).upper

    def log_text(self, host: str) -> str:
        """The listener/sshd log of ``host`` (sshd runs with ``-e``)."""
        path = self._host(host).log_path
        return path.read_text(errors="replace") if path.exists() else ""


def _behind_links(lab_id: str, specs: Sequence[LabHostSpec], net: str) -> dict[str, BehindLink]:
    """Host name -> its place on its bastion's bridge: ``net``.2, .3, ... in spec order."""
    index = {spec.name: i for i, spec in enumerate(specs)}
    behind = [spec for spec in specs if spec.behind is not None]
    return {
        spec.name: BehindLink(netns_name(lab_id, index[str(spec.behind)]), number, net)
        for number, spec in enumerate(behind, 2)
    }


def _link_of(links: Mapping[str, BehindLink], name: str) -> tuple[BehindLink, ...]:
    """``(link,)`` for a host behind a bastion, else ``()``."""
    return (links[name],) if name in links else ()


def _raise_first_failure(
    specs: Sequence[LabHostSpec], futures: Sequence[Future[HostRuntime]], debs: Future[Any]
) -> None:
    """Raise the first failure of a wave of host builds as one LabError."""
    # Wait for the whole wave first: nothing may still be building while we tear down.
    for fut in futures:
        fut.exception()
    # A failed download fails every host that installs packages: say it once.
    if debs.done() and (failure := debs.exception()) is not None:
        raise failure
    for spec, fut in zip(specs, futures, strict=True):
        if (failure := fut.exception()) is None:
            continue
        if not isinstance(failure, Exception):
            raise failure  # KeyboardInterrupt and friends stay what they are
        message = str(failure).removeprefix(f"on {spec.name}: ")
        raise LabError(f"setting up lab host {spec.name}: {message}") from failure


def _login_user(spec: LabHostSpec) -> str:
    """The user a client logs into ``spec``'s host as."""
    return "root" if spec.login == "root" else LAB_SUDO_USER


def _ssh_config(identity: Path, known_hosts: Path) -> str:
    """The text of :attr:`Lab.ssh_config`."""
    return (
        "Host *\n"
        f"  IdentityFile {identity}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
    )


def _inventory_entry(host: LabHost) -> dict[str, Any]:
    """One host's entry in :meth:`Lab.inventory`."""
    entry: dict[str, Any] = {
        "address": host.address,
        "port": host.port,
        "roles": list(host.spec.roles),
    }
    if host.user != "root":
        entry["user"] = host.user
    if host.become is not None:
        entry["become"] = host.become
    if host.proxy_jump is not None:
        entry["proxy_jump"] = host.proxy_jump
    return entry


def _cleanup_stale_with_warning() -> None:
    """Remove what crashed labs left; warn instead of failing (ids and ports are fresh)."""
    try:
        stale = cleanup_stale()
    except LabError as exc:
        # Leftovers of other labs cannot collide with a new lab: say so, go on.
        warnings.warn(f"driftcheck lab: {exc}", stacklevel=3)
        return
    if stale:
        ids = sorted(set(re.findall(rf"{NETNS_PREFIX}({LAB_ID_PATTERN})", " ".join(stale))))
        warnings.warn(
            f"driftcheck lab: removed {len(stale)} leftovers of crashed lab(s) "
            f"{', '.join(ids) or '?'}",
            stacklevel=3,
        )


def _down_live_labs() -> None:
    # Normal interpreter exit without down(): still clean up, except detached
    # labs (not in the set).  SIGKILL leaves the work to cleanup_stale.
    for lab in list(_LIVE_LABS):
        with contextlib.suppress(Exception):
            lab.down()


atexit.register(_down_live_labs)


def ssh_argv(
    identity: Path,
    known_hosts: Path,
    port: int,
    command: str,
    connect_timeout: int = 5,
    *,
    user: str = "root",
    address: str = LAB_ADDRESS,
    proxy_jump: str | None = None,
) -> list[str]:
    """argv for the system OpenSSH client to run ``command`` as ``user`` on a lab host.

    Strict host key checking against the lab's known_hosts; ``-F /dev/null``
    keeps the caller's ssh config out of the picture.  ``proxy_jump``
    ("USER@127.0.0.1:PORT") goes through a bastion with a ProxyCommand rather
    than ``-J``, because ``-J`` does not pass ``-i`` and ``-o`` on to the jump.
    """
    options = [
        "-F", "/dev/null", "-i", str(identity),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}",
    ]  # fmt: skip
    jump: list[str] = []
    if proxy_jump is not None:
        jump_login, _, jump_port = proxy_jump.rpartition(":")
        proxy = ["ssh", *options, "-p", jump_port, "-W", "[%h]:%p", jump_login]
        jump = ["-o", f"ProxyCommand={shlex.join(proxy)}"]
    return ["ssh", *options, *jump, "-p", str(port), f"{user}@{address}", command]
