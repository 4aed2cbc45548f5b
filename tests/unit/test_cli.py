"""The command line: exit-status bitmask, one-line errors, no tracebacks for user mistakes."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from driftcheck.cli import app
from driftcheck.collectors import BY_NAME, REGISTRY
from driftcheck.storage import DAMAGED

LOCAL = """\
defaults: {transport: local, command_timeout: 60}
environments:
  production: {hosts: {here-prod: {roles: [web]}}}
  staging: {hosts: {here-stg: {roles: [web]}}}
compare: {reference: production, targets: [staging]}
collect:
  files: [/etc/os-release]
  apps: {python: "python3 -c 'print(1)'"}
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRIFTCHECK_KEY_FILE", str(tmp_path / "hmac.key"))
    monkeypatch.setenv("DRIFTCHECK_DB", f"sqlite:///{tmp_path / 'dc.db'}")
    (tmp_path / "inv.yaml").write_text(LOCAL)
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_local_hosts_on_one_machine_are_clean(env: Path) -> None:
    code, out, err = invoke("check", "-i", str(env / "inv.yaml"))
    assert code == 0, err
    report = json.loads(out)
    assert report["summary"]["verdict"] == "clean"
    assert all(isinstance(h["not_applicable"], dict) for h in report["hosts"])
    assert report["summary"]["compared_keys"] > 100
    assert "clean: no findings; 2/2 hosts collected completely" in err


def test_quiet_prints_nothing_when_clean(env: Path) -> None:
    code, _, err = invoke(
        "check", "-q", "-i", str(env / "inv.yaml"), "-o", str(env / "r.html"), "-f", "html"
    )
    assert code == 0 and err == ""
    assert (env / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_collect_then_report_then_show(env: Path) -> None:
    assert invoke("collect", "-i", str(env / "inv.yaml"))[0] == 0
    code, out, _ = invoke("report", "-i", str(env / "inv.yaml"), "-f", "html")
    assert code == 0 and "Verdict: <strong>clean</strong>" in out
    code, out, _ = invoke("show", "here-stg", "-i", str(env / "inv.yaml"), "-c", "apps")
    assert code == 0 and "python\t1" in out
    code, out, _ = invoke("show", "here-stg", "-i", str(env / "inv.yaml"), "-f", "json")
    assert code == 0 and set(json.loads(out)["sections"]) == set(BY_NAME)
    code, out, _ = invoke("hosts", "-i", str(env / "inv.yaml"))
    assert code == 0 and out.count(" ok") == 2


def test_failing_app_command_is_incomplete(env: Path) -> None:
    (env / "inv.yaml").write_text(LOCAL.replace("print(1)", "import sys; sys.exit(3)"))
    code, out, _ = invoke("check", "-i", str(env / "inv.yaml"))
    assert code == 4
    (finding,) = json.loads(out)["findings"]
    assert finding["state"] == "incomplete" and "exit status 3" in finding["reasons"]["here-stg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report",), "no finished collection yet"),
        (("show", "nobody"), "no host named 'nobody'"),
        (("show", "here-stg"), "no finished collection yet"),
        (("show", "here-stg", "-c", "nope"), "--collector 'nope': unknown"),
    ],
)
def test_user_errors_are_one_line_exit_2(env: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = invoke(*args, "-i", str(env / "inv.yaml"))
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_inventory_is_exit_2_with_the_line(env: Path) -> None:
    (env / "inv.yaml").write_text(LOCAL.replace("command_timeout: 60", "command_timeout: soon"))
    code, _, err = invoke("collect", "-i", str(env / "inv.yaml"))
    assert code == 2
    assert err.startswith(f"driftcheck: error: {env / 'inv.yaml'}:1: defaults.command_timeout")


def test_missing_inventory(env: Path) -> None:
    code, _, err = invoke("collect", "-i", str(env / "missing.yaml"))
    assert code == 2 and "no such inventory file" in err


def test_unknown_format_is_a_usage_error(env: Path) -> None:
    assert invoke("report", "-i", str(env / "inv.yaml"), "-f", "pdf")[0] == 2


def test_collectors_lists_every_collector() -> None:
    code, out, _ = invoke("collectors")
    assert code == 0
    named = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert named == [c.name for c in REGISTRY]
    assert "volatile, never drift: kernel.random.*" in out


def test_report_uses_only_runs_of_its_own_inventory(env: Path) -> None:
    (env / "other.yaml").write_text(LOCAL.replace("here-prod", "there-prod"))
    assert invoke("collect", "-i", str(env / "other.yaml"))[0] == 0
    code, _, err = invoke("report", "-i", str(env / "inv.yaml"))
    assert code == 2 and "no finished collection yet" in err


def test_several_reports_from_one_comparison(env: Path) -> None:
    inv = str(env / "inv.yaml")
    code, out, err = invoke(
        "check",
        "-i",
        inv,
        "-f",
        "html",
        "-o",
        str(env / "r.html"),
        "-f",
        "json",
        "-o",
        str(env / "r.json"),
        "-f",
        "junit",
        "-o",
        str(env / "r.xml"),
        "-o",
        str(env / "r.md"),  # formats of the last two come from their suffixes
        "-o",
        str(env / "r.txt"),
    )
    assert code == 0, err
    assert out == ""
    assert (env / "r.html").read_text().startswith("<!DOCTYPE html>")
    generated = json.loads((env / "r.json").read_text())["generated_at"]
    junit = (env / "r.xml").read_text()
    assert junit.startswith("<?xml") and f'timestamp="{generated}"' in junit  # one report
    assert (env / "r.md").read_text().startswith("## driftcheck: clean")
    assert "driftcheck: clean" in (env / "r.txt").read_text()
    for name in ("r.html", "r.json", "r.xml", "r.md", "r.txt"):
        assert f"report written to {env / name}\n" in err
    assert not list(env.glob(".*.tmp"))  # written atomically, nothing left behind


def test_one_format_goes_to_stdout_and_suffix_names_the_format(env: Path) -> None:
    inv = str(env / "inv.yaml")
    assert invoke("collect", "-i", inv)[0] == 0
    code, out, _ = invoke("report", "-i", inv, "-f", "markdown")
    assert code == 0 and out.startswith("## driftcheck: clean")
    code, out, _ = invoke("report", "-i", inv, "-f", "text")
    assert code == 0 and "driftcheck: clean" in out and "\x1b" not in out  # not a TTY
    code, out, _ = invoke("report", "-i", inv, "-o", str(env / "r.xml"))
    assert code == 0 and out == ""
    assert (env / "r.xml").read_text().startswith("<?xml")
    code, out, _ = invoke("report", "-i", inv)
    assert code == 0 and json.loads(out)["schema"] == "driftcheck-report/1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-f", "json", "-f", "html"), "2 --format options but no --output"),
        (("-f", "json", "-f", "html", "-o", "a.json"), "-f html has no -o FILE"),
        (("-o", "report.pdf"), "-o report.pdf: cannot tell the format from its name"),
        (("-o", "a.json", "-f", "json", "-o", "a.json"), "-o a.json: given twice"),
        (("-f", "json", "-o", "a.html"), "-f json pairs with -o a.html, whose name says html"),
    ],
)
@pytest.mark.parametrize("command", ["report", "check"])
def test_unpaired_formats_and_outputs_are_usage_errors(
    env: Path, command: str, args: tuple[str, ...], message: str
) -> None:
    code, out, err = invoke(command, "-i", str(env / "inv.yaml"), *args)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1, err
    assert not (env / "dc.db").exists()  # refused before collecting or opening anything


def damage_blob(db: Path, host: str, collector: str) -> None:
    """Overwrite the facts blob of one host's section, as a bad disk would."""
    with sqlite3.connect(db) as con:
        con.execute(
            "update blobs set data = x'789c' where hash = (select facts_hash from sections"
            " join snapshots on snapshots.id = snapshot_id"
            " where host = ? and collector = ? order by sections.id desc limit 1)",
            (host, collector),
        )


def test_a_damaged_blob_costs_one_section_and_the_next_collection_heals_it(env: Path) -> None:
    inv = str(env / "inv.yaml")
    assert invoke("collect", "-i", inv)[0] == 0
    damage_blob(env / "dc.db", "here-stg", "os")
    code, out, err = invoke("report", "-i", inv)
    assert code == 4, err
    (finding,) = json.loads(out)["findings"]
    assert (finding["collector"], finding["state"]) == ("os", "incomplete")
    assert DAMAGED in finding["reasons"]["here-stg"]
    code, out, _ = invoke("show", "here-stg", "-i", inv, "-c", "os")
    assert code == 0 and f"## os: error - {DAMAGED}" in out
    assert invoke("collect", "-i", inv)[0] == 0  # same facts: the blob is written again
    assert invoke("report", "-i", inv)[0] == 0


@pytest.mark.parametrize("command", ["hosts", "report", "collect", "show here-stg"])
def test_a_damaged_database_is_one_line_exit_2(env: Path, command: str) -> None:
    (env / "dc.db").write_bytes(b"SQLite format 3\0" + b"\x13" * 5000)  # header, then garbage
    code, out, err = invoke(*command.split(), "-i", str(env / "inv.yaml"))
    assert code == 2 and out == ""
    assert err.startswith(f"driftcheck: error: --db sqlite:///{env / 'dc.db'}: not a driftcheck")
    assert err.endswith("restore it from a backup or point --db at a new file\n")
    assert err.count("\n") == 1


HOSTILE_APPS = """\
  apps:
    shout: "printf 'x\\\\033[2J\\\\033]0;pwned\\\\007\\\\302\\\\233y'"
    fails: "printf '\\\\033[31mboom\\\\033[0m'; exit 3"
"""
#: What a terminal would act on: ESC, BEL, and U+009B (CSI as one C1 character).
RAW_CONTROLS = ("\x1b", "\x07", "\x9b")


def test_control_characters_from_hosts_never_reach_the_terminal(env: Path) -> None:
    text = LOCAL.replace("  apps: {python: \"python3 -c 'print(1)'\"}\n", HOSTILE_APPS)
    (env / "inv.yaml").write_text(text)
    inv = str(env / "inv.yaml")
    code, _, err = invoke("collect", "-i", inv)
    assert code == 4 and "\\x1b[31mboom" in err  # the failing app's reason, escaped
    outputs = [err]
    for args in (
        ("hosts",),
        ("show", "here-stg"),
        ("show", "here-stg", "--raw", "-c", "apps"),
        ("show", "here-stg", "-f", "json"),
        ("report", "-f", "text"),
        ("report", "-f", "json"),
        ("report", "-f", "markdown"),
    ):
        code, out, err = invoke(*args, "-i", inv)
        assert code in (0, 4), err
        outputs += [out, err]
    for output in outputs:
        assert not any(c in output for c in RAW_CONTROLS), output
    shown = invoke("show", "here-stg", "-i", inv, "-c", "apps")[1]
    assert "shout\tx\\x1b[2J\\x1b]0;pwned\\x07\\x9by" in shown
    raw = invoke("show", "here-stg", "-i", inv, "-c", "apps", "--raw")[1]
    assert "|x\\x1b[2J" in raw
    facts = json.loads(invoke("show", "here-stg", "-i", inv, "-f", "json")[1])
    assert facts["sections"]["apps"]["facts"]["shout"] == "x\x1b[2J\x1b]0;pwned\x07\x9by"


@pytest.mark.parametrize(
    "args", [("collectors",), ("hosts", "--brief", "-i"), ("show", "here-prod", "-i")]
)
def test_a_reader_that_goes_away_is_141_and_silent(env: Path, args: tuple[str, ...]) -> None:
    """`driftcheck show HOST | head -1`: the reader is gone before the first write."""
    assert invoke("collect", "-i", str(env / "inv.yaml"))[0] == 0
    argv = [sys.executable, "-m", "driftcheck", *args]
    if argv[-1] == "-i":
        argv.append(str(env / "inv.yaml"))
    read, write = os.pipe()
    os.close(read)  # nobody will read: the first write gets EPIPE
    proc = subprocess.run(
        argv, stdout=write, stderr=subprocess.PIPE, text=True, check=False, timeout=60
    )
    os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_quiet_and_clean_prints_no_report_on_stdout(env: Path) -> None:
    code, out, err = invoke("check", "-q", "-i", str(env / "inv.yaml"))
    assert (code, out, err) == (0, "", "")


def test_version() -> None:
    from driftcheck import __version__  # noqa: PLC0415

    assert invoke("--version")[:2] == (0, f"driftcheck {__version__}\n")


def on_a_terminal(argv: list[str], env: dict[str, str]) -> str:
    """What ``argv`` prints with its stdout on a pseudo-terminal."""
    main, sub = pty.openpty()
    proc = subprocess.Popen(argv, stdout=sub, stderr=subprocess.DEVNULL, env=env)
    os.close(sub)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal's other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_colour_follows_the_terminal_no_color_and_the_flag(env: Path) -> None:
    # The verdict is coloured even when clean: any escape sequence tells.
    assert invoke("collect", "-i", str(env / "inv.yaml"))[0] == 0
    report = [
        sys.executable,
        "-m",
        "driftcheck",
        "report",
        "-f",
        "text",
        "-i",
        str(env / "inv.yaml"),
    ]
    base = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert "\x1b[" in on_a_terminal(report, base)
    assert "\x1b[" not in on_a_terminal(report, {**base, "NO_COLOR": "1"})
    assert "\x1b[" in on_a_terminal([*report, "--color", "always"], {**base, "NO_COLOR": "1"})
    assert "\x1b[" not in on_a_terminal([*report, "--color", "never"], base)
    # Not a terminal (| less -R): colour only when asked for.
    assert "\x1b[" not in invoke(*report[3:])[1]
    assert "\x1b[" in invoke(*report[3:], "--color", "always")[1]


@pytest.mark.parametrize("command", ["report", "history", "waivers", "changes"])
def test_a_mistyped_db_is_an_error_and_no_new_file(env: Path, command: str) -> None:
    assert invoke("collect", "-i", str(env / "inv.yaml"))[0] == 0
    typo = env / "dc.dbb"
    code, out, err = invoke(command, "-i", str(env / "inv.yaml"), "--db", f"sqlite:///{typo}")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert f"no finished collection yet ({typo} does not exist)" in err
    assert not typo.exists()


def test_hosts_before_the_first_collection(env: Path) -> None:
    code, out, err = invoke("hosts", "--brief", "-i", str(env / "inv.yaml"))
    assert code == 0 and out.count("never collected") == 2
    assert err.startswith("driftcheck: warning: --db ") and err.count("\n") == 1
    assert not (env / "dc.db").exists()


def test_help_keeps_its_brackets_and_lists_the_environment() -> None:
    code, out, _ = invoke("-h")
    assert code == 0
    for name in ("DRIFTCHECK_DB", "DRIFTCHECK_KEY_FILE", "DRIFTCHECK_DEBUG", "NO_COLOR"):
        assert name in out
    report = " ".join(invoke("report", "--help")[1].split())  # as wrapped at any width
    assert "[default: sqlite:///driftcheck.db" in report and "[env var: DRIFTCHECK_DB]" in report
    assert "[default: ./driftcheck-demo-" in " ".join(invoke("demo", "-h")[1].split())
    assert "HOST_A" in invoke("diff", "-h")[1]
