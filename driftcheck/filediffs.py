"""Whole-file diffs: for a parsed config file whose settings differ, the unified
diff of its whole (scrubbed) text, reference host against each differing host.

The settings say *what* drifted; the whole file shows it in context (comments, the
order of sections), as a sysadmin would read it with ``diff -u``. Pure.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import replace

from driftcheck.collectors.files import FULL_TEXT, file_text
from driftcheck.findings import DriftReport, FileDiff
from driftcheck.model import SETTING_SEP, HostSnapshot

#: Diff lines kept per file in a report (``driftcheck diff --file`` prints all).
MAX_LINES = 400


def unified(text_a: str, text_b: str, label_a: str, label_b: str) -> list[str]:
    """``diff -u`` of two texts as lines without their newlines; a last line with
    no newline is marked as diff marks it."""
    out = []
    for line in difflib.unified_diff(
        text_a.splitlines(keepends=True),
        text_b.splitlines(keepends=True),
        fromfile=label_a,
        tofile=label_b,
    ):
        out.append(line.rstrip("\n"))
        if not line.endswith("\n"):
            out.append("\\ No newline at end of file")
    return out


def _text(snapshots: Mapping[str, HostSnapshot], host: str, path: str) -> str | None:
    snap = snapshots.get(host)
    sec = snap.sections.get("files") if snap is not None else None
    if sec is None or not sec.status.complete:
        return None
    return file_text(sec.facts, path)


def file_diffs(report: DriftReport, snapshots: Mapping[str, HostSnapshot]) -> DriftReport:
    """The report with a :class:`FileDiff` per parsed file with differing settings
    and each host that differs in it (where both texts were kept)."""
    wanted: dict[tuple[str, str], tuple[str, set[str]]] = {}
    for f in report.findings:
        if f.collector != "files" or SETTING_SEP not in f.key or f.key.endswith(FULL_TEXT):
            continue
        if not f.state.is_drift or not f.reference_hosts:
            continue
        path = f.key.split(SETTING_SEP, 1)[0]
        _, hosts = wanted.setdefault((f.role, path), (f.reference_hosts[0], set()))
        hosts.update(h for h in f.differing if h != f.reference_hosts[0])
    out = []
    for (role, path), (ref, hosts) in sorted(wanted.items()):
        base = _text(snapshots, ref, path)
        for host in sorted(hosts):
            other = _text(snapshots, host, path)
            if base is None or other is None:
                continue
            lines = unified(base, other, f"{ref}:{path}", f"{host}:{path}")
            if lines:
                kept = tuple(lines[:MAX_LINES])
                out.append(FileDiff(role, path, ref, host, kept, len(lines) - len(kept)))
    return replace(report, file_diffs=tuple(out)) if out else report
