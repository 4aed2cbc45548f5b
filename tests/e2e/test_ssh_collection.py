"""End to end over real SSH: namespace lab hosts with real sshd, dpkg and sysctl.

The report must flag exactly the planted drift, never store or print the planted
secrets, and report unreachable hosts as incomplete with the reason.
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftcheck.lab import Lab, LabHostSpec
from tests.support.helpers import run_driftcheck
from tests.support.lab_support import write_lab_inventory

pytestmark = pytest.mark.lab

APP_CONF = "/etc/myapp/app.conf"
SECRETS = ("prod-Planted-S3cret-1", "stg-Planted-S3cret-2")
COLLECT = {"files": [APP_CONF, "/etc/os-release"], "apps": {"myapp": "cat /opt/myapp/VERSION"}}


def conf(workers: int, secret: str) -> str:
    return f"[server]\nlisten = 8080\nworkers = {workers}\ndb_password = {secret}\n"


SPECS = [
    LabHostSpec(
        "prod-web1",
        "production",
        files={APP_CONF: conf(4, SECRETS[0]), "/opt/myapp/VERSION": "2.4.1\n"},
    ),
    LabHostSpec(
        "stg-web1",
        "staging",
        files={APP_CONF: conf(8, SECRETS[1]), "/opt/myapp/VERSION": "2.4.1\n"},
        sysctls={"net.core.somaxconn": "1234"},
    ),
    LabHostSpec("stg-down", "staging", fault="down"),
    LabHostSpec("stg-hung", "staging", fault="hang"),
    LabHostSpec("stg-rekeyed", "staging", fault="wrong_host_key"),
    # Logs in, then never runs our command: a login script that hangs.
    LabHostSpec("stg-stuck", "staging", files={"/root/.bashrc": "sleep 3600\n"}),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("lab")) as running:
        running.up(SPECS)
        yield running


def write_inventory(lab: Lab, path: Path, hosts: set[str], **defaults: Any) -> Path:
    return write_lab_inventory(lab, path, hosts, COLLECT, **defaults)


driftcheck = run_driftcheck


def findings(report: Path) -> set[tuple[str, str, str]]:
    data = json.loads(report.read_text())
    return {(f["collector"], f["key"], f["state"]) for f in data["findings"]}


@pytest.fixture(scope="module")
def clean_pair(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One check run over the two healthy hosts; returns its folder and its output."""
    tmp = tmp_path_factory.mktemp("pair")
    inv = write_inventory(lab, tmp / "inv.yaml", {"prod-web1", "stg-web1"})
    check = driftcheck(tmp, "check", "-i", str(inv), "-f", "json", "-o", str(tmp / "r.json"))
    assert check.returncode == 1, check.stderr
    html = driftcheck(tmp, "report", "-i", str(inv), "-f", "html", "-o", str(tmp / "r.html"))
    assert html.returncode == 1, html.stderr
    return tmp, [check.stdout, check.stderr, html.stdout, html.stderr]


def test_report_flags_exactly_the_planted_drift(clean_pair: tuple[Path, list[str]]) -> None:
    tmp, _ = clean_pair
    assert findings(tmp / "r.json") == {
        ("files", f"{APP_CONF}#server.workers", "changed"),
        ("files", f"{APP_CONF}#server.db_password", "changed"),
        ("sysctl", "net.core.somaxconn", "changed"),
    }
    data = json.loads((tmp / "r.json").read_text())
    somaxconn = next(f for f in data["findings"] if f["key"] == "net.core.somaxconn")
    assert somaxconn["values"]["stg-web1"] == "1234"
    workers = next(f for f in data["findings"] if f["key"] == f"{APP_CONF}#server.workers")
    assert workers["values"] == {"prod-web1": "4", "stg-web1": "8"}
    page = (tmp / "r.html").read_text()
    assert "net.core.somaxconn" in page and APP_CONF in page
    assert data["summary"]["hosts"] == {"total": 2, "ok": 2, "incomplete": 0}


def test_planted_secrets_appear_nowhere(clean_pair: tuple[Path, list[str]]) -> None:
    tmp, outputs = clean_pair
    files = [p for p in tmp.iterdir() if p.is_file()]
    assert any(p.name.startswith("dc.db") for p in files)
    for secret in SECRETS:
        for path in files:
            assert secret.encode() not in path.read_bytes(), path
        for text in outputs:
            assert secret not in text
    # The changed secret is still visible as drift, by its keyed hash.
    data = json.loads((tmp / "r.json").read_text())
    secret = next(f for f in data["findings"] if f["key"] == f"{APP_CONF}#server.db_password")
    assert all(v.startswith("<redacted:") for v in secret["values"].values())


def test_show_and_hosts(lab: Lab, clean_pair: tuple[Path, list[str]]) -> None:
    tmp, _ = clean_pair
    shown = driftcheck(tmp, "show", "stg-web1", "-i", str(tmp / "inv.yaml"), "-c", "sysctl")
    assert shown.returncode == 0, shown.stderr
    assert "net.core.somaxconn\t1234" in shown.stdout.splitlines()
    raw = driftcheck(tmp, "show", "prod-web1", "-i", str(tmp / "inv.yaml"), "-c", "files", "--raw")
    assert "|workers = 4" in raw.stdout and SECRETS[0] not in raw.stdout
    listed = driftcheck(tmp, "hosts", "-i", str(tmp / "inv.yaml"))
    assert listed.returncode == 0
    assert sum(" ok" in line for line in listed.stdout.splitlines()) == 2


def test_unreachable_hosts_are_incomplete_with_the_reason(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {s.name for s in SPECS}, command_timeout=6)
    started = time.monotonic()
    run = driftcheck(tmp_path, "check", "-i", str(inv), "-o", str(tmp_path / "r.json"))
    elapsed = time.monotonic() - started
    assert run.returncode == 5, run.stderr  # drift (1) + incomplete (4)
    # connect_timeout 5 s, command_timeout 6 s: no bad host holds the run longer.
    assert elapsed < 15
    data = json.loads((tmp_path / "r.json").read_text())
    hosts = {h["name"]: h for h in data["hosts"]}
    assert hosts["prod-web1"]["status"] == hosts["stg-web1"]["status"] == "ok"
    assert hosts["stg-down"]["status"] == "failed"
    assert "connection refused" in hosts["stg-down"]["error"]
    assert hosts["stg-hung"]["status"] == "failed"
    assert "no SSH banner" in hosts["stg-hung"]["error"]
    assert hosts["stg-rekeyed"]["status"] == "failed"
    assert "does not match" in hosts["stg-rekeyed"]["error"]
    assert hosts["stg-stuck"]["status"] == "failed"
    assert "did not finish within command_timeout (6s)" in hosts["stg-stuck"]["error"]
    whole = [f for f in data["findings"] if f["key"] == "*"]
    assert len(whole) == 1
    assert set(whole[0]["reasons"]) == {"stg-down", "stg-hung", "stg-rekeyed", "stg-stuck"}
    # The healthy pair's drift is still found despite the bad hosts.
    assert ("sysctl", "net.core.somaxconn", "changed") in findings(tmp_path / "r.json")
    assert "incomplete: stg-down: connection refused" in run.stderr


def test_changed_host_key_is_refused_before_any_command(lab: Lab, tmp_path: Path) -> None:
    inv = write_inventory(lab, tmp_path / "inv.yaml", {"prod-web1", "stg-rekeyed"})
    run = driftcheck(tmp_path, "collect", "-i", str(inv))
    assert run.returncode == 4
    assert "does not match" in run.stderr
    # sshd logs every login; the client hung up before authenticating.
    log = lab.log_text("stg-rekeyed")
    assert "[preauth]" in log and "Accepted" not in log


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("missing", "does not exist or is not readable"),
        ("stranger", "refused (offered: identity_file"),
    ],
)
def test_bad_identity_is_reported_per_host(
    lab: Lab, tmp_path: Path, key: str, message: str
) -> None:
    identity = tmp_path / key
    if key == "stranger":
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(identity)], check=True
        )
    inv = write_inventory(
        lab, tmp_path / "inv.yaml", {"prod-web1", "stg-web1"}, identity_file=str(identity)
    )
    run = driftcheck(tmp_path, "collect", "-i", str(inv))
    assert run.returncode == 4
    assert run.stderr.count(message) == 2, run.stderr


def test_key_rotation_and_revocation_in_known_hosts(lab: Lab, tmp_path: Path) -> None:
    real = lab.known_hosts.read_text().splitlines()
    port = lab.hosts["prod-web1"].port
    line = next(x for x in real if x.startswith(f"[127.0.0.1]:{port} "))
    decoy = tmp_path / "decoy"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(decoy)], check=True)
    old = f"[127.0.0.1]:{port} " + " ".join(decoy.with_suffix(".pub").read_text().split()[:2])
    rotated = tmp_path / "known_hosts"
    rotated.write_text("\n".join([old, *real]) + "\n")  # the old key first, as after a rotation
    inv = write_inventory(
        lab, tmp_path / "inv.yaml", {"prod-web1", "stg-web1"}, known_hosts=str(rotated)
    )
    first = driftcheck(tmp_path, "collect", "-i", str(inv))
    assert first.returncode == 0, first.stderr
    revoked_key = " ".join(line.split()[1:3])
    rotated.write_text("\n".join([*real, f"@revoked * {revoked_key}"]) + "\n")
    run = driftcheck(tmp_path, "collect", "-i", str(inv))
    assert run.returncode == 4 and "is marked @revoked" in run.stderr
    assert "collected 1/2 hosts completely" in run.stderr


def test_runaway_output_is_cut_per_section_as_it_streams(lab: Lab, tmp_path: Path) -> None:
    """A 100 MB file and an app printing 50 MB: each section is cut at its cap while
    the rest is read and dropped, the later sections still arrive, and neither the
    controller's memory nor the database grows with what the hosts sent."""
    big = "/srv/big.txt"
    lab.exec(
        "prod-web1", ["sh", "-c", f"head -c 100000000 /dev/zero | tr '\\0' x | fold -w 99 > {big}"]
    )
    inv: dict[str, Any] = lab.inventory(
        {
            "files": [big, APP_CONF],
            "file_max_bytes": 200_000_000,  # so the big file counts as text content
            "apps": {"flood": "yes | head -c 50000000", "myapp": "echo 1"},
        }
    )
    for env in inv["environments"].values():
        env["hosts"] = {n: h for n, h in env["hosts"].items() if n in ("prod-web1", "stg-web1")}
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(inv, sort_keys=False))
    try:
        run = driftcheck(tmp_path, "collect", "-i", str(tmp_path / "inv.yaml"))
    finally:
        lab.exec("prod-web1", ["rm", "-f", big])
    assert run.returncode == 4, run.stderr
    assert "files: output over 32 MiB, cut" in run.stderr  # prod-web1's first bad section
    assert "apps: output over 8 MiB, cut" in run.stderr  # stg-web1 has no big file
    # The largest child so far is that collection (before: ~1 GB for these hosts).
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 400 * 1024
    stored = sum(p.stat().st_size for p in tmp_path.glob("dc.db*"))
    assert stored < 4 << 20, stored
    shown = driftcheck(
        tmp_path, "show", "prod-web1", "-i", str(tmp_path / "inv.yaml"), "-f", "json"
    )
    sections = json.loads(shown.stdout)["sections"]
    assert (sections["files"]["status"], sections["files"]["error"]) == (
        "truncated",
        "output over 32 MiB, cut",
    )
    assert sections["files"]["facts"] == {}  # never parsed as if complete
    assert sections["apps"]["error"] == "output over 8 MiB, cut"
    assert sections["sysctl"]["status"] == "ok" and sections["os"]["status"] == "ok"
