"""The explicit registry of collectors, in the order their sections run.

Adding a collector touches three places: its module, the line below, and its
fixtures under ``tests/fixtures/<name>/``.
"""

from __future__ import annotations

from . import (
    apps,
    config_origin,
    cron,
    files,
    groups,
    kernel,
    os_info,
    package_relations,
    packages,
    ports,
    python_pkgs,
    services,
    sysctl,
    sysctl_config,
    users,
)
from .base import Collector

REGISTRY: tuple[Collector, ...] = (
    os_info.COLLECTOR,
    kernel.COLLECTOR,
    packages.COLLECTOR,
    package_relations.COLLECTOR,
    python_pkgs.COLLECTOR,
    services.COLLECTOR,
    users.COLLECTOR,
    groups.COLLECTOR,
    ports.COLLECTOR,
    cron.COLLECTOR,
    sysctl.COLLECTOR,
    sysctl_config.COLLECTOR,
    files.COLLECTOR,
    config_origin.COLLECTOR,
    apps.COLLECTOR,
)

BY_NAME: dict[str, Collector] = {c.name: c for c in REGISTRY}

__all__ = ["BY_NAME", "REGISTRY", "Collector"]
