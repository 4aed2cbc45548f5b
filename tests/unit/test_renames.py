"""Renamed packages: a missing and an extra package that are one rename become one finding.

The relations are real: the package_relations fixtures captured in debootstrapped
bookworm and trixie trees (libssl3t64 provides and replaces libssl3 in trixie).
"""

from __future__ import annotations

import json

from driftcheck.collectors import BY_NAME
from driftcheck.findings import State
from driftcheck.model import SectionResult, SectionStatus
from driftcheck.pipeline import build_report
from tests.support.helpers import inventory, snapshot
from tests.support.paths import FIXTURES

TRIXIE = json.loads((FIXTURES / "package_relations/debian-trixie/expected.json").read_text())
BOOKWORM = json.loads((FIXTURES / "package_relations/debian-bookworm/expected.json").read_text())
INV = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
COLLECTORS = [BY_NAME["packages"], BY_NAME["package_relations"]]


def test_a_t64_rename_is_one_renamed_finding() -> None:
    prod = {"libssl3": "3.0.20-1~deb12u2", "bash": "5.2.15-2+b8"}
    stg = {"libssl3t64": "3.5.9-1~deb13u1", "bash": "5.2.15-2+b8"}
    snaps = {
        "prod1": snapshot(
            "prod1",
            "production",
            ["web"],
            {"packages": prod, "package_relations": BOOKWORM["facts"]},
        ),
        "stg1": snapshot(
            "stg1", "staging", ["web"], {"packages": stg, "package_relations": TRIXIE["facts"]}
        ),
    }
    (finding,) = build_report(INV, snaps, COLLECTORS, "now").findings
    assert (finding.key, finding.state) == ("libssl3", State.RENAMED)
    assert finding.values == {"prod1": "3.0.20-1~deb12u2", "stg1": "libssl3t64 3.5.9-1~deb13u1"}
    assert finding.note == "renamed: libssl3t64 on stg1 provides or replaces libssl3"


def test_the_rename_is_found_from_the_reference_side_too() -> None:
    # Production already on trixie, staging still on bookworm: the reference's new
    # name vouches for the rename.
    snaps = {
        "prod1": snapshot(
            "prod1",
            "production",
            ["web"],
            {"packages": {"libelf1t64": "0.192-4"}, "package_relations": TRIXIE["facts"]},
        ),
        "stg1": snapshot(
            "stg1",
            "staging",
            ["web"],
            {"packages": {"libelf1": "0.188-2.1"}, "package_relations": BOOKWORM["facts"]},
        ),
    }
    (finding,) = build_report(INV, snaps, COLLECTORS, "now").findings
    assert (finding.key, finding.state) == ("libelf1t64", State.RENAMED)
    assert finding.values == {"prod1": "0.192-4", "stg1": "libelf1 0.188-2.1"}


def test_without_evidence_a_missing_and_an_extra_package_stay_two_findings() -> None:
    unread = SectionResult("package_relations", SectionStatus.ERROR, error="exit status 2")
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"packages": {"libssl3": "3.0"}}),
        "stg1": snapshot(
            "stg1",
            "staging",
            ["web"],
            {"packages": {"libssl3t64": "3.5"}, "package_relations": unread},
        ),
    }
    states = [(f.key, f.state) for f in build_report(INV, snaps, COLLECTORS, "now").findings]
    assert states == [("libssl3", State.MISSING), ("libssl3t64", State.EXTRA)]


def test_unrelated_packages_are_not_paired() -> None:
    snaps = {
        "prod1": snapshot("prod1", "production", ["web"], {"packages": {"nginx": "1.22"}}),
        "stg1": snapshot(
            "stg1",
            "staging",
            ["web"],
            {"packages": {"libssl3t64": "3.5"}, "package_relations": TRIXIE["facts"]},
        ),
    }
    states = [(f.key, f.state) for f in build_report(INV, snaps, COLLECTORS, "now").findings]
    assert states == [("libssl3t64", State.EXTRA), ("nginx", State.MISSING)]
