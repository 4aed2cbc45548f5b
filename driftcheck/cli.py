"""The ``driftcheck`` command line: thin Typer commands over the library.

Exit status is a bitmask a script can read: 0 clean, 1 drift found, 2 usage or
input error, 4 incomplete data (so 5 = drift and incomplete).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from driftcheck import service
from driftcheck.become import sudoers_lines
from driftcheck.cli_common import (
    EXIT_INCOMPLETE,
    AtOpt,
    Color,
    ColorOpt,
    DbOpt,
    FormatOpt,
    InventoryOpt,
    JobsOpt,
    OutputOpt,
    QuietOpt,
    RunOpt,
    Target,
    app,
    check_collector,
    emit_report,
    err,
    friendly,
    load,
    open_inventory,
    snapshot_in,
    targets_for,
)
from driftcheck.collectors import REGISTRY
from driftcheck.errors import DriftcheckError
from driftcheck.hostconfig import host_settings
from driftcheck.inventory import Inventory
from driftcheck.model import Host, HostSnapshot, HostStatus, SectionResult
from driftcheck.printable import printable, printable_json
from driftcheck.redact import Redactor
from driftcheck.reports import Format
from driftcheck.runner import DEFAULT_JOBS
from driftcheck.service import TREND_RUNS
from driftcheck.storage import NoDatabaseError, Store


def _progress(quiet: bool) -> Callable[[HostSnapshot], None]:
    """One line per host on stderr (only the troubled ones with --quiet): what a log
    or a CI job keeps."""

    def show(snap: HostSnapshot) -> None:
        if quiet and snap.status is HostStatus.OK:
            return
        line = f"  {snap.status.value:<8} {snap.host:<24} {snap.duration:5.1f}s"
        err(line + (f"  {snap.error}" if snap.error else ""))

    return show


@contextmanager
def _collecting(total: int, quiet: bool) -> Iterator[Callable[[HostSnapshot], None]]:
    """A progress bar with each host's status on a terminal, plain lines elsewhere."""
    lines = _progress(quiet)
    if quiet or not sys.stderr.isatty():
        yield lines
        return
    console = Console(stderr=True)
    with Progress(
        TextColumn("collecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=total)

        def advance(snap: HostSnapshot) -> None:
            if snap.status is not HostStatus.OK:
                bar.console.print(
                    printable(
                        f"  {snap.status.value:<8} {snap.host:<24} {snap.error}", one_line=True
                    ),
                    markup=False,
                    highlight=False,
                )
            bar.update(
                task,
                advance=1,
                description=printable(f"{snap.host}: {snap.status.value}", one_line=True),
            )

        yield advance


def _report_and_exit(
    inv: Inventory,
    store: Store,
    targets: list[Target],
    quiet: bool,
    color: Color,
    run_id: int | None = None,
    at: str | None = None,
) -> None:
    """Compare once, write every requested report, exit with the report's status."""
    # The HTML report's chart compares earlier runs again: only when it is wanted.
    trend = TREND_RUNS if any(fmt is Format.HTML for fmt, _ in targets) else 0
    chosen = service.choose_run(inv, store, run_id, at)
    rep = service.run_report(inv, store, chosen, trend=trend)
    emit_report(rep, targets, quiet, color)


@app.command()
@friendly
def collect(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    jobs: JobsOpt = DEFAULT_JOBS,
    quiet: QuietOpt = False,
) -> None:
    """Collect facts from every host into the database (one SSH round trip per host)."""
    inv, store = open_inventory(inventory, db, create=True)
    with _collecting(len(inv.hosts), quiet) as on_host:
        _, snaps = service.collect(inv, store, Redactor.from_key_file(), jobs, on_host=on_host)
    bad = [s for s in snaps if s.status is not HostStatus.OK]
    if not quiet or bad:
        err(f"collected {len(snaps) - len(bad)}/{len(snaps)} hosts completely into {store.url}")
    raise typer.Exit(EXIT_INCOMPLETE if bad else 0)


@app.command()
@friendly
def report(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    run: RunOpt = None,
    at: AtOpt = None,
    color: ColorOpt = Color.AUTO,
) -> None:
    """Compare the latest collection (or an earlier one) and write a report; exit
    status says what it found."""
    targets = targets_for(fmt, output)
    inv, store = open_inventory(inventory, db)
    _report_and_exit(inv, store, targets, quiet, color, run, at)


@app.command()
@friendly
def check(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    jobs: JobsOpt = DEFAULT_JOBS,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    color: ColorOpt = Color.AUTO,
) -> None:
    """Collect, then report: the command for cron and CI parity gates."""
    targets = targets_for(fmt, output)  # a usage error before minutes of collection
    inv, store = open_inventory(inventory, db, create=True)
    with _collecting(len(inv.hosts), quiet) as on_host:
        service.collect(inv, store, Redactor.from_key_file(), jobs, on_host=on_host)
    _report_and_exit(inv, store, targets, quiet, color)


@app.command()
@friendly
def hosts(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    brief: Annotated[
        bool, typer.Option("--brief", help="One line per host, without the settings.")
    ] = False,
) -> None:
    """List the hosts, how each is reached and where every setting came from, with the
    status of its last collection."""
    inv = load(inventory)
    try:
        store: Store | None = Store(db, create=False)
    except NoDatabaseError as exc:
        # The settings are worth seeing before the first collection; say why no
        # status is shown instead of answering from a new, empty database.
        err(f"warning: {exc}")
        store = None
    for h in inv.hosts:
        snap = store.latest_snapshot(h.name) if store is not None else None
        status = f"{snap.status.value} at {snap.collected_at}" if snap else "never collected"
        if snap and snap.error:
            status += f" ({snap.error})"
        typer.echo(
            printable(
                f"{h.name}  [{h.environment}: {','.join(h.roles)}]  {_reach(h)}  {status}",
                one_line=True,
            )
        )
        if not brief:
            for key, value in host_settings(h):
                where = h.sources.get(key, "")
                typer.echo(printable(f"    {key:<16} {value:<40} {where}", one_line=True))


def _reach(h: Host) -> str:
    """How a host is reached, in one phrase."""
    if h.transport == "local":
        return "local" + (" (sudo)" if h.become else "")
    via = "".join(f" via {j.label()}" for j in h.jumps)
    return f"{h.user}@{h.address}:{h.port}{via}" + (" (sudo)" if h.become else "")


@app.command()
@friendly
def sudoers(inventory: InventoryOpt = Path("inventory.yaml")) -> None:
    """Print the sudoers rule(s) the become: sudo hosts need (for /etc/sudoers.d/driftcheck).

    The rule allows exactly the collection command, without a password. That
    command is a shell reading its script on stdin: whoever may log in as that
    user can run anything as root with it (see the README).
    """
    inv = load(inventory)
    lines = sudoers_lines(inv.hosts)
    if not lines:
        err("no host of this inventory has become: sudo; no sudoers rule is needed")
        raise typer.Exit(0)
    typer.echo("# /etc/sudoers.d/driftcheck (mode 0440; check it with visudo -cf FILE)")
    typer.echo("# Lets driftcheck run its collection command as root without a password.")
    typer.echo("# That command is a shell reading its script on stdin: it is root for")
    typer.echo("# whoever can log in as this user. Guard that login (see the README).")
    for line in lines:
        typer.echo(line)


class ShowFormat(StrEnum):
    """Formats of ``driftcheck show``."""

    TEXT = "text"
    JSON = "json"


@app.command()
@friendly
def show(
    host: Annotated[str, typer.Argument(metavar="HOST", help="Host name from the inventory.")],
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
    run: RunOpt = None,
    at: AtOpt = None,
) -> None:
    """Show the facts last collected from one host (or in an earlier run): the first
    thing to look at in a dispute."""
    inv = load(inventory)
    inv.host(host)  # the user's own mistakes first, then the database
    check_collector(collector)
    store = Store(db, create=False)
    if run is None and at is None:
        snap = store.latest_snapshot(host, raw=raw)
        if snap is None:
            raise DriftcheckError(
                f"{host}: never collected into {store.url}; run "
                f"'driftcheck collect -i {inventory}' first"
            )
    else:
        snap = snapshot_in(store, service.choose_run(inv, store, run, at), host, raw)
    sections = {n: s for n, s in snap.sections.items() if collector in (None, n)}
    if fmt is ShowFormat.JSON:
        typer.echo(printable_json(_snapshot_json(snap, sections, raw)))
    else:
        _show_text(snap, sections, raw)


def _snapshot_json(
    snap: HostSnapshot, sections: dict[str, SectionResult], raw: bool
) -> dict[str, Any]:
    """What ``show -f json`` prints: the snapshot with its facts or raw output."""
    return {
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


def _show_text(snap: HostSnapshot, sections: dict[str, SectionResult], raw: bool) -> None:
    """What ``show`` prints: a heading per section, then key<TAB>value lines (or the
    raw output); everything from the host with its control characters escaped."""

    def line(*fields: str) -> None:
        # Each field stays on its line and in its column; no host text can end one.
        typer.echo("\t".join(printable(f, one_line=True) for f in fields))

    error = f" - {snap.error}" if snap.error else ""
    line(f"# {snap.host} ({snap.environment}) collected {snap.collected_at}: {snap.status}{error}")
    for name, sec in sections.items():
        line(f"## {name}: {sec.status.value}{' - ' + sec.error if sec.error else ''}")
        if raw:
            text = printable(sec.raw)  # lines and tabs kept, as the host printed them
            sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
            continue
        for key, value in sec.facts.items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            typer.echo(f"{printable(key, one_line=True)}\t{printable(shown)}")
        for key, why in sec.errors.items():
            line(key, f"(unreadable: {why})")


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
        typer.echo(printable(text, one_line=True), err=True)

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
    where = f"-i {folder}/inventory.yaml --db sqlite:///{folder}/driftcheck.db"
    say(f"  driftcheck diff prod-web1 stg-web1 {where}")
    say(f"  driftcheck changes --host stg-web1 {where}")
    say(f"  driftcheck diff prod-web1 stg-web1 --file /etc/myapp/app.conf {where}")
    if found != expected or rep.incomplete:
        err("the report does not match what was planted: please report this as a bug")
        raise typer.Exit(1)


lab_app = typer.Typer(
    help="Throw-away SSH hosts built from Linux namespaces (needs root).", no_args_is_help=True
)
app.add_typer(lab_app, name="lab")


@lab_app.command("up")
@friendly
def lab_up(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="YAML file of hosts (see README).")],
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
        str | None,
        typer.Argument(metavar="LAB_ID", help="Lab id (default: every lab started with 'lab up')."),
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
@friendly
def list_collectors() -> None:
    """List every collector and what it reads."""
    for c in REGISTRY:
        needs = f" [needs {' or '.join(c.requires)}]" if c.requires else ""
        typer.echo(f"{c.name:<14} {c.description}{needs}")
        if c.volatile:
            typer.echo(f"{'':<14} volatile, never drift: {', '.join(c.volatile)}")


# The investigation, history and sign-off commands live in their own modules;
# importing them registers them on ``app`` (they import cli_common's options).
from driftcheck import investigate, signoff_cli  # noqa: E402, F401


def main() -> None:
    """Console-script entry point."""
    app()
