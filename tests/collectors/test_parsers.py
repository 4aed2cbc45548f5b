"""Parsers on real captured output: one driver over tests/fixtures/<collector>/<case>/.

Each case holds ``output.txt`` (raw section stdout, bytes as captured),
``expected.json`` (``{"facts": ..., "errors": ...}``) and ``SOURCE.md`` (where the
output came from and how the expectation was obtained).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from tests.support.paths import FIXTURES

CASES = sorted(p for p in FIXTURES.glob("*/*") if p.is_dir())


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_parser_on_captured_output(case: Path) -> None:
    collector = BY_NAME[case.parent.name]
    raw = (case / "output.txt").read_bytes().decode("utf-8", "backslashreplace")
    expected = json.loads((case / "expected.json").read_text())
    assert (case / "SOURCE.md").exists(), "say where the output came from"
    parsed = collector.parse(raw)
    assert parsed.facts == expected["facts"]
    assert parsed.errors == expected.get("errors", {})


def test_there_are_fixtures() -> None:
    assert CASES
