"""The ``driftcheck`` command line: thin Typer commands over the library.

Exit status is a bitmask a script can read: 0 clean, 1 drift found, 2 usage or
input error, 4 incomplete data (so 5 = drift and incomplete).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from driftcheck import service
from driftcheck.collectors import BY_NAME, REGISTRY
from driftcheck.drift import DriftReport
from driftcheck.errors import DriftcheckError
from driftcheck.inventory import Inventory, load_inventory
from driftcheck.lab import LabError
from driftcheck.model import HostSnapshot, HostStatus
from driftcheck.output import write_atomically
from driftcheck.redact import Redactor
from driftcheck.reports import Format, render
from driftcheck.runner import DEFAULT_JOBS
from driftcheck.storage import Store

EXIT_DRIFT, EXIT_USAGE, EXIT_INCOMPLETE = 1, 2, 4

app = typer.Typer(
    help="Find where staging no longer mirrors production, with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

InventoryOpt = Annotated[
    Path, typer.Option("--inventory", "-i", help="Inventory YAML.", show_default=True)
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL [env DRIFTCHECK_DB; default sqlite:///driftcheck.db]"),
]
JobsOpt = Annotated[
    int, typer.Option("--jobs", "-j", min=1, max=256, help="Hosts collected at once.")
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Report format.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report here (default: stdout).")
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Print nothing unless there is drift or incomplete data (for cron)."
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def _err(message: str) -> None:
    typer.echo(f"driftcheck: {message}", err=True)


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn user errors into one line on stderr and exit status 2, never a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (DriftcheckError, LabError) as exc:
            _err(f"error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            _err("interrupted; nothing was marked as a finished run")
            raise typer.Exit(130) from None
        except (typer.Exit, SystemExit):
            raise
        except Exception as exc:
            # A bug of ours must never read as "drift" (1) or "clean" (0).
            if os.environ.get("DRIFTCHECK_DEBUG"):
                raise
            _err(
                f"internal error: {type(exc).__name__}: {exc} (please report it; "
                "DRIFTCHECK_DEBUG=1 shows the traceback)"
            )
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper


def _progress(quiet: bool) -> Callable[[HostSnapshot], None]:
    def show(snap: HostSnapshot) -> None:
        if quiet and snap.status is HostStatus.OK:
            return
        line = f"  {snap.status.value:<8} {snap.host:<24} {snap.duration:5.1f}s"
        _err(line + (f"  {snap.error}" if snap.error else ""))

    return show


def _emit(report: DriftReport, fmt: Format, output: Path | None) -> None:
    text = render(report, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomically(output, text)


def _summary(report: DriftReport, output: Path | None, quiet: bool) -> None:
    if quiet and report.exit_code == 0:
        return
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items() if n) or "no findings"
    bad = [h for h in report.hosts if h.status != HostStatus.OK]
    _err(
        f"{report.verdict}: {counts}; {len(report.hosts) - len(bad)}/{len(report.hosts)} hosts "
        f"collected completely"
    )
    for h in bad:
        _err(f"  incomplete: {h.name}: {h.error}")
    if output is not None:
        _err(f"report written to {output}")


def _report_and_exit(
    inv: Inventory, store: Store, fmt: Format, output: Path | None, quiet: bool
) -> None:
    rep = service.latest_report(inv, store)
    _emit(rep, fmt, output)
    _summary(rep, output, quiet)
    raise typer.Exit(rep.exit_code)


def _open(inventory: Path, db: str | None) -> tuple[Inventory, Store]:
    return load_inventory(inventory), Store(db)


@app.command()
@friendly
def collect(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    jobs: JobsOpt = DEFAULT_JOBS,
    quiet: QuietOpt = False,
) -> None:
    """Collect facts from every host into the database (one SSH round trip per host)."""
    inv, store = _open(inventory, db)
    _, snaps = service.collect(inv, store, Redactor.from_key_file(), jobs, on_host=_progress(quiet))
    bad = [s for s in snaps if s.status is not HostStatus.OK]
    if not quiet or bad:
        _err(f"collected {len(snaps) - len(bad)}/{len(snaps)} hosts completely into {store.url}")
    raise typer.Exit(EXIT_INCOMPLETE if bad else 0)


@app.command()
@friendly
def report(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    fmt: FormatOpt = Format.JSON,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Compare the latest collection and write a report; exit status says what it found."""
    inv, store = _open(inventory, db)
    _report_and_exit(inv, store, fmt, output, quiet)


@app.command()
@friendly
def check(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    jobs: JobsOpt = DEFAULT_JOBS,
    fmt: FormatOpt = Format.JSON,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Collect, then report: the command for cron and CI parity gates."""
    inv, store = _open(inventory, db)
    service.collect(inv, store, Redactor.from_key_file(), jobs, on_host=_progress(quiet))
    _report_and_exit(inv, store, fmt, output, quiet)


@app.command()
@friendly
def hosts(inventory: InventoryOpt = Path("inventory.yaml"), db: DbOpt = None) -> None:
    """List the inventory's hosts with the status of their last collection."""
    inv, store = _open(inventory, db)
    typer.echo(
        f"{'HOST':<24} {'ENVIRONMENT':<12} {'ROLES':<16} {'ADDRESS':<22} "
        f"{'LAST COLLECTED':<26} STATUS"
    )
    for h in inv.hosts:
        snap = store.latest_snapshot(h.name)
        where = "local" if h.transport == "local" else f"{h.address}:{h.port}"
        when = snap.collected_at if snap else "never"
        status = snap.status.value if snap else "-"
        if snap and snap.error:
            status += f" ({snap.error})"
        typer.echo(
            f"{h.name:<24} {h.environment:<12} {','.join(h.roles):<16} {where:<22} "
            f"{when:<26} {status}"
        )


class ShowFormat(StrEnum):
    """Formats of ``driftcheck show``."""

    TEXT = "text"
    JSON = "json"


@app.command()
@friendly
def show(
    host: Annotated[str, typer.Argument(help="Host name from the inventory.")],
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    collector: Annotated[
        str | None, typer.Option("--collector", "-c", help="Only this collector.")
    ] = None,
    fmt: Annotated[ShowFormat, typer.Option("--format", "-f")] = ShowFormat.TEXT,
    raw: Annotated[
        bool,
        typer.Option(
            "--raw", help="Print the raw (scrubbed) section output instead of parsed facts."
        ),
    ] = False,
) -> None:
    """Show the facts last collected from one host: the first thing to look at in a dispute."""
    inv, store = _open(inventory, db)
    inv.host(host)
    if collector is not None and collector not in BY_NAME:
        raise DriftcheckError(
            f"--collector {collector!r}: unknown; use one of {', '.join(BY_NAME)}"
        )
    snap = store.latest_snapshot(host, raw=raw)
    if snap is None:
        raise DriftcheckError(
            f"{host}: never collected into {store.url}; run "
            f"'driftcheck collect -i {inventory}' first"
        )
    sections = {n: s for n, s in snap.sections.items() if collector in (None, n)}
    if fmt is ShowFormat.JSON:
        data: dict[str, Any] = {
            "host": snap.host,
            "environment": snap.environment,
            "status": snap.status.value,
            "error": snap.error,
            "collected_at": snap.collected_at,
            "sections": {
                n: {
                    "status": s.status.value,
                    "error": s.error,
                    **({"raw": s.raw} if raw else {"facts": s.facts, "errors": s.errors}),
                }
                for n, s in sections.items()
            },
        }
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"# {snap.host} ({snap.environment}) collected {snap.collected_at}: "
        f"{snap.status.value}{' - ' + snap.error if snap.error else ''}"
    )
    for name, sec in sections.items():
        typer.echo(f"## {name}: {sec.status.value}{' - ' + sec.error if sec.error else ''}")
        if raw:
            sys.stdout.write(sec.raw if sec.raw.endswith("\n") or not sec.raw else sec.raw + "\n")
            continue
        for key, value in sec.facts.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            typer.echo(f"{key}\t{text}")
        for key, why in sec.errors.items():
            typer.echo(f"{key}\t(unreadable: {why})")


@app.command()
@friendly
def demo(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Folder for the reports [default: ./driftcheck-demo-TIMESTAMP]"
        ),
    ] = None,
) -> None:
    """Build three throw-away SSH hosts with planted drift, collect, report (needs root)."""
    from driftcheck import demo as scenario  # noqa: PLC0415 - only the demo needs the lab

    folder = output or scenario.default_output_dir()

    def say(text: str = "") -> None:
        typer.echo(text, err=True)

    rep, planted = scenario.run_demo(folder, say, _progress(False))
    found = {(f.collector, f.key, f.state.value) for f in rep.findings}
    expected = {(p.collector, p.key, p.state) for p in planted}
    say()
    say(f"verdict: {rep.verdict}; planted differences found:")
    for p in planted:
        mark = "found  " if (p.collector, p.key, p.state) in found else "MISSED "
        say(f"  {mark} {p.state:<12} {p.collector:<8} {p.key}  ({p.story})")
    for collector, key, state in sorted(found - expected):
        say(f"  UNEXPECTED {state:<9} {collector:<8} {key}")
    say()
    say(f"open the report:   {(folder / 'report.html').resolve()}")
    say(f"JSON for machines: {(folder / 'report.json').resolve()}")
    say("the lab hosts are gone, their facts are kept; for example:")
    say(
        f"  driftcheck show stg-web1 -c packages -i {folder}/inventory.yaml "
        f"--db sqlite:///{folder}/driftcheck.db"
    )
    if found != expected or rep.incomplete:
        _err("the report does not match what was planted: please report this as a bug")
        raise typer.Exit(1)


lab_app = typer.Typer(
    help="Throw-away SSH hosts built from Linux namespaces (needs root).", no_args_is_help=True
)
app.add_typer(lab_app, name="lab")


@lab_app.command("up")
@friendly
def lab_up(
    spec: Annotated[Path, typer.Argument(help="YAML file of hosts (see README).")],
    directory: Annotated[
        Path,
        typer.Option(
            "--dir", "-d", help="Folder for the lab's keys, known_hosts and inventory.yaml."
        ),
    ] = Path("lab"),
) -> None:
    """Build the hosts SPEC describes and leave them running; prints the inventory to use."""
    from driftcheck.lab import Lab, load_specs, require_root  # noqa: PLC0415 - lab only

    require_root()
    specs = load_specs(spec)
    directory.mkdir(parents=True, exist_ok=True)
    lab = Lab(directory.resolve(), detached=True)
    lab.up(specs)
    # Collect the files the spec plants, so their drift shows up without editing.
    planted = sorted({p for s in specs for p in (*s.files, *s.file_modes, *s.file_owners)})
    inventory = lab.write_inventory(directory / "inventory.yaml", {"files": planted})
    for name, host in lab.hosts.items():
        typer.echo(f"{name:<24} {host.spec.environment:<12} 127.0.0.1:{host.port}")
    typer.echo(f"lab {lab.lab_id} is up; inventory: {inventory}")
    typer.echo(f"try: driftcheck check -i {inventory} -f html -o report.html")
    typer.echo(f"stop it with: driftcheck lab down {lab.lab_id}")


@lab_app.command("down")
@friendly
def lab_down(
    lab_id: Annotated[
        str | None, typer.Argument(help="Lab id (default: every lab started with 'lab up').")
    ] = None,
) -> None:
    """Stop labs started with 'lab up' and remove everything they created."""
    from driftcheck.lab import require_root, stop_detached  # noqa: PLC0415

    require_root()
    stopped = stop_detached(lab_id)
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "no running lab"))


@lab_app.command("list")
@friendly
def lab_list() -> None:
    """List running labs and their hosts."""
    from driftcheck.lab import list_labs  # noqa: PLC0415

    labs = list_labs()
    if not labs:
        typer.echo("no running lab")
    for info in labs:
        kind = "detached" if info.detached else f"owned by pid {info.owner_pid}"
        typer.echo(f"{info.lab_id} ({kind}) in {info.workdir}")
        for name, port in info.hosts.items():
            typer.echo(f"  {name:<24} 127.0.0.1:{port}")


@app.command("collectors")
def list_collectors() -> None:
    """List every collector and what it reads."""
    for c in REGISTRY:
        needs = f" [needs {' or '.join(c.requires)}]" if c.requires else ""
        typer.echo(f"{c.name:<14} {c.description}{needs}")
        if c.volatile:
            typer.echo(f"{'':<14} volatile, never drift: {', '.join(c.volatile)}")


def main() -> None:
    """Console-script entry point."""
    app()
