"""The planted-secrets corpus: config files in their programs' real syntax, with fake secrets.

``tests/fixtures/secrets/corpus.toml`` names two kinds of file in that directory: secret
files, in which every secret is a known planted value (listed there; PEM private key bodies
are found here instead), and public files, which hold no secret at all though they look as
if they might, and must come out of scrubbing byte for byte. Where each form comes from is in
``tests/fixtures/secrets/SOURCE.md``. (The directory is flat: a subdirectory of
``tests/fixtures/`` two levels down is a collector's parser case to tests/test_parsers.py.)

The unit tests scrub these files through the Redactor's entry points; an end-to-end lab test
can plant the same files on hosts and look for :meth:`CorpusFile.leaks` in the database and
in every report.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache

from tests.support.paths import FIXTURES

CORPUS_DIR = FIXTURES / "secrets"

#: Part of a PEM body or JWT is still a leak (a line of a key, a JWT's signature): any run
#: of this many of its characters found after scrubbing counts. Not in the parts every key
#: of a type shares: a JWT's header ('{"alg":"HS256",...}', not checked) and a PEM body's
#: first line (its ASN.1 or openssh header, checked whole: the runs of
#: "MIIEvQIBADANBgkqhkiG9w0BAQEF..." recur in a public key's "MIIBIjANBgkqhkiG9w0BAQEF...",
#: so that a lab test grepping a database that also holds public keys would see leaks that
#: are none).
FRAGMENT_LENGTH = 8

_PEM_PRIVATE = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----"
    r"(?P<body>.*?)"
    r"-----END (?P=label)-----",
    re.DOTALL,
)
# What separates the base64 lines of a body, in whichever way the file writes it: real
# newlines and indentation, JSON/TOML "\n" escapes, YAML "\" line continuations.
_PEM_LINE_BREAK = re.compile(r"(?:\\n|\\|\s)+")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


@dataclass(frozen=True)
class CorpusFile:
    """One corpus file: its format, its name in ``CORPUS_DIR``, its text, what was planted.

    ``planted`` is empty for a public file. A PEM private key's planted value is its body,
    one base64 line per line, whatever escaping the file wraps it in.
    """

    format: str
    filename: str
    text: str
    planted: tuple[str, ...]

    def leaks(self, scrubbed: str) -> list[str]:
        """The planted values of which something is still in ``scrubbed``.

        A value leaks when it appears whole; a PEM body or JWT also leaks when any
        ``FRAGMENT_LENGTH`` characters of it do.
        """
        return [value for value in self.planted if _leaked(value, scrubbed)]


def _fragments(value: str) -> set[str]:
    if _JWT.fullmatch(value):
        whole, parts = {value}, value.split(".")[1:]  # the header says only "JWT, HS256"
    elif "\n" in value:  # a PEM body
        first, *parts = value.split("\n")
        whole = {value, first}
    else:
        return {value}
    n = FRAGMENT_LENGTH
    return whole | {part[i : i + n] for part in parts for i in range(len(part) - n + 1)}


def _leaked(value: str, scrubbed: str) -> bool:
    return any(fragment in scrubbed for fragment in _fragments(value))


def pem_bodies(text: str) -> list[str]:
    """The body of each PEM private key block in ``text``, one base64 line per line."""
    bodies = []
    for m in _PEM_PRIVATE.finditer(text):
        lines = [part for part in _PEM_LINE_BREAK.split(m["body"]) if part]
        bodies.append("\n".join(lines))
    return bodies


@cache
def _manifest() -> dict[str, dict[str, dict[str, object]]]:
    with (CORPUS_DIR / "corpus.toml").open("rb") as f:
        return tomllib.load(f)


def _load(kind: str) -> list[CorpusFile]:
    files = []
    for name, entry in sorted(_manifest()[kind].items()):
        text = (CORPUS_DIR / name).read_text(encoding="utf-8")
        listed = entry.get("planted", [])
        assert isinstance(listed, list)
        planted = tuple(str(v) for v in listed) + tuple(pem_bodies(text))
        files.append(CorpusFile(str(entry["format"]), name, text, planted))
    return files


def secret_files() -> list[CorpusFile]:
    """Every file of planted secrets, sorted by name."""
    return _load("secret")


def public_files() -> list[CorpusFile]:
    """Every file of lines that are not secrets, sorted by name."""
    return _load("public")


def expected_pem_blocks(corpus_file: CorpusFile) -> int:
    """How many PEM private key blocks ``corpus.toml`` says the file holds."""
    count = _manifest()["secret"][corpus_file.filename].get("pem_blocks", 0)
    assert isinstance(count, int)
    return count
