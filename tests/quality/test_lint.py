"""The code base stays ruff- and mypy-clean (run as part of the test suite so CI enforces it)."""

from __future__ import annotations

import shutil
import subprocess

from tests.support.paths import REPO

ROOT = REPO


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff")
    assert ruff, "ruff is a test dependency: pip install -e '.[test]'"
    proc = subprocess.run(
        [ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_clean() -> None:
    proc = subprocess.run(
        [str(ROOT / ".ci" / "typecheck")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
