"""``os``: distribution (os-release), kernel release and machine architecture."""

from __future__ import annotations

import shlex

from driftcheck.model import ParseResult

from .base import Collector

SHELL = """\
printf 'kernel_release=%s\\n' "$(uname -r)"
printf 'architecture=%s\\n' "$(uname -m)"
for f in /etc/os-release /usr/lib/os-release; do
  if [ -r "$f" ]; then sed 's/^/os_release./' "$f"; break; fi
done
"""


def parse(raw: str) -> ParseResult:
    """``key=value`` lines; os-release values are shell-quoted strings."""
    facts: dict[str, object] = {}
    for line in raw.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        # The shell prefixes every os-release line, comments included, so look
        # at the name after the prefix.
        name = key.removeprefix("os_release.")
        if not sep or not name or name.startswith("#") or " " in key:
            continue
        if key.startswith("os_release."):
            try:
                words = shlex.split(value, comments=False, posix=True)
            except ValueError:  # unbalanced quote: keep the text as written
                words = [value.strip().strip("\"'")]
            value = " ".join(words)
        facts[key] = value.strip()
    return ParseResult(facts)


COLLECTOR = Collector(
    name="os",
    description="os-release fields, kernel release (uname -r), architecture (uname -m)",
    shell=SHELL,
    parse=parse,
    timeout=15.0,
)
