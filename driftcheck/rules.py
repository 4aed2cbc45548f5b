"""Rules a team writes in the inventory: what to ignore, map, expect or waive.

A raw list of differences cries wolf: staging legitimately has other hostnames,
smaller pools and its own secrets. Rules say which differences are intended,
with a reason, so that what remains is drift a team can act on. Every rule is a
*selector* (collector, key glob or regex, optional roles and hosts) plus what to
do with the keys it selects. Ignored and waived items are still counted and
shown, never silently dropped.

This module holds all of it: the YAML models (validated with the inventory),
:func:`compile_rules` (names checked, selectors compiled, each with its line),
and applying them: the engine asks :meth:`Rules.for_section` for a role and
collector, then :meth:`SectionRules.for_key` for a key, and gets findings back
from :meth:`KeyRules.settle`; nothing is changed in place.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driftcheck.errors import InventoryError
from driftcheck.findings import Finding, State, WaiverRecord
from driftcheck.model import ABSENT

_Reason = Annotated[str, Field(min_length=3)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class SelectorModel(_Strict):
    """Which keys a rule applies to."""

    collector: str | None = None
    key: str | None = None
    regex: str | None = None
    roles: list[str] = []
    hosts: list[str] = []

    _regex = field_validator("regex")(_check_regex)

    @model_validator(mode="after")
    def _one_key(self) -> SelectorModel:
        if (self.key is None) == (self.regex is None):
            raise ValueError("give exactly one of key (a glob) or regex")
        return self


class IgnoreModel(SelectorModel):
    """Keys that are never drift here, for a stated reason."""

    reason: _Reason


class MapModel(SelectorModel):
    """Environment-specific text made equal before comparing.

    ``values``: environment -> the literal text that environment uses;
    ``patterns``: environment -> a regex whose groups must agree between sides.
    """

    values: dict[str, str] = {}
    patterns: dict[str, str] = {}

    @field_validator("patterns")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern in value.values():
            _check_regex(pattern)
        return value

    @model_validator(mode="after")
    def _something(self) -> MapModel:
        if not self.values and not self.patterns:
            raise ValueError("give values (environment: text) or patterns (environment: regex)")
        return self


class ExpectModel(SelectorModel):
    """An intended relation between a target's value and the reference value."""

    relation: Literal["differs", "ratio", "at_least", "at_most"]
    #: for ratio: reference value = factor x target value
    factor: Annotated[float, Field(gt=0)] | None = None
    reason: _Reason

    @model_validator(mode="after")
    def _factor(self) -> ExpectModel:
        if (self.relation == "ratio") != (self.factor is not None):
            raise ValueError("factor goes with relation: ratio (reference = factor x target)")
        return self


class WaiverModel(SelectorModel):
    """A known drift, accepted until a date."""

    reason: _Reason
    owner: Annotated[str, Field(min_length=1)]
    expires: date


class RulesModel(_Strict):
    """The inventory's ``rules:`` section."""

    ignore: list[IgnoreModel] = []
    map: list[MapModel] = []
    expect: list[ExpectModel] = []
    waivers: list[WaiverModel] = []


# -- resolved rules ------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """A compiled selector; ``line`` is where the rule stands in the inventory."""

    line: int
    collector: str | None
    pattern: re.Pattern[str]
    text: str
    roles: frozenset[str]
    hosts: frozenset[str]
    #: the literal start of a key glob: a cheap first filter before the regex
    prefix: str = ""

    def select(self, keys: Iterable[str]) -> list[str]:
        """The keys among ``keys`` this rule's key glob or regex matches."""
        prefix, match = self.prefix, self.pattern.fullmatch
        # startswith first: most keys fail on their first letters, before the regex.
        return [k for k in keys if k.startswith(prefix) and match(k)]

    def covers(self, host: str) -> bool:
        """True when the rule applies to ``host`` (every host when none are named)."""
        return not self.hosts or host in self.hosts


@dataclass(frozen=True)
class Ignore:
    """A resolved ignore rule."""

    selector: Selector
    reason: str


@dataclass(frozen=True)
class ValueMap:
    """A resolved map rule: per environment, a literal or a compiled pattern."""

    selector: Selector
    values: Mapping[str, str]
    patterns: Mapping[str, re.Pattern[str]]


@dataclass(frozen=True)
class Expect:
    """A resolved expect rule."""

    selector: Selector
    relation: str
    factor: float | None
    reason: str

    def describe(self) -> str:
        """The relation in words, for reports."""
        if self.relation == "ratio":
            return f"reference = {self.factor:g} x target"
        return {
            "differs": "must differ from the reference",
            "at_least": "at least the reference value",
            "at_most": "at most the reference value",
        }[self.relation]


@dataclass(frozen=True)
class Waiver:
    """A resolved waiver."""

    selector: Selector
    reason: str
    owner: str
    expires: date

    def record(self) -> WaiverRecord:
        """The waiver as reports show it."""
        sel = self.selector
        return WaiverRecord(
            sel.text, sel.collector, self.reason, self.owner, self.expires, sel.line
        )


@dataclass(frozen=True)
class Rules:
    """All rules of an inventory, compiled."""

    ignore: tuple[Ignore, ...] = ()
    maps: tuple[ValueMap, ...] = ()
    expect: tuple[Expect, ...] = ()
    waivers: tuple[Waiver, ...] = ()

    def for_section(self, role: str, collector: str) -> SectionRules | None:
        """The rules that can apply to ``collector``'s keys in ``role``; None when none can."""

        def here(sel: Selector) -> bool:
            return sel.collector in (None, collector) and (not sel.roles or role in sel.roles)

        local = SectionRules(
            tuple(r for r in self.maps if here(r.selector)),
            tuple(r for r in self.expect if here(r.selector)),
            tuple(r for r in self.ignore if here(r.selector)),
            tuple((n, w) for n, w in enumerate(self.waivers) if here(w.selector)),
        )
        return local if (local.maps or local.expect or local.ignore or local.waivers) else None

    def stale(self, used: set[int]) -> tuple[WaiverRecord, ...]:
        """The waivers whose numbers are not in ``used``: they matched nothing."""
        return tuple(w.record() for n, w in enumerate(self.waivers) if n not in used)


def selector(model: SelectorModel, line: int) -> Selector:
    """Compile a selector model."""
    if model.regex is not None:
        pattern, text = re.compile(model.regex), f"regex {model.regex}"
    else:
        assert model.key is not None  # the model validator guarantees one of them
        pattern, text = re.compile(fnmatch.translate(model.key)), model.key
    prefix = re.split(r"[*?\[]", model.key, maxsplit=1)[0] if model.key is not None else ""
    return Selector(
        line,
        model.collector,
        pattern,
        text,
        frozenset(model.roles),
        frozenset(model.hosts),
        prefix,
    )


# -- compiling the inventory's rules ------------------------------------------------


@dataclass(frozen=True)
class KnownNames:
    """What a rule may name, which the YAML models cannot know by themselves."""

    hosts: frozenset[str]
    roles: frozenset[str]
    environments: tuple[str, ...]
    collectors: tuple[str, ...]


def compile_rules(
    model: RulesModel, names: KnownNames, path: Path, line_of: Callable[[str, int], int]
) -> Rules:
    """Compile the ``rules:`` section; ``line_of(kind, i)`` is the line of rule ``i`` of
    ``kind`` in ``path``. An unknown collector, role, host or environment is an
    :class:`InventoryError` naming that line."""
    entries: tuple[tuple[str, Sequence[SelectorModel]], ...] = (
        ("ignore", model.ignore),
        ("map", model.map),
        ("expect", model.expect),
        ("waivers", model.waivers),
    )
    compiled: dict[str, list[Any]] = {kind: [] for kind, _ in entries}
    for kind, models in entries:
        for i, entry in enumerate(models):
            line = line_of(kind, i)
            where = f"{path}:{line}: rules.{kind}[{i}]"
            _check_names(entry, names, where)
            compiled[kind].append(_compiled(entry, selector(entry, line)))
    return Rules(
        ignore=tuple(compiled["ignore"]),
        maps=tuple(compiled["map"]),
        expect=tuple(compiled["expect"]),
        waivers=tuple(compiled["waivers"]),
    )


def _check_names(entry: SelectorModel, names: KnownNames, where: str) -> None:
    if entry.collector is not None and entry.collector not in names.collectors:
        raise InventoryError(
            f"{where}: unknown collector {entry.collector!r}; use one "
            f"of: {', '.join(sorted(names.collectors))}"
        )
    for role in entry.roles:
        if role not in names.roles:
            raise InventoryError(f"{where}: no host has role {role!r}; fix the name")
    for host in entry.hosts:
        if host not in names.hosts:
            raise InventoryError(f"{where}: no host named {host!r}; fix the name")
    if isinstance(entry, MapModel):
        for env in (*entry.values, *entry.patterns):
            if env not in names.environments:
                raise InventoryError(
                    f"{where}: {env!r} is not an environment; "
                    f"use one of: {', '.join(names.environments)}"
                )


def _compiled(entry: SelectorModel, sel: Selector) -> Ignore | ValueMap | Expect | Waiver:
    if isinstance(entry, MapModel):
        patterns = {e: re.compile(p) for e, p in entry.patterns.items()}
        return ValueMap(sel, dict(entry.values), patterns)
    if isinstance(entry, ExpectModel):
        return Expect(sel, entry.relation, entry.factor, entry.reason)
    if isinstance(entry, WaiverModel):
        return Waiver(sel, entry.reason, entry.owner, entry.expires)
    assert isinstance(entry, IgnoreModel)
    return Ignore(sel, entry.reason)


# -- applying rules ------------------------------------------------------------------


@dataclass(frozen=True)
class SectionRules:
    """The rules that can apply to one (role, collector): filtered once, not per key."""

    maps: tuple[ValueMap, ...]
    expect: tuple[Expect, ...]
    ignore: tuple[Ignore, ...]
    #: (number in the inventory, waiver): the number tells which waivers were used
    waivers: tuple[tuple[int, Waiver], ...]

    def forced_keys(self, facts: Mapping[str, Any]) -> set[str]:
        """Keys of ``facts`` a map or expect rule must see even when equal on every host:
        staging using production's database host, a per-environment secret that is the
        same."""
        selectors = [r.selector for r in self.maps] + [r.selector for r in self.expect]
        return {k for sel in selectors for k in sel.select(facts)}

    def for_key(self, key: str) -> KeyRules:
        """The rules of this section that select ``key``."""
        # Called for every differing key: plain comprehensions, no helper call per rule.
        return KeyRules(
            tuple(m for m in self.maps if m.selector.pattern.fullmatch(key)),
            tuple(e for e in self.expect if e.selector.pattern.fullmatch(key)),
            tuple(r for r in self.ignore if r.selector.pattern.fullmatch(key)),
            tuple((n, w) for n, w in self.waivers if w.selector.pattern.fullmatch(key)),
        )


class KeyRules(NamedTuple):
    """The rules that select one key: map and expect decide the comparison, ignore and
    waivers what a difference found is. (A named tuple: one is made per differing
    key, and it is cheaper to build than a frozen dataclass.)"""

    maps: tuple[ValueMap, ...]
    expects: tuple[Expect, ...]
    ignores: tuple[Ignore, ...]
    waivers: tuple[tuple[int, Waiver], ...]

    def compared(self, values: dict[str, Any], env_of: Mapping[str, str]) -> dict[str, Any]:
        """The values to compare: each host's with its environment's text mapped."""
        if not self.maps:
            return values
        return {
            h: v if v is ABSENT else map_value(v, env_of[h], self.maps) for h, v in values.items()
        }

    def settle(
        self,
        findings: list[Finding],
        compared: dict[str, Any],
        refs: Sequence[str],
        today: date,
    ) -> tuple[list[Finding], set[int]]:
        """``findings`` after ignore and waiver rules, with mapped values shown; and the
        numbers of the waivers that matched (expired ones too)."""
        if not (self.maps or self.ignores or self.waivers):
            return findings, set()
        out, used = [], set()
        for finding in findings:
            settled, waiver = self._settle_one(finding, compared, refs, today)
            out.append(settled)
            if waiver is not None:
                used.add(waiver)
        return out, used

    def _settle_one(
        self, finding: Finding, compared: dict[str, Any], refs: Sequence[str], today: date
    ) -> tuple[Finding, int | None]:
        """One finding after the rules; the number of the waiver that matched, if any.

        A rule applies when it covers every host that differs (every reference host,
        for a disagreement among them)."""
        hosts = [h for h in finding.values if h not in refs] or list(refs)
        if self.maps:
            mapped = {h: None if compared[h] is ABSENT else compared[h] for h in finding.values}
            finding = replace(finding, mapped_values=mapped)
        ignore = next((r for r in self.ignores if _covers_all(r.selector, hosts)), None)
        if ignore is not None:
            note = _join(finding.note, f"ignored: {ignore.reason}")
            return replace(finding, state=State.IGNORED, underlying=finding.state, note=note), None
        for n, waiver in self.waivers:
            if _covers_all(waiver.selector, hosts):
                return _waived(finding, waiver, today), n
        return finding, None


def _covers_all(sel: Selector, hosts: Iterable[str]) -> bool:
    return all(sel.covers(h) for h in hosts)


def _waived(finding: Finding, waiver: Waiver, today: date) -> Finding:
    """A finding under a waiver: waived until it expires, drift again after (noted)."""
    who = f"{waiver.reason}; owner {waiver.owner}"
    until = waiver.expires.isoformat()
    record = waiver.record()
    if today <= waiver.expires:
        return replace(
            finding,
            state=State.WAIVED,
            underlying=finding.state,
            note=_join(finding.note, f"waived until {until}: {who}"),
            waiver=record,
        )
    note = _join(finding.note, f"waiver expired on {until}: {who}")
    return replace(finding, note=note, waiver=record)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# -- applying rules to values -------------------------------------------------------


def map_value(value: Any, env: str, rules: tuple[ValueMap, ...]) -> Any:
    """``value`` with each environment-specific text replaced by a shared placeholder."""
    if isinstance(value, str):
        for i, rule in enumerate(rules):
            literal = rule.values.get(env)
            if literal:
                value = value.replace(literal, f"<map{i}>")
            pattern = rule.patterns.get(env)
            if pattern is not None:
                value = pattern.sub(_placeholder(i), value)
        return value
    if isinstance(value, dict):
        return {k: map_value(v, env, rules) for k, v in value.items()}
    if isinstance(value, list):
        return [map_value(v, env, rules) for v in value]
    return value


def _placeholder(index: int) -> Callable[[re.Match[str]], str]:
    """The text a pattern match becomes: rule number and the groups, which must agree."""

    def replace(match: re.Match[str]) -> str:
        return f"<map{index}:{'|'.join(g or '' for g in match.groups())}>"

    return replace


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def relation_holds(rule: Expect, reference: Any, target: Any) -> bool:
    """Whether ``target`` stands in the expected relation to ``reference``."""
    if rule.relation == "differs":
        return bool(reference != target)
    ref, tgt = _number(reference), _number(target)
    if ref is None or tgt is None:
        return False
    if rule.relation == "ratio":
        assert rule.factor is not None
        return abs(ref - rule.factor * tgt) <= 1e-9 * max(1.0, abs(ref))
    if rule.relation == "at_least":
        return tgt >= ref
    return tgt <= ref
