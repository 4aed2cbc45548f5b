"""The explicit registry of collectors, in the order their sections run.

Adding a collector touches three places: its module, the line below, and its
fixtures under ``tests/fixtures/<name>/``.
"""

from __future__ import annotations

from . import apps, files, os_info, packages, sysctl
from .base import Collector

REGISTRY: tuple[Collector, ...] = (
    os_info.COLLECTOR,
    packages.COLLECTOR,
    sysctl.COLLECTOR,
    files.COLLECTOR,
    apps.COLLECTOR,
)

BY_NAME: dict[str, Collector] = {c.name: c for c in REGISTRY}

__all__ = ["BY_NAME", "REGISTRY", "Collector"]
