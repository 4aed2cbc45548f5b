"""Reading the history of runs: which run a command looks at, what changed on a
host from one run to the next, and the runs' drift over time.

The diff of one host against its own past is pure (:func:`section_changes`);
the rest reads the store for one inventory's finished runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftcheck.collectors import Collector
from driftcheck.errors import DriftcheckError
from driftcheck.model import ABSENT
from driftcheck.storage import RunInfo, SeriesEntry, Store
from driftcheck.when import parse_iso, point


def pick_run(
    store: Store, inventory: str, shown: str, run_id: int | None, at: str | None, now: datetime
) -> RunInfo:
    """The finished run a command reads: ``--run ID``, the last one started at or
    before ``--at TIME``, else the latest. ``shown`` names the inventory in errors."""
    if run_id is not None and at is not None:
        raise DriftcheckError("--run and --at both given: name the run one way")
    if run_id is not None:
        run = store.run(run_id)
        if run is None or run.inventory != inventory:
            raise DriftcheckError(
                f"--run {run_id}: no such run of {shown} in {store.url}; "
                f"'driftcheck history -i {shown}' lists them"
            )
        if run.finished_at is None:
            raise DriftcheckError(
                f"--run {run_id}: that collection never finished (interrupted); "
                "pick a finished run from 'driftcheck history'"
            )
        return run
    runs = store.runs(inventory)
    if at is not None:
        moment = point(at, "--at", now, end_of_day=True)
        runs = [r for r in runs if (parse_iso(r.started_at) or moment) <= moment]
        if not runs:
            raise DriftcheckError(
                f"--at {at}: no finished run of {shown} started by then in {store.url}"
            )
    if not runs:
        raise DriftcheckError(
            f"{store.url}: no finished collection yet; run 'driftcheck collect -i {shown}' first"
        )
    return runs[-1]


@dataclass(frozen=True)
class FactChange:
    """One key of one host that changed from one run to the next."""

    host: str
    collector: str
    key: str
    #: the value before and after (None where the key was absent)
    before: Any
    after: Any
    #: when the new value was first seen, and in which run
    at: str
    run_id: int
    #: when it was last seen with the old value
    previous_at: str


def section_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], volatile: re.Pattern[str] | None
) -> Iterator[tuple[str, Any, Any]]:
    """(key, before, after) for every key whose value differs, volatile keys skipped."""
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, ABSENT), after.get(key, ABSENT)
        if old == new or (volatile is not None and volatile.fullmatch(key)):
            continue
        yield key, None if old is ABSENT else old, None if new is ABSENT else new


def host_changes(
    store: Store,
    series: Sequence[SeriesEntry],
    host: str,
    collectors: Mapping[str, Collector],
    volatile: Mapping[str, re.Pattern[str] | None],
    since: datetime | None,
) -> list[FactChange]:
    """What changed on ``host`` between consecutive runs in which each section was
    collected completely, the later run at or after ``since``. A run in which a
    section was not collected is skipped: the change is dated to the next run that
    saw it (``previous_at`` says from when)."""
    last: dict[str, SeriesEntry] = {}
    out: list[FactChange] = []
    for entry in series:
        if entry.collector not in collectors or not collectors[entry.collector].compare:
            continue
        if entry.digest is None:
            continue
        prev = last.get(entry.collector)
        last[entry.collector] = entry
        if prev is None or prev.digest == entry.digest:
            continue  # content addressing: the same hash is the same facts
        when = parse_iso(entry.collected_at)
        if since is not None and when is not None and when < since:
            continue
        old, new = store.facts_of(prev.digest or ""), store.facts_of(entry.digest)
        if old is None or new is None:
            continue  # a damaged blob: nothing can be said about this step
        for key, before, after in section_changes(old, new, volatile.get(entry.collector)):
            out.append(
                FactChange(
                    host,
                    entry.collector,
                    key,
                    before,
                    after,
                    entry.collected_at,
                    entry.run_id,
                    prev.collected_at,
                )
            )
    return out
