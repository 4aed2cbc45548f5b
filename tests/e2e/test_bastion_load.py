"""Many hosts behind one bastion, collected 16 at once over its one shared connection:
every host complete, one bastion login per run (real sshd on every hop)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from driftcheck.lab import Lab, LabHostSpec
from tests.support.helpers import run_driftcheck

pytestmark = pytest.mark.lab

BEHIND = 20


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    specs = [LabHostSpec("bast", "infra", bastion=True), LabHostSpec("prod-web1", "production")]
    specs += [LabHostSpec(f"stg-{i:02d}", "staging", behind="bast") for i in range(BEHIND)]
    with Lab(tmp_path_factory.mktemp("lab")) as running:
        running.up(specs)
        yield running


def test_twenty_hosts_share_one_bastion_connection(lab: Lab, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(yaml.safe_dump(lab.inventory({"files": ["/etc/os-release"]})))
    for _ in range(2):
        before = lab.log_text("bast").count("Accepted publickey")
        run = run_driftcheck(tmp_path, "collect", "-i", str(inv), "-j", "16")
        assert run.returncode == 0, run.stderr
        assert f"collected {BEHIND + 1}/{BEHIND + 1} hosts completely" in run.stderr
        assert lab.log_text("bast").count("Accepted publickey") == before + 1
        # OpenSSH drops the whole connection when a message follows a channel's close.
        assert "nonexistent channel" not in lab.log_text("bast")
