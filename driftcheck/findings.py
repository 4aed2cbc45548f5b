"""The report's types: what the diff engine produces and every renderer reads.

Renderers import these, never the engine (in the manner of pip-audit's
``interface.py``): a :class:`DriftReport` carries everything a format needs
(compared collectors, hosts not fully collected, verdict, exit status), so no
renderer asks the engine or the collector registry for it.
"""

from __future__ import annotations

import json
from collections import Counter
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
    #: since when the drift has held: the first run of the unbroken series in which
    #: a differing host and the hosts it differs from had their current values
    #: (as far as the history of earlier runs vouches for it)
    since: str | None = None
    #: how many runs that series is long, this one included (1: new in this run)
    runs_held: int = 0
    #: the waiver that covers it (for a waived finding, or one whose waiver expired)
    waiver: WaiverRecord | None = None
    #: the id of the cause group it belongs to (:class:`Cause`), as cause or member
    cause: str = ""

    @property
    def differing(self) -> tuple[str, ...]:
        """The hosts that make this a finding: the targets that differ, or for an
        inconsistent finding the odd ones out (see :func:`odd_hosts`); for an
        incomplete one, the hosts whose data is unknown."""
        state = self.underlying or self.state
        if state is State.INCOMPLETE:
            return tuple(self.reasons)
        if state is State.INCONSISTENT:
            return odd_hosts(self)
        return tuple(h for h in self.values if h not in self.reference_hosts)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def odd_hosts(finding: Finding) -> tuple[str, ...]:
    """The hosts whose value is not the most common one among the finding's hosts
    (values after map rules, when they applied); a tie goes to the first reference
    host's value. For reference hosts that disagree this names the minority: with
    prod-web1 and stg-web1 at 7200 and prod-web2 at 600, prod-web2."""
    values = finding.mapped_values if finding.mapped_values is not None else finding.values
    shown = {h: _canonical(v) for h, v in values.items()}
    if not shown:
        return ()
    counts = Counter(shown.values())
    top = max(counts.values(), default=0)
    first = shown.get(finding.reference_hosts[0]) if finding.reference_hosts else None
    norm = first if counts.get(first or "", 0) == top else counts.most_common(1)[0][0]
    return tuple(h for h, v in shown.items() if v != norm)


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
    #: (reference host, target host) for a comparison of two hosts (``driftcheck
    #: diff``); None for environments
    pair: tuple[str, str] | None = None
    #: findings grouped under the finding that causes them (see driftcheck.causes)
    causes: tuple[Cause, ...] = ()
    #: whole-file unified diffs of parsed config files whose settings differ
    file_diffs: tuple[FileDiff, ...] = ()
    #: drift and incomplete counts of the runs up to this one, oldest first
    trend: tuple[TrendPoint, ...] = ()

    @property
    def drift_causes(self) -> tuple[int, int]:
        """(drift findings, distinct causes): "12 findings from 3 causes"; a finding
        in no group is a cause of its own."""
        drift = [f for f in self.findings if f.state.is_drift]
        alone = sum(1 for f in drift if not f.cause)
        return len(drift), alone + len({f.cause for f in drift if f.cause})

    def members(self, cause: Cause) -> list[Finding]:
        """The findings of a cause group, the causing finding first."""
        group = [f for f in self.findings if f.cause == cause.id]
        return sorted(group, key=lambda f: (f.collector, f.key) != (cause.collector, cause.key))

    @property
    def sides(self) -> tuple[str, str]:
        """(what was compared, what with), in words: ("staging", "production"), or
        ("stg-web1 (staging)", "prod-web2 (production)") for two hosts."""
        if self.pair is not None:
            env = {h.name: h.environment for h in self.hosts}
            ref, tgt = (f"{h} ({env[h]})" if h in env else h for h in self.pair)
            return tgt, ref
        return ", ".join(self.targets), self.reference

    @property
    def subject(self) -> str:
        """What was compared with what: "staging compared with production"."""
        target, reference = self.sides
        return f"{target} compared with {reference}"

    def role_hosts(self, role: str) -> tuple[list[str], list[str]]:
        """(reference hosts, every compared host, references first) of ``role``."""
        if self.pair is not None:
            return [self.pair[0]], list(self.pair)
        compared = {self.reference, *self.targets}
        hosts = [h for h in self.hosts if role in h.roles and h.environment in compared]
        refs = [h.name for h in hosts if h.environment == self.reference]
        return refs, refs + [h.name for h in hosts if h.name not in refs]

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
class FileDiff:
    """The whole text of one config file, reference host against a target host."""

    role: str
    path: str
    reference_host: str
    target_host: str
    #: unified diff lines, ``---``/``+++`` labelled with the host names
    lines: tuple[str, ...]
    #: lines left out beyond the report's limit
    cut: int = 0


@dataclass(frozen=True)
class TrendPoint:
    """One run's counts, for the drift-over-time chart."""

    run_id: int
    started_at: str
    drift: int
    incomplete: int


@dataclass(frozen=True)
class Cause:
    """A group of findings that follow from one of them (a package version, a
    kernel setting the kernel links others to)."""

    id: str
    role: str
    #: the causing finding's collector and key
    collector: str
    key: str
    title: str
    #: how many findings follow from it (the cause itself not counted)
    members: int


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
