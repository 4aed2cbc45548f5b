"""Golden files: the JSON, Markdown and JUnit renderings of one fixed report.

``tests.support.golden_sample.hostile()`` builds a report from data (no SSH, fixed
timestamps and "today") with every state, a stale waiver, an unreachable host and
collected values full of ``<script>``, ``|``, backticks and newlines. Each format
is rendered and compared byte for byte with ``tests/golden/report.{json,md,xml}``.

After an intended change of a renderer, rewrite the files and review the diff::

    DRIFTCHECK_UPDATE_GOLDEN=1 python -m pytest tests/reports/test_golden.py
    git diff tests/golden/
"""

from __future__ import annotations

import os

import pytest

from driftcheck.reports import Format, render
from tests.support.golden_sample import hostile
from tests.support.paths import GOLDEN


@pytest.mark.parametrize(
    ("fmt", "name"),
    [(Format.JSON, "report.json"), (Format.MARKDOWN, "report.md"), (Format.JUNIT, "report.xml")],
)
def test_matches_golden_file(fmt: Format, name: str) -> None:
    text = render(hostile(), fmt)
    path = GOLDEN / name
    if os.environ.get("DRIFTCHECK_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(text.encode())
    assert path.exists(), f"{path} missing: run with DRIFTCHECK_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_bytes().decode(), (
        f"{fmt} rendering differs from {path}; if intended, rerun with "
        "DRIFTCHECK_UPDATE_GOLDEN=1 and review the diff"
    )


def test_sample_has_every_state() -> None:
    counts = hostile().counts
    assert all(counts.values()), counts
    assert [w.owner for w in hostile().stale_waivers] == ["bob"]
