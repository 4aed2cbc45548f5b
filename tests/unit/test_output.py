"""Report files are replaced whole; devices and symlinks are respected."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from driftcheck.errors import DriftcheckError
from driftcheck.output import write_atomically


def test_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")
    write_atomically(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_device_is_written_not_replaced() -> None:
    write_atomically(Path("/dev/null"), "discarded")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_symlink_keeps_pointing_at_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.html"
    real.write_text("old")
    link = tmp_path / "latest.html"
    link.symlink_to(real)
    write_atomically(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_unwritable_directory_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(DriftcheckError, match="cannot write the report"):
        write_atomically(tmp_path / "no" / "such" / "dir" / "r.json", "x")
