"""Every registered collector is well-formed and has real-output fixtures."""

from __future__ import annotations

import pytest

from driftcheck.collectors import BY_NAME, REGISTRY, Collector
from driftcheck.model import AppSource, CollectSettings
from tests.support.paths import FIXTURES

SETTINGS = (
    CollectSettings(),
    CollectSettings(
        files=("/etc/it's here", "/etc/$(id)", "/etc/*.conf"),
        apps=(
            AppSource("cmd", "command", "echo 'x'"),
            AppSource("file", "file", "/opt/it's/VERSION"),
            AppSource("pkg", "package", "libc6"),
            AppSource("url", "url", "http://localhost:8080/version?a=1&b='2'"),
        ),
        python=("/opt/venv",),
    ),
)


def test_names_are_unique_and_stable() -> None:
    names = [c.name for c in REGISTRY]
    assert len(names) == len(set(names)) == len(BY_NAME)
    assert all(n.isidentifier() for n in names)


@pytest.mark.parametrize("collector", REGISTRY, ids=lambda c: c.name)
def test_collector_is_well_formed(collector: Collector) -> None:
    assert collector.description
    for settings in SETTINGS:
        shell = collector.shell_for(settings)
        assert shell.strip()
        assert 0 < collector.timeout_for(settings) <= 3600
    parsed = collector.parse("")
    assert parsed.facts == {} and parsed.errors == {}
    cases = [d for d in (FIXTURES / collector.name).glob("*") if d.is_dir()]
    assert cases, f"no fixtures under tests/fixtures/{collector.name}/"


def test_evidence_collectors_are_never_compared() -> None:
    assert [c.name for c in REGISTRY if not c.compare] == ["package_relations", "config_origin"]
