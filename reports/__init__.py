"""Report renderers: one module per format behind one interface.

The format choice is an enum; ``RENDERERS`` maps every member to its renderer
(a test checks the mapping is exhaustive).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from driftcheck.drift import DriftReport

from . import html_report, json_report


class Format(StrEnum):
    """Output formats of ``driftcheck report`` and ``check``."""

    JSON = "json"
    HTML = "html"


Renderer = Callable[[DriftReport], str]

RENDERERS: dict[Format, Renderer] = {
    Format.JSON: json_report.render,
    Format.HTML: html_report.render,
}


def render(report: DriftReport, fmt: Format) -> str:
    """Render ``report`` in ``fmt``."""
    return RENDERERS[fmt](report)


__all__ = ["RENDERERS", "Format", "render"]
