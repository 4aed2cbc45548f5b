"""``apps``: the trimmed output of each configured version command."""

from __future__ import annotations

import re
import shlex

from driftcheck.model import AppSource, CollectSettings, ParseResult

from .base import Collector, scrub_prefixed

APP_TIMEOUT = 20

# Per app: "A<TAB>NAME", its output lines prefixed with "|", then "R<TAB>RC".
_APP = """\
printf 'A\\t%s\\n' {name}
out=$($to sh -c {command} 2>&1 </dev/null); rc=$?
[ -n "$out" ] && printf '%s\\n' "$out" | awk '{{print "|" $0}}'
printf 'R\\t%s\\n' "$rc"
"""


def _package_version(name: str) -> str:
    """sh printing the installed version of a package, whichever manager the host has."""
    q = shlex.quote(name)
    apk_pattern = shlex.quote(f"s/^{re.escape(name)}-([^ ]+) .*\\[installed\\].*/\\1/p")
    return (
        "if command -v dpkg-query >/dev/null 2>&1; then "
        f"dpkg-query -W -f='${{Version}}' {q}; "
        "elif command -v rpm >/dev/null 2>&1; then "
        f"rpm -q --qf '%|EPOCH?{{%{{EPOCH}}:}}:{{}}|%{{VERSION}}-%{{RELEASE}}' {q}; "
        "elif command -v apk >/dev/null 2>&1; then "
        f"v=$(apk list --installed {q} 2>/dev/null | sed -En {apk_pattern}); "
        f'[ -n "$v" ] && echo "$v" || {{ echo "package {name} is not installed" >&2; exit 1; }}; '
        "else echo 'no dpkg, rpm or apk on this host' >&2; exit 127; fi"
    )


def _url_fetch(url: str) -> str:
    """sh fetching a URL on the host itself, with curl or wget, failing on HTTP errors."""
    q = shlex.quote(url)
    return (
        f"if command -v curl >/dev/null 2>&1; then curl -fsS --max-time 10 {q}; "
        f"elif command -v wget >/dev/null 2>&1; then wget -q -T 10 -O - {q}; "
        "else echo 'no curl or wget on this host' >&2; exit 127; fi"
    )


def command_for(app: AppSource) -> str:
    """The shell command that prints ``app``'s version on the host."""
    if app.kind == "file":
        return f"cat -- {shlex.quote(app.value)}"
    if app.kind == "package":
        return _package_version(app.value)
    if app.kind == "url":
        return _url_fetch(app.value)
    return app.value


def shell(settings: CollectSettings) -> str:
    """Run every configured source in its own ``sh -c`` with its own timeout."""
    if not settings.apps:
        return ":"
    head = f"to=; command -v timeout >/dev/null 2>&1 && to='timeout -k 2 {APP_TIMEOUT}'\n"
    return head + "".join(
        _APP.format(name=shlex.quote(app.name), command=shlex.quote(command_for(app)))
        for app in settings.apps
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
    description="application versions: a command's output, a file, a package's version, or "
    "a URL fetched on the host",
    shell=shell,
    parse=parse,
    timeout=lambda s: 10.0 + (APP_TIMEOUT + 3) * len(s.apps),
    scrub=scrub_prefixed,
)
