"""The diff engine: snapshots in, a :class:`DriftReport` out. Pure: no I/O.

For each role, every target-environment host is compared key by key with the
reference environment's hosts of that role. Flat values are compared directly;
nested values (a file's metadata and content) go through deepdiff to say *what*
inside them differs. A host or section that could not be collected yields an
``incomplete`` finding: missing data is never reported as "same".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from deepdiff import DeepDiff

from driftcheck.collectors import Collector
from driftcheck.inventory import Inventory
from driftcheck.model import HostSnapshot, HostStatus, SectionResult

#: Key of a finding about a whole section or host rather than one fact.
WHOLE = "*"


class State(StrEnum):
    """The state of one key for one role. A key in no finding is the same everywhere."""

    CHANGED = "changed"
    MISSING = "missing"  # in the reference, not in the target
    EXTRA = "extra"  # in the target, not in the reference
    INCONSISTENT = "inconsistent"  # reference hosts disagree among themselves
    INCOMPLETE = "incomplete"  # could not be collected: unknown, never "same"

    @property
    def is_drift(self) -> bool:
        """True for the states that mean staging does not mirror production."""
        return self is not State.INCOMPLETE


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


@dataclass(frozen=True)
class HostRow:
    """A host as it appears in a report."""

    name: str
    environment: str
    roles: tuple[str, ...]
    status: str
    error: str
    collected_at: str | None


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

    @property
    def counts(self) -> dict[str, int]:
        """Number of findings per state, every state present."""
        out = {s.value: 0 for s in State}
        for f in self.findings:
            out[f.state.value] += 1
        return out

    @property
    def has_drift(self) -> bool:
        """True when any finding is drift."""
        return any(f.state.is_drift for f in self.findings)

    @property
    def incomplete(self) -> bool:
        """True when any data is missing: a finding, or a host not fully collected."""
        return any(f.state is State.INCOMPLETE for f in self.findings) or any(
            h.status != HostStatus.OK for h in self.hosts
        )

    @property
    def verdict(self) -> str:
        """clean, drift, incomplete, or "drift, incomplete"."""
        parts = [w for w, on in (("drift", self.has_drift), ("incomplete", self.incomplete)) if on]
        return ", ".join(parts) or "clean"

    @property
    def exit_code(self) -> int:
        """Bitmask: 1 drift found, 4 incomplete data (0 clean)."""
        return (1 if self.has_drift else 0) | (4 if self.incomplete else 0)


_ABSENT = object()


def _volatile_matcher(
    collectors: Sequence[Collector], include: Mapping[str, Sequence[str]]
) -> dict[str, re.Pattern[str] | None]:
    """Per collector, a pattern of its volatile keys minus those the inventory includes."""
    out: dict[str, re.Pattern[str] | None] = {}
    for c in collectors:
        skip = "|".join(fnmatch.translate(g) for g in c.volatile)
        keep = "|".join(fnmatch.translate(g) for g in include.get(c.name, ()))
        if not skip:
            out[c.name] = None
        elif keep:
            out[c.name] = re.compile(f"(?!(?:{keep}))(?:{skip})")
        else:
            out[c.name] = re.compile(skip)
    return out


def _nested_changes(host: str, ref: Any, tgt: Any) -> tuple[Change, ...]:
    """What differs inside two nested values, one Change per leaf."""
    if not isinstance(ref, dict | list) or not isinstance(tgt, dict | list):
        return ()
    tree = DeepDiff(ref, tgt, threshold_to_diff_deeper=0, view="tree")
    changes: list[Change] = []
    for kind, levels in tree.items():
        for level in levels:
            path = ".".join(str(p) for p in level.path(output_format="list"))
            t1 = None if kind.endswith("_added") else level.t1
            t2 = None if kind.endswith("_removed") else level.t2
            diff = level.additional.get("diff", "") if level.additional else ""
            if diff.startswith("--- \n+++ \n"):
                diff = diff[len("--- \n+++ \n") :]
            changes.append(Change(host, path, t1, t2, diff))
    return tuple(sorted(changes, key=lambda c: c.path))


#: An error on a key also covers the keys below it: an unreadable directory its
#: files ("/etc/app/" + name), an unreadable virtualenv its packages ("venv:" +
#: name), a config file its settings ("path#" + setting).
_BELOW = ("/", ":", "#")


def _error_for(key: str, errors: Mapping[str, str]) -> str | None:
    """Why ``key`` could not be read on a host: its own error or one above it."""
    if not errors:
        return None
    if key in errors:
        return errors[key]
    for parent, why in errors.items():
        if key.startswith(parent) and key[len(parent) : len(parent) + 1] in _BELOW:
            return why
    return None


def _section(snap: HostSnapshot | None, collector: str) -> tuple[SectionResult | None, str]:
    """The section if it can be compared, else None and why not."""
    if snap is None:
        return None, "not collected in this run"
    sec = snap.sections.get(collector)
    if sec is None:
        return None, "collector did not run on this host"
    if not sec.status.complete:
        return None, f"{sec.status.value}: {sec.error}" if sec.error else sec.status.value
    return sec, ""


def compare(
    inventory: Inventory,
    snapshots: Mapping[str, HostSnapshot],
    collectors: Sequence[Collector],
    generated_at: str,
    run_started_at: str | None = None,
) -> DriftReport:
    """Compare the latest snapshots of every host; see the module docstring."""
    volatile = _volatile_matcher(collectors, dict(inventory.include_volatile))
    findings: list[Finding] = []
    skipped = {c.name: 0 for c in collectors}
    compared = 0
    for role in inventory.roles():
        refs = [h.name for h in inventory.hosts_in([inventory.reference], role)]
        tgts = [h.name for h in inventory.hosts_in(inventory.targets, role)]
        everyone = refs + tgts
        # A host that could not be collected at all: one finding per role, not one
        # per collector, with the reason (refused, timed out, host key...).
        down = {
            h: snapshots[h].error if h in snapshots else "not collected in this run"
            for h in everyone
            if h not in snapshots
            or (
                snapshots[h].status is HostStatus.FAILED
                and not any(s.status.complete for s in snapshots[h].sections.values())
            )
        }
        if down:
            findings.append(
                Finding(
                    role,
                    WHOLE,
                    WHOLE,
                    State.INCOMPLETE,
                    dict.fromkeys(down),
                    tuple(refs),
                    reasons=down,
                )
            )
        for collector in collectors:
            sections: dict[str, SectionResult] = {}
            bad: dict[str, str] = {}
            for h in everyone:
                if h in down:
                    continue
                sec, why = _section(snapshots.get(h), collector.name)
                if sec is None:
                    bad[h] = why
                else:
                    sections[h] = sec
            if bad:
                findings.append(
                    Finding(
                        role,
                        collector.name,
                        WHOLE,
                        State.INCOMPLETE,
                        dict.fromkeys(bad),
                        tuple(refs),
                        reasons=bad,
                    )
                )
            ok_refs = [h for h in refs if h in sections]
            ok_tgts = [h for h in tgts if h in sections]
            if not ok_refs or not ok_tgts:
                continue
            counted = _compare_section(
                role, collector.name, ok_refs, ok_tgts, sections, volatile[collector.name], findings
            )
            compared += counted[0]
            skipped[collector.name] += counted[1]
    hosts = tuple(
        HostRow(
            h.name,
            h.environment,
            h.roles,
            str(snapshots[h.name].status) if h.name in snapshots else "not collected",
            snapshots[h.name].error if h.name in snapshots else "no snapshot in this run",
            snapshots[h.name].collected_at if h.name in snapshots else None,
        )
        for h in inventory.hosts
    )
    return DriftReport(
        generated_at=generated_at,
        inventory=str(inventory.path),
        reference=inventory.reference,
        targets=inventory.targets,
        run_started_at=run_started_at,
        hosts=hosts,
        findings=tuple(findings),
        volatile_skipped=skipped,
        compared_keys=compared,
    )


def _compare_section(
    role: str,
    collector: str,
    refs: list[str],
    tgts: list[str],
    sections: dict[str, SectionResult],
    volatile: re.Pattern[str] | None,
    findings: list[Finding],
) -> tuple[int, int]:
    """Compare one collector's facts for one role; return (keys compared, keys skipped)."""
    hosts = refs + tgts
    keys: set[str] = set()
    for h in hosts:
        keys.update(sections[h].facts)
        keys.update(sections[h].errors)
    compared = skipped = 0
    ref_tuple = tuple(refs)
    for key in sorted(keys):
        if volatile is not None and volatile.fullmatch(key):
            skipped += 1
            continue
        compared += 1
        errors = {
            h: why for h in hosts if (why := _error_for(key, sections[h].errors)) is not None
        }
        values = {h: sections[h].facts.get(key, _ABSENT) for h in hosts}
        shown = {h: (None if v is _ABSENT else v) for h, v in values.items()}
        if errors:
            findings.append(
                Finding(role, collector, key, State.INCOMPLETE, shown, ref_tuple, reasons=errors)
            )
            continue
        first = values[refs[0]]
        if any(values[h] != first for h in refs[1:]):
            detail = tuple(c for h in refs[1:] for c in _nested_changes(h, first, values[h]))
            findings.append(
                Finding(role, collector, key, State.INCONSISTENT, shown, ref_tuple, detail)
            )
            continue
        by_state: dict[State, list[str]] = {}
        for h in tgts:
            v = values[h]
            if v == first:
                continue
            state = (
                State.EXTRA
                if first is _ABSENT
                else State.MISSING
                if v is _ABSENT
                else State.CHANGED
            )
            by_state.setdefault(state, []).append(h)
        for state, differing in by_state.items():
            detail = tuple(c for h in differing for c in _nested_changes(h, first, values[h]))
            involved = {h: shown[h] for h in refs + differing}
            findings.append(Finding(role, collector, key, state, involved, ref_tuple, detail))
    return compared, skipped
