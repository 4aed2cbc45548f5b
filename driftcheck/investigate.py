"""The investigation and history commands: ``diff``, ``history``, ``changes``,
``waivers`` and ``prune``.

Registered on the command line's app (:mod:`driftcheck.cli_common`) when
:mod:`driftcheck.cli` imports this module; thin, like every command: the library calls are in
:mod:`driftcheck.service` and :mod:`driftcheck.timeline`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from driftcheck import service
from driftcheck.cli_common import (
    EXIT_INCOMPLETE,
    AtOpt,
    Color,
    ColorOpt,
    DbOpt,
    FormatOpt,
    InventoryOpt,
    OutputOpt,
    QuietOpt,
    RunOpt,
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
from driftcheck.collectors import BY_NAME, REGISTRY
from driftcheck.collectors.files import file_text
from driftcheck.collectors.files import parse as parse_files
from driftcheck.errors import DriftcheckError
from driftcheck.filediffs import unified
from driftcheck.inventory import Inventory
from driftcheck.model import Host, HostSnapshot
from driftcheck.printable import printable, printable_json
from driftcheck.reports import Format
from driftcheck.reports.common import show_value
from driftcheck.reports.json_report import waiver_json
from driftcheck.storage import RunInfo, Store
from driftcheck.timeline import FactChange
from driftcheck.when import point


class ListFormat(StrEnum):
    """Formats of the listing commands (history, changes, waivers)."""

    TEXT = "text"
    JSON = "json"


ListFormatOpt = Annotated[ListFormat, typer.Option("--format", "-f")]


def _line(*fields: Any) -> None:
    """One row of a listing: fields from hosts cannot break the line or drive the terminal."""
    typer.echo("  ".join(printable(str(f), one_line=True) for f in fields))


@app.command()
@friendly
def diff(
    host_a: Annotated[
        str, typer.Argument(metavar="HOST_A", help="The reference host (e.g. prod-web2).")
    ],
    host_b: Annotated[
        str, typer.Argument(metavar="HOST_B", help="The host compared with it (e.g. stg-web1).")
    ],
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    collector: Annotated[
        list[str] | None,
        typer.Option(
            "--collector", "-c", help="Only this collector (repeatable).", show_default=False
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Only keys this glob matches, e.g. 'net.ipv4.*'.")
    ] = None,
    file: Annotated[
        str | None,
        typer.Option("--file", help="Print the unified diff of this collected file instead."),
    ] = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    run: RunOpt = None,
    at: AtOpt = None,
    color: ColorOpt = Color.AUTO,
) -> None:
    """Compare two hosts of any environments, HOST_A as the reference: volatile keys
    skipped, the inventory's rules applied, exit status as for 'report' (default
    format: text)."""
    targets = targets_for(fmt, output, Format.TEXT)
    inv = load(inventory)
    for name in (host_a, host_b):
        inv.host(name)
    if host_a == host_b:
        raise DriftcheckError(f"{host_a} given twice: name two hosts to compare")
    for name in collector or []:
        check_collector(name)
    store = Store(db, create=False)
    chosen = service.choose_run(inv, store, run, at)
    if file is not None:
        raise typer.Exit(_file_diff(store, chosen, (host_a, host_b), file))
    collectors = [BY_NAME[n] for n in collector] if collector else list(REGISTRY)
    rep = service.run_report(inv, store, chosen, collectors, pair=(host_a, host_b), keys=key)
    emit_report(rep, targets, quiet, color)


def _text_of(store: Store, run: RunInfo, host: str, path: str) -> tuple[str | None, str]:
    """(the file's scrubbed text, "") or (None, why there is none) in one run."""
    snap: HostSnapshot = snapshot_in(store, run, host, raw=True)
    sec = snap.sections.get("files")
    if sec is None or not sec.status.complete:
        why = sec.error if sec is not None and sec.error else "files section not collected"
        return None, why
    text = file_text(sec.facts, path)
    if text is None and sec.raw:
        # Runs stored before whole texts were kept: the raw output still has them.
        text = file_text(parse_files(sec.raw).facts, path)
    if text is not None:
        return text, ""
    if path in sec.errors:
        return None, sec.errors[path]
    fact = sec.facts.get(path)
    if isinstance(fact, dict):
        note = fact.get("content_note") or f"a {fact.get('type', 'non-text entry')}"
        return None, f"no text kept ({note})"
    return None, "absent on the host, or not in collect.files"


def _file_diff(store: Store, run: RunInfo, pair: tuple[str, str], path: str) -> int:
    """Print ``path``'s unified diff between the two hosts; the exit status: 0 the
    same, 1 different, 4 unknown on either host."""
    texts: list[str] = []
    for host in pair:
        text, why = _text_of(store, run, host, path)
        if text is None:
            err(f"{host}: {path}: {why}; the file cannot be compared (incomplete)")
            return EXIT_INCOMPLETE
        texts.append(text)
    lines = unified(texts[0], texts[1], f"{pair[0]}:{path}", f"{pair[1]}:{path}")
    out = "".join(line + "\n" for line in lines)
    if not out:
        err(f"{path}: the same on {pair[0]} and {pair[1]} (run {run.id}, {run.started_at})")
        return 0
    typer.echo(printable(out), nl=False)
    return 1


def _hosts(inv: Inventory, host: str | None, env: str | None, role: str | None) -> list[Host]:
    """The hosts one of --host, --env, --role selects (every host with none)."""
    if sum(x is not None for x in (host, env, role)) > 1:
        raise DriftcheckError("--host, --env and --role select hosts one way: give one of them")
    if host is not None:
        return [inv.host(host)]
    chosen = [
        h for h in inv.hosts if env in (None, h.environment) and (role is None or role in h.roles)
    ]
    if not chosen:
        what = f"--env {env}" if env is not None else f"--role {role}"
        raise DriftcheckError(f"{what}: no host of {inv.path} has it")
    return chosen


HostOpt = Annotated[str | None, typer.Option("--host", help="Only this host.")]
EnvOpt = Annotated[str | None, typer.Option("--env", help="Only this environment's hosts.")]


@app.command()
@friendly
def history(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    host: HostOpt = None,
    env: EnvOpt = None,
    last: Annotated[int, typer.Option("--last", min=1, help="How many runs, newest last.")] = 20,
    fmt: ListFormatOpt = ListFormat.TEXT,
) -> None:
    """List the finished runs: hosts collected, drift, incomplete and accepted
    findings (about the selected hosts), each run compared with today's rules."""
    inv = load(inventory)
    hosts = None if host is None and env is None else {h.name for h in _hosts(inv, host, env, None)}
    store = Store(db, create=False)
    rows = service.run_summaries(inv, store, hosts, last)
    if fmt is ListFormat.JSON:
        typer.echo(printable_json([_summary_json(r) for r in rows]))
        return
    if not rows:
        err(f"{store.url}: no finished run of {inv.path} yet")
        return
    _line("run", "started".ljust(25), "hosts", "drift", "incomplete", "accepted")
    for r in rows:
        collected = f"{r.complete}/{r.hosts}"
        _line(
            str(r.run.id).rjust(3),
            r.run.started_at.ljust(25),
            collected.rjust(5),
            str(r.drift).rjust(5),
            str(r.incomplete).rjust(10),
            str(r.accepted).rjust(8),
        )


def _summary_json(r: service.RunSummary) -> dict[str, Any]:
    return {
        "run": r.run.id,
        "started_at": r.run.started_at,
        "finished_at": r.run.finished_at,
        "hosts": r.hosts,
        "hosts_complete": r.complete,
        "drift": r.drift,
        "incomplete": r.incomplete,
        "accepted": r.accepted,
    }


@app.command()
@friendly
def changes(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    host: HostOpt = None,
    env: EnvOpt = None,
    role: Annotated[str | None, typer.Option("--role", help="Only this role's hosts.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="From then on: 7d, 12h, 2026-11-01 (its start) or a time; "
            "default: what the latest run saw change.",
            show_default=False,
        ),
    ] = None,
    fmt: ListFormatOpt = ListFormat.TEXT,
) -> None:
    """List what changed on each host from one run to the next (key, before, after,
    when): a host's drift against its own past. Volatile keys are skipped."""
    inv = load(inventory)
    chosen = _hosts(inv, host, env, role)
    store = Store(db, create=False)
    now = datetime.now(UTC)
    latest = service.choose_run(inv, store)
    moment = point(since, "--since", now, end_of_day=False) if since is not None else None
    found = service.changes(inv, store, chosen, moment)
    if since is None:
        found = [c for c in found if c.run_id == latest.id]
    if fmt is ListFormat.JSON:
        typer.echo(printable_json([_change_json(c) for c in found]))
        return
    if not found:
        err(
            "no change "
            + (f"since {moment.isoformat(timespec='seconds')}" if moment else f"in run {latest.id}")
            + f" on {len(chosen)} host(s) (volatile keys skipped)"
        )
        return
    for c in found:
        _line(c.at, c.host, c.collector, c.key, f"{show_value(c.before)} -> {show_value(c.after)}")


def _change_json(c: FactChange) -> dict[str, Any]:
    return {
        "at": c.at,
        "run": c.run_id,
        "previous_at": c.previous_at,
        "host": c.host,
        "collector": c.collector,
        "key": c.key,
        "before": c.before,
        "after": c.after,
    }


@app.command()
@friendly
def waivers(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    days: Annotated[
        int, typer.Option("--days", min=0, help="'expiring': expires within this many days.")
    ] = 14,
    fmt: ListFormatOpt = ListFormat.TEXT,
) -> None:
    """List the inventory's waivers: active, expiring, expired, and stale (covering
    no finding of the latest run), with owner, reason and expiry."""
    inv, store = open_inventory(inventory, db)
    rows, run = service.waiver_status(inv, store, days, datetime.now(UTC).date())
    if fmt is ListFormat.JSON:
        typer.echo(printable_json([_waiver_json(w) for w in rows]))
        return
    if not rows:
        err(f"{inv.path}: no waivers")
        return
    if run is None:
        err("no finished run yet: which waivers are stale is not known")
    for w in rows:
        r = w.waiver
        state = w.state + (", stale" if w.stale else "")
        covers = "?" if w.covers is None else str(w.covers)
        _line(
            state.ljust(15),
            r.expires.isoformat(),
            f"line {r.line}",
            r.owner,
            r.collector or "*",
            r.key,
            f"covers {covers}",
            r.reason,
        )


def _waiver_json(w: service.WaiverStatus) -> dict[str, Any]:
    return {
        "state": w.state,
        "stale": w.stale if w.covers is not None else None,
        "covers": w.covers,
        **waiver_json(w.waiver),
    }


@app.command()
@friendly
def prune(
    inventory: InventoryOpt = Path("inventory.yaml"),
    db: DbOpt = None,
    keep_days: Annotated[
        int | None, typer.Option("--keep-days", min=0, help="Remove runs older than this.")
    ] = None,
    keep_runs: Annotated[
        int | None, typer.Option("--keep-runs", min=1, help="Keep only the newest N runs.")
    ] = None,
) -> None:
    """Remove old runs of this inventory and every stored blob only they used (the
    newest run always stays; "since" then reaches back only as far as what is kept)."""
    if keep_days is None and keep_runs is None:
        raise DriftcheckError("say what to keep: --keep-days N and/or --keep-runs N")
    inv, store = open_inventory(inventory, db)
    removed, result = service.prune_runs(inv, store, keep_days, keep_runs, datetime.now(UTC))
    ids = f" ({removed[0].id}..{removed[-1].id})" if removed else ""
    err(
        f"removed {len(removed)} runs{ids}, {result.sections} sections and "
        f"{result.blobs} blobs no kept run uses, from {store.url}"
    )
