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
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from deepdiff import DeepDiff

from driftcheck.collectors import Collector
from driftcheck.explain import explain
from driftcheck.inventory import Inventory
from driftcheck.model import HostSnapshot, HostStatus, SectionResult, SectionStatus
from driftcheck.rules import (
    Expect,
    Ignore,
    Rules,
    ValueMap,
    Waiver,
    map_value,
    relation_holds,
)

#: Key of a finding about a whole section or host rather than one fact.
WHOLE = "*"


class State(StrEnum):
    """The state of one key for one role. A key in no finding is the same everywhere."""

    CHANGED = "changed"
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
    #: waivers that matched nothing: the drift they covered is gone (or the rule is wrong)
    stale_waivers: tuple[Waiver, ...] = ()

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
    today: date | None = None,
) -> DriftReport:
    """Compare the latest snapshots of every host; see the module docstring.

    ``today`` decides which waivers are still active (default: the current UTC date).
    """
    today = today or datetime.now(UTC).date()
    env_of = {h.name: h.environment for h in inventory.hosts}
    used_waivers: set[int] = set()
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
            if not collector.compare:
                continue  # evidence for explanations, not drift of its own
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
                _Section(
                    role,
                    collector.name,
                    ok_refs,
                    ok_tgts,
                    sections,
                    volatile[collector.name],
                    inventory.rules,
                    env_of,
                    today,
                    findings,
                    used_waivers,
                )
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
            {
                name: sec.error
                for name, sec in snapshots[h.name].sections.items()
                if sec.status is SectionStatus.NOT_APPLICABLE
                and name in {c.name for c in collectors}
            }
            if h.name in snapshots
            else {},
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
        findings=explain(tuple(findings), snapshots),
        volatile_skipped=skipped,
        compared_keys=compared,
        stale_waivers=tuple(
            w for n, w in enumerate(inventory.rules.waivers) if n not in used_waivers
        ),
    )


@dataclass
class _Section:
    """One collector's facts for one role, and the rules that may apply to them."""

    role: str
    collector: str
    refs: list[str]
    tgts: list[str]
    sections: dict[str, SectionResult]
    volatile: re.Pattern[str] | None
    rules: Rules
    env_of: Mapping[str, str]
    today: date
    findings: list[Finding]
    used_waivers: set[int]
    local: _LocalRules | None = None


def _compare_section(ctx: _Section) -> tuple[int, int]:
    """Compare one collector's facts for one role; return (keys compared, volatile
    differences skipped).

    Most keys are the same everywhere, so the walk first finds the keys whose
    values differ (or that carry errors) with plain dict lookups, and only those
    (plus keys a map or expect rule must see even when equal) get the full
    treatment: volatile check, rules, nested detail.
    """
    hosts = ctx.refs + ctx.tgts
    tables = [ctx.sections[h].facts for h in hosts]
    first, rest = tables[0], tables[1:]
    candidates: set[str] | None = None
    if len(rest) == 1:
        other = rest[0]
        # Counted without building the union: keys of the first plus the other's own.
        n_keys = len(first) + len(other.keys() - first.keys())
        try:
            # The symmetric difference of the (key, value) pairs, done in C; values
            # that cannot be hashed (a file's metadata) take the Python walk below.
            candidates = {k for k, _ in first.items() ^ other.items()}
        except TypeError:
            candidates = None
    if candidates is None:
        keys: set[str] = set().union(*tables)
        n_keys = len(keys)
        candidates = {
            k for k in keys if any(t.get(k, _ABSENT) != first.get(k, _ABSENT) for t in rest)
        }
    errored = [ctx.sections[h].errors for h in hosts if ctx.sections[h].errors]
    for errors in errored:
        n_keys += len(errors.keys() - candidates)
        candidates.update(errors)
    ctx.local = _LocalRules.of(ctx.rules, ctx.role, ctx.collector)
    ruled = ctx.local is not None
    forced: set[str] = set()
    if ctx.local is not None:
        # A map or expect rule can turn equal raw values into drift (staging using
        # production's database host; a per-environment secret that is the same).
        # Equal values exist on every host, so the first host's keys are enough.
        selectors = [r.selector for r in ctx.local.maps] + [r.selector for r in ctx.local.expect]
        for sel in selectors:
            forced.update(sel.select(first))
    skipped = 0
    for key in sorted(candidates | forced):
        if ctx.volatile is not None and ctx.volatile.fullmatch(key):
            skipped += key in candidates
            continue
        values = {h: t.get(key, _ABSENT) for h, t in zip(hosts, tables, strict=True)}
        errors = (
            {h: why for h in hosts if (why := _error_for(key, ctx.sections[h].errors)) is not None}
            if errored
            else {}
        )
        if errors:
            shown = {h: (None if v is _ABSENT else v) for h, v in values.items()}
            ctx.findings.append(
                Finding(
                    ctx.role,
                    ctx.collector,
                    key,
                    State.INCOMPLETE,
                    shown,
                    tuple(ctx.refs),
                    reasons=errors,
                )
            )
        elif ruled:
            _judge_with_rules(ctx, key, values)
        else:
            _judge(ctx, key, values, values, ())
    return n_keys, skipped


def _state(reference: Any, value: Any) -> State | None:
    """The plain comparison of one target value with the reference value."""
    if value == reference:
        return None
    if reference is _ABSENT:
        return State.EXTRA
    return State.MISSING if value is _ABSENT else State.CHANGED


def _judge(
    ctx: _Section,
    key: str,
    values: dict[str, Any],
    compared: dict[str, Any],
    expects: tuple[Expect, ...],
) -> list[tuple[State, list[str], str]]:
    """Findings for ``key`` from ``compared`` values (mapped ones, when rules map);
    ``values`` are what is shown. Returns the (state, hosts, note) groups found."""
    refs, shown = ctx.refs, {h: (None if v is _ABSENT else v) for h, v in values.items()}
    first = compared[refs[0]]
    groups: dict[tuple[State, str], list[str]] = {}
    if any(compared[h] != first for h in refs[1:]):
        # Every host is shown: with disagreeing references, no target is "the same".
        groups[(State.INCONSISTENT, "")] = list(refs) + list(ctx.tgts)
    else:
        for h in ctx.tgts:
            value = compared[h]
            expect = next((e for e in expects if e.selector.covers(h)), None)
            if expect is not None and first is not _ABSENT and value is not _ABSENT:
                if not relation_holds(expect, first, value):
                    note = f"expected {expect.describe()} ({expect.reason})"
                    groups.setdefault((State.CHANGED, note), []).append(h)
                continue
            state = _state(first, value)
            if state is not None:
                groups.setdefault((state, ""), []).append(h)
    out = []
    for (state, note), differing in groups.items():
        involved = refs + [h for h in differing if h not in refs]
        detail = tuple(
            c
            for h in differing
            if h not in refs[:1]
            for c in _nested_changes(h, values[refs[0]], values[h])
        )
        raw = {h: shown[h] for h in involved}
        out.append((state, differing, note))
        ctx.findings.append(
            Finding(ctx.role, ctx.collector, key, state, raw, tuple(refs), detail, note=note)
        )
    return out


def _judge_with_rules(ctx: _Section, key: str, values: dict[str, Any]) -> None:
    """As :func:`_judge`, after map and expect rules, then ignore and waiver rules."""
    local = ctx.local
    assert local is not None
    maps = tuple(m for m in local.maps if m.selector.pattern.fullmatch(key))
    expects = tuple(e for e in local.expect if e.selector.pattern.fullmatch(key))
    compared = values
    if maps:
        compared = {
            h: v if v is _ABSENT else map_value(v, ctx.env_of[h], maps) for h, v in values.items()
        }
    start = len(ctx.findings)
    _judge(ctx, key, values, compared, expects)
    ignores = [r for r in local.ignore if r.selector.pattern.fullmatch(key)]
    waivers = [(n, w) for n, w in local.waivers if w.selector.pattern.fullmatch(key)]
    if not (maps or ignores or waivers):
        return
    for i in range(start, len(ctx.findings)):
        finding = ctx.findings[i]
        hosts = [h for h in finding.values if h not in ctx.refs] or list(ctx.refs)
        if maps:
            mapped = {h: None if compared[h] is _ABSENT else compared[h] for h in finding.values}
            finding = replace(finding, mapped_values=mapped)
        ignore = next((r for r in ignores if all(r.selector.covers(h) for h in hosts)), None)
        waiver = next(
            ((n, w) for n, w in waivers if all(w.selector.covers(h) for h in hosts)), None
        )
        if ignore is not None:
            finding = replace(
                finding,
                state=State.IGNORED,
                underlying=finding.state,
                note=_join(finding.note, f"ignored: {ignore.reason}"),
            )
        elif waiver is not None:
            n, w = waiver
            ctx.used_waivers.add(n)
            who = f"{w.reason}; owner {w.owner}"
            if ctx.today <= w.expires:
                finding = replace(
                    finding,
                    state=State.WAIVED,
                    underlying=finding.state,
                    note=_join(finding.note, f"waived until {w.expires.isoformat()}: {who}"),
                )
            else:
                finding = replace(
                    finding,
                    note=_join(finding.note, f"waiver expired on {w.expires.isoformat()}: {who}"),
                )
        ctx.findings[i] = finding


@dataclass(frozen=True)
class _LocalRules:
    """The rules that can apply to one (role, collector): filtered once, not per key."""

    maps: tuple[ValueMap, ...]
    expect: tuple[Expect, ...]
    ignore: tuple[Ignore, ...]
    waivers: tuple[tuple[int, Waiver], ...]

    @classmethod
    def of(cls, rules: Rules, role: str, collector: str) -> _LocalRules | None:
        def here(sel: Any) -> bool:
            return bool(sel.collector in (None, collector) and (not sel.roles or role in sel.roles))

        local = cls(
            tuple(r for r in rules.maps if here(r.selector)),
            tuple(r for r in rules.expect if here(r.selector)),
            tuple(r for r in rules.ignore if here(r.selector)),
            tuple((n, w) for n, w in enumerate(rules.waivers) if here(w.selector)),
        )
        return local if (local.maps or local.expect or local.ignore or local.waivers) else None


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
