"""The Ansible inventory reader, checked against a real ``ansible-inventory --list``.

The oracle is ansible-core itself (the ``test`` extra installs it): for every fixture
inventory it must list the same hosts, group memberships and variables as
:func:`load_ansible_inventory` reads from the same files without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from driftcheck.ansible_inventory import load_ansible_inventory
from tests.support.paths import FIXTURES

ANSIBLE = FIXTURES / "ansible"

#: Every fixture inventory the oracle checks, and how many hosts it has.
ORACLE_CASES = {
    "ini/hosts.ini": 9,
    "yaml/hosts.yml": 9,
    "directory/inventory": 5,
    "priority/hosts.ini": 3,
    "proxy/hosts.ini": 6,
    "dynamic/inventory.py": 3,
}


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment in which ansible-inventory reads no user or machine configuration."""
    home = tmp_path_factory.mktemp("ansible-home")
    (home / "ansible.cfg").write_text("", encoding="utf-8")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        # An empty config file of our own: ./ansible.cfg, ~/.ansible.cfg and
        # /etc/ansible/ansible.cfg are then never read.
        "ANSIBLE_CONFIG": str(home / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
        "ANSIBLE_NOCOLOR": "1",
        "LANG": "C.UTF-8",
    }


def ansible_list(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """``ansible-inventory -i PATH --list`` as parsed JSON."""
    binary = shutil.which("ansible-inventory")
    assert binary, "ansible-core is a test dependency: pip install -e '.[test]'"
    proc = subprocess.run(
        [binary, "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["HOME"],
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def memberships(listing: dict[str, Any]) -> dict[str, set[str]]:
    """Host -> every group it is in, directly or through children, from --list JSON."""
    parents: dict[str, set[str]] = {}
    for group, body in listing.items():
        for child in body.get("children", []) if group != "_meta" else []:
            parents.setdefault(child, set()).add(group)

    def lineage(group: str) -> set[str]:
        return {group}.union(*(lineage(p) for p in parents.get(group, ())))

    hosts: dict[str, set[str]] = {}
    for group, body in listing.items():
        for host in body.get("hosts", []) if group != "_meta" else []:
            hosts.setdefault(host, set()).update(lineage(group))
    for host in listing["_meta"]["hostvars"]:
        hosts.setdefault(host, {"all"})
    return hosts


def as_json(value: Any) -> Any:
    """A value as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("case", sorted(ORACLE_CASES))
def test_ansible_inventory_agrees(case: str, ansible_env: dict[str, str]) -> None:
    path = ANSIBLE / case
    listing = ansible_list(path, ansible_env)
    expected = {
        host: (
            tuple(sorted(groups - {"all", "ungrouped"})),
            listing["_meta"]["hostvars"].get(host, {}),
        )
        for host, groups in memberships(listing).items()
    }
    hosts = load_ansible_inventory(path)
    got = {h.name: (h.groups, as_json(dict(h.vars))) for h in hosts}
    assert got == expected
    assert len(hosts) == ORACLE_CASES[case]
    assert all(set(h.sources) == set(h.vars) for h in hosts)


def test_ansible_list_adds_no_magic_variables(ansible_env: dict[str, str]) -> None:
    # What we compare against must be the inventory's own variables, nothing Ansible adds.
    listing = ansible_list(ANSIBLE / "priority" / "hosts.ini", ansible_env)
    magic = {"inventory_hostname", "inventory_file", "inventory_dir", "group_names", "groups"}
    for hostvars in listing["_meta"]["hostvars"].values():
        assert not magic & set(hostvars)
