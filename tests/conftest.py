"""Suite-wide rules.

A skipped test is a failure here: every test needs only what .ci/run installs
(root, the namespace lab, busybox, rpm, PostgreSQL), so a skip can only mean a
missing install step, and a green run must never hide one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from driftcheck.storage import Store
from tests.support.postgres import postgres_server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Report a skip as a failure, with the skip's reason."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, which this suite does not allow: {report.longrepr}"


@pytest.fixture(scope="session")
def busybox_bin() -> Iterator[str]:
    """A folder where every command is a busybox applet: what Alpine has.

    Outside pytest's private temporary folders and world-readable, so tests can
    also run these applets as nobody.
    """
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is not installed: apt-get install busybox (see .ci/run)")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    with tempfile.TemporaryDirectory(prefix="dc-busybox-") as folder:
        os.chmod(folder, 0o755)
        for name in applets.stdout.split():
            os.symlink(busybox, os.path.join(folder, name))
        yield folder


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private PostgreSQL server, started once for the tests that need one."""
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same behaviour on both supported databases (a fresh database each test)."""
    if request.param == "sqlite":
        yield Store(f"sqlite:///{tmp_path / 'dc.db'}")
        return
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"t{tmp_path.name.replace('-', '_').lower()}"[:60]
    with engine.connect() as con:
        con.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    s = Store(url.replace("/postgres?", f"/{name}?"))
    yield s
    s.close()
