"""Plain data passed between collection, storage, the diff engine and reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: Facts of one section: key -> JSON-serialisable value.
Facts = dict[str, Any]


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
