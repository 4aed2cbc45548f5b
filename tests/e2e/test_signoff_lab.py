"""Release sign-off end to end: real lab hosts, real keys made with ssh-keygen, the
real ssh-keygen checking the signatures by hand, the in-toto project's bindings
checking the statement.

prod-web1 and stg-web1 start identical: a passed statement for release 2.5.0;
alice (ops) approves, carol (dev) approves; then a key allowed_signers does not
know, a byte changed in the predicate, and a sysctl changed on stg-web1 after
sign-off.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement

from driftcheck.lab import Lab, LabHostSpec
from driftcheck.sshsig import NAMESPACE
from tests.support.helpers import run_driftcheck

pytestmark = pytest.mark.lab

POLICY = {
    "groups": {
        "ops": {"members": ["alice@example.com"], "required": 1},
        "dev": {"members": ["carol@example.com"], "required": 1},
    },
    "allow_waivers": True,
    "valid_days": 7,
}


@dataclass
class Setup:
    tmp: Path
    lab: Lab
    inventory: Path
    keys: dict[str, Path]
    allowed: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_driftcheck(self.tmp, *args)

    def with_inventory(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(*args, "-i", str(self.inventory))


def keypair(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"{name}@example.com",
            "-f",
            str(key),
        ],
        check=True,
    )
    return key


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("signoff")
    keys = {n: keypair(tmp, n) for n in ("alice", "carol", "mallory")}
    allowed = tmp / "allowed_signers"
    allowed.write_text(
        "".join(
            f'{n}@example.com namespaces="{NAMESPACE}" {keys[n].with_suffix(".pub").read_text()}'
            for n in ("alice", "carol")
        )
    )
    with Lab(tmp / "lab") as lab:
        lab.up([LabHostSpec("prod-web1", "production"), LabHostSpec("stg-web1", "staging")])
        inv = lab.inventory()
        inv["signoff"] = POLICY
        (tmp / "inv.yaml").write_text(yaml.safe_dump(inv, sort_keys=False))
        s = Setup(tmp, lab, tmp / "inv.yaml", keys, allowed)
        check = s.with_inventory("check", "-q")
        assert check.returncode == 0, check.stderr + check.stdout
        yield s


def attest(setup: Setup, name: str) -> Path:
    path = setup.tmp / name
    proc = setup.with_inventory("attest", "--release", "2.5.0", "-o", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "release 2.5.0: passed" in proc.stderr
    return path


def approve(setup: Setup, bundle: Path, who: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return setup.run("approve", str(bundle), "--key", str(setup.keys[who]), *extra)


def verify(setup: Setup, bundle: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return setup.run("verify", str(bundle), "--allowed-signers", str(setup.allowed), *extra)


def test_the_statement_is_an_in_toto_statement(setup: Setup) -> None:
    stmt: dict[str, Any] = json.loads(attest(setup, "s.json").read_text())["statement"]
    pb = json_format.ParseDict(stmt, statement_pb2.Statement())
    Statement.copy_from_pb(pb).validate()  # raises on anything the spec forbids
    assert [s["name"] for s in stmt["subject"]] == [
        "host/prod-web1",
        "host/stg-web1",
        "driftcheck/rules",
    ]
    assert stmt["predicate"]["result"] == "passed" and stmt["predicate"]["release"] == "2.5.0"


def test_two_groups_required_one_signed_then_both(setup: Setup) -> None:
    bundle = attest(setup, "two.json")
    assert approve(setup, bundle, "alice", "--comment", "ops ok").returncode == 0
    again = approve(setup, bundle, "alice")
    assert again.returncode == 2 and "alice@example.com has approved it already" in again.stderr
    one = verify(setup, bundle)
    assert one.returncode == 4, one.stdout + one.stderr
    assert "policy: group dev: 0 of 1 required approvals (nobody)" in one.stdout
    assert approve(setup, bundle, "carol").returncode == 0
    both = verify(setup, bundle, "-i", str(setup.inventory))
    assert both.returncode == 0, both.stdout + both.stderr
    assert both.stdout.count("approved by ") == 2 and "sign-off valid" in both.stderr
    # The real ssh-keygen agrees, checked by hand as the README shows.
    data = json.loads(bundle.read_text())
    for approval in data["approvals"]:
        signed, sig = setup.tmp / "approval.json", setup.tmp / "approval.sig"
        signed.write_text(approval["signed"])
        sig.write_text(approval["signature"])
        who = json.loads(approval["signed"])["principal"]
        by_hand = subprocess.run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(setup.allowed),
                "-I",
                who,
                "-n",
                NAMESPACE,
                "-s",
                str(sig),
            ],
            stdin=signed.open("rb"),
            capture_output=True,
            text=True,
            check=False,
        )
        assert by_hand.returncode == 0 and "Good" in by_hand.stdout, by_hand.stderr
    report = setup.run("signoff-report", str(bundle), "--allowed-signers", str(setup.allowed))
    assert "sign-off complete under the policy" in report.stdout
    assert "alice@example.com" in report.stdout and "` ops ok `" in report.stdout
    page = setup.run("signoff-report", str(bundle), "-f", "html")
    assert page.returncode == 0 and "<td>alice@example.com</td>" in page.stdout
    assert "Signatures not verified here" in page.stdout  # no --allowed-signers given


def test_a_key_not_in_allowed_signers_is_rejected(setup: Setup) -> None:
    bundle = attest(setup, "mallory.json")
    assert approve(setup, bundle, "alice").returncode == 0
    assert approve(setup, bundle, "mallory", "--as", "carol@example.com").returncode == 0
    proc = verify(setup, bundle)
    assert proc.returncode == 1 | 4, proc.stdout  # bad signature, and dev still unsigned
    assert "bad signature: approval 2 by carol@example.com" in proc.stdout


def test_one_byte_of_the_predicate_changed_is_rejected(setup: Setup) -> None:
    bundle = attest(setup, "tampered.json")
    for who in ("alice", "carol"):
        assert approve(setup, bundle, who).returncode == 0
    text = bundle.read_text()
    assert '"release": "2.5.0"' in text
    bundle.write_text(text.replace('"release": "2.5.0"', '"release": "2.5.1"', 1))
    proc = verify(setup, bundle)
    assert proc.returncode & 1, proc.stdout
    assert proc.stdout.count("approves another statement") == 2


def test_approving_a_failed_statement_needs_an_override(setup: Setup) -> None:
    bundle = attest(setup, "failed.json")
    data = json.loads(bundle.read_text())
    data["statement"]["predicate"]["result"] = "failed"
    bundle.write_text(json.dumps(data))
    refused = approve(setup, bundle, "alice")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--override REASON" in refused.stderr
    assert approve(setup, bundle, "alice", "--override", "hotfix CHG-9").returncode == 0
    assert '"override":"hotfix CHG-9"' in json.loads(bundle.read_text())["approvals"][0]["signed"]


def test_drift_after_sign_off_voids_it_and_names_the_host(setup: Setup) -> None:
    # Last in this module: it changes stg-web1.
    bundle = attest(setup, "void.json")
    for who in ("alice", "carol"):
        assert approve(setup, bundle, who).returncode == 0
    assert verify(setup, bundle, "-i", str(setup.inventory)).returncode == 0
    setup.lab.exec("stg-web1", ["sysctl", "-q", "-w", "net.core.somaxconn=1024"])
    assert setup.with_inventory("collect", "-q").returncode == 0
    proc = verify(setup, bundle, "-i", str(setup.inventory))
    assert proc.returncode == 8, proc.stdout + proc.stderr
    assert "void: stg-web1: changed since sign-off" in proc.stdout
    assert "prod-web1" not in proc.stdout.split("void:", 1)[1]
