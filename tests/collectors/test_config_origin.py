"""config_origin's shell on real hosts: the same files as ``files``, read-only, cheap, honest.

Its parser is covered by tests/fixtures/config_origin/; this checks the shell on
this Debian machine (dash and busybox), and in lab hosts that a conffile edited
in one host is reported modified there and unmodified on the other.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import CollectSettings, ParseResult, SectionStatus
from driftcheck.script import Section, build_script, new_marker, split_output

COLLECTOR = BY_NAME["config_origin"]
FILES = BY_NAME["files"]


def run(
    settings: CollectSettings, name: str = "config_origin", argv: list[str] | None = None
) -> tuple[SectionStatus, str]:
    """One section through the combined script, as the pipeline runs it."""
    collector = BY_NAME[name]
    marker = new_marker()
    section = Section(name, collector.shell_for(settings), 60, collector.requires)
    proc = subprocess.run(
        argv or ["env", "-i", "HOME=/root", "sh", "-s"],
        input=build_script([section], marker).encode(),
        capture_output=True,
        timeout=120,
        check=False,
        cwd="/",
    )
    raw = split_output(proc.stdout, proc.stderr, marker, [name])[name]
    return raw.status, raw.stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Files with hostile names, a directory, a symlink, a broken one and a FIFO."""
    root = tmp_path / "etc"
    (root / "app.d").mkdir(parents=True)
    for name in ("a.conf", "b c.conf", "it's.conf", "$(id).conf", "w[x]*.conf", "z.conf"):
        (root / "app.d" / name).write_text("x\n")
    (root / "plain").write_text("y\n")
    (root / "link").symlink_to(root / "plain")
    (root / "broken").symlink_to(root / "nowhere")
    os.mkfifo(root / "fifo")
    return root


def test_default_settings_mean_no_files_and_no_facts() -> None:
    assert COLLECTOR.shell_for(CollectSettings()) == ":"
    assert COLLECTOR.parse("") == ParseResult()
    status, out = run(CollectSettings())
    assert status is SectionStatus.OK
    assert COLLECTOR.parse(out) == ParseResult()


def test_covers_exactly_the_files_the_files_collector_reads(tree: Path, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    settings = CollectSettings(
        files=(
            f"{tree}/app.d/",  # a directory, over the limit: truncated
            f"{tree}/app.d/*.conf",  # a glob, over the limit
            f"{tree}/plain",
            f"{tree}/link",
            f"{tree}/broken",
            f"{tree}/fifo",
            f"{tree}/absent",
            f"{tree}/$(touch {pwned})",
            "/etc/ssh/ssh_config",
        ),
        dir_max_files=4,
    )
    f_status, f_out = run(settings, "files")
    c_status, c_out = run(settings)
    assert f_status is c_status is SectionStatus.OK, c_out
    files = FILES.parse(f_out)
    origin = COLLECTOR.parse(c_out)
    # Every path the files collector describes, but directories and per-setting keys.
    described = {
        key
        for key, value in files.facts.items()
        if isinstance(value, dict) and value.get("type") != "directory"
    }
    assert set(origin.facts) == described
    assert origin.errors == files.errors  # the same truncated entries
    assert not pwned.exists()
    assert origin.facts["/etc/ssh/ssh_config"]["package"] == "openssh-client"
    for key in described - {"/etc/ssh/ssh_config"}:
        assert origin.facts[key] == {"package": None, "modified": None}


def test_read_only_and_ok_as_nobody_with_rpm_installed(tmp_path: Path) -> None:
    # Debian's rpm is installed here: its per-user ~/.rpmdb must be neither read nor created.
    assert shutil.which("rpm")
    home = tmp_path / "home"
    home.mkdir()
    settings = CollectSettings(files=("/etc/ssh/ssh_config", "/etc/hostname", "/etc/shadow"))
    status, out = run(settings, argv=["env", "-i", f"HOME={home}", "sh", "-s"])
    assert status is SectionStatus.OK
    assert list(home.iterdir()) == []
    assert "#rpm" not in out.splitlines()
    root = COLLECTOR.parse(out)
    su = ["su", "nobody", "-s", "/bin/sh", "-c", "env -i HOME=/nonexistent sh -s"]
    status, out = run(settings, argv=su)
    assert status is SectionStatus.OK
    assert not Path("/nonexistent").exists()
    nobody = COLLECTOR.parse(out)
    assert root.facts["/etc/ssh/ssh_config"] == {"package": "openssh-client", "modified": False}
    assert nobody.facts == root.facts  # /etc/shadow: nobody's package, either way


def test_busybox_runs_it_like_dash(tree: Path, tmp_path: Path) -> None:
    busybox = shutil.which("busybox")
    assert busybox is not None
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for applet in ("sh", "awk", "sed", "sort", "find", "readlink", "stat", "sha1sum"):
        (bindir / applet).symlink_to(busybox)
    settings = CollectSettings(files=(f"{tree}/app.d/", "/etc/ssh/ssh_config", "/bin/sh"))
    body = COLLECTOR.shell_for(settings)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LC_ALL": "C"}
    dash = subprocess.run(["sh", "-c", body], capture_output=True, env=env, check=True)
    bbox = subprocess.run(
        [str(bindir / "sh"), "-c", body], capture_output=True, env=env, check=False
    )
    assert bbox.returncode == 0, bbox.stderr
    assert bbox.stdout == dash.stdout
    assert COLLECTOR.parse(dash.stdout.decode()).facts["/bin/sh"] == {
        "package": "dash",
        "modified": None,
    }


def test_twenty_files_take_well_under_a_second_of_section_time() -> None:
    conffiles = sorted(
        line.split()[0]
        for line in subprocess.run(
            ["dpkg-query", "-W", "-f=${Conffiles}\\n"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if line.startswith(" /") and "obsolete" not in line and Path(line.split()[0]).is_file()
    )[:18]
    settings = CollectSettings(files=(*conffiles, "/etc/hostname", "/etc/*.conf"))
    start = time.monotonic()
    status, out = run(settings)
    elapsed = time.monotonic() - start
    facts = COLLECTOR.parse(out).facts
    assert status is SectionStatus.OK
    assert len(facts) >= 20
    assert all(facts[path]["package"] for path in conffiles)
    assert elapsed < 3.0, elapsed


@pytest.mark.lab
def test_edited_conffile_is_modified_only_where_it_was_edited() -> None:
    settings = CollectSettings(
        files=("/etc/ssh/ssh_config", "/etc/sysctl.conf", "/etc/co/local.conf")
    )
    marker = new_marker()
    section = Section(COLLECTOR.name, COLLECTOR.shell_for(settings), 60, COLLECTOR.requires)
    script = build_script([section], marker)
    local = {"/etc/co/local.conf": "a = 1\n"}
    with Lab() as lab:
        lab.up(
            [
                LabHostSpec("h1", "production", files=local),
                LabHostSpec("h2", "staging", files={**local, "/etc/ssh/ssh_config": "edited\n"}),
            ]
        )
        lab.exec("h2", ["sh", "-c", "echo '# local' >> /etc/sysctl.conf"])
        facts: dict[str, dict[str, object]] = {}
        for host in ("h1", "h2"):
            proc = lab.exec(host, ["sh", "-s"], input=script)
            raw = split_output(
                proc.stdout.encode(), proc.stderr.encode(), marker, [COLLECTOR.name]
            )[COLLECTOR.name]
            assert raw.status is SectionStatus.OK, raw.stderr
            facts[host] = COLLECTOR.parse(raw.stdout).facts
    for path, package in (
        ("/etc/ssh/ssh_config", "openssh-client"),
        ("/etc/sysctl.conf", "procps"),
    ):
        assert facts["h1"][path] == {"package": package, "modified": False}
        assert facts["h2"][path] == {"package": package, "modified": True}
    for host in ("h1", "h2"):
        assert facts[host]["/etc/co/local.conf"] == {"package": None, "modified": None}


def test_apk_never_hashes_a_sensitive_file(tmp_path: Path) -> None:
    """The apk branch hashes files to compare them with apk's checksums; a secret's
    plain hash must not be printed (this collector has no scrub): it stays unknown.
    The branch runs against a database in tmp (this machine has no apk)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "shadow").write_text("root:planted:19000::::::\n")
    (etc / "motd").write_text("hello\n")
    db = tmp_path / "installed"
    wrong = "Q1" + base64.b64encode(bytes(20)).decode()  # a SHA-1 neither file has
    db.write_text(
        f"P:alpine-baselayout\nF:{str(etc)[1:]}\nR:shadow\nZ:{wrong}\nR:motd\nZ:{wrong}\n"
    )
    settings = CollectSettings(files=(str(etc / "shadow"), str(etc / "motd")))
    shell = COLLECTOR.shell_for(settings).replace(
        "for db in /lib/apk/db/installed /usr/lib/apk/db/installed", f"for db in {db}"
    )
    env = {"PATH": "/nonexistent-no-dpkg-no-rpm:/usr/bin:/bin"}
    out = subprocess.run(
        ["/bin/sh", "-c", shell.replace("command -v dpkg-query", "false")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    hashed = [line.split("\t")[-1] for line in out.splitlines() if line.startswith("H\t")]
    assert hashed == [str(etc / "motd")]
    facts = COLLECTOR.parse(out).facts
    assert facts[str(etc / "shadow")] == {"package": "alpine-baselayout", "modified": None}
    assert facts[str(etc / "motd")] == {"package": "alpine-baselayout", "modified": True}
