"""Every package of the source tree is listed for setuptools, so `pip install .` ships it."""

from __future__ import annotations

import tomllib

from tests.support.paths import REPO

ROOT = REPO


def test_every_package_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = {name: ROOT / path for name, path in config["package-dir"].items()}
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "driftcheck").rglob("__init__.py")
    }
    for name, path in mapped.items():
        assert (path / "__init__.py").exists()
        on_disk |= {
            name + "".join("." + part for part in p.parent.relative_to(path).parts)
            for p in path.rglob("__init__.py")
        }
    assert on_disk == listed
