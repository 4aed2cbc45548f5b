"""Rules a team writes in the inventory: what to ignore, map, expect or waive.

A raw list of differences cries wolf: staging legitimately has other hostnames,
smaller pools and its own secrets. Rules say which differences are intended,
with a reason, so that what remains is drift a team can act on. Every rule is a
*selector* (collector, key glob or regex, optional roles and hosts) plus what to
do with the keys it selects. Ignored and waived items are still counted and
shown, never silently dropped.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


@dataclass(frozen=True)
class Rules:
    """All rules of an inventory, compiled."""

    ignore: tuple[Ignore, ...] = ()
    maps: tuple[ValueMap, ...] = ()
    expect: tuple[Expect, ...] = ()
    waivers: tuple[Waiver, ...] = ()


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
