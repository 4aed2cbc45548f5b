"""Collect every host: one combined script per host, hosts in a bounded thread pool."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime

from driftcheck.become import sudo_refusal
from driftcheck.collectors import Collector
from driftcheck.model import (
    CollectSettings,
    Host,
    HostSnapshot,
    HostStatus,
    SectionResult,
    SectionStatus,
)
from driftcheck.redact import Redactor
from driftcheck.script import (
    RawSection,
    Section,
    SectionReader,
    build_script,
    new_marker,
)
from driftcheck.transports import CommandResult, TransportError, Transports

#: Default size of the connection pool: enough to hide network latency, small
#: enough not to look like an attack to a bastion or to exhaust file descriptors.
DEFAULT_JOBS = 16


def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def plan_sections(
    collectors: Sequence[Collector], settings: CollectSettings, host: Host
) -> list[Section]:
    """The sections every host runs, each timeout capped by the host's command timeout,
    each output by the collector's own cap."""
    return [
        Section(
            c.name,
            c.shell_for(settings),
            min(c.timeout_for(settings), host.command_timeout),
            c.requires,
            c.max_output_for(settings),
        )
        for c in collectors
    ]


def finish_section(collector: Collector, raw: RawSection, redactor: Redactor) -> SectionResult:
    """Scrub, then parse one section; a parser failure is an error, never empty facts.

    Output that could not be scrubbed is never kept: the section is an error with
    nothing stored but the reason.
    """
    try:
        stdout = collector.scrub(raw.stdout, redactor) if collector.scrub else raw.stdout
        stderr = redactor.scrub_text(raw.stderr)
    except Exception as exc:  # a scrubber bug must cost this section, not the run
        return SectionResult(
            collector.name,
            SectionStatus.ERROR,
            error=f"scrubbing secrets failed, nothing kept: {type(exc).__name__}: {exc}",
            rc=raw.rc,
        )
    result = SectionResult(collector.name, raw.status, raw=stdout, stderr=stderr, rc=raw.rc)
    last_err = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if raw.status is SectionStatus.OK:
        try:
            parsed = collector.parse(stdout)
        except Exception as exc:
            result.status = SectionStatus.ERROR
            result.error = f"parser failed: {type(exc).__name__}: {exc}"
            return result
        result.facts, result.errors = parsed.facts, parsed.errors
    elif raw.status is SectionStatus.NOT_APPLICABLE:
        if raw.rc == "na":
            result.error = "not applicable: none of " + ", ".join(collector.requires) + " found"
        else:  # the section itself said so, with its reason on stderr
            result.error = "not applicable" + (f": {last_err}" if last_err else "")
    elif raw.status is SectionStatus.TIMEOUT:
        result.error = "section timed out on the host"
    elif raw.status is SectionStatus.ERROR:
        result.error = f"exit status {raw.rc}" + (f": {last_err}" if last_err else "")
    elif raw.status is SectionStatus.TRUNCATED:
        result.error = raw.cut or "output cut short (connection lost or whole-command timeout)"
    else:
        result.error = "never ran (the collection stopped before this section)"
    return result


def collect_host(
    host: Host,
    collectors: Sequence[Collector],
    settings: CollectSettings,
    redactor: Redactor,
    transports: Transports,
) -> HostSnapshot:
    """Collect one host in one round trip; never raises for host trouble, and a bug of
    ours while reading one host's output costs that host, never the run."""
    started = time.monotonic()
    snap = HostSnapshot(host.name, host.environment, host.roles, HostStatus.FAILED, now_iso())
    marker = new_marker()
    names = [c.name for c in collectors]
    try:
        sections = plan_sections(collectors, settings, host)
        script = build_script(sections, marker)
        reader = SectionReader.for_sections(marker, sections)
        transport = transports.open(host)
        try:
            result = transport.run(script, host.command_timeout, reader)
        finally:
            transport.close()
    except TransportError as exc:
        return _failed(snap, str(exc), names, "host not collected", started)
    except Exception as exc:
        why = f"internal error while collecting: {type(exc).__name__}: {exc}"
        return _failed(snap, why, names, "host not collected", started)
    try:
        raw = reader.sections(names)
        refused = _never_started(host, raw, reader, redactor)
        if refused:
            return _failed(snap, refused, names, "host not collected", started)
        snap.sections = {c.name: finish_section(c, raw[c.name], redactor) for c in collectors}
    except Exception as exc:
        why = f"internal error while reading the output: {type(exc).__name__}: {exc}"
        return _failed(snap, why, names, "host output not read", started)
    snap.duration = time.monotonic() - started
    snap.status, snap.error = _host_status(snap, result, host, collectors)
    return snap


def _never_started(
    host: Host, raw: dict[str, RawSection], reader: SectionReader, redactor: Redactor
) -> str:
    """Why the script never ran although the login worked (sudo refused), or ""."""
    if host.become is None or any(r.status is not SectionStatus.MISSING for r in raw.values()):
        return ""
    return sudo_refusal(redactor.scrub_text(reader.outside_stderr()), host.user)


def _failed(
    snap: HostSnapshot, error: str, names: Sequence[str], why: str, started: float
) -> HostSnapshot:
    """``snap`` as a host of which nothing could be collected, and why."""
    snap.error = error
    snap.sections = {n: SectionResult(n, SectionStatus.MISSING, error=why) for n in names}
    snap.duration = time.monotonic() - started
    return snap


def _host_status(
    snap: HostSnapshot, result: CommandResult, host: Host, collectors: Sequence[Collector]
) -> tuple[HostStatus, str]:
    """ok only when every section is complete and every compared key could be read;
    else partial (or failed when no section is complete), with the first reason."""
    error = ""
    if result.timed_out:
        error = f"collection did not finish within command_timeout ({host.command_timeout:g}s)"
    elif result.cut_short:
        error = f"collection cut short: {result.cut_short}"
    elif result.rc not in (0, None):
        error = f"collection script exited with status {result.rc}"
    sections = snap.sections.values()
    complete = [s for s in sections if s.status.complete]
    bad = [f"{s.collector}: {s.error}" for s in sections if not s.status.complete]
    # A key that could not be read is unknown: the host was not collected completely,
    # even though the rest of its section compares (evidence-only collectors aside).
    compared = {c.name for c in collectors if c.compare}
    bad += [
        f"{s.collector}: {_unread(s.errors)}"
        for s in complete
        if s.errors and s.collector in compared
    ]
    if not bad:
        return HostStatus.OK, error
    status = HostStatus.PARTIAL if complete else HostStatus.FAILED
    return status, error or "; ".join(bad)


def _unread(errors: dict[str, str]) -> str:
    """The unreadable keys of a section in a few words: the first one and a count."""
    key, why = next(iter(errors.items()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{key}: {why}{more}"


def collect_all(
    hosts: Sequence[Host],
    collectors: Sequence[Collector],
    settings: CollectSettings,
    redactor: Redactor,
    jobs: int = DEFAULT_JOBS,
) -> Iterator[HostSnapshot]:
    """Collect ``hosts`` in parallel (at most ``jobs`` at once), yielding as they finish.

    Results are yielded to the caller's thread so that storage has one writer.
    """
    transports = Transports()
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(hosts) or 1))) as pool:
            futures = [
                pool.submit(collect_host, h, collectors, settings, redactor, transports)
                for h in hosts
            ]
            for future in as_completed(futures):
                yield future.result()
    finally:
        transports.close()
