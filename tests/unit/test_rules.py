"""Rules: ignore, map, expect and waivers, as the diff engine applies them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.errors import InventoryError
from driftcheck.findings import DriftReport
from driftcheck.inventory import Inventory, parse_inventory
from driftcheck.pipeline import build_report
from driftcheck.reports import Format, render
from tests.support.helpers import snapshot

BASE = """\
defaults: {transport: local}
environments:
  production: {hosts: {prod1: {roles: [web]}, prod2: {roles: [web]}}}
  staging: {hosts: {stg1: {roles: [web]}}}
compare: {reference: production, targets: [staging]}
"""
TODAY = date(2026, 11, 27)


def inventory(rules: str) -> Inventory:
    return parse_inventory(BASE + "rules:\n" + rules, Path("inv.yaml"))


def run(
    rules: str, prod: dict[str, Any], stg: dict[str, Any], collector: str = "files"
) -> DriftReport:
    inv = inventory(rules)
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {collector: prod}),
        "prod2": snapshot("prod2", "production", ["web"], {collector: prod}),
        "stg1": snapshot("stg1", "staging", ["web"], {collector: stg}),
    }
    return build_report(inv, snaps, [BY_NAME[collector]], "now", today=TODAY)


def states(report: DriftReport) -> dict[str, str]:
    return {f.key: f.state.value for f in report.findings}


def test_ignore_is_counted_and_shown_not_drift() -> None:
    report = run(
        "  ignore:\n"
        "    - {collector: files, key: '/etc/app.conf#log.*', reason: staging logs more}\n",
        {"/etc/app.conf#log.level": "warn", "/etc/app.conf#pool": "20"},
        {"/etc/app.conf#log.level": "debug", "/etc/app.conf#pool": "5"},
    )
    assert states(report) == {"/etc/app.conf#log.level": "ignored", "/etc/app.conf#pool": "changed"}
    ignored = next(f for f in report.findings if f.key.endswith("log.level"))
    assert ignored.underlying and ignored.underlying.value == "changed"
    assert "staging logs more" in ignored.note
    assert report.counts["ignored"] == 1 and report.exit_code == 1


def test_map_literal_values_make_environment_names_equal() -> None:
    rules = (
        "  map:\n    - key: '*#db.host'\n"
        "      values: {staging: db.stg.example.com, production: db.example.com}\n"
    )
    same = run(
        rules, {"/a.ini#db.host": "db.example.com"}, {"/a.ini#db.host": "db.stg.example.com"}
    )
    assert same.findings == ()
    differs = run(
        rules,
        {"/a.ini#db.host": "db.example.com:5432"},
        {"/a.ini#db.host": "db.stg.example.com:6432"},
    )
    (finding,) = differs.findings
    assert finding.values == {
        "prod1": "db.example.com:5432",
        "prod2": "db.example.com:5432",
        "stg1": "db.stg.example.com:6432",
    }
    assert finding.mapped_values is not None and finding.mapped_values["stg1"].endswith(":6432")


def test_map_patterns_compare_the_groups() -> None:
    rules = (
        "  map:\n    - key: '*'\n      patterns:\n"
        "        staging: '([a-z]+)\\.stg\\.example\\.com'\n"
        "        production: '([a-z]+)\\.example\\.com'\n"
    )
    assert (
        run(
            rules,
            {"/a#url": "https://api.example.com/v1"},
            {"/a#url": "https://api.stg.example.com/v1"},
        ).findings
        == ()
    )
    assert states(
        run(
            rules,
            {"/a#url": "https://api.example.com/v1"},
            {"/a#url": "https://web.stg.example.com/v1"},
        )
    ) == {"/a#url": "changed"}


@pytest.mark.parametrize(
    ("rule", "prod", "stg", "drift"),
    [
        (
            "{key: '*#api_key', relation: differs, reason: one key per environment}",
            "k1",
            "k2",
            False,
        ),
        (
            "{key: '*#api_key', relation: differs, reason: one key per environment}",
            "k1",
            "k1",
            True,
        ),
        ("{key: '*#workers', relation: ratio, factor: 2, reason: half size}", "8", "4", False),
        ("{key: '*#workers', relation: ratio, factor: 2, reason: half size}", "8", "8", True),
        ("{key: '*#workers', relation: at_most, reason: smaller staging}", "8", "2", False),
        ("{key: '*#workers', relation: at_most, reason: smaller staging}", "8", "9", True),
        ("{key: '*#workers', relation: at_least, reason: no less}", "8", "9", False),
        ("{key: '*#workers', relation: at_least, reason: no less}", "8", "abc", True),
    ],
)
def test_expect_relations(rule: str, prod: str, stg: str, drift: bool) -> None:
    key = "/a.ini#api_key" if "api_key" in rule else "/a.ini#workers"
    report = run(f"  expect:\n    - {rule}\n", {key: prod}, {key: stg})
    assert report.has_drift is drift
    if drift:
        assert report.findings[0].note.startswith("expected ")


def test_waiver_active_expired_and_stale() -> None:
    rules = (
        "  waivers:\n"
        "    - {collector: files, key: '/a#x', reason: rollout in progress, owner: alice, "
        "expires: 2026-11-27}\n"
        "    - {collector: files, key: '/a#y', reason: old ticket, owner: bob, "
        "expires: 2026-11-26}\n"
        "    - {collector: files, key: '/a#gone', reason: fixed long ago, owner: carol, "
        "expires: 2027-01-01}\n"
    )
    report = run(rules, {"/a#x": "1", "/a#y": "1"}, {"/a#x": "2", "/a#y": "2"})
    assert states(report) == {"/a#x": "waived", "/a#y": "changed"}
    by_key = {f.key: f for f in report.findings}
    assert "waived until 2026-11-27" in by_key["/a#x"].note  # still active on its last day
    assert "waiver expired on 2026-11-26" in by_key["/a#y"].note
    assert [w.owner for w in report.stale_waivers] == ["carol"]
    assert report.exit_code == 1  # the expired one is drift again


def test_only_waived_drift_is_clean() -> None:
    rules = "  waivers:\n    - {key: '/a#x', reason: accepted, owner: alice, expires: 2030-01-01}\n"
    report = run(rules, {"/a#x": "1"}, {"/a#x": "2"})
    assert report.exit_code == 0 and report.counts["waived"] == 1


def test_rules_limited_to_hosts_and_roles() -> None:
    rules = "  ignore:\n    - {key: '/a#x', hosts: [prod1], reason: only prod1 is special}\n"
    assert states(run(rules, {"/a#x": "1"}, {"/a#x": "2"})) == {"/a#x": "changed"}
    rules = "  ignore:\n    - {key: '/a#x', hosts: [stg1], reason: stg1 is special}\n"
    assert states(run(rules, {"/a#x": "1"}, {"/a#x": "2"})) == {"/a#x": "ignored"}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            "  ignore:\n    - {key: 'x', reason: because}\n    - {key: y}\n",
            "inv.yaml:9: rules.ignore[1]: required key 'reason' is missing",
        ),
        ("  ignore:\n    - {regex: '([', reason: because}\n", "not a valid regular expression"),
        (
            "  ignore:\n    - {collector: sysctll, key: x, reason: because}\n",
            "inv.yaml:8: rules.ignore[0]: unknown collector 'sysctll'",
        ),
        (
            "  waivers:\n    - {key: x, reason: because, expires: 2026-01-01}\n",
            "rules.waivers[0]: required key 'owner' is missing",
        ),
        (
            "  waivers:\n    - {key: x, reason: because, owner: a, expires: 31/12/2026}\n",
            "inv.yaml:8: rules.waivers[0].expires",
        ),
        ("  map:\n    - {key: x, values: {stage: a}}\n", "'stage' is not an environment"),
        ("  expect:\n    - {key: x, relation: ratio, reason: because}\n", "factor goes with"),
        ("  ignore:\n    - {key: x, hosts: [stg9], reason: because}\n", "no host named 'stg9'"),
        ("  ignore:\n    - {key: x, regex: y, reason: because}\n", "exactly one of key"),
    ],
)
def test_rule_mistakes_are_one_line_with_the_line(rules: str, message: str) -> None:
    with pytest.raises(InventoryError) as info:
        inventory(rules)
    text = str(info.value)
    assert message in text and "\n" not in text and text.startswith("inv.yaml:"), text


def test_reports_show_rules_outcomes() -> None:
    rules = (
        "  ignore:\n    - {key: '/a#log', reason: noisy by design}\n"
        "  waivers:\n"
        "    - {key: '/a#x', reason: rollout, owner: alice, expires: 2030-01-01}\n"
        "    - {key: '/a#gone', reason: old, owner: carol, expires: 2030-01-01}\n"
    )
    report = run(rules, {"/a#x": "1", "/a#log": "warn"}, {"/a#x": "2", "/a#log": "debug"})
    data = json.loads(render(report, Format.JSON))
    assert data["summary"]["by_state"]["waived"] == 1
    assert data["summary"]["by_state"]["ignored"] == 1
    assert data["summary"]["stale_waivers"] == 1 and data["summary"]["exit_code"] == 0
    waived = next(f for f in data["findings"] if f["state"] == "waived")
    assert waived["underlying_state"] == "changed" and "owner alice" in waived["note"]
    assert data["stale_waivers"][0]["owner"] == "carol"
    page = render(report, Format.HTML)
    assert "Stale waivers (1)" in page and "Waived (1)" in page and "Ignored (1)" in page
    assert "noisy by design" in page
