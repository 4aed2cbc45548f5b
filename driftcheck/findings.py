"""The report's types: what the diff engine produces and every renderer reads.

Renderers import these, never the engine (in the manner of pip-audit's
``interface.py``): a :class:`DriftReport` carries everything a format needs
(compared collectors, hosts not fully collected, verdict, exit status), so no
renderer asks the engine or the collector registry for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from driftcheck.model import HostStatus

#: Key of a finding about a whole section or host rather than one fact.
WHOLE = "*"


class State(StrEnum):
    """The state of one key for one role. A key in no finding is the same everywhere."""

    CHANGED = "changed"
    #: a package the target has under another name that provides or replaces it
    RENAMED = "renamed"
    MISSING = "missing"  # in the reference, not in the target
    EXTRA = "extra"  # in the target, not in the reference
    INCONSISTENT = "inconsistent"  # reference hosts disagree among themselves
    INCOMPLETE = "incomplete"  # could not be collected: unknown, never "same"
    IGNORED = "ignored"  # differs, but an ignore rule says it may (counted, shown)
    WAIVED = "waived"  # known drift accepted until a date (counted, shown)

    @property
    def is_drift(self) -> bool:
        """True for the states that mean staging does not mirror production."""
        return self not in (State.INCOMPLETE, State.IGNORED, State.WAIVED)


@dataclass(frozen=True)
class Change:
    """One difference inside a nested value, target host against the reference."""

    host: str
    path: str
    reference: Any
    target: Any
    diff: str = ""


@dataclass(frozen=True)
class Finding:
    """One key of one collector that is not the same for one role."""

    role: str
    collector: str
    key: str
    state: State
    #: host name -> value (None where the key is absent or unknown)
    values: dict[str, Any]
    reference_hosts: tuple[str, ...]
    detail: tuple[Change, ...] = ()
    #: why data is incomplete (host name -> reason); empty for other states
    reasons: dict[str, str] = field(default_factory=dict)
    #: what a rule says about it: the expected relation, the ignore reason, the
    #: waiver (or that it expired)
    note: str = ""
    #: for ignored and waived findings: the state they would otherwise have
    underlying: State | None = None
    #: values after map rules, when they applied (``values`` stay the raw ones)
    mapped_values: dict[str, Any] | None = None
    #: why it differs, from the evidence collectors: "modified after install",
    #: "package version differs", "set at runtime, not persisted"
    explanation: str = ""
    #: since when the differing host has had its current value (from the history
    #: of earlier runs; the first run in which it was seen, unchanged since)
    since: str | None = None


@dataclass(frozen=True)
class HostRow:
    """A host as it appears in a report."""

    name: str
    environment: str
    roles: tuple[str, ...]
    status: str
    error: str
    collected_at: str | None
    #: collectors whose subject this host does not have (collector -> why): shown,
    #: so "no drift" there is never mistaken for "compared and equal"
    not_applicable: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every section of this host was collected."""
        return self.status == HostStatus.OK


@dataclass(frozen=True)
class DriftReport:
    """Everything a renderer needs; built once, rendered in any format."""

    generated_at: str
    inventory: str
    reference: str
    targets: tuple[str, ...]
    run_started_at: str | None
    hosts: tuple[HostRow, ...]
    findings: tuple[Finding, ...]
    #: facts skipped because they are volatile by nature: collector -> count
    volatile_skipped: dict[str, int]
    compared_keys: int
    #: the collectors compared, in registry order (evidence-only ones left out)
    collectors: tuple[str, ...]
    #: waivers that matched nothing: the drift they covered is gone (or the rule is wrong)
    stale_waivers: tuple[WaiverRecord, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        """Number of findings per state, every state present."""
        out = {s.value: 0 for s in State}
        for f in self.findings:
            out[f.state.value] += 1
        return out

    @property
    def uncollected(self) -> tuple[HostRow, ...]:
        """The hosts not collected completely, in inventory order."""
        return tuple(h for h in self.hosts if not h.complete)

    @property
    def has_drift(self) -> bool:
        """True when any finding is drift."""
        return any(f.state.is_drift for f in self.findings)

    @property
    def incomplete(self) -> bool:
        """True when any data is missing: a finding, or a host not fully collected."""
        return bool(self.uncollected) or any(f.state is State.INCOMPLETE for f in self.findings)

    @property
    def verdict(self) -> str:
        """clean, drift, incomplete, or "drift, incomplete"."""
        parts = [w for w, on in (("drift", self.has_drift), ("incomplete", self.incomplete)) if on]
        return ", ".join(parts) or "clean"

    @property
    def exit_code(self) -> int:
        """Bitmask: 1 drift found, 4 incomplete data (0 clean)."""
        return (1 if self.has_drift else 0) | (4 if self.incomplete else 0)


@dataclass(frozen=True)
class WaiverRecord:
    """A waiver as reports show it: where it stands in the inventory and what it says."""

    #: the key glob (or "regex ...") it selects
    key: str
    collector: str | None
    reason: str
    owner: str
    expires: date
    line: int
