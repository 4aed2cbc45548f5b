"""What the command-line modules share: the app, its options, one-line errors,
report targets and how an inventory and its database are opened.

:mod:`driftcheck.cli` and :mod:`driftcheck.investigate` both register commands on
:data:`app`; keeping this apart keeps their imports one-way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from driftcheck import __version__
from driftcheck.collectors import BY_NAME
from driftcheck.errors import DriftcheckError
from driftcheck.findings import DriftReport
from driftcheck.inventory import Inventory, load_inventory
from driftcheck.model import HostSnapshot
from driftcheck.output import write_atomically
from driftcheck.printable import printable
from driftcheck.reports import SUFFIXES, Format, render
from driftcheck.storage import DB_ENV, RunInfo, Store

EXIT_USAGE, EXIT_INCOMPLETE = 2, 4
#: stdout's reader went away (as 128 + SIGPIPE, what a shell shows for such a tool)
EXIT_PIPE = 141

#: Every environment variable driftcheck reads, as --help lists them.
ENVIRONMENT = """\
Environment: DRIFTCHECK_DB (the database URL when --db is not given),
DRIFTCHECK_KEY_FILE (the secret-scrubbing key, default
$XDG_CONFIG_HOME/driftcheck/hmac.key), DRIFTCHECK_DEBUG=1 (tracebacks and the SSH
library's log), NO_COLOR (no colour on a terminal), SSH_AUTH_SOCK (the ssh-agent).

Exit status: 0 clean, 1 drift, 2 usage or input error, 4 incomplete data (bits)."""

app = typer.Typer(
    help="Find where staging no longer mirrors production, with evidence.",
    epilog=ENVIRONMENT,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help text: Rich markup would eat "[...]" in option help (defaults, env).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"driftcheck {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Find where staging no longer mirrors production, with evidence."""


InventoryOpt = Annotated[
    Path, typer.Option("--inventory", "-i", help="Inventory YAML.", show_default=True)
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar=DB_ENV,
        help="Database URL [default: sqlite:///driftcheck.db, in the current directory].",
        show_default=False,
    ),
]
JobsOpt = Annotated[
    int, typer.Option("--jobs", "-j", min=1, max=256, help="Hosts collected at once.")
]
FormatOpt = Annotated[
    list[Format] | None,
    typer.Option(
        "--format",
        "-f",
        help="Report format (default: json); repeat, with -o, for several reports of one run.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--output",
        "-o",
        help="Write the report here (default: stdout); repeatable, paired in order with -f; "
        "without its -f the format comes from the suffix (.json .html .md .xml .txt).",
        show_default=False,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Print nothing unless there is drift or incomplete data (for cron)."
    ),
]

RunOpt = Annotated[
    int | None,
    typer.Option(
        "--run", min=1, help="Read this run (ids: 'driftcheck history').", show_default=False
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Read the last run started by then: 2026-11-30 (the end of that day), "
        "2026-11-30T02:00, or 3d / 12h ago (UTC).",
        show_default=False,
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def err(message: str) -> None:
    """One line on stderr; what it carries from hosts (errors, names) cannot drive
    the terminal."""
    typer.echo(f"driftcheck: {printable(message, one_line=True)}", err=True)


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn user errors into one line on stderr and exit status 2, never a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DriftcheckError as exc:
            err(f"error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            err("interrupted; nothing was marked as a finished run")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            raise typer.Exit(_reader_gone()) from None
        except (typer.Exit, SystemExit):
            raise
        except Exception as exc:
            # A bug of ours must never read as "drift" (1) or "clean" (0).
            if os.environ.get("DRIFTCHECK_DEBUG"):
                raise
            err(
                f"internal error: {type(exc).__name__}: {exc} (please report it; "
                "DRIFTCHECK_DEBUG=1 shows the traceback)"
            )
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper


def _reader_gone() -> int:
    """The reader of stdout went away (``| head -1``): say nothing, and exit as a
    tool killed by SIGPIPE shows in the shell (141), never 1 (drift) or 2 (error).
    stdout is pointed at /dev/null so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE


#: Where one report goes: a format and a file, or None for stdout.
Target = tuple[Format, Path | None]


def targets_for(
    formats: list[Format] | None, outputs: list[Path] | None, default: Format = Format.JSON
) -> list[Target]:
    """Pair ``-f`` and ``-o`` options in order; see the README's multi-output rules.

    No option: JSON on stdout. One ``-f`` and no ``-o``: that format on stdout.
    Otherwise the i-th ``-o`` gets the i-th ``-f`` (which must not contradict a
    known suffix other than .txt), or without one the format its suffix names; a
    ``-f`` left without an ``-o``, an unknown suffix without ``-f`` and a file
    named twice are usage errors.
    """
    formats, outputs = list(formats or []), list(outputs or [])
    if not outputs:
        if len(formats) > 1:
            raise DriftcheckError(
                f"{len(formats)} --format options but no --output: give each format "
                "its own -o FILE (only one report can go to stdout)"
            )
        return [(formats[0] if formats else default, None)]
    if len(formats) > len(outputs):
        raise DriftcheckError(
            f"{len(formats)} --format options but {len(outputs)} --output: "
            f"-f {formats[len(outputs)]} has no -o FILE to go to (they pair up in order)"
        )
    targets: list[Target] = []
    for i, path in enumerate(outputs):
        named = SUFFIXES.get(path.suffix.lower())
        if i < len(formats):
            # Options pair by position among their own kind (-f with -f): catch the
            # likely slip of a pair written the wrong way round.
            if named is not None and named is not formats[i] and path.suffix.lower() != ".txt":
                raise DriftcheckError(
                    f"-f {formats[i]} pairs with -o {path}, whose name says {named}: "
                    "the i-th -f goes with the i-th -o; reorder them"
                )
            targets.append((formats[i], path))
            continue
        fmt = named
        if fmt is None:
            raise DriftcheckError(
                f"-o {path}: cannot tell the format from its name; put -f FORMAT before it "
                f"or use one of the suffixes {' '.join(dict.fromkeys(SUFFIXES))}"
            )
        targets.append((fmt, path))
    seen: set[str] = set()
    for path in outputs:
        real = os.path.realpath(path)
        if real in seen:
            raise DriftcheckError(f"-o {path}: given twice; each report needs its own file")
        seen.add(real)
    return targets


class Color(StrEnum):
    """When the text report is coloured."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


ColorOpt = Annotated[
    Color,
    typer.Option(
        "--color",
        help="Colour the text report on stdout: auto (a terminal, unless NO_COLOR is set), "
        "always (e.g. for less -R), never.",
    ),
]


def use_color(choice: Color) -> bool:
    """Whether stdout gets colour: --color wins; auto means a terminal and no NO_COLOR
    (https://no-color.org: any non-empty value)."""
    if choice is not Color.AUTO:
        return choice is Color.ALWAYS
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def emit(report: DriftReport, targets: list[Target], quiet: bool, color: Color) -> None:
    """Render every report, then write them; with ``quiet`` a clean report goes to
    its files but not to stdout (cron mails what is printed)."""
    # Render everything first: a renderer bug then leaves no report half-written.
    texts = [render(report, fmt, color=path is None and use_color(color)) for fmt, path in targets]
    for (_, path), text in zip(targets, texts, strict=True):
        if path is not None:
            write_atomically(path, text)
        elif not (quiet and report.exit_code == 0):
            sys.stdout.write(text)


def summary(report: DriftReport, outputs: list[Path], quiet: bool) -> None:
    if quiet and report.exit_code == 0:
        return
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n) or "no findings"
    bad = report.uncollected
    skipped = sum(report.volatile_skipped.values())
    err(
        f"{report.verdict}: {counts}; {len(report.hosts) - len(bad)}/{len(report.hosts)} hosts "
        f"collected completely; {skipped} volatile differences skipped"
    )
    for h in bad:
        err(f"  incomplete: {h.name}: {h.error}")
    for path in outputs:
        err(f"report written to {path}")


def load(inventory: Path) -> Inventory:
    """The inventory, its warnings (settings not followed) on stderr, once each."""
    inv = load_inventory(inventory)
    for warning in inv.warnings:
        err(f"warning: {warning}")
    return inv


def open_inventory(
    inventory: Path, db: str | None, create: bool = False
) -> tuple[Inventory, Store]:
    """The inventory and its database; only collecting (``create``) makes a new one."""
    return load(inventory), Store(db, create=create)


def check_collector(collector: str | None) -> None:
    if collector is not None and collector not in BY_NAME:
        raise DriftcheckError(
            f"--collector {collector!r}: unknown; use one of {', '.join(BY_NAME)}"
        )


def snapshot_in(store: Store, run: RunInfo, host: str, raw: bool = False) -> HostSnapshot:
    snap = store.snapshot(run.id, host, raw=raw)
    if snap is None:
        raise DriftcheckError(f"{host}: not collected in run {run.id} ({run.started_at})")
    return snap


def emit_report(
    rep: DriftReport, targets: list[Target], quiet: bool, color: Color = Color.AUTO
) -> None:
    """Write every requested report and the summary; exit with the report's status."""
    emit(rep, targets, quiet, color)
    summary(rep, [p for _, p in targets if p is not None], quiet)
    raise typer.Exit(rep.exit_code)
