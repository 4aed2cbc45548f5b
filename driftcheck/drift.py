"""The diff engine: snapshots in, a :class:`DriftReport` out. Pure: no I/O.

For each role, every target-environment host is compared key by key with the
reference environment's hosts of that role. Flat values are compared directly;
nested values (a file's metadata and content) go through deepdiff to say *what*
inside them differs. A host or section that could not be collected yields an
``incomplete`` finding: missing data is never reported as "same".

The report's types live in :mod:`driftcheck.findings`, the rules in
:mod:`driftcheck.rules`; :mod:`driftcheck.pipeline` puts explanations and
history on the report this module builds.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from driftcheck.collectors import Collector
from driftcheck.findings import WHOLE, Change, DriftReport, Finding, HostRow, State
from driftcheck.inventory import Inventory
from driftcheck.model import (
    ABSENT,
    HostSnapshot,
    HostStatus,
    SectionResult,
    SectionStatus,
    is_below,
)
from driftcheck.rules import Expect, SectionRules, relation_holds


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
    ctx = _Context.of(inventory, collectors, today)
    for role in inventory.roles():
        refs = [h.name for h in inventory.hosts_in([inventory.reference], role)]
        tgts = [h.name for h in inventory.hosts_in(inventory.targets, role)]
        _compare_role(ctx, role, refs, tgts, snapshots)
    return _report(ctx, generated_at, run_started_at, snapshots)


def compare_pair(
    inventory: Inventory,
    snapshots: Mapping[str, HostSnapshot],
    collectors: Sequence[Collector],
    pair: tuple[str, str],
    generated_at: str,
    run_started_at: str | None = None,
    today: date | None = None,
) -> DriftReport:
    """Compare two hosts of any environments, the first as the reference: the same
    findings, volatile keys and rules as :func:`compare`. Rules limited to roles
    apply when both hosts have the role; with no role in common, only rules for
    every role do (the finding's role then reads "web/db")."""
    ref, tgt = (inventory.host(h) for h in pair)
    shared = [r for r in ref.roles if r in tgt.roles]
    role = shared[0] if shared else f"{ref.roles[0]}/{tgt.roles[0]}"
    ctx = _Context.of(inventory, collectors, today)
    _compare_role(ctx, role, [ref.name], [tgt.name], snapshots)
    report = _report(ctx, generated_at, run_started_at, snapshots)
    hosts = tuple(h for name in pair for h in report.hosts if h.name == name)
    # A waiver unused by one pair is not stale: the fleet's report says which are.
    return replace(
        report,
        reference=ref.environment,
        targets=(tgt.environment,),
        hosts=hosts,
        pair=pair,
        stale_waivers=(),
    )


@dataclass(frozen=True)
class _Context:
    """What every role's comparison shares: the inventory, collectors, volatile keys."""

    inventory: Inventory
    collectors: Sequence[Collector]
    volatile: dict[str, re.Pattern[str] | None]
    env_of: Mapping[str, str]
    today: date
    tally: _Tally

    @classmethod
    def of(
        cls, inventory: Inventory, collectors: Sequence[Collector], today: date | None
    ) -> _Context:
        """A fresh context (and tally) for one report."""
        return cls(
            inventory,
            collectors,
            volatile_matcher(collectors, dict(inventory.include_volatile)),
            {h.name: h.environment for h in inventory.hosts},
            today or datetime.now(UTC).date(),
            _Tally(skipped={c.name: 0 for c in collectors}),
        )


def _compare_role(
    ctx: _Context,
    role: str,
    refs: list[str],
    tgts: list[str],
    snapshots: Mapping[str, HostSnapshot],
) -> None:
    """Compare the target hosts ``tgts`` of one role with its reference hosts."""
    tally = ctx.tally
    # A host that could not be collected at all: one finding per role, not one
    # per collector, with the reason (refused, timed out, host key...).
    down = _unreachable(refs + tgts, snapshots)
    if down:
        tally.findings.append(_incomplete(role, WHOLE, WHOLE, down, refs))
    for collector in ctx.collectors:
        if not collector.compare:
            continue  # evidence for explanations, not drift of its own
        sections = _sections(role, collector.name, refs, tgts, down, snapshots, tally)
        ok_refs = [h for h in refs if h in sections]
        ok_tgts = [h for h in tgts if h in sections]
        if ok_refs and ok_tgts:
            comparison = _Comparison(
                role,
                collector.name,
                ok_refs,
                ok_tgts,
                sections,
                ctx.volatile[collector.name],
                ctx.inventory.rules.for_section(role, collector.name),
                ctx.env_of,
                ctx.today,
            )
            _compare_section(comparison, tally)


def _report(
    ctx: _Context,
    generated_at: str,
    run_started_at: str | None,
    snapshots: Mapping[str, HostSnapshot],
) -> DriftReport:
    inventory, tally = ctx.inventory, ctx.tally
    return DriftReport(
        generated_at=generated_at,
        inventory=str(inventory.path),
        reference=inventory.reference,
        targets=inventory.targets,
        run_started_at=run_started_at,
        hosts=_host_rows(inventory, snapshots, ctx.collectors),
        findings=tuple(tally.findings),
        volatile_skipped=tally.skipped,
        compared_keys=tally.compared_keys,
        collectors=tuple(c.name for c in ctx.collectors if c.compare),
        stale_waivers=inventory.rules.stale(tally.used_waivers),
    )


@dataclass
class _Tally:
    """What the comparison of every role and collector adds up to."""

    skipped: dict[str, int]
    findings: list[Finding] = field(default_factory=list)
    used_waivers: set[int] = field(default_factory=set)
    compared_keys: int = 0


@dataclass(frozen=True)
class _Comparison:
    """One collector's facts for one role: the hosts, their sections, and the rules
    that may apply."""

    role: str
    collector: str
    refs: list[str]
    tgts: list[str]
    sections: dict[str, SectionResult]
    volatile: re.Pattern[str] | None
    rules: SectionRules | None
    env_of: Mapping[str, str]
    today: date


def volatile_matcher(
    collectors: Sequence[Collector], include: Mapping[str, Sequence[str]]
) -> dict[str, re.Pattern[str] | None]:
    """Per collector, a pattern of its volatile keys minus those the inventory includes
    (``compare.include_volatile``); None for a collector with none."""
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


def _unreachable(hosts: Sequence[str], snapshots: Mapping[str, HostSnapshot]) -> dict[str, str]:
    """host -> why, for the hosts of which no section at all could be collected."""
    down: dict[str, str] = {}
    for h in hosts:
        snap = snapshots.get(h)
        if snap is None:
            down[h] = "not collected in this run"
        elif snap.status is HostStatus.FAILED and not any(
            s.status.complete for s in snap.sections.values()
        ):
            down[h] = snap.error
    return down


def _incomplete(
    role: str, collector: str, key: str, reasons: dict[str, str], refs: Sequence[str]
) -> Finding:
    """An incomplete finding: these hosts' data for ``key`` is unknown, and why."""
    return Finding(
        role, collector, key, State.INCOMPLETE, dict.fromkeys(reasons), tuple(refs), reasons=reasons
    )


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


def _sections(
    role: str,
    collector: str,
    refs: Sequence[str],
    tgts: Sequence[str],
    down: Mapping[str, str],
    snapshots: Mapping[str, HostSnapshot],
    tally: _Tally,
) -> dict[str, SectionResult]:
    """The comparable sections of ``collector`` on ``hosts``; the others become one
    incomplete finding for the whole section (hosts already down are not repeated)."""
    sections: dict[str, SectionResult] = {}
    bad: dict[str, str] = {}
    for h in [*refs, *tgts]:
        if h in down:
            continue
        sec, why = _section(snapshots.get(h), collector)
        if sec is None:
            bad[h] = why
        else:
            sections[h] = sec
    if bad:
        tally.findings.append(_incomplete(role, collector, WHOLE, bad, refs))
    return _applicable(role, collector, refs, sections, tally)


def _applicable(
    role: str,
    collector: str,
    refs: Sequence[str],
    sections: dict[str, SectionResult],
    tally: _Tally,
) -> dict[str, SectionResult]:
    """The sections to compare key by key, when the collector's subject is missing
    on some hosts only (systemctl on one side): a reference without it leaves the
    targets with nothing to be compared to (incomplete, never "extra"); a target
    without it is one "missing" finding for the section, not one per key."""
    na = {h: s.error or "not applicable" for h, s in sections.items() if _not_applicable(s)}
    if not na or len(na) == len(sections):
        return sections  # nowhere, or everywhere: nothing to compare, nothing differs
    na_refs = {
        h: f"{why}, so this section cannot be compared" for h, why in na.items() if h in refs
    }
    if na_refs:
        tally.findings.append(_incomplete(role, collector, WHOLE, na_refs, refs))
    ok_refs = [h for h in refs if h in sections and h not in na]
    na_tgts = [h for h in sections if h in na and h not in refs]
    if ok_refs and na_tgts:
        values = {h: "applicable" for h in ok_refs} | {h: "not applicable" for h in na_tgts}
        note = "; ".join(f"{h}: {na[h]}" for h in na_tgts)
        tally.findings.append(
            Finding(role, collector, WHOLE, State.MISSING, values, tuple(refs), note=note)
        )
    return {h: s for h, s in sections.items() if h not in na}


def _not_applicable(section: SectionResult) -> bool:
    return section.status is SectionStatus.NOT_APPLICABLE


def _host_rows(
    inventory: Inventory, snapshots: Mapping[str, HostSnapshot], collectors: Sequence[Collector]
) -> tuple[HostRow, ...]:
    """Every inventory host as the report shows it, with its not-applicable sections."""
    names = {c.name for c in collectors}
    rows = []
    for h in inventory.hosts:
        snap = snapshots.get(h.name)
        if snap is None:
            rows.append(
                HostRow(
                    h.name, h.environment, h.roles, "not collected", "no snapshot in this run", None
                )
            )
            continue
        not_applicable = {
            name: sec.error
            for name, sec in snap.sections.items()
            if sec.status is SectionStatus.NOT_APPLICABLE and name in names
        }
        rows.append(
            HostRow(
                h.name,
                h.environment,
                h.roles,
                str(snap.status),
                snap.error,
                snap.collected_at,
                not_applicable,
            )
        )
    return tuple(rows)


def _candidates(tables: Sequence[Mapping[str, Any]]) -> tuple[set[str], int]:
    """The keys whose values differ between ``tables``, and how many keys there are.

    Most keys are the same everywhere, so this finds the differing ones with plain
    dict lookups; only those get the full treatment (volatile check, rules, detail).
    """
    first, rest = tables[0], tables[1:]
    if len(rest) == 1:
        other = rest[0]
        # Counted without building the union: keys of the first plus the other's own.
        n_keys = len(first) + len(other.keys() - first.keys())
        try:
            # The symmetric difference of the (key, value) pairs, done in C; values
            # that cannot be hashed (a file's metadata) take the Python walk below.
            return {k for k, _ in first.items() ^ other.items()}, n_keys
        except TypeError:
            pass
    keys: set[str] = set().union(*tables)
    differing = {k for k in keys if any(t.get(k, ABSENT) != first.get(k, ABSENT) for t in rest)}
    return differing, len(keys)


def _compare_section(cmp: _Comparison, tally: _Tally) -> None:
    """Compare one collector's facts for one role into ``tally``: keys compared,
    volatile differences skipped, findings and the waivers they used."""
    hosts = cmp.refs + cmp.tgts
    tables = [cmp.sections[h].facts for h in hosts]
    candidates, n_keys = _candidates(tables)
    errored = [cmp.sections[h].errors for h in hosts if cmp.sections[h].errors]
    for errors in errored:
        n_keys += len(errors.keys() - candidates)
        candidates.update(errors)
    # A map or expect rule can turn equal raw values into drift; equal values exist
    # on every host, so the first host's keys are enough to find them.
    forced = cmp.rules.forced_keys(tables[0]) if cmp.rules is not None else set()
    skipped = 0
    for key in sorted(candidates | forced):
        if cmp.volatile is not None and cmp.volatile.fullmatch(key):
            skipped += key in candidates
            continue
        values = {h: t.get(key, ABSENT) for h, t in zip(hosts, tables, strict=True)}
        errors = _errors_for(key, hosts, cmp.sections) if errored else {}
        if errors:
            shown = {h: (None if v is ABSENT else v) for h, v in values.items()}
            tally.findings.append(
                Finding(
                    cmp.role,
                    cmp.collector,
                    key,
                    State.INCOMPLETE,
                    shown,
                    tuple(cmp.refs),
                    reasons=errors,
                )
            )
        else:
            found, used = _judge_key(cmp, key, values)
            tally.findings.extend(found)
            tally.used_waivers.update(used)
    tally.compared_keys += n_keys
    tally.skipped[cmp.collector] += skipped


def _errors_for(
    key: str, hosts: Sequence[str], sections: Mapping[str, SectionResult]
) -> dict[str, str]:
    """host -> why ``key`` could not be read there: its own error or one above it."""
    out = {}
    for h in hosts:
        errors = sections[h].errors
        if not errors:
            continue
        why = errors.get(key)
        if why is None:
            why = next((w for parent, w in errors.items() if is_below(key, parent)), None)
        if why is not None:
            out[h] = why
    return out


def _judge_key(
    cmp: _Comparison, key: str, values: dict[str, Any]
) -> tuple[list[Finding], set[int]]:
    """The findings for one key after the rules that select it, and the waivers used."""
    if cmp.rules is None:
        return _judge(cmp, key, values, values, ()), set()
    rules = cmp.rules.for_key(key)
    compared = rules.compared(values, cmp.env_of)
    found = _judge(cmp, key, values, compared, rules.expects)
    return rules.settle(found, compared, cmp.refs, cmp.today)


def _state(reference: Any, value: Any) -> State | None:
    """The plain comparison of one target value with the reference value."""
    if value == reference:
        return None
    if reference is ABSENT:
        return State.EXTRA
    return State.MISSING if value is ABSENT else State.CHANGED


def _groups(
    cmp: _Comparison, compared: dict[str, Any], expects: tuple[Expect, ...]
) -> dict[tuple[State, str], list[str]]:
    """(state, note) -> the hosts in that state, from the ``compared`` values."""
    refs = cmp.refs
    first = compared[refs[0]]
    if any(compared[h] != first for h in refs[1:]):
        # Every host is shown: with disagreeing references, no target is "the same".
        return {(State.INCONSISTENT, ""): list(refs) + list(cmp.tgts)}
    groups: dict[tuple[State, str], list[str]] = {}
    for h in cmp.tgts:
        value = compared[h]
        expect = next((e for e in expects if e.selector.covers(h)), None)
        if expect is not None and first is not ABSENT and value is not ABSENT:
            if not relation_holds(expect, first, value):
                note = f"expected {expect.describe()} ({expect.reason})"
                groups.setdefault((State.CHANGED, note), []).append(h)
            continue
        state = _state(first, value)
        if state is not None:
            groups.setdefault((state, ""), []).append(h)
    return groups


def _judge(
    cmp: _Comparison,
    key: str,
    values: dict[str, Any],
    compared: dict[str, Any],
    expects: tuple[Expect, ...],
) -> list[Finding]:
    """Findings for ``key`` from ``compared`` values (mapped ones, when rules map);
    ``values`` are what is shown."""
    refs = cmp.refs
    shown = {h: (None if v is ABSENT else v) for h, v in values.items()}
    out = []
    for (state, note), differing in _groups(cmp, compared, expects).items():
        involved = refs + [h for h in differing if h not in refs]
        detail = tuple(
            c
            for h in differing
            if h not in refs[:1]
            for c in _nested_changes(h, values[refs[0]], values[h])
        )
        raw = {h: shown[h] for h in involved}
        out.append(
            Finding(cmp.role, cmp.collector, key, state, raw, tuple(refs), detail, note=note)
        )
    return out


def _nested_changes(host: str, ref: Any, tgt: Any) -> tuple[Change, ...]:
    """What differs inside two nested values, one Change per leaf."""
    if not isinstance(ref, dict | list) or not isinstance(tgt, dict | list):
        return ()
    # Imported here: deepdiff costs ~0.3 s of start-up, and most commands (--help,
    # collect, show) never compare a nested value.
    from deepdiff import DeepDiff  # noqa: PLC0415

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
