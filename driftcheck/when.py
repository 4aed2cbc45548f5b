"""Points and spans of time as users write them: ``7d``, ``12h``, ``2026-11-01``,
``2026-11-01T02:00``. All in UTC unless the text names an offset."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta

from driftcheck.errors import DriftcheckError

_SPAN = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_iso(text: str) -> datetime | None:
    """A stored timestamp as an aware datetime (UTC when it names no offset), or None."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def point(text: str, option: str, now: datetime, end_of_day: bool) -> datetime:
    """``text`` as a moment: a span back from ``now`` (``7d``, ``12h``, ``30m``,
    ``2w``), a date (its start, or its end with ``end_of_day``: "the report as it
    was on Monday" is the last run of Monday) or a date and time."""
    span = _SPAN.fullmatch(text.strip())
    if span:
        return now - timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        day = datetime.fromisoformat(text.strip()).date()
        return datetime.combine(day, time.max if end_of_day else time.min, UTC)
    value = parse_iso(text.strip())
    if value is None:
        raise DriftcheckError(
            f"{option} {text!r}: not a time; use e.g. 7d, 12h, 2026-11-01 or "
            "2026-11-01T02:00 (UTC unless an offset is given)"
        )
    return value
