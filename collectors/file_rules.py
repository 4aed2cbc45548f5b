"""Which paths the ``files`` collector may read, and how: exclusions and sensitive files.

Both rules run twice, from one definition: as sh on the host (so an excluded or
sensitive file's content never leaves it) and in Python on the controller (to
drop excluded literal entries before the script is built, and to re-check every
header the host sent before anything is parsed or stored). Pure functions.

**Exclusion globs** (``collect.exclude``), matched against whole absolute paths:

* ``*`` matches any run of characters but ``/``, ``?`` one character but ``/``,
  ``[abc]`` / ``[a-z]`` / ``[!abc]`` one character of (not of) a set, never ``/``;
* ``**`` as a whole path component matches any number of components, none
  included (``/etc/**/*.bak``); a trailing ``/**`` means everything below the
  directory, not the directory itself (``/etc/ssl/**`` keeps /etc/ssl's own mode);
* a pattern that matches a directory excludes its whole subtree; a trailing
  ``/`` changes nothing (``/etc/ssl/private`` = ``/etc/ssl/private/``);
* every other character matches itself (no backslash escapes).

On the host the test is one POSIX ERE run by awk over each listing (find's own
``-path`` lets ``*`` cross ``/``, which is not what the inventory says).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Sequence

# -- exclusion -----------------------------------------------------------------

#: The characters special in a POSIX ERE, escaped with a backslash to be literal
#: (POSIX defines the backslash escape for exactly these; "}" and "]" alone are
#: ordinary and escaping them would be undefined).
_ERE_SPECIAL = set(".[\\()*+?{|^$")


def exclude_error(pattern: str) -> str | None:
    """Why ``pattern`` cannot be an exclusion glob, or None when it can."""
    if not pattern.startswith("/"):
        return f"is not absolute; write it from the root, such as /{pattern.lstrip('./')}"
    if "\n" in pattern or "\0" in pattern:
        return "contains a newline or NUL byte; remove it"
    if not pattern.strip("/") or pattern.strip("/") == "**":
        return "would exclude everything; remove it or name what to leave out"
    for body in re.findall(r"\[([^\]]*)\]", pattern):
        if "/" in body or "\\" in body or "[" in body:
            return "has a [...] set with '/', '\\' or '['; a set matches one character of a name"
    try:
        re.compile(exclude_ere([pattern]))
    except re.error as exc:
        return f"has a [...] set that is not valid ({exc.msg}); write ranges low-high"
    return None


def _set_end(text: str, start: int) -> int:
    """Where the [...] set opened at ``start`` ends (-1: none, the '[' is literal).

    As in fnmatch, a ']' right after '[' or '[!' belongs to the set."""
    j = start + 1
    if text[j : j + 1] in ("!", "^"):
        j += 1
    if text[j : j + 1] == "]":
        j += 1
    return text.find("]", j)


def _component(text: str) -> str:
    """One path component of a glob as ERE: * ? and [...] never match '/'."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        end = _set_end(text, i) if c == "[" else -1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and end > 0:
            body = text[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            # ']' first in a set is literal in both ERE and Python; '^' first would negate.
            body = body if not body.startswith("^") else body[1:] + "^"
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = end
        else:
            out.append("\\" + c if c in _ERE_SPECIAL else c)
        i += 1
    return "".join(out)


def _pattern_ere(pattern: str) -> str:
    """One exclusion glob as an unanchored ERE that matches the excluded path itself."""
    parts = [p for p in pattern.split("/") if p]
    out = ""
    for i, part in enumerate(parts):
        if part == "**" and i == len(parts) - 1:
            out += "/.+"  # everything below, not the directory itself
        elif part == "**":
            out += "(/.*)?"  # any number of components, none included
        else:
            out += "/" + _component(part)
    return out


def exclude_ere(patterns: Sequence[str]) -> str:
    """One anchored ERE matching every path the patterns exclude and all paths below
    them; empty when there are none. Python's ``re`` reads it the same way."""
    if not patterns:
        return ""
    return "^(" + "|".join(_pattern_ere(p) for p in patterns) + ")(/.*)?$"


def is_excluded(path: str, patterns: Sequence[str]) -> bool:
    """True when ``path`` (absolute, no newline) is excluded by ``patterns``."""
    ere = exclude_ere(patterns)
    return bool(ere) and re.match(ere, path.rstrip("/") or "/") is not None


def keep_function(patterns: Sequence[str]) -> str:
    """sh defining ``_dc_keep``: a filter passing on the lines (paths) not excluded."""
    ere = exclude_ere(patterns)
    if not ere:
        return "_dc_keep() { cat; }\n"
    # Through the environment, not awk -v, which would interpret the backslashes.
    quoted = "'" + ere.replace("'", "'\"'\"'") + "'"
    return (
        f"dc_excl={quoted}\n"
        "_dc_keep() {\n"
        "  DC_EXCL=$dc_excl awk 'BEGIN { re = ENVIRON[\"DC_EXCL\"] } $0 !~ re'\n"
        "}\n"
    )


# -- sensitive files -------------------------------------------------------------

#: Backup suffixes stripped (once) before the name tests: shadow.dpkg-old is shadow.
BACKUP_SUFFIXES = (
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".dpkg-bak",
    ".dpkg-tmp",
    ".ucf-old",
    ".ucf-new",
    ".ucf-dist",
    ".rpmsave",
    ".rpmnew",
    ".rpmorig",
    ".apk-new",
    ".bak",
    ".old",
    ".orig",
    ".save",
)
#: Base names (glob) of files whose content is a secret however it is formatted.
SENSITIVE_NAMES = (
    "shadow",
    "gshadow",
    "opasswd",
    ".pgpass",
    ".netrc",
    ".git-credentials",
    "*credentials*",
    "*secret*",
    "*.key",
    "*.keytab",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "id_ecdsa_sk",
    "id_ed25519_sk",
    "ssh_host_*_key",
    "privkey*",
    "secring.*",
)
#: Whole paths (glob, ``*`` crossing '/') of directories holding only secrets.
SENSITIVE_PATHS = (
    "*/ssl/private/*",
    "*/private-keys-v1.d/*",
    "*/NetworkManager/system-connections/*",
)
#: The first line of a PEM private key (PKCS#1, PKCS#8, encrypted, OpenSSH, EC, PGP).
PEM_PRIVATE = re.compile(r"^-----BEGIN [A-Z0-9 ]*PRIVATE KEY")


def _stem(name: str) -> str:
    for suffix in BACKUP_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name[:-1] if name.endswith(("~", "-")) else name


def is_sensitive_name(path: str) -> bool:
    """True when ``path`` names a file whose content must never be read as text."""
    if any(fnmatch.fnmatchcase(path, p) for p in SENSITIVE_PATHS):
        return True
    stem = _stem(posixpath.basename(path))
    return any(fnmatch.fnmatchcase(stem, p) for p in SENSITIVE_NAMES)


def _case_word(pattern: str) -> str:
    """A sh case pattern: * ? [ ] active, every other character literal."""
    return "".join(c if c in "*?[]" else "\\" + c for c in pattern)


def sensitive_function() -> str:
    """sh defining ``_dc_sensitive PATH``: status 0 when PATH is sensitive by its name,
    or by its first bytes (a PEM private key, whatever the name; anywhere in a .pem)."""
    suffixes = "|".join("*" + _case_word(s) for s in BACKUP_SUFFIXES)
    names = "|".join(_case_word(n) for n in SENSITIVE_NAMES)
    paths = "|".join(_case_word(p) for p in SENSITIVE_PATHS)
    return f"""\
_dc_sensitive() {{
  case $1 in {paths}) return 0 ;; esac
  b=${{1##*/}}
  case $b in {suffixes}) b=${{b%.*}} ;; *[~-]) b=${{b%?}} ;; esac
  case $b in {names}) return 0 ;; esac
  [ -f "$1" ] && [ -r "$1" ] || return 1
  case $b in *.pem) grep -q 'PRIVATE KEY-----' "$1" 2>/dev/null && return 0 ;; esac
  first=$(head -c 80 "$1" 2>/dev/null)
  case ${{first%%"$nl"*}} in "-----BEGIN "*"PRIVATE KEY"*) return 0 ;; esac
  return 1
}}
"""
