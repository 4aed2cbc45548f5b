"""Report renderers: one module per format behind one interface.

The format choice is an enum; ``RENDERERS`` maps every member to its renderer
(a test checks the mapping is exhaustive).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from driftcheck.findings import DriftReport

from . import html_report, json_report, junit_report, markdown_report, text_report


class Format(StrEnum):
    """Output formats of ``driftcheck report`` and ``check``."""

    JSON = "json"
    HTML = "html"
    MARKDOWN = "markdown"
    JUNIT = "junit"
    TEXT = "text"


Renderer = Callable[[DriftReport], str]

RENDERERS: dict[Format, Renderer] = {
    Format.JSON: json_report.render,
    Format.HTML: html_report.render,
    Format.MARKDOWN: markdown_report.render,
    Format.JUNIT: junit_report.render,
    Format.TEXT: text_report.render,
}

#: File name suffix -> format, for an ``--output`` given without its ``--format``.
SUFFIXES: dict[str, Format] = {
    ".json": Format.JSON,
    ".html": Format.HTML,
    ".htm": Format.HTML,
    ".md": Format.MARKDOWN,
    ".markdown": Format.MARKDOWN,
    ".xml": Format.JUNIT,
    ".txt": Format.TEXT,
}


def render(report: DriftReport, fmt: Format, *, color: bool = False) -> str:
    """Render ``report`` in ``fmt``; ``color``: ANSI colours in the text format."""
    if fmt is Format.TEXT:
        return text_report.render(report, color=color)
    return RENDERERS[fmt](report)


__all__ = ["RENDERERS", "SUFFIXES", "Format", "render"]
