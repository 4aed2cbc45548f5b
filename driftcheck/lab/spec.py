"""What a lab host should look like (:class:`LabHostSpec`) and what it is (:class:`LabHost`).

Validation lives in one ``check_*`` function per field so that the YAML
loader (:mod:`driftcheck.lab.specfile`) can run the very same checks and
point at the offending line.  Every message reads "what is wrong; how to fix".
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from driftcheck.lab.errors import LabError

#: What is wrong with a host: "down" refuses connections; "hang" accepts and
#: says nothing; "banner_stall" sends an SSH banner and then nothing;
#: "auth_stall" is a real sshd whose public key check never answers;
#: "wrong_host_key" puts a decoy key in known_hosts.
Fault = Literal["down", "hang", "wrong_host_key", "banner_stall", "auth_stall"]
FAULTS: tuple[str, ...] = get_args(Fault)

#: How a client logs into a lab host: as root, or as the sudo user
#: (:data:`~driftcheck.lab.names.LAB_SUDO_USER`) whose sudo needs nothing, a
#: password, or a tty.
Login = Literal["root", "sudo", "sudo-password", "sudo-requiretty"]
LOGINS: tuple[str, ...] = get_args(Login)

#: Where a bastion's sshd runs: in a network namespace of its own (hosts behind
#: it hang off a bridge there) or in the machine's own (it then reaches every
#: ordinary lab host's 127.0.0.1 listener).
Network = Literal["own", "machine"]
NETWORKS: tuple[str, ...] = get_args(Network)
#: Faults a host behind a bastion can have (its sshd is a daemon, not a listener).
BEHIND_FAULTS: tuple[str, ...] = ("down", "wrong_host_key")
#: Candidates for the network between a bastion and the hosts behind it (the
#: documentation ranges of RFC 5737, /24 each): X.1 is the bastion, the hosts
#: behind bastions get X.2, X.3, ... in spec order.  A lab takes the first one
#: the machine itself does not use (some machines sit in 192.0.2.0/24), so
#: that the machine has no route of its own to a host behind a bastion.
BEHIND_NETS: tuple[str, ...] = ("192.0.2", "198.51.100", "203.0.113")
MAX_BEHIND = 253

_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_ENV_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_OWNER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
_SYSCTL_RE = re.compile(r"net(?:\.[A-Za-z0-9_:-]+)+")
# Debian policy 5.6.1 (package names) and 5.6.12 (versions: [epoch:]upstream[-revision]).
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_VERSION_RE = re.compile(r"(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*")

#: The Debian releases a lab host can run instead of the machine's own root
#: (``LabHostSpec.release``), oldest first; see :mod:`driftcheck.lab.releases`.
RELEASES: tuple[str, ...] = ("bullseye", "bookworm", "trixie")

#: The kernel files whose text a lab host can be given (see ``LabHostSpec.kernel_state``).
KERNEL_STATE_PATHS: tuple[str, ...] = ("/proc/cmdline", "/proc/modules")
#: The kernel's COMMAND_LINE_SIZE on x86 is 2048 (4096 on some architectures).
_CMDLINE_MAX = 4096
# One /proc/modules line as the kernel prints it (kernel/module/procfs.c m_show()):
# "name size refcount users state address [(taints)]"; refcount and users are
# "-" without CONFIG_MODULE_UNLOAD. Module names are at most 55 characters.
_MODULE_LINE_RE = re.compile(
    r"(?P<name>[A-Za-z0-9_-]{1,55}) (?P<size>[0-9]+) (?P<refcount>-?[0-9]+|-) "
    r"(?P<users>-|(?:(?:[A-Za-z0-9_-]{1,55}|\[permanent\]),)+) "
    r"(?P<state>Live|Loading|Unloading) (?P<address>0x[0-9a-f]+)(?: \((?P<taint>[A-Z+-]*)\))?"
)


def check_host_name(name: object) -> str:
    """A host name is a DNS label: it becomes the hostname inside the host."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise LabError(f"invalid lab host name {name!r}; use letters, digits and '-' (at most 63)")
    return name


def check_environment(host: str, environment: object) -> str:
    """An environment name as the inventory accepts it."""
    if not isinstance(environment, str) or not _ENV_RE.fullmatch(environment):
        raise LabError(
            f"invalid environment {environment!r} for host {host}; "
            "use letters, digits, '_', '.' and '-'"
        )
    return environment


def check_roles(host: str, roles: object) -> tuple[str, ...]:
    """Roles as a tuple (a single string is one role)."""
    if isinstance(roles, str):
        result: tuple[object, ...] = (roles,)
    elif isinstance(roles, (list, tuple)):
        result = tuple(roles)
    else:
        result = ()
    if not result or not all(isinstance(r, str) and r for r in result):
        raise LabError(f"roles of host {host} must be non-empty strings; e.g. [web]")
    return tuple(str(r) for r in result)


def check_path(host: str, path: object) -> str:
    """A normalised absolute path inside the host (never / itself)."""
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or path == "/"
        or posixpath.normpath(path) != path
        or path.startswith("//")
        or any(c in path for c in "\0\n")
    ):
        raise LabError(
            f"invalid path {path!r} on host {host}; use a normalised absolute path "
            "such as /etc/app.conf"
        )
    return path


def check_content(host: str, path: str, content: object) -> str:
    """File content is text."""
    if not isinstance(content, str):
        raise LabError(f"content of {path} on host {host} must be str; quote it")
    return content


def check_mode(host: str, path: str, mode: object) -> int:
    """A permission mode 0..0o7777 (an int, not a bool)."""
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
        raise LabError(f"invalid mode {mode!r} for {path} on host {host}; use a mode like 0o600")
    return mode


def check_owner(owner: object, where: str) -> str:
    """``user`` or ``user:group``; names resolve against the host's own passwd."""
    if not isinstance(owner, str) or not _OWNER_RE.fullmatch(owner):
        raise LabError(f"invalid owner {owner!r}{where}; use 'user:group'")
    return owner


def check_sysctl(host: str, key: object, value: object) -> str:
    """A ``net.*`` key (only those are per network namespace) and its value as text."""
    # Anything but net.* is global and would change the real machine.
    if not isinstance(key, str) or not _SYSCTL_RE.fullmatch(key):
        raise LabError(
            f"sysctl {key!r} on host {host} is not allowed: it is global; "
            "use only net.* keys, which are per host"
        )
    text = str(value)
    if not text or "\n" in text:
        raise LabError(
            f"invalid value {value!r} for sysctl {key} on host {host}; use one non-empty line"
        )
    return text


def check_package(name: object, version: object, where: str = "") -> str | None:
    """A Debian package name and an exact version (or None: remove it)."""
    if not isinstance(name, str) or not _PACKAGE_RE.fullmatch(name):
        raise LabError(
            f"invalid package name {name!r}{where}; use a Debian package name such as tzdata"
        )
    if version is not None and (not isinstance(version, str) or not _VERSION_RE.fullmatch(version)):
        raise LabError(
            f"invalid version {version!r} for package {name}{where}; use an exact Debian "
            f"version (apt-cache madison {name} lists them) or null to remove it"
        )
    return version


@dataclass(frozen=True)
class ModuleLine:
    """One module of a planted /proc/modules text."""

    name: str
    size: int
    refcount: str
    #: names of the modules that use this one (the "used by" column)
    users: tuple[str, ...]
    state: str
    taint: str


def parse_modules(text: str) -> list[ModuleLine]:
    """The modules of a /proc/modules text; ValueError names the first bad line."""
    modules: list[ModuleLine] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        m = _MODULE_LINE_RE.fullmatch(line)
        if m is None:
            raise ValueError(f"line {number} is not a /proc/modules line: {line[:80]!r}")
        users = tuple(u for u in m["users"].rstrip(",").split(",") if u not in ("-", "[permanent]"))
        modules.append(
            ModuleLine(
                m["name"],
                int(m["size"]),
                m["refcount"],
                users,
                m["state"],
                (m["taint"] or "").replace("+", "").replace("-", ""),
            )
        )
    names = [mod.name for mod in modules]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"module {dup} is listed twice")
    return modules


def check_kernel_state(host: str, path: object, text: object) -> str:
    """The text a host sees at ``path`` (one of KERNEL_STATE_PATHS), ending in a newline."""
    if path not in KERNEL_STATE_PATHS:
        raise LabError(
            f"kernel_state path {path!r} on host {host} is not supported; "
            f"use {' or '.join(KERNEL_STATE_PATHS)}"
        )
    if not isinstance(text, str):
        raise LabError(f"kernel_state {path} on host {host} must be text; quote it")
    body = text.removesuffix("\n")
    if "\0" in body:
        raise LabError(f"kernel_state {path} on host {host} contains a NUL byte; remove it")
    if path == "/proc/cmdline":
        if "\n" in body or len(body) > _CMDLINE_MAX:
            raise LabError(
                f"kernel_state /proc/cmdline on host {host} must be one line of at most "
                f"{_CMDLINE_MAX} characters, like 'root=/dev/vda1 ro quiet'"
            )
    else:
        try:
            parse_modules(body)
        except ValueError as exc:
            raise LabError(
                f"kernel_state /proc/modules on host {host}: {exc}; write lines like "
                "'dummy 16384 0 - Live 0x0000000000000000'"
            ) from None
    # The kernel ends /proc/cmdline with a newline even when it is empty.
    return body + "\n" if body or path == "/proc/cmdline" else ""


def check_fault(host: str, fault: object) -> Fault | None:
    """None or one of :data:`FAULTS`."""
    if fault is not None and fault not in FAULTS:
        raise LabError(f"unknown fault {fault!r} for host {host}; use one of {', '.join(FAULTS)}")
    return fault  # type: ignore[return-value]


def check_login(host: str, login: object) -> Login:
    """One of :data:`LOGINS`."""
    if login not in LOGINS:
        raise LabError(f"unknown login {login!r} for host {host}; use one of {', '.join(LOGINS)}")
    return login  # type: ignore[return-value]


def check_placement(spec: LabHostSpec) -> None:
    """The bastion fields of one spec agree with each other (see :func:`check_lab`)."""
    name = spec.name
    if not isinstance(spec.bastion, bool):
        raise LabError(f"bastion of host {name} must be true or false")
    if spec.network not in NETWORKS:
        raise LabError(
            f"unknown network {spec.network!r} for host {name}; use one of {', '.join(NETWORKS)}"
        )
    if spec.network == "machine" and not spec.bastion:
        raise LabError(f"network 'machine' is only for bastions; set bastion=True on host {name}")
    if spec.network == "machine" and spec.sysctls:
        raise LabError(
            f"host {name} shares the machine's network namespace: its net.* sysctls would be "
            "the machine's; drop sysctls or use network 'own'"
        )
    if spec.behind is None:
        return
    check_host_name(spec.behind)
    if spec.bastion:
        raise LabError(f"bastion {name} cannot be behind {spec.behind}; drop one of the two")
    if spec.fault not in (None, *BEHIND_FAULTS):
        raise LabError(
            f"fault {spec.fault!r} is not supported on host {name} behind a bastion; "
            f"use one of {', '.join(BEHIND_FAULTS)} or put the host on loopback"
        )


def check_lab(specs: Sequence[LabHostSpec]) -> None:
    """Checks across the specs of one lab: every ``behind`` names a bastion of its own network."""
    by_name = {spec.name: spec for spec in specs}
    behind = [spec for spec in specs if spec.behind is not None]
    for spec in behind:
        bastion = by_name.get(str(spec.behind))
        if bastion is None or not bastion.bastion:
            known = ", ".join(s.name for s in specs if s.bastion) or "none"
            raise LabError(
                f"host {spec.name} is behind {spec.behind!r}, which is not a bastion of this lab "
                f"(bastions: {known}); add LabHostSpec({spec.behind!r}, ..., bastion=True)"
            )
        if bastion.network != "own":
            raise LabError(
                f"host {spec.name} cannot be behind {bastion.name}: a bastion in the machine's "
                "network would route the machine to it; give the bastion network 'own'"
            )
    if len(behind) > MAX_BEHIND:
        raise LabError(f"{len(behind)} hosts behind bastions; their /24 has room for {MAX_BEHIND}")


def check_release(host: str, release: object) -> str | None:
    """None (the machine's own root) or one of :data:`RELEASES`."""
    if release is None:
        return None
    if not isinstance(release, str) or release not in RELEASES:
        raise LabError(
            f"unknown release {release!r} for host {host}; supported releases: "
            f"{', '.join(RELEASES)} (or leave release out for the machine's own root)"
        )
    return release


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
    ``packages`` maps a Debian package name to the exact version to install
    on this host (an upgrade, a downgrade or a package the real machine does
    not have), or to None to remove the package from this host.
    ``kernel_state`` maps "/proc/cmdline" and/or "/proc/modules" to the text
    this host sees there instead of the shared kernel's (all lab hosts run
    one kernel); see :mod:`driftcheck.lab.host` for how, and its limits.
    ``release`` names a Debian release (one of :data:`RELEASES`) whose own
    root tree, built once by debootstrap, is the host's lower layer instead
    of the machine's ``/``; None keeps the machine's root.
    ``login`` is how a client logs in: "root" with the lab's key, or (the
    sudo kinds) as the user ``dc`` with that key while root cannot log in at
    all; dc's sudo then needs nothing ("sudo"), dc's password
    ("sudo-password", see ``LabHost.sudo_password``) or a tty
    ("sudo-requiretty").
    ``bastion`` makes the host a jump host: reachable on loopback like every
    lab host but not a host of :meth:`Lab.inventory`.  ``behind`` names the
    bastion (in the same lab) a host sits behind: it is reachable only from
    there, at 192.0.2.N port 22.  ``network`` ("own" or, for bastions only,
    "machine") says whose network namespace the host's sshd runs in.
    """

    name: str
    environment: str
    roles: tuple[str, ...] = ("web",)
    files: Mapping[str, str] = field(default_factory=_empty, hash=False)
    file_modes: Mapping[str, int] = field(default_factory=_empty, hash=False)
    file_owners: Mapping[str, str] = field(default_factory=_empty, hash=False)
    sysctls: Mapping[str, str] = field(default_factory=_empty, hash=False)
    fault: Fault | None = None
    packages: Mapping[str, str | None] = field(default_factory=_empty, hash=False)
    kernel_state: Mapping[str, str] = field(default_factory=_empty, hash=False)
    release: str | None = None
    login: Login = "root"
    bastion: bool = False
    behind: str | None = None
    network: Network = "own"

    def __post_init__(self) -> None:
        name = check_host_name(self.name)
        check_environment(name, self.environment)
        roles = check_roles(name, self.roles)
        for path in [*self.files, *self.file_modes, *self.file_owners]:
            check_path(name, path)
        for path, content in self.files.items():
            check_content(name, path, content)
        for path, mode in self.file_modes.items():
            check_mode(name, path, mode)
        for path, owner in self.file_owners.items():
            check_owner(owner, f" for {path} on host {name}")
        sysctls = {key: check_sysctl(name, key, value) for key, value in self.sysctls.items()}
        for package, version in self.packages.items():
            check_package(package, version, f" on host {name}")
        check_fault(name, self.fault)
        check_release(name, self.release)
        check_login(name, self.login)
        check_placement(self)
        kernel_state = {
            path: check_kernel_state(name, path, text) for path, text in self.kernel_state.items()
        }
        # Freeze the mappings so a spec cannot change after validation.
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "files", _frozen(self.files))
        object.__setattr__(self, "file_modes", _frozen(self.file_modes))
        object.__setattr__(self, "file_owners", _frozen(self.file_owners))
        object.__setattr__(self, "sysctls", _frozen(sysctls))
        object.__setattr__(self, "packages", _frozen(self.packages))
        object.__setattr__(self, "kernel_state", _frozen(kernel_state))


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
    #: Who a client logs in as: "root", or LAB_SUDO_USER for the sudo logins.
    user: str = "root"
    #: How that user becomes root: None (it is root) or "sudo".
    become: str | None = None
    #: The sudo user's password (login "sudo-password" only; sudo asks for it).
    sudo_password: str | None = field(default=None, repr=False)
    #: "USER@127.0.0.1:PORT" of the bastion this host is behind, else None.
    proxy_jump: str | None = None
