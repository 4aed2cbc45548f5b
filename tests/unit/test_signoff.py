"""The sign-off's pure parts: policy, expiry, waivers, void subjects, the policy's
validation in the inventory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from driftcheck.errors import InventoryError
from driftcheck.inventory import parse_inventory
from driftcheck.signoff import RULES_SUBJECT, Approval, policy_gaps, void_hosts

NOW = datetime(2026, 11, 10, 12, tzinfo=UTC)
POLICY = {
    "groups": {
        "ops": {"members": ["alice", "bob"], "required": 2},
        "qa": {"members": ["dave"], "required": 1},
    },
    "allow_waivers": False,
    "valid_days": 7,
}


def approval(
    who: str, at: str = "2026-11-09T10:00:00+00:00", override: str | None = None
) -> Approval:
    return Approval(who, "SHA256:x", at, "", override)


def predicate(result: str = "passed", policy: Any = POLICY) -> dict[str, Any]:
    return {"result": result, "policy": policy}


def test_every_group_needs_its_count() -> None:
    gaps = policy_gaps(predicate(), [approval("alice"), approval("dave")], NOW)
    assert gaps == ["group ops: 1 of 2 required approvals (alice)"]
    assert policy_gaps(predicate(), [approval(w) for w in ("alice", "bob", "dave")], NOW) == []


def test_an_old_approval_expires_and_an_outsider_counts_for_nothing() -> None:
    old = approval("bob", at="2026-10-01T10:00:00+00:00")
    gaps = policy_gaps(
        predicate(), [approval("alice"), old, approval("dave"), approval("eve")], NOW
    )
    assert gaps == [
        "approval by bob at 2026-10-01T10:00:00+00:00 expired (valid 7 days)",
        "group ops: 1 of 2 required approvals (alice)",
    ]


def test_waivers_and_failed_statements() -> None:
    everyone = [approval(w) for w in ("alice", "bob", "dave")]
    assert policy_gaps(predicate("passed-with-waivers"), everyone, NOW) == [
        "the policy does not allow approving a passed-with-waivers statement"
    ]
    failed = policy_gaps(predicate("failed"), everyone, NOW)
    assert failed[0] == "approval by alice of a failed statement has no override"
    overridden = [approval(w, override="hotfix") for w in ("alice", "bob", "dave")]
    assert policy_gaps(predicate("failed"), overridden, NOW) == []
    assert policy_gaps(predicate(policy=None), everyone, NOW) == [
        "the statement carries no sign-off policy (add signoff: to the inventory)"
    ]


def test_void_and_unchecked_subjects() -> None:
    stmt = {
        "subject": [
            {"name": "host/a", "digest": {"sha256": "1"}},
            {"name": "host/b", "digest": {"sha256": "2"}},
            {"name": "host/c", "digest": {"sha256": "3"}},
            {"name": "host/d", "digest": {"sha256": "4"}},
            {"name": RULES_SUBJECT, "digest": {"sha256": "r"}},
        ]
    }
    void, unchecked = void_hosts(stmt, {"a": "1", "b": "9", "c": None}, "r2")
    assert void == ["b: changed since sign-off", "the inventory's rules changed since sign-off"]
    assert unchecked == [
        "c: not collected completely in the latest run",
        "d: not in the latest run",
    ]


def test_the_policy_is_checked_when_the_inventory_loads(tmp_path: Path) -> None:
    text = """\
defaults: {transport: local}
environments:
  production: {hosts: {p: {roles: [web]}}}
  staging: {hosts: {s: {roles: [web]}}}
compare: {reference: production, targets: [staging]}
signoff:
  groups:
    ops: {members: [alice], required: 1}
    dev: {members: [carol], required: 2}
"""
    with pytest.raises(InventoryError, match=r"inv.yaml:9: signoff group 'dev' requires 2"):
        parse_inventory(text, tmp_path / "inv.yaml")
    with pytest.raises(InventoryError, match=r"inv.yaml:8"):
        parse_inventory(text.replace("required: 1", "requird: 1"), tmp_path / "inv.yaml")
    policy = parse_inventory(
        text.replace("required: 2", "required: 1"), tmp_path / "inv.yaml"
    ).signoff
    assert policy is not None and [g.name for g in policy.groups] == ["ops", "dev"]
    assert policy.valid_days == 7 and policy.allow_waivers
