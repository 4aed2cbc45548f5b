"""The files section's shell against hostile and unreadable trees, as root and as nobody."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.drift import compare
from driftcheck.findings import DriftReport, State
from driftcheck.model import AppSource, CollectSettings, ParseResult
from driftcheck.redact import Redactor
from tests.support.helpers import inventory, snapshot

FILES = BY_NAME["files"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def run(settings: CollectSettings, as_nobody: bool = False) -> tuple[str, ParseResult]:
    argv = [*(NOBODY if as_nobody else []), "sh", "-c", FILES.shell_for(settings)]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    ).stdout
    return out, FILES.parse(out)


def test_a_name_with_a_newline_cannot_make_us_read_another_file(tmp_path: Path) -> None:
    trap = tmp_path / "conf.d" / "x\n/etc"
    trap.mkdir(parents=True)
    (trap / "shadow").write_text("root:planted-hash:19000::::::\n")
    out, parsed = run(CollectSettings(files=(f"{tmp_path}/conf.d/",)))
    assert "planted-hash" not in out
    assert "/etc/shadow" not in parsed.facts and "/etc/shadow" not in parsed.errors


def test_unreadable_directories_make_their_files_unknown() -> None:
    # Under /tmp itself: pytest's own temporary folders are closed to other users.
    tmp_path = Path(tempfile.mkdtemp(prefix="dc-files-"))
    locked = tmp_path / "app" / "sub"
    locked.mkdir(parents=True)
    (locked / "b.conf").write_text("b = 1\n")
    (tmp_path / "app" / "a.conf").write_text("a = 1\n")
    locked.chmod(0o700)
    tmp_path.chmod(0o755)
    entries = (f"{tmp_path}/app/", f"{locked}/*.conf")
    _, as_root = run(CollectSettings(files=entries))
    assert f"{locked}/b.conf" in as_root.facts and not as_root.errors
    _, as_nobody = run(CollectSettings(files=entries), as_nobody=True)
    assert f"{locked}/b.conf" not in as_nobody.facts
    assert as_nobody.errors == {str(locked): "permission denied (run as a user that can read it)"}
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("d.json", '{"db":{"user":"u","password":"hunter2x"}}\n'),
        ("d.yaml", "db: {user: u, password: hunter2x}\n"),
        ("d.yaml", "- password: hunter2x\n"),
        ("d.yaml", "password:\n    hunter2x\n"),
        ("d.toml", 'db = { password = "hunter2x" }\n'),
        ("d.yaml", "env: [{name: DB_PASSWORD, value: hunter2x}]\n"),
        ("d.ini", "[db]\npassword =\n    hunter2x\n"),
    ],
)
def test_secrets_only_parsing_reveals_are_redacted(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    out, _ = run(CollectSettings(files=(str(path),)))
    scrubbed = FILES.scrub(out, Redactor(b"k" * 32))  # type: ignore[misc]
    assert "hunter2x" not in scrubbed
    parsed = FILES.parse(scrubbed)
    assert any("<redacted:" in str(v) for v in parsed.facts.values())


@pytest.mark.parametrize("name", ["files", "apps", "os"])
def test_busybox_gives_the_same_facts(tmp_path: Path, name: str, busybox_bin: str) -> None:
    """Alpine has only busybox: its stat, find, awk, sha256sum, readlink and ash must
    give the same facts as Debian's tools for the same files."""
    tree = tmp_path / "etc"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.ini").write_text("[db]\nhost = x\n")
    (tree / "sub" / "b.txt").write_text("no newline")
    (tree / "link.ini").symlink_to("a.ini")
    settings = CollectSettings(
        files=(f"{tree}/", f"{tree}/*.ini"),
        apps=(AppSource("cmd", "command", "echo 1.2"), AppSource("f", "file", f"{tree}/a.ini")),
    )
    shell = BY_NAME[name].shell_for(settings)
    debian = subprocess.run(
        ["sh", "-c", shell],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    alpine = subprocess.run(
        ["/usr/bin/busybox", "sh", "-c", shell],
        capture_output=True,
        check=True,
        env={"PATH": busybox_bin, "LC_ALL": "C"},
    )
    parse = BY_NAME[name].parse
    assert parse(alpine.stdout.decode()) == parse(debian.stdout.decode())


def crontab_facts(text: str) -> dict[str, object]:
    lines = "".join("|" + line + "\n" for line in text.splitlines())
    digest = hashlib.sha256(text.encode()).hexdigest()
    raw = f"F\tfile\t644 root root {len(text)}\t{digest}\ttext\t/etc/crontab\n{lines}"
    return FILES.parse(raw).facts


def test_a_comment_edit_is_no_drift_and_a_real_edit_shows_its_diff() -> None:
    """Through the diff engine: the content lines are compared, the full text is kept
    (volatile ``#(text)``: counted, shown by ``driftcheck show``, never drift)."""
    inv = inventory({"prod1": ("production", ["web"]), "stg1": ("staging", ["web"])})
    prod = "# m h dom mon dow user command\n17 * * * * root run-parts /etc/cron.hourly\n"

    def report(staging: str) -> DriftReport:
        snaps = {
            "prod1": snapshot("prod1", "production", ["web"], {"files": crontab_facts(prod)}),
            "stg1": snapshot("stg1", "staging", ["web"], {"files": crontab_facts(staging)}),
        }
        return compare(inv, snaps, [FILES], "now")

    commented = report("# edited in staging, same jobs\n\n" + prod)
    assert commented.findings == () and commented.volatile_skipped["files"] == 1
    assert crontab_facts(prod)["/etc/crontab#(text)"] == prod
    edited = report(prod.replace("17 *", "42 *"))
    (finding,) = edited.findings
    assert (finding.key, finding.state) == ("/etc/crontab", State.CHANGED)
    (change,) = finding.detail
    assert change.path == "content"
    assert "-17 * * * *" in change.diff and "+42 * * * *" in change.diff
