"""The python section on real hosts: the OS's python3, virtualenvs, planted drift.

Parsers are covered by tests/fixtures/python/; this checks the shell: that it
asks /usr/bin/python3 (never a python3 found first on PATH) and agrees with
importlib.metadata, that a configured virtualenv that is missing is an error,
that no python at all is "not applicable", that busybox gives the same bytes,
and, in the lab, that a package version that differs inside a virtualenv
between two hosts is the one python finding of a real ``driftcheck check``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from driftcheck.collectors import BY_NAME
from driftcheck.lab import Lab, LabHostSpec
from driftcheck.model import CollectSettings, ParseResult, SectionStatus
from driftcheck.script import Section, build_script, new_marker, split_output
from tests.support.helpers import run_section_locally

COLLECTOR = BY_NAME["python"]
SYSTEM_PYTHON = Path("/usr/bin/python3")

# importlib.metadata, run by the system interpreter itself: the independent oracle.
ORACLE = """
import importlib.metadata as md, json, platform, re, site
facts = {"system": platform.python_version()}
seen = {}
for i, d in enumerate(site.getsitepackages()):
    for dist in md.distributions(path=[d]):
        name = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        seen.setdefault(name, []).append((i, dist.version))
for name, found in seen.items():
    order = []
    for _, version in sorted(found):
        if version not in order:
            order.append(version)
    facts["system:" + name] = ", ".join(order)
print(json.dumps(facts))
"""


def run_local(settings: CollectSettings) -> tuple[SectionStatus, ParseResult, str]:
    raw = run_section_locally(COLLECTOR, settings)
    return raw.status, COLLECTOR.parse(raw.stdout), raw.stderr


def test_system_packages_agree_with_importlib_metadata() -> None:
    status, parsed, _ = run_local(CollectSettings())
    assert status is SectionStatus.OK
    oracle = subprocess.run(
        [str(SYSTEM_PYTHON), "-I", "-c", ORACLE], capture_output=True, text=True, check=True
    )
    assert parsed.facts == json.loads(oracle.stdout)
    assert parsed.errors == {}


def test_a_python3_first_on_path_is_not_the_system_python(tmp_path: Path) -> None:
    # Sections run with /usr/local/bin before /usr/bin: a python3 there (or a
    # pyenv shim) must not be mistaken for the OS's interpreter.
    impostor = tmp_path / "python3"
    impostor.write_text("#!/bin/sh\necho 9.9.9\necho /nonexistent/site-packages\n")
    impostor.chmod(0o755)
    body = COLLECTOR.shell_for(CollectSettings())
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "LC_ALL": "C"}
    proc = subprocess.run(["/bin/sh", "-c", body], capture_output=True, env=env, check=True)
    parsed = COLLECTOR.parse(proc.stdout.decode("utf-8", "backslashreplace"))
    version = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert parsed.facts["system"] == version != "9.9.9"


def make_venv(path: Path, packages: dict[str, str]) -> None:
    """A real virtualenv (no pip, for speed) holding dist-info metadata for ``packages``."""
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(path)], check=True)
    (site,) = path.glob("lib/python*/site-packages")
    for name, version in packages.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nVersion: 0.0\n"
        )


def test_virtualenvs_and_a_missing_one(tmp_path: Path) -> None:
    venv = tmp_path / "app venv's"  # a path that needs shell quoting
    make_venv(venv, {"Flask-Login": "0.6.3", "typing_extensions": "4.9.0"})
    missing = tmp_path / "never-created"
    status, parsed, _ = run_local(CollectSettings(python=(str(venv), str(missing))))
    assert status is SectionStatus.OK
    assert parsed.facts[f"{venv}:flask-login"] == "0.6.3"
    assert parsed.facts[f"{venv}:typing-extensions"] == "4.9.0"
    assert parsed.facts[str(venv)] == parsed.facts["system"]
    assert parsed.errors == {str(missing): "no such directory"}
    assert not any(k.startswith(str(missing)) for k in parsed.facts)


def test_busybox_gives_the_same_bytes(tmp_path: Path) -> None:
    busybox = shutil.which("busybox")
    assert busybox is not None
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for applet in ("sh", "awk", "sed", "tail", "ls"):
        (bindir / applet).symlink_to(busybox)
    venv = tmp_path / "venv"
    make_venv(venv, {"six": "1.16.0"})
    body = COLLECTOR.shell_for(CollectSettings(python=(str(venv), str(tmp_path / "gone"))))
    outputs = []
    for shell, path in (("/bin/dash", "/usr/bin:/bin"), (str(bindir / "sh"), f"{bindir}:/usr/bin")):
        env = {"PATH": path, "LC_ALL": "C"}
        outputs.append(
            subprocess.run([shell, "-c", body], capture_output=True, env=env, check=True).stdout
        )
    assert outputs[0] == outputs[1]
    parsed = COLLECTOR.parse(outputs[1].decode("utf-8", "backslashreplace"))
    assert parsed.facts[f"{venv}:six"] == "1.16.0"
    assert parsed.errors == {str(tmp_path / "gone"): "no such directory"}


# -- lab: real hosts -------------------------------------------------------------------

WHEELS = Path("/var/cache/driftcheck-lab/wheels")
VENV = "/opt/app/venv"
SIX = {"py-prod": "1.16.0", "py-stg": "1.15.0"}


def wheel(version: str) -> Path:
    """six's wheel from PyPI, cached on the real machine (the lab's root is an overlay of /)."""
    path = WHEELS / f"six-{version}-py2.py3-none-any.whl"
    if not path.exists():
        WHEELS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet"),
                *("--disable-pip-version-check", "--no-deps", "--only-binary", ":all:"),
                *("-d", str(WHEELS), f"six=={version}"),
            ],
            check=True,
            capture_output=True,
        )
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("lab")) as running:
        running.up(
            [
                LabHostSpec("py-prod", "production"),
                LabHostSpec("py-stg", "staging"),
                LabHostSpec("py-none", "staging"),
            ]
        )
        # The planting recipe: a real venv made inside each host by the OS's
        # python3, with six installed by the venv's pip from a cached wheel (lab
        # hosts have no network). Only the version of six differs.
        for host, version in SIX.items():
            running.exec(
                host,
                [
                    "sh",
                    "-c",
                    f"/usr/bin/python3 -m venv {VENV} && {VENV}/bin/pip install --quiet "
                    f"--no-index --disable-pip-version-check {wheel(version)}",
                ],
                timeout=300,
            )
        # No python at all on this host (its root is an overlay: the real one keeps it).
        running.exec("py-none", ["rm", "-f", str(SYSTEM_PYTHON), "/usr/libexec/platform-python"])
        yield running


@pytest.mark.lab
def test_planted_venv_version_is_the_only_python_finding(lab: Lab, tmp_path: Path) -> None:
    assert not Path(VENV).exists(), "the recipe must not touch the real machine"
    inventory = lab.inventory({"python": [VENV]})
    for env in inventory["environments"].values():
        env["hosts"] = {n: h for n, h in env["hosts"].items() if n in SIX}
    inv = tmp_path / "inv.yaml"
    inv.write_text(yaml.safe_dump(inventory, sort_keys=False))
    env = {
        **os.environ,
        "DRIFTCHECK_KEY_FILE": str(tmp_path / "hmac.key"),
        "DRIFTCHECK_DB": f"sqlite:///{tmp_path / 'dc.db'}",
    }
    report = tmp_path / "r.json"
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftcheck",
            "check",
            "-i",
            str(inv),
            "-f",
            "json",
            "-o",
            str(report),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert check.returncode == 1, check.stderr
    findings = json.loads(report.read_text())["findings"]
    python = [f for f in findings if f["collector"] == "python"]
    assert [(f["key"], f["state"]) for f in python] == [(f"{VENV}:six", "changed")]
    assert python[0]["values"] == SIX


@pytest.mark.lab
def test_no_python_and_no_venv_is_not_applicable(lab: Lab) -> None:
    marker = new_marker()
    section = Section(
        COLLECTOR.name, COLLECTOR.shell_for(CollectSettings()), 60, COLLECTOR.requires
    )
    proc = lab.exec("py-none", ["sh", "-s"], input=build_script([section], marker))
    raw = split_output(proc.stdout.encode(), proc.stderr.encode(), marker, [COLLECTOR.name])[
        COLLECTOR.name
    ]
    assert raw.status is SectionStatus.NOT_APPLICABLE
    assert "no system python3" in raw.stderr
    assert SYSTEM_PYTHON.exists()
