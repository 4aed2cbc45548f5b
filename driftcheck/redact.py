"""Scrub secrets out of collected text before anything is parsed, stored or shown.

A secret value is replaced by a keyed hash (HMAC-SHA256 with a local key), so a
changed password still shows up as drift while the value itself never leaves the
host's process memory. The key is created on first use with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from driftcheck.errors import DriftcheckError

KEY_FILE_ENV = "DRIFTCHECK_KEY_FILE"

#: What a redacted value looks like; recognised so that scrubbing is idempotent
#: (re-scrubbing stored output must not hash the hash).
REDACTED = re.compile(r"<redacted:[0-9a-f]{16}>")

# A setting name is split into words (snake, kebab, dotted and camelCase); a name
# is secret when one of its words looks like one of these.
_SECRET_WORD = re.compile(
    r"^(?:.*pass(?:word|wd|phrase)?s?|pwd|.*secrets?|.*tokens?|credentials?|creds?|.*key"
    r"|privkey|.*apikey|auth|authtok|salt|bindpw|rootpw|.*pw|masterauth|psk|community)$",
    re.IGNORECASE,
)
# Words that contain a secret word but name something public.
_PUBLIC_WORD = re.compile(r"^(?:pub.*|public.*|bypass|keyring|keys?(?:ize|ring|map)s?)$", re.I)
# Values that cannot be a secret; keeping them readable keeps reports useful
# (sshd's "PubkeyAuthentication yes" or "PasswordAuthentication no").
_HARMLESS_VALUE = re.compile(
    r"^[\"']?(?:yes|no|true|false|on|off|none|null|0|1|)[\"']?$"
    # An absolute file path names where a key lives (ssl_certificate_key, HostKey).
    r"|^[\"']?/[\w./-]*[\"']?$",
    re.I,
)
# Directives that pass requests on, and words naming a realm, not a secret:
# nginx proxy_pass/fastcgi_pass, auth_basic "Restricted".
_PUBLIC_FIRST_WORD = frozenset({"proxy", "fastcgi", "uwsgi", "scgi", "grpc", "memcached"})

_ASSIGNMENT = re.compile(
    r"^(?P<pre>\s*(?:export\s+)?[\"']?)(?P<name>[A-Za-z_][\w.\-]*)(?P<q>[\"']?)"
    r"(?P<sep>\s*[:=]\s*|\s+)(?P<value>.*?)(?P<post>\s*[;,]?\s*)$"
)
_URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][\w+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)")
_XML_SECRET = re.compile(
    r"(?P<open><(?P<tag>[\w.\-]*(?:pass|secret|token|key|credential)[\w.\-]*)>)"
    r"(?P<value>[^<]*)(?P<close></(?P=tag)>)",
    re.IGNORECASE,
)
# A last word like these makes the setting *about* a secret (where it lives, how
# long it is), not the secret itself: "password_min_length", "token_ttl", "key_file".
_ABOUT_A_SECRET = frozenset(
    {
        "path",
        "file",
        "dir",
        "directory",
        "filename",
        "location",
        "length",
        "len",
        "size",
        "min",
        "max",
        "age",
        "expiry",
        "expires",
        "timeout",
        "ttl",
        "type",
        "algorithm",
        "algorithms",
        "interval",
        "tries",
        "attempts",
        "encryption",
        "basic",
        "realm",
        "enabled",
        "cipher",
        "format",
        "policy",
    }
)
# key=value pairs anywhere in a line: connection strings (Server=x;Password=y),
# libpq (host=db password=y), query strings (?token=y), XML attributes
# (password="y"), PHP ($db_password = 'y'), JSON on one line.
_INLINE = re.compile(
    r"(?P<name>[A-Za-z_$][\w.\-]*)(?P<sep>[\"']?\s*(?:=>|=|:)\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s;,&\"'<>)]+)"
)
# XML/.config pairs: <add key="DbPassword" value="y"/>, define('DB_PASSWORD', 'y').
_LABELLED = re.compile(
    r"(?P<head>(?:key|name)\s*=\s*\"(?P<label>[^\"]*)\"\s+value\s*=\s*\")(?P<value>[^\"]*)"
    r"|(?P<dhead>define\(\s*['\"](?P<dlabel>[^'\"]+)['\"]\s*,\s*(?P<q>['\"]))(?P<dvalue>.*?)(?=(?P=q))",
    re.IGNORECASE,
)
# HTTP credentials: Authorization: Bearer y, proxy_set_header Authorization "Basic y".
_AUTH_HEADER = re.compile(
    r"(?P<head>authorization[\"']?\s*[:=]?\s*[\"']?\s*(?:bearer|basic|token|digest|negotiate)\s+)"
    r"(?P<value>[^\s\"']+)",
    re.IGNORECASE,
)
# .netrc: machine h login u password y
_NETRC = re.compile(r"(?P<head>\bpassword\s+)(?P<value>\S+)", re.IGNORECASE)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_YAML_BLOCK = re.compile(r"^(?P<indent>\s*)(?P<name>[\w.\-]+)\s*:\s*[|>][-+0-9]*\s*(#.*)?$")
_WORD_SPLIT = re.compile(r"[._\-\s]+|(?<=[a-z0-9])(?=[A-Z])")


# Every line that any rule above could change contains one of these words (in lower
# case: a case-insensitive regex is many times slower); lines without them (most of
# sysctl -a or a config file) skip the expensive rules.
_CANDIDATE_WORDS = (
    *("pass", "pwd", "pw", "secret", "token", "cred", "key", "auth", "salt", "psk"),
    *("community", "://"),
)


def _prefix_tree(words: list[str]) -> str:
    """A regex matching any of ``words``, nested by common prefix (``a(?:uth|kia)``).

    The regex engine tries a flat alternation's branches one by one at every
    position; nested, one character comparison rules out all words but a few. A word
    with a shorter word as its prefix is left out: a prefilter only needs the shorter
    one.
    """
    branches: dict[str, list[str]] = {}
    for word in words:
        branches.setdefault(word[0], []).append(word[1:])
    alternatives = []
    for first, rests in sorted(branches.items()):
        ends_here = "" in rests
        alternatives.append(re.escape(first) + ("" if ends_here else _prefix_tree(rests)))
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"


_CANDIDATE = re.compile(_prefix_tree(sorted({word.lower() for word in _CANDIDATE_WORDS})))


def _may_hold_secret(line: str) -> bool:
    return _CANDIDATE.search(line.lower()) is not None


def is_secret_name(name: str) -> bool:
    """True when a setting called ``name`` probably holds a secret."""
    words = [w for w in _WORD_SPLIT.split(name) if w]
    if not words or words[-1].lower() in _ABOUT_A_SECRET:
        return False
    if words[0].lower() in _PUBLIC_FIRST_WORD:
        return False
    if any(_PUBLIC_WORD.match(w) for w in words):
        return False
    return any(_SECRET_WORD.match(w) for w in words)


class Redactor:
    """Replaces secret values with ``<redacted:HMAC>`` tokens."""

    def __init__(self, key: bytes) -> None:
        """Use ``key`` (at least 16 random bytes) for the keyed hash."""
        if len(key) < 16:
            raise ValueError("the redaction key must be at least 16 bytes")
        self._key = key

    @classmethod
    def from_key_file(cls, path: Path | None = None) -> Redactor:
        """Load the local key, creating it (mode 0600) when it does not exist yet."""
        path = path or default_key_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                key = path.read_bytes()
            else:
                key = secrets.token_bytes(32)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
        except OSError as exc:
            raise DriftcheckError(
                f"{path}: cannot read or create the redaction key ({exc.strerror}); "
                f"set {KEY_FILE_ENV} to a writable path"
            ) from None
        if len(key) < 16:
            raise DriftcheckError(
                f"{path}: the redaction key is too short; delete the file to create a new one"
            )
        return cls(key)

    def token(self, value: str) -> str:
        """The stable replacement for ``value``."""
        digest = hmac.new(self._key, value.encode("utf-8", "surrogateescape"), hashlib.sha256)
        return f"<redacted:{digest.hexdigest()[:16]}>"

    def _value(self, value: str) -> str:
        if REDACTED.fullmatch(value.strip("\"'")) or _HARMLESS_VALUE.match(value):
            return value
        # Keep quotes so that a scrubbed JSON/YAML/INI file still parses.
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            return value[0] + self.token(value[1:-1]) + value[0]
        return self.token(value)

    def scrub_line(self, line: str) -> str:
        """Redact secret assignments, URL passwords and XML secret elements in one line."""
        if not _may_hold_secret(line):
            return line  # the common case, decided by one cheap search
        line = _URL_CREDENTIALS.sub(lambda m: m["head"] + self._value(m["pw"]), line)
        line = _XML_SECRET.sub(lambda m: m["open"] + self._value(m["value"]) + m["close"], line)
        line = _AUTH_HEADER.sub(lambda m: m["head"] + self._value(m["value"]), line)
        line = _LABELLED.sub(self._labelled, line)
        m = _ASSIGNMENT.match(line)
        if m and m["value"] and is_secret_name(m["name"]):
            line = m["pre"] + m["name"] + m["q"] + m["sep"] + self._value(m["value"]) + m["post"]
        line = _INLINE.sub(self._inline, line)
        if _NETRC.search(line) and re.search(r"\b(?:machine|default)\b", line):
            line = _NETRC.sub(lambda m: m["head"] + self._value(m["value"]), line)
        return line

    def _inline(self, m: re.Match[str]) -> str:
        value = m["value"]
        if is_secret_name(m["name"].lstrip("$")):
            return m["name"] + m["sep"] + self._value(value)
        if len(value) > 2 and value[0] in "\"'":
            # A quoted value can hold pairs of its own: "host=db password=y".
            value = value[0] + _INLINE.sub(self._inline, value[1:-1]) + value[-1]
        return m["name"] + m["sep"] + value

    def _labelled(self, m: re.Match[str]) -> str:
        if m["head"] is not None:
            label, head, value = m["label"], m["head"], m["value"]
        else:
            label, head, value = m["dlabel"], m["dhead"], m["dvalue"]
        return head + (self._value(value) if is_secret_name(label) else value)

    def scrub_lines(self, lines: list[str]) -> list[str]:
        """Scrub a block of consecutive lines (one file's content, one command's output).

        Besides :meth:`scrub_line` on every line, this sees what spans lines: a PEM
        private key block, and a YAML block scalar (``password: |``) whose value is
        on the indented lines that follow. Each becomes one token line.
        """
        out: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            if _PEM_BEGIN.search(line):
                end = next((j for j in range(i + 1, len(lines)) if _PEM_END.search(lines[j])), None)
                if end is None:  # no END line: everything after BEGIN is key material
                    out += [line, self.token("\n".join(lines[i + 1 :]))]
                    break
                out += [line, self.token("\n".join(lines[i + 1 : end])), lines[end]]
                i = end + 1
                continue
            block = _YAML_BLOCK.match(line)
            if block and is_secret_name(block["name"]):
                indent = len(block["indent"])
                j = i + 1
                while j < len(lines) and (
                    not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
                ):
                    j += 1
                body = lines[i + 1 : j]
                out.append(line)
                if body:
                    pad = " " * (indent + 2)
                    out.append(pad + self.token("\n".join(body)))
                i = j
                continue
            out.append(self.scrub_line(line))
            i += 1
        return out

    def scrub_text(self, text: str) -> str:
        """Scrub a whole text, keeping its final newline."""
        if not text:
            return text
        scrubbed = "\n".join(self.scrub_lines(text.split("\n")))
        return scrubbed


def default_key_path() -> Path:
    """``$DRIFTCHECK_KEY_FILE``, else ``$XDG_CONFIG_HOME/driftcheck/hmac.key``."""
    env = os.environ.get(KEY_FILE_ENV)
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "driftcheck" / "hmac.key"
