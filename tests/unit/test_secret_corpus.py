"""The planted-secrets corpus: no planted value survives scrubbing, no public line changes.

The corpus (tests/fixtures/secrets/, loaded by tests/support/secret_corpus.py) is scrubbed through
each way collectors hand text to the Redactor, and through the files and cron collectors'
own scrub functions, which add their rules on top.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable

import pytest
import yaml

from driftcheck.collectors import files
from driftcheck.collectors.base import scrub_prefixed
from driftcheck.redact import Redactor
from tests.support.secret_corpus import (
    CorpusFile,
    expected_pem_blocks,
    pem_bodies,
    public_files,
    secret_files,
)

KEY = b"k" * 32
SECRET_FILES = secret_files()
PUBLIC_FILES = public_files()


def _by_prefixed_lines(redactor: Redactor, text: str) -> str:
    """As the files and apps collectors hand content over: lines prefixed "|"."""
    raw = "\n".join("|" + line for line in text.split("\n"))
    return "\n".join(line[1:] for line in scrub_prefixed(raw, redactor).split("\n"))


def _by_lines(redactor: Redactor, text: str) -> str:
    return "\n".join(redactor.scrub_lines(text.split("\n")))


SCRUB_PATHS: dict[str, Callable[[Redactor, str], str]] = {
    "scrub_text": Redactor.scrub_text,
    "scrub_lines": _by_lines,
    "scrub_prefixed": _by_prefixed_lines,
}


def _name(corpus_file: CorpusFile) -> str:
    return corpus_file.filename


def test_the_corpus_is_large_and_every_planted_value_is_really_there() -> None:
    planted = [value for f in SECRET_FILES for value in f.planted]
    assert len(planted) >= 60
    assert len(set(planted)) == len(planted), "a leak must name one variant"
    for f in SECRET_FILES:
        assert len(pem_bodies(f.text)) == expected_pem_blocks(f), f.filename
        for value in f.planted:
            assert "\n" in value or value in f.text, (f.filename, value)
        # Every marker in a file is listed, so none can leak unnoticed.
        for marker in re.findall(r"S3CRET-\d+", f.text):
            assert any(marker in value for value in f.planted), (f.filename, marker)
    public_lines = [line for f in PUBLIC_FILES for line in f.text.splitlines() if line.strip()]
    assert len(public_lines) >= 30


def test_the_leak_check_sees_part_of_a_key_or_jwt() -> None:
    with_key = next(f for f in SECRET_FILES if f.filename == "service-account.json")
    body = pem_bodies(with_key.text)[0]
    header, *lines = body.split("\n")
    assert with_key.leaks("..." + lines[3][20:28] + "...") == [body]
    assert with_key.leaks(header) == [body]
    assert with_key.leaks(header[:20]) == []  # every RSA key starts so
    with_jwt = next(f for f in SECRET_FILES if f.filename == "notes.txt")
    jwt = next(v for v in with_jwt.planted if v.startswith("eyJ"))
    assert with_jwt.leaks(jwt[-12:-2]) == [jwt]
    assert with_jwt.leaks(jwt.split(".")[0]) == []  # the header every HS256 JWT has


@pytest.mark.parametrize("path", SCRUB_PATHS)
@pytest.mark.parametrize("corpus_file", SECRET_FILES, ids=_name)
def test_no_planted_secret_survives(corpus_file: CorpusFile, path: str) -> None:
    scrubbed = SCRUB_PATHS[path](Redactor(KEY), corpus_file.text)
    assert corpus_file.leaks(scrubbed) == []


def test_everything_scrubbed_together_shows_no_leak() -> None:
    # What a lab test sees when it greps one database holding the whole corpus: no
    # fragment of one file's key may turn up in another file or in a public key.
    redactor = Redactor(KEY)
    everything = "\n".join(
        [redactor.scrub_text(f.text) for f in SECRET_FILES] + [f.text for f in PUBLIC_FILES]
    )
    assert [leak for f in SECRET_FILES for leak in f.leaks(everything)] == []


@pytest.mark.parametrize("path", SCRUB_PATHS)
@pytest.mark.parametrize("corpus_file", PUBLIC_FILES, ids=_name)
def test_public_lines_stay_byte_identical(corpus_file: CorpusFile, path: str) -> None:
    assert SCRUB_PATHS[path](Redactor(KEY), corpus_file.text) == corpus_file.text


@pytest.mark.parametrize("corpus_file", SECRET_FILES, ids=_name)
def test_scrubbing_the_corpus_twice_changes_nothing(corpus_file: CorpusFile) -> None:
    redactor = Redactor(KEY)
    once = redactor.scrub_text(corpus_file.text)
    assert redactor.scrub_text(once) == once


_PARSERS: dict[str, Callable[[str], object]] = {
    "json": json.loads,
    "toml": tomllib.loads,
    "yaml": lambda text: list(yaml.safe_load_all(text)),
}


@pytest.mark.parametrize(
    "corpus_file", [f for f in SECRET_FILES if f.format in _PARSERS], ids=_name
)
def test_scrubbed_structured_files_still_parse(corpus_file: CorpusFile) -> None:
    # The files collector parses the scrubbed text into settings.
    _PARSERS[corpus_file.format](Redactor(KEY).scrub_text(corpus_file.text))


def _through_files_collector(corpus_file: CorpusFile) -> str:
    path = "/etc/driftcheck-corpus/" + corpus_file.filename
    header = f"F\tfile\t644 root root {len(corpus_file.text)}\t{'0' * 64}\ttext\t{path}"
    raw = header + "\n" + "\n".join("|" + line for line in corpus_file.text.split("\n"))
    scrubbed = files.scrub(raw, Redactor(KEY)).split("\n")
    if "\tsensitive\t" in scrubbed[0]:
        # A credentials file by its name: the host never sends its text, and its
        # checksum is kept only keyed.
        assert "0" * 64 not in scrubbed[0] and "<redacted:" in scrubbed[0]
    else:
        assert scrubbed[0] == header
    return "\n".join(line[1:] for line in scrubbed[1:])


@pytest.mark.parametrize("corpus_file", SECRET_FILES, ids=_name)
def test_files_collector_leaks_no_planted_secret(corpus_file: CorpusFile) -> None:
    assert corpus_file.leaks(_through_files_collector(corpus_file)) == []


@pytest.mark.parametrize("corpus_file", PUBLIC_FILES, ids=_name)
def test_files_collector_keeps_public_lines(corpus_file: CorpusFile) -> None:
    assert _through_files_collector(corpus_file) == corpus_file.text


@pytest.mark.parametrize(
    "corpus_file", [f for f in SECRET_FILES if f.format == "crontab"], ids=_name
)
def test_cron_collector_leaks_no_planted_secret(corpus_file: CorpusFile) -> None:
    raw = "\n".join("|" + line for line in corpus_file.text.split("\n"))
    scrubbed = scrub_prefixed(raw, Redactor(KEY))
    assert corpus_file.leaks(scrubbed) == []
