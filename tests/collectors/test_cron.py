"""The ``cron`` collector beyond its fixtures: scrubbing, limits, busybox, planted lab drift."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from driftcheck.collectors import BY_NAME
from driftcheck.findings import State
from driftcheck.inventory import Inventory, load_inventory
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import CollectSettings, HostSnapshot, SectionStatus
from driftcheck.pipeline import build_report
from driftcheck.redact import REDACTED, Redactor
from driftcheck.runner import collect_all, now_iso
from tests.support.helpers import run_section_locally

CRON = BY_NAME["cron"]
REDACTOR = Redactor(b"0123456789abcdef0123456789abcdef")
Planted = tuple[Inventory, dict[str, HostSnapshot]]

# ---------------------------------------------------------------- scrubbing

SECRET_LINES = [
    ("30 2 * * * root /usr/local/bin/backup --password=hunter2 --target /srv", "hunter2"),
    ("30 2 * * * root /usr/local/bin/backup --password hunter2 --target /srv", "hunter2"),
    ("0 3 * * * root PGPASSWORD=s3cr3t pg_dumpall -h db > /srv/all.sql", "s3cr3t"),
    ("0 3 * * * root mysqldump -uroot -pS3cret --all-databases > /srv/db.sql", "S3cret"),
    ("*/5 * * * * curl -s -u admin:Pa55word https://example.com/ping", "Pa55word"),
    ("*/5 * * * * curl -s https://admin:Pa55word@example.com/ping", "Pa55word"),
    ("*/5 * * * * curl -H 'Authorization: Bearer eyJhbGciOi.abc' https://x/", "eyJhbGciOi.abc"),
    (
        "*/10 * * * * curl -d 'user_name=kaneki&password=12345ILove!!!' http://h/login",
        "12345ILove!!!",
    ),
    ("@hourly sshpass -p 'open sesame' rsync -a /srv host:/srv", "open sesame"),
    ("0 * * * * /opt/sync --api-key=AKIA123 --token 'tok en'", "AKIA123"),
    ("0 * * * * /opt/sync --api-key=AKIA123 --token 'tok en'", "tok en"),
    ("DB_PASSWORD=hunter2", "hunter2"),
    ("API_TOKEN = abc123", "abc123"),
    # comments are not entries, but they are stored in the raw output
    ("# old job: /opt/backup --password=hunter2", "hunter2"),
]


@pytest.mark.parametrize(("line", "secret"), SECRET_LINES)
def test_secrets_on_cron_lines_are_scrubbed(line: str, secret: str) -> None:
    scrubbed = REDACTOR.scrub_line(line)
    assert secret not in scrubbed
    assert REDACTED.search(scrubbed)
    assert REDACTOR.scrub_line(scrubbed) == scrubbed  # idempotent: stored output is re-scrubbed


@pytest.mark.parametrize(
    "line",
    [
        "MAILTO=root",
        "PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin",
        "SHELL=/bin/sh",
        "17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly",
        "*/15\t*\t*\t*\t*\trun-parts /etc/periodic/15min",
        "0 4 * * * root mysqldump -p --all-databases > /srv/db.sql",  # -p alone: prompts
        "0 4 * * * root /opt/rotate --password-file /etc/rotate.pw --keep 7",
        "@reboot mkdir -p /run/app && chown app /run/app",
    ],
)
def test_lines_without_secrets_are_kept(line: str) -> None:
    assert REDACTOR.scrub_line(line) == line


def test_scrub_touches_content_only_and_keeps_drift_visible() -> None:
    raw = (
        "C\t644 root:root\t/etc/cron.d/token=abc\n"
        "|0 2 * * * root /opt/backup --password=one\n"
        "S\t755 root:root\tabc\t/etc/cron.daily/password=x\n"
    )
    scrubbed = CRON.scrub(raw, REDACTOR)
    assert "one" not in scrubbed
    lines = scrubbed.split("\n")
    assert lines[0] == "C\t644 root:root\t/etc/cron.d/token=abc"  # our header, untouched
    assert lines[2] == "S\t755 root:root\tabc\t/etc/cron.daily/password=x"
    facts = CRON.parse(scrubbed).facts
    same = CRON.parse(CRON.scrub(raw, REDACTOR)).facts
    other = CRON.parse(CRON.scrub(raw.replace("=one", "=two"), REDACTOR)).facts
    assert facts == same  # the same secret gives the same key on every host
    assert set(facts) != set(other)  # a changed secret is still drift


def test_comments_and_blank_lines_are_not_drift() -> None:
    one = "C\t644 root:root\t/etc/crontab\n|MAILTO=root\n|0 1 * * * root job\n"
    two = (
        "C\t644 root:root\t/etc/crontab\n|# installed on Fri Nov 27 11:53:01 2026\n|\n"
        "|MAILTO=root\n|   # another comment\n|  0 1 * * * root job  \n"
    )
    assert CRON.parse(one).facts == CRON.parse(two).facts


def test_an_added_line_is_that_line_and_changes_the_file() -> None:
    prod = CRON.parse("C\t644 root:root\t/etc/crontab\n|MAILTO=root\n|0 1 * * * root job\n").facts
    stg = CRON.parse(
        "C\t644 root:root\t/etc/crontab\n|MAILTO=root\n|0 1 * * * root job\n|*/5 * * * * root x\n"
    ).facts
    assert set(stg) - set(prod) == {"/etc/crontab: */5 * * * * root x"}
    assert prod["/etc/crontab"] != stg["/etc/crontab"]
    moved = CRON.parse("C\t644 root:root\t/etc/crontab\n|0 1 * * * root job\n|MAILTO=root\n").facts
    # MAILTO applies to the lines after it: reordering is drift of the file, not of a line
    assert set(moved) == set(prod) and moved["/etc/crontab"] != prod["/etc/crontab"]


# ---------------------------------------------------------------- the shell on this machine


def run_section(settings: CollectSettings) -> tuple[SectionStatus, str]:
    raw = run_section_locally(CRON, settings)
    return raw.status, raw.stdout


def needs(*paths: str) -> None:
    for p in paths:
        if not os.path.exists(p):
            pytest.fail(f"{p} does not exist: it ships with Debian 12 (e2fsprogs, apt, dpkg)")


def test_oversize_crontab_is_hashed_not_read() -> None:
    needs("/etc/cron.d/e2scrub_all")
    status, out = run_section(CollectSettings(file_max_bytes=10))
    assert status is SectionStatus.OK
    fact = CRON.parse(out).facts["/etc/cron.d/e2scrub_all"]
    assert "note" in fact and len(fact["sha256"]) == 64
    assert not [k for k in CRON.parse(out).facts if k.startswith("/etc/cron.d/e2scrub_all: ")]


def test_directory_with_too_many_files_is_incomplete() -> None:
    needs("/etc/cron.daily")
    if len(os.listdir("/etc/cron.daily")) < 2:
        pytest.fail("/etc/cron.daily should hold apt-compat and dpkg on Debian 12")
    status, out = run_section(CollectSettings(dir_max_files=1))
    parsed = CRON.parse(out)
    assert status is SectionStatus.OK
    assert "more than 1 files" in parsed.errors["/etc/cron.daily"]
    assert len([k for k in parsed.facts if k.startswith("/etc/cron.daily/")]) == 1


def test_busybox_applets_give_the_same_facts(busybox_bin: str) -> None:
    # Alpine has only busybox: its stat, awk, sha256sum, wc and ash must give the same facts.
    body = CRON.shell_for(CollectSettings())
    env = {"LC_ALL": "C"}
    ash = subprocess.run(
        [f"{busybox_bin}/sh", "-c", body],
        env={**env, "PATH": busybox_bin},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    dash = subprocess.run(
        ["/bin/sh", "-c", body],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert ash.returncode == dash.returncode
    assert CRON.parse(ash.stdout) == CRON.parse(dash.stdout)


# ---------------------------------------------------------------- lab: planted drift

BACKUP = "# nightly backup\n30 2 * * * root /usr/local/bin/backup --password=hunter2\n"
EXTRA_LINE = "45 4 * * * root /usr/local/bin/report\n"
COMMENT = "\n# reviewed by ops, nothing to change\n"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    tmp = tmp_path_factory.mktemp("cron-lab")
    with Lab(tmp) as lab:
        lab.up(
            [
                LabHostSpec("prod1", "production"),
                # The planting recipe: a cron.d file that only staging has.
                LabHostSpec("stg1", "staging", files={"/etc/cron.d/backup": BACKUP}),
                # a role whose hosts have no cron at all, in both environments
                LabHostSpec("prod-bare1", "production", roles=("bare",)),
                LabHostSpec("stg-bare1", "staging", roles=("bare",)),
            ]
        )
        # a line added to a crontab both have; a comment-only edit that is no drift
        lab.exec("stg1", ["sh", "-c", f"printf %s '{EXTRA_LINE}' >> /etc/cron.d/e2scrub_all"])
        lab.exec("prod1", ["sh", "-c", f"printf %s '{COMMENT}' >> /etc/cron.d/e2scrub_all"])
        # no cron at all: not applicable, not an error
        for host in ("prod-bare1", "stg-bare1"):
            lab.exec(host, ["sh", "-c", "rm -rf /etc/cron.d /etc/cron.daily /etc/cron.weekly"])
        inventory = load_inventory(lab.write_inventory(tmp / "inventory.yaml"))
        snaps = collect_all(inventory.hosts, [CRON], inventory.collect, REDACTOR)
        yield inventory, {s.host: s for s in snaps}


@pytest.mark.lab
def test_lab_cron_drift_is_exactly_the_planted_lines(planted: Planted) -> None:
    inventory, snaps = planted
    assert snaps["prod1"].sections["cron"].status is SectionStatus.OK
    assert snaps["stg1"].sections["cron"].status is SectionStatus.OK
    report = build_report(inventory, snaps, [CRON], now_iso())
    found = {(f.key, f.state) for f in report.findings}
    backup_line = next(k for k, _ in found if k.startswith("/etc/cron.d/backup: 30 2"))
    assert found == {
        ("/etc/cron.d/backup", State.EXTRA),
        (backup_line, State.EXTRA),
        ("/etc/cron.d/e2scrub_all", State.CHANGED),
        ("/etc/cron.d/e2scrub_all: " + EXTRA_LINE.strip(), State.EXTRA),
    }
    assert "hunter2" not in backup_line and REDACTED.search(backup_line)


@pytest.mark.lab
def test_lab_secret_never_reaches_stored_output(planted: Planted) -> None:
    _, snaps = planted
    assert "hunter2" not in snaps["stg1"].sections["cron"].raw
    assert "hunter2" not in repr(snaps["stg1"].sections["cron"].facts)


@pytest.mark.lab
def test_lab_host_without_cron_is_not_applicable(planted: Planted) -> None:
    _, snaps = planted
    for host in ("prod-bare1", "stg-bare1"):
        section = snaps[host].sections["cron"]
        assert section.status is SectionStatus.NOT_APPLICABLE
        assert "no cron configuration" in section.stderr
        assert section.facts == {}
