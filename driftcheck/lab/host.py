"""Building one lab host: namespaces, overlay root, keys, files, packages, sysctls, listener.

A host is

* its own network namespace (only ``lo``, up), so every ``net.*`` sysctl can
  differ per host;
* a persistent mount + UTS namespace, kept alive by bind-mounting the
  namespace files under the lab's private run dir, holding an overlayfs root
  whose lower layer is the real ``/`` (or, with ``LabHostSpec.release``, the
  cached root tree of that Debian release, see :mod:`driftcheck.lab.releases`)
  and whose upper layer is a directory of the lab: every write inside the host
  (files, the dpkg database of packages installed there) lands in that upper
  directory, never in the real root nor in the cached tree;
* its own hostname and its own, freshly generated, ed25519 host key;
* optionally its own kernel state (``LabHostSpec.kernel_state``): the text
  it sees at /proc/cmdline and /proc/modules, although every host runs the
  one real kernel (see :func:`kernel_state_script`);
* a ``socat`` listener on 127.0.0.1 that runs ``sshd -i`` inside the host's
  namespaces for each connection (or, for faults, a sleeper or a port that
  is held but never listened on).
"""

from __future__ import annotations

import os
import posixpath
import secrets
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from driftcheck.lab.commands import one_line, run
from driftcheck.lab.errors import LabError
from driftcheck.lab.names import BASTION_BRIDGE, LAB_ADDRESS, netns_name
from driftcheck.lab.packages import Wanted, apply_packages
from driftcheck.lab.provision import (
    fresh_root_home,
    key_only,
    keygen,
    provision_script,
    sudo_user_script,
)
from driftcheck.lab.runtime import HostRuntime
from driftcheck.lab.spec import BEHIND_NETS, LabHostSpec, ModuleLine, parse_modules
from driftcheck.lab.state import LabState
from driftcheck.lab.system import free_port, listening, start_time

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
    "PubkeyAuthentication=yes",
    "-o",
    "AuthorizedKeysFile=.ssh/authorized_keys",
)
# What a "hang" host runs per connection: it holds the TCP connection open and
# never sends the SSH banner.  It runs inside the host's namespaces so teardown
# finds it by namespace membership even after its socat parent is gone.
_HANG_ARGS: tuple[str, ...] = ("sleep", "3600")
# What a "banner_stall" host sends per connection before it falls silent: a
# valid identification line (RFC 4253 4.2), then nothing, so the client waits
# for the server's key exchange forever.
STALL_BANNER = "SSH-2.0-OpenSSH_9.2p1\r\n"
# An "auth_stall" host's sshd asks this command for the authorized keys and it
# never answers (sshd kills it at LoginGraceTime); there is no authorized_keys
# file to fall back on.  sleep is owned by root and not writable by others, as
# sshd demands of an AuthorizedKeysCommand.
_AUTH_STALL_OPTIONS: tuple[str, ...] = (
    "-o",
    "AuthorizedKeysFile=none",
    "-o",
    "AuthorizedKeysCommand=/bin/sleep 3600",
    "-o",
    "AuthorizedKeysCommandUser=nobody",
)
# What holds the port of a "down" host: a process of its own (not this Python
# process), so the port stays reserved when a detached lab outlives us.
_HOLD_ARGS: tuple[str, ...] = ("sleep", "infinity")
# socat silently truncates an address argument at 512 bytes, so the EXEC
# command only ever uses the short, fixed-length paths under STATE_DIR.
_SOCAT_MAX_EXEC = 480


@dataclass(frozen=True)
class BehindLink:
    """Where a host behind a bastion sits on the bastion's bridge."""

    #: The bastion's network namespace (it holds the bridge).
    bastion_netns: str
    #: N of the host's address X.N (2..254, unique in the lab).
    number: int
    #: X: the lab's network behind bastions ("192.0.2"; see BEHIND_NETS).
    net: str

    @property
    def address(self) -> str:
        """The host's address on the bridge."""
        return f"{self.net}.{self.number}"


class HostBuilder:
    """Builds the hosts of one lab; :meth:`build` may run in several threads at once."""

    def __init__(
        self,
        *,
        lab_id: str,
        base: Path,
        rundir: Path,
        state: LabState,
        identity_pub: str,
        debs: Callable[[], Mapping[Wanted, Path]],
        release_roots: Mapping[str, Path] | None = None,
        behind_net: str = BEHIND_NETS[0],
    ) -> None:
        """``debs`` blocks until the lab's package downloads are done (see fetch_debs);
        ``release_roots`` maps each release the specs name to its built root tree;
        ``behind_net`` is the X.Y.Z of the bastions' bridges (see BEHIND_NETS)."""

        self._lab_id = lab_id
        #: X.Y.Z of the network behind the bastions (their bridges are X.Y.Z.1).
        self.behind_net = behind_net
        self._release_roots = dict(release_roots or {})
        self._base = base
        self._rundir = rundir
        self._state = state
        self._identity_pub = identity_pub
        self._debs = debs
        self._ports: set[int] = set()
        self._lock = threading.Lock()

    def build(self, index: int, spec: LabHostSpec, link: BehindLink | None = None) -> HostRuntime:
        """Create host number ``index``; every resource is recorded before it exists.

        ``link`` places a host behind its bastion (which must be built already).
        """
        hdir = self._base / "hosts" / spec.name
        rt = HostRuntime(
            spec=spec,
            index=index,
            # A bastion in the machine's network has no namespace of its own.
            netns="" if spec.network == "machine" else netns_name(self._lab_id, index),
            mnt_file=self._rundir / f"{index}.mnt",
            uts_file=self._rundir / f"{index}.uts",
            hdir=hdir,
            upper=hdir / "upper",
            work=hdir / "work",
            # Only a mount point; the overlay is visible inside the host's
            # mount namespace alone.
            root=self._rundir / str(index),
            lower=self._lower(spec),
        )
        for d in (hdir, rt.upper, rt.work, rt.root):
            d.mkdir(mode=0o755, exist_ok=True)
        fresh_root_home(rt.upper, rt.lower)
        self._make_namespaces(rt)
        if spec.bastion and rt.netns:
            _make_bridge(rt.netns, self.behind_net)
        if link is not None:
            _join_bastion(rt, link)
        host_key = self._make_host_keys(rt)
        rt.run(["/bin/sh", "-s"], input=provision_script(spec, host_key, self._identity_pub))
        if spec.packages:
            apply_packages(rt, self._debs)
        if spec.login != "root":
            if spec.login == "sudo-password":
                rt.sudo_password = secrets.token_urlsafe(12)
            rt.run(
                ["/bin/sh", "-s"],
                input=sudo_user_script(spec, self._identity_pub, rt.sudo_password),
            )
        if spec.sysctls:
            self._set_sysctls(rt)
        if spec.kernel_state:
            self._apply_kernel_state(rt)
        self._serve(rt)
        return rt

    def _serve(self, rt: HostRuntime) -> None:
        """Start what answers connections to the host (or, for "down", what does not)."""
        if rt.address != LAB_ADDRESS:  # behind a bastion: a daemon on its own address
            rt.port = 22
            if rt.spec.fault != "down":  # down: nothing listens, the bastion gets refused
                self._start_daemon(rt)
        elif rt.spec.fault == "down":
            self._hold_port(rt)
        else:
            self._start_listener(rt)

    def _lower(self, spec: LabHostSpec) -> Path:
        """The overlay's lower layer of ``spec``'s host."""
        if spec.release is None:
            return Path("/")
        if spec.release not in self._release_roots:  # Lab.up builds them first
            raise LabError(f"the {spec.release} root tree was not prepared for {spec.name}")
        return self._release_roots[spec.release]

    def _make_namespaces(self, rt: HostRuntime) -> None:
        # 1. network namespace with lo up (none for a bastion in the machine's network).
        if rt.netns:
            self._state.add("netns", rt.netns)
            run(["ip", "netns", "add", rt.netns])
            run(["ip", "-n", rt.netns, "link", "set", "lo", "up"])

        # 2. persistent mount+UTS namespace holding the overlay root.  unshare
        #    runs inside the host's netns so that the sysfs mounted below shows
        #    the host's network devices.  /run and /tmp get fresh tmpfs: with
        #    lowerdir=/ they would otherwise show whatever the real machine has
        #    there (or nothing, when they are separate mounts); a release tree
        #    has them empty, as debootstrap left them.
        rt.mnt_file.touch()
        rt.uts_file.touch()
        self._state.add("ns_files", str(rt.mnt_file), str(rt.uts_file))
        self._state.add("mounts", str(rt.mnt_file), str(rt.uts_file))
        r = shlex.quote(str(rt.root))
        setup = "; ".join(
            [
                "set -e",
                f"mount -t overlay overlay -o lowerdir={shlex.quote(str(rt.lower))},"
                f"upperdir={shlex.quote(str(rt.upper))},"
                f"workdir={shlex.quote(str(rt.work))} {r}",
                f"mount -t proc proc {r}/proc",
                f"mount -t sysfs sysfs {r}/sys",
                f"mount --rbind /dev {r}/dev",
                f"mount -t tmpfs -o mode=0755 tmpfs {r}/run",
                f"mount -t tmpfs -o mode=1777 tmpfs {r}/tmp",
                # sshd's privilege separation directory.
                f"mkdir -m 0755 {r}/run/sshd",
                f"hostname {shlex.quote(rt.spec.name)}",
            ]
        )
        net = ["nsenter", f"--net=/run/netns/{rt.netns}"] if rt.netns else []
        run(
            [
                *net,
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

    def _make_host_keys(self, rt: HostRuntime) -> Path:
        # The host's own ssh host key (and, for wrong_host_key, a decoy that
        # goes into known_hosts instead).
        keydir = self._base / "ssh" / rt.spec.name
        keydir.mkdir(mode=0o700, exist_ok=True)
        host_key = keydir / "ssh_host_ed25519_key"
        rt.host_public_key = key_only(keygen(host_key, f"root@{rt.spec.name}"))
        rt.known_hosts_key = rt.host_public_key
        if rt.spec.fault == "wrong_host_key":
            rt.known_hosts_key = key_only(keygen(keydir / "decoy_ed25519_key", "decoy"))
        return host_key

    def _set_sysctls(self, rt: HostRuntime) -> None:
        # Safety net: net.* keys visible in a child netns are per-netns, but
        # verify the real machine's values did not move, and undo if they did.
        paths = {key: Path("/proc/sys") / key.replace(".", "/") for key in rt.spec.sysctls}
        before = {key: p.read_text() for key, p in paths.items() if p.exists()}
        argv = ["ip", "netns", "exec", rt.netns, "sysctl", "-q", "-w"]
        argv += [f"{key}={value}" for key, value in rt.spec.sysctls.items()]
        try:
            run(argv)
        finally:
            for key, old in before.items():
                if paths[key].read_text() != old:
                    paths[key].write_text(old)
                    raise LabError(
                        f"sysctl {key} is not per network namespace; refused and restored"
                    )

    def _apply_kernel_state(self, rt: HostRuntime) -> None:
        """Make the host see the spec's text at /proc/cmdline and /proc/modules.

        See :func:`kernel_state_script` for how, and its limits. The texts are
        files in the host's directory (removed with it); the mounts live only
        in the host's mount namespace and vanish with it.
        """
        kdir = rt.hdir / "kernel"
        kdir.mkdir(mode=0o755, exist_ok=True)
        for path, text in rt.spec.kernel_state.items():
            source = kdir / posixpath.basename(path)
            source.write_text(text)
            # World-readable like the kernel's own files: the collector may run
            # as an unprivileged user.
            os.chmod(source, 0o444)
        script = kernel_state_script(
            str(rt.root), kdir, rt.spec.kernel_state, os.path.exists("/proc/modules")
        )
        # Only the host's mount namespace: no chroot, the real machine's mount(8).
        run(["nsenter", f"--mount={rt.mnt_file}", "sh", "-c", script])

    def _spawn(
        self, rt: HostRuntime, argv: Sequence[str], pass_fds: Sequence[int] = ()
    ) -> subprocess.Popen[bytes]:
        """Start the process serving the host's port; record it; log to listener.log."""
        with open(rt.log_path, "ab") as log:
            # A new session keeps terminal signals for the caller (Ctrl-C in a
            # test run) from reaching it half-way through teardown, and lets
            # it outlive a detached lab's process.
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        self._state.add_pid(proc.pid, start_time(proc.pid))
        rt.process = proc
        return proc

    def _start_daemon(self, rt: HostRuntime) -> None:
        """sshd -D on the host's own address inside its namespaces (a host behind a bastion)."""
        proc = self._spawn(rt, [*rt.enter(), *sshd_argv(rt.spec, listen=rt.address)])
        # nsenter and chroot exec: the spawned pid becomes sshd, in the host's netns.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and proc.poll() is None:
            if listening(proc.pid, 22, rt.address):
                return
            time.sleep(0.002)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        error = one_line(rt.log_path.read_text(errors="replace"), 300)
        raise LabError(
            f"sshd for {rt.spec.name} did not listen on {rt.address}:22: {error or 'no output'}"
        )

    def _hold_port(self, rt: HostRuntime) -> None:
        # A bound but never listening socket: connections are refused, and no
        # other program (or lab) can take the port while the holder lives.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LAB_ADDRESS, 0))
            rt.port = int(sock.getsockname()[1])
            with self._lock:
                self._ports.add(rt.port)
            # The holder runs inside the host's namespaces, so teardown finds it
            # like any other process of the host.
            self._spawn(rt, [*rt.enter(), *_HOLD_ARGS], pass_fds=(sock.fileno(),))

    def _listener_command(self, rt: HostRuntime) -> str:
        """What socat runs per connection (split at spaces by socat: no quoting)."""
        if rt.spec.fault == "hang":
            return " ".join([*rt.enter(), *_HANG_ARGS])
        if rt.spec.fault not in ("banner_stall", "auth_stall"):
            return " ".join([*rt.enter(), *sshd_argv(rt.spec)])
        # These need arguments with spaces or a shell: a script in the lab's run
        # dir (whose path marks the process as the lab's) execs into the host.
        if rt.spec.fault == "banner_stall":
            inner = ["/bin/sh", "-c", f"printf {shlex.quote(STALL_BANNER)}; exec sleep 3600"]
        else:
            inner = sshd_argv(rt.spec)
        script = self._rundir / f"{rt.index}.serve"
        script.write_text(f"exec {shlex.join([*rt.enter(), *inner])}\n")
        return f"/bin/sh {script}"

    def _start_listener(self, rt: HostRuntime) -> None:
        command = self._listener_command(rt)
        if len(command) > _SOCAT_MAX_EXEC:  # cannot happen with the fixed paths; be loud if it does
            raise LabError(f"socat EXEC command too long ({len(command)} bytes): {command[:80]}...")
        last_error = ""
        for _ in range(20):
            with self._lock:
                port = free_port(self._ports)
                self._ports.add(port)
            # nofork: socat's per-connection child execs nsenter directly, so
            # sshd gets the real TCP socket on stdin/stdout and logs the
            # client's address instead of "UNKNOWN port 65535".
            proc = self._spawn(
                rt,
                [
                    "socat",
                    f"TCP-LISTEN:{port},bind={LAB_ADDRESS},reuseaddr,fork",
                    f"EXEC:{command},nofork",
                ],
            )
            # Poll for readiness (no fixed sleeps): ours once socat holds the
            # listening socket, failed if socat exits (port taken meanwhile).
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if listening(proc.pid, port):
                    rt.port = port
                    return
                time.sleep(0.002)
            else:
                proc.kill()
            proc.wait()
            last_error = one_line(rt.log_path.read_text(errors="replace"), 300)
            if "Address already in use" not in last_error:
                break
        raise LabError(
            f"socat listener for {rt.spec.name} did not start: {last_error or 'no output'}"
        )


def sshd_argv(spec: LabHostSpec, listen: str | None = None) -> list[str]:
    """The sshd command for ``spec``'s host: inetd mode, or a daemon on ``listen``:22."""
    # The sudo logins: root must not get in even with a key, as on such hosts.
    permit_root = "prohibit-password" if spec.login == "root" else "no"
    # sshd takes the first value of an option: the stall's go before the defaults.
    stall = _AUTH_STALL_OPTIONS if spec.fault == "auth_stall" else ()
    argv = [*_SSHD_ARGS[:5], *stall, *_SSHD_ARGS[5:], "-o", f"PermitRootLogin={permit_root}"]
    if spec.bastion:
        # Jumping is what a bastion is for, whatever the machine's sshd_config says.
        argv += ["-o", "AllowTcpForwarding=yes"]
    if listen is not None:
        # Port and address on the command line win over the host's sshd_config.
        argv[1] = "-D"
        argv += ["-o", f"ListenAddress={listen}", "-o", "Port=22", "-o", "PidFile=none"]
    return argv


def _make_bridge(netns: str, net: str) -> None:
    """The bridge (address ``net``.1) in a bastion's namespace that the hosts behind it hang off."""
    run(["ip", "-n", netns, "link", "add", BASTION_BRIDGE, "type", "bridge"])
    run(["ip", "-n", netns, "addr", "add", f"{net}.1/24", "dev", BASTION_BRIDGE])
    run(["ip", "-n", netns, "link", "set", BASTION_BRIDGE, "up"])


def _join_bastion(rt: HostRuntime, link: BehindLink) -> None:
    """A veth pair from the host's namespace to its bastion's bridge.

    Both ends are created inside the lab's namespaces, never in the machine's,
    so the machine has no route to the host, and deleting either namespace
    removes the pair.
    """
    outer = f"dcv{link.number}"
    run(["ip", "-n", link.bastion_netns, "link", "add", outer, "type", "veth",
         "peer", "name", "eth0", "netns", rt.netns])  # fmt: skip
    run(["ip", "-n", link.bastion_netns, "link", "set", outer, "master", BASTION_BRIDGE, "up"])
    run(["ip", "-n", rt.netns, "addr", "add", f"{link.address}/24", "dev", "eth0"])
    run(["ip", "-n", rt.netns, "link", "set", "eth0", "up"])
    rt.address = link.address


def kernel_state_script(
    root: str, kdir: Path, kernel_state: Mapping[str, str], proc_modules: bool
) -> str:
    """sh, run in a host's mount namespace, that presents ``kernel_state``.

    All lab hosts share the real kernel, so this is presentation only: the
    text of "/proc/X" (already in ``kdir``/X) is bind-mounted read-only over
    the file in the host's own procfs mount at ``root``/proc; the real
    machine and the other hosts see nothing.

    A kernel without module support (CONFIG_MODULES=n; ``proc_modules``
    False) has no /proc/modules, and a file cannot be created in procfs nor
    procfs be overlaid (overlayfs refuses it as a lower layer). Such a kernel
    shows loadable modules in /sys/module only (NAME/initstate exists for
    loadable modules alone), so the modules are presented there instead: a
    tmpfs over the host's /sys/module holding the real built-in entries
    (bind-mounted, so their parameters stay readable) and, per module,
    initstate, taint, refcnt, coresize and holders/ as the kernel lays them
    out. A given name hides a real entry of that name, and real loadable
    modules (none on such a kernel) are left out: the host sees exactly the
    given list. Programs that read /proc/modules (lsmod) see nothing there.
    """
    lines = ["set -eu"]
    for path in sorted(kernel_state):
        name = posixpath.basename(path)
        if path == "/proc/modules" and not proc_modules:
            modules = parse_modules(kernel_state[path])
            lines.append(_sys_module_script(shlex.quote(root), kdir / "sys-module", modules))
            continue
        source = shlex.quote(str(kdir / name))
        target = shlex.quote(root + path)
        lines.append(f"mount --bind {source} {target}")
        lines.append(f"mount -o remount,bind,ro {target}")
    return "\n".join(lines)


def _sys_module_script(root: str, staging: Path, modules: list[ModuleLine]) -> str:
    """sh that replaces the host's /sys/module with the built-ins plus ``modules``.

    The tmpfs is filled at ``staging`` (a directory of the lab) and then moved
    onto /sys/module, so the host never sees a half-built directory.
    """
    planted = " ".join(m.name for m in modules)
    t = shlex.quote(str(staging))
    lines = [
        f"mkdir -p {t}",
        f"mount -t tmpfs -o mode=0755 dclab-sys-module {t}",
        f"for d in {root}/sys/module/*; do",
        "  n=${d##*/}",
        # A real loadable module (it has initstate) or a planted name: not kept.
        '  [ -e "$d/initstate" ] && continue',
        f'  case " {planted} " in *" $n "*) continue ;; esac',
        f'  mkdir {t}/"$n" && mount --bind "$d" {t}/"$n"',
        "done",
    ]
    for m in modules:
        mdir = f"{t}/{m.name}"
        state = {"Live": "live", "Loading": "coming", "Unloading": "going"}[m.state]
        refcnt = m.refcount if m.refcount != "-" else "0"
        lines.append(f"mkdir -p {mdir}/holders")
        for name, value in (
            ("initstate", state),
            ("taint", m.taint),
            ("refcnt", refcnt),
            ("coresize", str(m.size)),
        ):
            lines.append(f"printf '%s\\n' {shlex.quote(value)} > {mdir}/{name}")
        for user in m.users:
            lines.append(f"ln -s ../../{user} {mdir}/holders/{user}")
        lines.append(f"chmod 0444 {mdir}/initstate {mdir}/taint {mdir}/refcnt {mdir}/coresize")
    lines += [
        f"mount --move {t} {root}/sys/module",
        f"mount -o remount,ro {root}/sys/module",
    ]
    return "\n".join(lines)
