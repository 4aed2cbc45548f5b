"""Text from hosts made safe to print on a terminal.

Collected data is hostile: an escape sequence in a file name, a command's output
or an error message could move the cursor, rewrite earlier lines, set the window
title or, on some terminals, answer back as typed input. Every terminal output
passes such text through :func:`printable`, which shows each control character
as its escape (ESC as the four characters ``\\x1b``) instead of sending it.
"""

from __future__ import annotations

import json
import re

# C0 controls except tab and newline, DEL, the C1 controls (U+0080-U+009F: a bare
# U+009B is CSI to some terminals) and the bidirectional overrides and isolates
# (they make displayed text read in another order than it is).
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_MULTILINE = re.compile(f"[{_UNSAFE}]")
_ONE_LINE = re.compile(f"[\t\n{_UNSAFE}]")
# What json.dumps(ensure_ascii=False) leaves as it is: it escapes only C0.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` with every control character shown as ``\\xNN`` (``\\uNNNN`` above
    U+00FF); tab and newline are kept unless ``one_line``, where they are escaped
    too so the text cannot start a line of its own."""
    return (_ONE_LINE if one_line else _MULTILINE).sub(_escape, text)


def printable_json(value: object, indent: int | None = 2) -> str:
    """``value`` as JSON that is also safe on a terminal: still valid JSON, with the
    characters json.dumps leaves raw (DEL, C1, bidirectional controls, line and
    paragraph separators) written as ``\\uNNNN`` escapes, which mean the same."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
