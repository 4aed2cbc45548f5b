"""``apps``: the trimmed output of each configured version command."""

from __future__ import annotations

import shlex

from driftcheck.inventory import CollectSettings
from driftcheck.model import ParseResult

from .base import Collector, scrub_prefixed

APP_TIMEOUT = 20

# Per app: "A<TAB>NAME", its output lines prefixed with "|", then "R<TAB>RC".
_APP = """\
printf 'A\\t%s\\n' {name}
out=$($to sh -c {command} 2>&1 </dev/null); rc=$?
[ -n "$out" ] && printf '%s\\n' "$out" | awk '{{print "|" $0}}'
printf 'R\\t%s\\n' "$rc"
"""


def shell(settings: CollectSettings) -> str:
    """Run every configured command in its own ``sh -c`` with its own timeout."""
    if not settings.apps:
        return ":"
    head = f"to=; command -v timeout >/dev/null 2>&1 && to='timeout -k 2 {APP_TIMEOUT}'\n"
    return head + "".join(
        _APP.format(name=shlex.quote(name), command=shlex.quote(command))
        for name, command in settings.apps
    )


def parse(raw: str) -> ParseResult:
    """App name -> trimmed output; a failing command is an error (incomplete)."""
    facts: dict[str, str] = {}
    errors: dict[str, str] = {}
    name: str | None = None
    output: list[str] = []
    for line in raw.split("\n"):
        if line.startswith("A\t"):
            name, output = line[2:], []
        elif line.startswith("|") and name is not None:
            output.append(line[1:])
        elif line.startswith("R\t") and name is not None:
            rc = line[2:].strip()
            text = "\n".join(output).strip()
            if rc == "0":
                facts[name] = text
            else:
                why = "timed out" if rc in ("124", "137") else f"exit status {rc}"
                first = text.splitlines()[0] if text else "no output"
                errors[name] = f"command failed ({why}): {first}"
            name = None
    if name is not None:
        errors[name] = "output cut short"
    return ParseResult(facts, errors)


COLLECTOR = Collector(
    name="apps",
    description="application versions: trimmed output of each configured command",
    shell=shell,
    parse=parse,
    timeout=lambda s: 10.0 + (APP_TIMEOUT + 3) * len(s.apps),
    scrub=scrub_prefixed,
)
