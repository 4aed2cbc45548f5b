"""The diff engine's states, on snapshots given as data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftcheck.collectors import BY_NAME, REGISTRY
from driftcheck.drift import compare
from driftcheck.findings import WHOLE, DriftReport, State
from driftcheck.inventory import parse_inventory
from driftcheck.model import HostSnapshot, HostStatus, SectionResult, SectionStatus
from tests.support.helpers import inventory, snapshot

INV = inventory(
    {
        "prod1": ("production", ["web"]),
        "prod2": ("production", ["web"]),
        "stg1": ("staging", ["web"]),
    }
)
SYSCTL = [BY_NAME["sysctl"]]


def run(facts: dict[str, dict[str, Any]], collectors: Any = SYSCTL) -> DriftReport:
    snaps = {
        h: snapshot(h, INV.host(h).environment, ["web"], {"sysctl": f}) for h, f in facts.items()
    }
    return compare(INV, snaps, collectors, "now")


def states(report: DriftReport) -> dict[str, str]:
    return {f.key: f.state.value for f in report.findings}


def test_identical_hosts_are_clean() -> None:
    same = {"a": "1", "b": "2"}
    report = run({"prod1": same, "prod2": same, "stg1": same})
    assert report.findings == () and report.exit_code == 0 and report.verdict == "clean"
    assert report.compared_keys == 2


def test_changed_missing_extra() -> None:
    ref = {"a": "1", "b": "2"}
    report = run({"prod1": ref, "prod2": ref, "stg1": {"a": "9", "c": "3"}})
    assert states(report) == {"a": "changed", "b": "missing", "c": "extra"}
    changed = next(f for f in report.findings if f.key == "a")
    assert changed.values == {"prod1": "1", "prod2": "1", "stg1": "9"}
    missing = next(f for f in report.findings if f.key == "b")
    assert missing.values["stg1"] is None
    assert report.exit_code == 1


def test_reference_hosts_that_disagree_are_inconsistent() -> None:
    report = run({"prod1": {"a": "1"}, "prod2": {"a": "2"}, "stg1": {"a": "1"}})
    assert states(report) == {"a": "inconsistent"}
    assert report.exit_code == 1


def test_key_present_on_one_reference_host_only_is_inconsistent() -> None:
    report = run({"prod1": {"a": "1"}, "prod2": {}, "stg1": {}})
    assert states(report) == {"a": "inconsistent"}


def test_volatile_keys_are_skipped_and_counted() -> None:
    report = run(
        {
            "prod1": {"kernel.random.uuid": "x", "fs.file-nr": "1"},
            "prod2": {"kernel.random.uuid": "y", "fs.file-nr": "2"},
            "stg1": {"kernel.random.uuid": "z", "fs.file-nr": "3"},
        }
    )
    assert report.findings == ()
    assert report.volatile_skipped["sysctl"] == 2


def test_unreachable_host_is_incomplete_never_same() -> None:
    same = {"a": "1"}
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"sysctl": same}),
        "prod2": snapshot("prod2", "production", ["web"], {"sysctl": same}),
        "stg1": snapshot(
            "stg1",
            "staging",
            ["web"],
            {"sysctl": SectionResult("sysctl", SectionStatus.MISSING, error="host not collected")},
            HostStatus.FAILED,
            "connection refused by 127.0.0.1:2222",
        ),
    }
    report = compare(INV, snaps, SYSCTL, "now")
    assert [(f.collector, f.key, f.state) for f in report.findings] == [
        (WHOLE, WHOLE, State.INCOMPLETE)
    ]
    assert report.findings[0].reasons == {"stg1": "connection refused by 127.0.0.1:2222"}
    assert report.exit_code == 4 and report.verdict == "incomplete"


def test_host_missing_from_the_run_is_incomplete() -> None:
    same = {"a": "1"}
    snaps = {h: snapshot(h, "production", ["web"], {"sysctl": same}) for h in ("prod1", "prod2")}
    report = compare(INV, snaps, SYSCTL, "now")
    assert report.findings[0].reasons == {"stg1": "not collected in this run"}
    assert report.exit_code == 4


def test_one_failed_section_is_incomplete_for_that_collector_only() -> None:
    ok = {"a": "1"}
    timed_out = SectionResult("sysctl", SectionStatus.TIMEOUT, error="section timed out")
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"sysctl": ok, "os": {"x": "1"}}),
        "prod2": snapshot("prod2", "production", ["web"], {"sysctl": ok, "os": {"x": "1"}}),
        "stg1": snapshot(
            "stg1", "staging", ["web"], {"sysctl": timed_out, "os": {"x": "2"}}, HostStatus.PARTIAL
        ),
    }
    report = compare(INV, snaps, [BY_NAME["os"], BY_NAME["sysctl"]], "now")
    got = {(f.collector, f.key, f.state.value) for f in report.findings}
    assert got == {("os", "x", "changed"), ("sysctl", WHOLE, "incomplete")}
    assert report.exit_code == 5 and report.verdict == "drift, incomplete"


def test_drift_still_found_when_one_reference_host_is_down() -> None:
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"sysctl": {"a": "1"}}),
        "prod2": snapshot("prod2", "production", ["web"], {}, HostStatus.FAILED, "timed out"),
        "stg1": snapshot("stg1", "staging", ["web"], {"sysctl": {"a": "2"}}),
    }
    report = compare(INV, snaps, SYSCTL, "now")
    assert {(f.key, f.state.value) for f in report.findings} == {
        (WHOLE, "incomplete"),
        ("a", "changed"),
    }


def test_unreadable_key_is_incomplete() -> None:
    sec = SectionResult("files", SectionStatus.OK, {}, {"/etc/x": "permission denied"})
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"files": {"/etc/x": {"mode": "0600"}}}),
        "prod2": snapshot("prod2", "production", ["web"], {"files": {"/etc/x": {"mode": "0600"}}}),
        "stg1": snapshot("stg1", "staging", ["web"], {"files": sec}),
    }
    report = compare(INV, snaps, [BY_NAME["files"]], "now")
    assert [(f.key, f.state.value) for f in report.findings] == [("/etc/x", "incomplete")]
    assert report.findings[0].reasons == {"stg1": "permission denied"}


def test_not_applicable_on_both_sides_is_not_drift() -> None:
    na = SectionResult("packages", SectionStatus.NOT_APPLICABLE)
    snaps = {
        h: snapshot(h, INV.host(h).environment, ["web"], {"packages": na})
        for h in ("prod1", "prod2", "stg1")
    }
    assert compare(INV, snaps, [BY_NAME["packages"]], "now").exit_code == 0


def test_nested_values_say_what_differs_inside() -> None:
    ref = {"/etc/app.conf": {"mode": "0644", "owner": "root", "content": "a=1\nb=2\n"}}
    tgt = {"/etc/app.conf": {"mode": "0600", "owner": "root", "content": "a=1\nb=3\n"}}
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"files": ref}),
        "prod2": snapshot("prod2", "production", ["web"], {"files": ref}),
        "stg1": snapshot("stg1", "staging", ["web"], {"files": tgt}),
    }
    report = compare(INV, snaps, [BY_NAME["files"]], "now")
    (finding,) = report.findings
    assert finding.state is State.CHANGED
    paths = {c.path: c for c in finding.detail}
    assert set(paths) == {"mode", "content"}
    assert (paths["mode"].reference, paths["mode"].target) == ("0644", "0600")
    assert "-b=2" in paths["content"].diff and "+b=3" in paths["content"].diff


def test_roles_are_compared_separately() -> None:
    inv = inventory(
        {
            "p-web": ("production", ["web"]),
            "p-db": ("production", ["db"]),
            "s-web": ("staging", ["web"]),
            "s-db": ("staging", ["db"]),
        }
    )
    snaps = {
        "p-web": snapshot("p-web", "production", ["web"], {"sysctl": {"a": "web"}}),
        "p-db": snapshot("p-db", "production", ["db"], {"sysctl": {"a": "db"}}),
        "s-web": snapshot("s-web", "staging", ["web"], {"sysctl": {"a": "web"}}),
        "s-db": snapshot("s-db", "staging", ["db"], {"sysctl": {"a": "web"}}),
    }
    report = compare(inv, snaps, SYSCTL, "now")
    assert [(f.role, f.key, f.state.value) for f in report.findings] == [("db", "a", "changed")]


def test_every_registered_collector_can_be_compared() -> None:
    report = compare(INV, {}, REGISTRY, "now")
    assert report.exit_code == 4


def test_inventory_can_ask_for_a_volatile_key() -> None:
    text = (
        "defaults: {transport: local}\n"
        "environments:\n"
        "  production: {hosts: {prod1: {roles: [web]}}}\n"
        "  staging: {hosts: {stg1: {roles: [web]}}}\n"
        "compare:\n"
        "  reference: production\n"
        "  targets: [staging]\n"
        "  include_volatile: {sysctl: [kernel.hostname]}\n"
    )
    inv = parse_inventory(text, Path("inv.yaml"))
    snaps = {
        "prod1": snapshot(
            "prod1",
            "production",
            ["web"],
            {"sysctl": {"kernel.hostname": "p", "kernel.random.uuid": "1"}},
        ),
        "stg1": snapshot(
            "stg1",
            "staging",
            ["web"],
            {"sysctl": {"kernel.hostname": "s", "kernel.random.uuid": "2"}},
        ),
    }
    report = compare(inv, snaps, SYSCTL, "now")
    assert [(f.key, f.state.value) for f in report.findings] == [("kernel.hostname", "changed")]
    assert report.volatile_skipped["sysctl"] == 1


def test_error_on_a_parent_key_makes_its_children_incomplete() -> None:
    venv = SectionResult("python", SectionStatus.OK, {}, {"/opt/venv": "permission denied"})
    ok = {"/opt/venv": "3.11", "/opt/venv:six": "1.16.0", "system:pip": "23.0"}
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"python": ok}),
        "prod2": snapshot("prod2", "production", ["web"], {"python": ok}),
        "stg1": snapshot("stg1", "staging", ["web"], {"python": venv}),
    }
    report = compare(INV, snaps, [BY_NAME["python"]], "now")
    got = {(f.key, f.state.value) for f in report.findings}
    assert got == {
        ("/opt/venv", "incomplete"),
        ("/opt/venv:six", "incomplete"),  # unknown, not "missing"
        ("system:pip", "missing"),
    }


def test_inconsistent_shows_every_hosts_value() -> None:
    report = run({"prod1": {"a": "1"}, "prod2": {"a": "2"}, "stg1": {"a": "1"}})
    (finding,) = report.findings
    assert finding.values == {"prod1": "1", "prod2": "2", "stg1": "1"}


def _services(h: str, section: SectionResult | dict[str, str]) -> HostSnapshot:
    return snapshot(h, INV.host(h).environment, ["web"], {"services": section})


NO_SYSTEMCTL = SectionResult(
    "services", SectionStatus.NOT_APPLICABLE, error="not applicable: none of systemctl found"
)
UNITS = {"ssh.service": "enabled", "cron.service": "enabled"}


def test_not_applicable_on_the_reference_is_not_comparable_never_extra() -> None:
    snaps = {
        "prod1": _services("prod1", NO_SYSTEMCTL),
        "prod2": _services("prod2", NO_SYSTEMCTL),
        "stg1": _services("stg1", UNITS),
    }
    report = compare(INV, snaps, [BY_NAME["services"]], "now")
    assert [(f.key, f.state) for f in report.findings] == [(WHOLE, State.INCOMPLETE)]
    why = "not applicable: none of systemctl found, so this section cannot be compared"
    assert report.findings[0].reasons == {"prod1": why, "prod2": why}
    assert report.exit_code == 4  # unknown, not drift


def test_not_applicable_on_a_target_is_one_missing_finding_not_one_per_key() -> None:
    snaps = {
        "prod1": _services("prod1", UNITS),
        "prod2": _services("prod2", UNITS),
        "stg1": _services("stg1", NO_SYSTEMCTL),
    }
    (finding,) = compare(INV, snaps, [BY_NAME["services"]], "now").findings
    assert (finding.key, finding.state) == (WHOLE, State.MISSING)
    assert finding.values == {
        "prod1": "applicable",
        "prod2": "applicable",
        "stg1": "not applicable",
    }
    assert finding.note == "stg1: not applicable: none of systemctl found"
