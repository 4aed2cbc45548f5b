"""End to end: no planted secret reaches the database, a report or the terminal.

Every file of the secret corpus (tests/fixtures/secrets/: INI, YAML, JSON, TOML,
env, nginx, Apache, HAProxy, crontab, sudoers, shell, .pgpass, .netrc, headers,
free text...) is planted on a real SSH lab host, in /etc/secrets/ (read by
``files``), in /etc/cron.d/ (``cron``) and behind an ``apps`` command; the
corpus's public lines are planted beside them. After ``driftcheck check`` with
every report format and ``show``/``show --raw``, each planted value is looked for
in the database (every blob decompressed), every report and everything printed.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from driftcheck.lab import Lab, LabHostSpec
from tests.support.helpers import run_driftcheck
from tests.support.secret_corpus import CorpusFile, public_files, secret_files

pytestmark = pytest.mark.lab

SECRETS = secret_files()
FORMATS = ("json", "html", "markdown", "junit", "text")


def planted(salt: str) -> dict[str, str]:
    """The corpus as files on a host; ``salt`` makes one host's config differ."""
    out = {f"/etc/secrets/{f.filename}": f.text for f in SECRETS}
    out |= {f"/etc/public/{f.filename}": f.text for f in public_files()}
    crontabs = [f for f in SECRETS if f.format == "crontab"]
    out |= {f"/etc/cron.d/corpus-{i}": f.text for i, f in enumerate(crontabs)}
    out["/etc/secrets/release.conf"] = f"release = rel-{salt}\n"
    return out


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    """(all that was printed, the database with every blob decompressed)."""
    work = tmp_path_factory.mktemp("secrets")
    lab = Lab(work / "lab")
    try:
        lab.up(
            [
                LabHostSpec("prod-web1", "production", files=planted("a")),
                LabHostSpec("stg-web1", "staging", files=planted("b")),
            ]
        )
        inventory = work / "inventory.yaml"
        apps = {"notes": "cat /etc/secrets/notes.txt"}
        data = lab.inventory({"files": ["/etc/secrets/", "/etc/public/"], "apps": apps})
        inventory.write_text(yaml.safe_dump(data))
        args = ["check", "-i", str(inventory)]
        for fmt in FORMATS:
            args += ["-f", fmt, "-o", str(work / f"report.{fmt}")]
        printed = [run_driftcheck(work, *args, cwd=work)]
        for host in ("prod-web1", "stg-web1"):
            for extra in ([], ["--raw"], ["-f", "json"], ["--raw", "-f", "json"]):
                printed.append(run_driftcheck(work, "show", host, "-i", str(inventory), *extra))
        assert printed[0].returncode in (1, 5), printed[0].stderr
        assert all(p.returncode == 0 for p in printed[1:]), [p.stderr for p in printed]
        text = "".join(p.stdout + p.stderr for p in printed)
        text += "".join((work / f"report.{fmt}").read_text() for fmt in FORMATS)
        yield text, _database(work / "dc.db")
    finally:
        lab.down()


def _database(path: Path) -> bytes:
    """The database file's bytes, then every blob decompressed."""
    con = sqlite3.connect(path)
    con.execute("pragma wal_checkpoint(truncate)")
    blobs = [zlib.decompress(row[0]) for row in con.execute("select data from blobs")]
    con.close()
    return path.read_bytes() + b"\n".join(blobs)


def test_the_corpus_was_collected(everything: tuple[str, bytes]) -> None:
    _text, db = everything
    # The files are there (named in the facts), so not finding a value means it was scrubbed.
    assert all(f"/etc/secrets/{f.filename}".encode() in db for f in SECRETS)
    assert b"rel-a" in db and b"rel-b" in db


@pytest.mark.parametrize("corpus_file", SECRETS, ids=lambda f: f.filename)
def test_no_planted_secret_anywhere(everything: tuple[str, bytes], corpus_file: CorpusFile) -> None:
    text, db = everything
    assert corpus_file.leaks(text) == []
    assert corpus_file.leaks(db.decode("utf-8", "replace")) == []


def test_public_lines_stay_readable(everything: tuple[str, bytes]) -> None:
    _text, db = everything
    shown = db.decode("utf-8", "replace")
    kept = [line for f in public_files() for line in f.text.splitlines() if line.strip()]
    missing = [line for line in kept if line not in shown]
    assert missing == []
