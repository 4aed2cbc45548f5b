"""What a collector is: a declaration of the shell it runs and a pure parser.

A collector never touches a connection. The runner puts its shell into the one
combined script per host and hands the section's output to ``parse``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from driftcheck.model import CollectSettings, ParseResult
from driftcheck.redact import Redactor
from driftcheck.script import SECTION_MAX_BYTES

#: Why a key that exists could not be read: the collecting user lacks the right.
DENIED = "permission denied (collect as root or with sudo)"


@dataclass(frozen=True)
class Collector:
    """A fact source, declared.

    ``shell`` is the POSIX sh of the section, or a function building it from
    inventory parameters (every value shell-quoted); ``parse`` maps that section's
    stdout to facts and must be pure;
    ``requires`` lists tools of which at least one must exist on the host, else the
    section is "not applicable"; ``volatile`` are key globs that change by nature
    (counters, random values) and are never drift; ``scrub`` removes secrets from
    the raw output before it is parsed or stored; ``compare`` is False for
    evidence-only collectors.
    """

    name: str
    description: str
    shell: str | Callable[[CollectSettings], str]
    parse: Callable[[str], ParseResult]
    requires: tuple[str, ...] = ()
    #: seconds the section may run on the host, or a function of the parameters
    timeout: float | Callable[[CollectSettings], float] = 60.0
    #: bytes of stdout the section may send before it is cut (see script.py's caps),
    #: or a function of the parameters; most sections print far less
    max_output: int | Callable[[CollectSettings], int] = SECTION_MAX_BYTES
    volatile: tuple[str, ...] = ()
    scrub: Callable[[str, Redactor], str] | None = None
    #: False for collectors whose facts are evidence that explains other findings
    #: (which package owns a file, whether it was edited after install), never
    #: drift of their own.
    compare: bool = True

    def shell_for(self, settings: CollectSettings) -> str:
        """The section's shell for these inventory parameters."""
        return self.shell if isinstance(self.shell, str) else self.shell(settings)

    def timeout_for(self, settings: CollectSettings) -> float:
        """The section's timeout for these inventory parameters."""
        return self.timeout(settings) if callable(self.timeout) else float(self.timeout)

    def max_output_for(self, settings: CollectSettings) -> int:
        """The section's output cap for these inventory parameters."""
        cap = self.max_output
        return cap(settings) if callable(cap) else cap


def scrub_prefixed(raw: str, redactor: Redactor, prefix: str = "|") -> str:
    """Scrub only the lines that carry collected content (they start with ``prefix``).

    Header lines written by our own shell are left alone, so the parser still
    recognises them after scrubbing. Consecutive content lines are scrubbed as one
    block, so secrets spanning lines (a PEM private key, a YAML block scalar) are
    caught too.
    """
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        out.extend(prefix + line for line in redactor.scrub_lines(block))
        block.clear()

    for line in raw.split("\n"):
        if line.startswith(prefix):
            block.append(line[len(prefix) :])
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out)


def scrub_all(raw: str, redactor: Redactor) -> str:
    """Scrub every line of the output."""
    return redactor.scrub_text(raw)


def without_password_field(path: str, max_lines: int) -> str:
    """sh printing an /etc/passwd-style file with its second field (the password) blanked.

    FS=":" is a single literal character in every awk (mawk, gawk, busybox), so
    rebuilding the record after blanking $2 gives back the line byte for byte,
    minus the password; a line without ":" is passed on for the parser to ignore.
    More than ``max_lines`` lines is an error (exit 3), never a silently cut list.
    """
    return (
        f'awk -v max={max_lines} \'BEGIN {{ FS = ":"; OFS = ":" }}\n'
        f'  NR > max {{ print "more than " max " lines in {path}" > "/dev/stderr"; exit 3 }}\n'
        '  NF > 1 { $2 = "" }\n'
        f"  {{ print }}' {path}\n"
    )


def id_number(text: str) -> int | str:
    """A uid or gid as int; anything else (NIS "+" entries have none) as the text itself."""
    return int(text) if text.isascii() and text.isdigit() else text
