"""Which paths the ``files`` collector may read: exclusions (``collect.exclude``).

The rule runs twice, from one definition: as sh on the host (so an excluded
file is never listed, read or hashed) and in Python on the controller (to drop
excluded entries before the script is built, and to validate the inventory).
Pure functions.

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
