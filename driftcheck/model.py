"""Plain data passed between inventory, collection, storage and the diff engine.

Nothing here parses or validates: :mod:`driftcheck.inventory` builds these from
YAML, collectors read :class:`CollectSettings`, transports read :class:`Host`.
Keeping them apart from the inventory's parser means a collector's parser does
not drag in YAML, pydantic and rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

#: Facts of one section: key -> JSON-serialisable value.
Facts = dict[str, Any]

# -- the key grammar -----------------------------------------------------------
# A key may name something inside another key's subject. An error on a key then
# covers the keys below it: an unreadable directory its files, an unreadable
# virtualenv its packages, a config file its settings.

#: "/etc/app/" + name: a file inside a collected directory.
DIR_SEP = "/"
#: "/opt/app/venv" + ":" + package: a package inside a virtualenv.
VENV_SEP = ":"
#: "/etc/app.ini" + "#" + setting: one setting inside a parsed config file.
SETTING_SEP = "#"
_BELOW = (DIR_SEP, VENV_SEP, SETTING_SEP)


def is_below(key: str, parent: str) -> bool:
    """True when ``key`` names something inside ``parent``'s subject (see above)."""
    return key.startswith(parent) and key[len(parent) : len(parent) + 1] in _BELOW


#: The value of a key a host does not have: not None, which a fact may really be.
ABSENT: Any = object()


# -- what to collect, and from where --------------------------------------------

DEFAULT_FILE_MAX_BYTES = 256 * 1024
DEFAULT_DIR_MAX_FILES = 200


@dataclass(frozen=True)
class Jump:
    """One SSH hop on the way to a host (OpenSSH's ProxyJump): its host key is
    checked against the target's known_hosts, like the target's own."""

    address: str
    port: int
    user: str
    #: None: the ssh-agent and the default ~/.ssh/id_* keys, as for the target
    identity_file: Path | None = None

    def label(self) -> str:
        """``user@address[:port]``, as a user would write the hop."""
        return f"{self.user}@{self.address}" + ("" if self.port == 22 else f":{self.port}")


@dataclass(frozen=True)
class Host:
    """A host with its settings resolved (host, environment defaults, defaults,
    ssh_config, built-in: the first that says something)."""

    name: str
    environment: str
    roles: tuple[str, ...]
    address: str
    port: int
    user: str
    #: None: the ssh-agent and the default ~/.ssh/id_* keys, as OpenSSH tries them
    identity_file: Path | None
    known_hosts: Path
    connect_timeout: float
    command_timeout: float
    transport: str
    #: "sudo": the collection runs under ``sudo -n`` (never a password prompt)
    become: str | None = None
    #: hops to go through, first to last (empty: connect directly)
    jumps: tuple[Jump, ...] = ()
    #: only identity_file, never other agent or default keys (IdentitiesOnly)
    identities_only: bool = False
    #: the ssh_config file that was read for this host, if any (for error hints)
    ssh_config: Path | None = None
    #: setting -> where its value came from ("inventory.yaml:12", "built-in", ...)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class AppSource:
    """One application version to read: by command, file, package or local URL."""

    name: str
    kind: Literal["command", "file", "package", "url"]
    value: str


@dataclass(frozen=True)
class CollectSettings:
    """What the parameterised collectors read on every host."""

    #: absolute paths, globs (/etc/myapp/*.conf) or directories (read recursively)
    files: tuple[str, ...] = ()
    #: absolute globs of paths never read (see collectors/file_rules.py for the syntax):
    #: not listed, hashed or printed on the host, by ``files`` and ``config_origin``
    exclude: tuple[str, ...] = ()
    apps: tuple[AppSource, ...] = ()
    #: virtualenv directories whose packages the python collector lists
    python: tuple[str, ...] = ()
    file_max_bytes: int = DEFAULT_FILE_MAX_BYTES
    #: at most this many files are read from one directory or glob
    dir_max_files: int = DEFAULT_DIR_MAX_FILES


# -- what collection brought back ------------------------------------------------


class SectionStatus(StrEnum):
    """How one collector's section ended on one host."""

    OK = "ok"
    #: The tool the collector needs is not installed: the facts do not apply.
    NOT_APPLICABLE = "n/a"
    TIMEOUT = "timeout"
    #: Non-zero exit status, or the parser rejected the output.
    ERROR = "error"
    #: The section started but its end marker never arrived (connection lost,
    #: whole-command timeout): the output is partial and must not be trusted.
    TRUNCATED = "truncated"
    #: The section never started (the host could not be reached).
    MISSING = "missing"

    @property
    def complete(self) -> bool:
        """True when the facts of this section can be compared."""
        return self in (SectionStatus.OK, SectionStatus.NOT_APPLICABLE)


class HostStatus(StrEnum):
    """How collection from one host went as a whole."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"


@dataclass(frozen=True)
class ParseResult:
    """What a collector's parser makes of its section output.

    ``errors`` names keys that exist but could not be read (an unreadable file,
    a failing app command): they are reported as incomplete, never as same.
    """

    facts: Facts = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class SectionResult:
    """One collector's outcome on one host: status, facts and the evidence."""

    collector: str
    status: SectionStatus
    facts: Facts = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: Why the section is not OK, in one line (empty when OK).
    error: str = ""
    #: Raw section output after secret scrubbing: kept so that a parser fix can
    #: re-parse old runs and real output can become a test fixture.
    raw: str = ""
    stderr: str = ""
    rc: str = ""


@dataclass
class HostSnapshot:
    """Everything collected from one host in one run."""

    host: str
    environment: str
    roles: tuple[str, ...]
    status: HostStatus
    collected_at: str
    duration: float = 0.0
    error: str = ""
    sections: dict[str, SectionResult] = field(default_factory=dict)


# -- the sign-off policy -----------------------------------------------------------


@dataclass(frozen=True)
class SignoffGroup:
    """A group that must approve a release: its members' principals (as in an
    OpenSSH allowed_signers file) and how many of them must sign."""

    name: str
    members: tuple[str, ...]
    required: int


@dataclass(frozen=True)
class SignoffPolicy:
    """Who must sign off a parity statement, and on what terms (``signoff:``)."""

    groups: tuple[SignoffGroup, ...]
    #: whether a "passed-with-waivers" statement may be approved
    allow_waivers: bool = True
    #: days an approval stays valid after it was made
    valid_days: int = 7
