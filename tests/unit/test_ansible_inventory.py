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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftcheck.ansible_inventory import (
    DYNAMIC_SOURCE,
    AnsibleHost,
    VaultedValue,
    connection_settings,
    load_ansible_inventory,
    load_dynamic,
)
from driftcheck.errors import InventoryError
from tests.support.paths import INVENTORIES

ANSIBLE = INVENTORIES / "ansible"

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
    data: dict[str, Any] = json.loads(proc.stdout, object_hook=untag)
    return data


def untag(obj: dict[str, Any]) -> Any:
    """--list writes !unsafe and !vault strings as {"__ansible_unsafe": str} and the like."""
    if len(obj) == 1 and next(iter(obj)) in ("__ansible_unsafe", "__ansible_vault"):
        return next(iter(obj.values()))
    return obj


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


def assert_agrees(path: Path, env: dict[str, str]) -> list[AnsibleHost]:
    """Read ``path`` both ways; the same hosts, groups and variables come out."""
    listing = ansible_list(path, env)
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
    assert all(set(h.sources) == set(h.vars) for h in hosts)
    return hosts


@pytest.mark.parametrize("case", sorted(ORACLE_CASES))
def test_ansible_inventory_agrees(case: str, ansible_env: dict[str, str]) -> None:
    hosts = assert_agrees(ANSIBLE / case, ansible_env)
    assert len(hosts) == ORACLE_CASES[case]


def test_ansible_list_adds_no_magic_variables(ansible_env: dict[str, str]) -> None:
    # What we compare against must be the inventory's own variables, nothing Ansible adds.
    listing = ansible_list(ANSIBLE / "priority" / "hosts.ini", ansible_env)
    magic = {"inventory_hostname", "inventory_file", "inventory_dir", "group_names", "groups"}
    for hostvars in listing["_meta"]["hostvars"].values():
        assert not magic & set(hostvars)


# ----------------------------------------------------------------------------- reading


def write(folder: Path, files: dict[str, str]) -> Path:
    """Lay out an inventory: {relative path: text}; returns the first file's path."""
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder / next(iter(files))


def by_name(hosts: list[AnsibleHost]) -> dict[str, AnsibleHost]:
    return {h.name: h for h in hosts}


def test_ini_values_are_typed_like_ansible(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    path = write(
        tmp_path,
        {
            "hosts": "[g]\n"
            "h1 a=1 b=True c='x y' d=\"[1, 2]\" e=yes f=1j g=\"{'k': (1, 2)}\" h=\"'1'\"\n"
            "[g:vars]\n"
            "v1 = 5 # five\nv2=yes # a comment is part of a string\nv3=\"'quoted'\"\nv4=\n",
        },
    )
    (host,) = assert_agrees(path, ansible_env)
    # Host lines are shlex-split first, so quotes go before literal_eval sees the value.
    assert dict(host.vars) == {
        "a": 1, "b": True, "c": "x y", "d": [1, 2], "e": "yes", "f": "1j",
        "g": {"k": [1, 2]}, "h": "1",
        "v1": 5, "v2": "yes # a comment is part of a string", "v3": "'quoted'", "v4": "",
    }  # fmt: skip
    assert host.sources["a"] == "hosts:2"
    assert host.sources["v3"] == "hosts:6"


def test_host_port_ranges_and_first_port_only(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    path = write(
        tmp_path,
        {
            "hosts.ini": "[a]\nn[1:3:2]-[x:y]:2200\n[b]\nn1-x:2300\n[c]\n"
            "[2001:db8::1]:2400\nweird@name:22\n",
        },
    )
    hosts = by_name(assert_agrees(path, ansible_env))
    assert list(hosts) == ["n1-x", "n1-y", "n3-x", "n3-y", "2001:db8::1", "weird@name:22"]
    # Ansible takes the port from the first line that names a host; later ones are ignored.
    assert hosts["n1-x"].vars == {"ansible_port": 2200}
    assert hosts["n1-x"].groups == ("a", "b")
    assert hosts["2001:db8::1"].vars == {"ansible_port": 2400}
    assert hosts["weird@name:22"].vars == {}


def test_ungrouped_hosts_and_group_names(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    path = write(tmp_path, {"hosts": "solo\nboth\n[web-servers]\nboth\n"})
    hosts = by_name(assert_agrees(path, ansible_env))
    assert hosts["solo"].groups == ()
    # Not "web_servers": Ansible leaves invalid group names alone unless configured to.
    assert hosts["both"].groups == ("web-servers",)


def test_children_declared_before_their_groups(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    path = write(
        tmp_path,
        {"hosts": "[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh1\n[top:vars]\nx=1\n"},
    )
    (host,) = assert_agrees(path, ansible_env)
    assert host.groups == ("leaf", "mid", "top")
    assert host.vars == {"x": 1}


def test_vars_files_beside_a_yaml_inventory(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    path = write(
        tmp_path,
        {
            "inv.yaml": "all:\n  hosts:\n    h1:\n      a: inline\n      b: inline\n",
            "host_vars/h1/10-first.yml": "a: first\nb: first\n",
            "host_vars/h1/20-second": "b: second\n",
            "host_vars/h1/notes.txt": "b: ignored\n",
            "host_vars/h1/.hidden.yml": "b: hidden\n",
        },
    )
    (host,) = assert_agrees(path, ansible_env)
    assert host.vars == {"a": "first", "b": "second"}
    assert host.sources == {"a": "host_vars/h1/10-first.yml", "b": "host_vars/h1/20-second"}


def test_unsafe_and_vault_tags(tmp_path: Path, ansible_env: dict[str, str]) -> None:
    path = write(
        tmp_path,
        {
            "inv.yml": "all:\n  hosts:\n    h1:\n      a: !unsafe '{{ raw }}'\n"
            "      b: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        6162\n",
        },
    )
    (host,) = assert_agrees(path, ansible_env)
    assert host.vars["a"] == "{{ raw }}"
    assert isinstance(host.vars["b"], VaultedValue)


def test_a_vaulted_vars_file_is_left_out(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "hosts": "h1\n",
            "group_vars/all/main.yml": "db_password: '{{ vault_db_password }}'\n",
            "group_vars/all/vault.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n",
        },
    )
    (host,) = load_ansible_inventory(path)
    assert host.vars == {"db_password": "{{ vault_db_password }}"}


def test_a_directory_with_a_script_goes_to_ansible(
    tmp_path: Path, ansible_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # One dynamic source makes the whole directory Ansible's to evaluate.
    inventory = tmp_path / "inventory"
    shutil.copytree(ANSIBLE / "dynamic", inventory)
    write(inventory, {"static.ini": "[lb]\nlb1 ansible_port=2200\n"})
    monkeypatch.setenv("ANSIBLE_CONFIG", ansible_env["ANSIBLE_CONFIG"])
    hosts = by_name(load_ansible_inventory(inventory))
    assert set(hosts) == {
        "web1.cloud.example.com", "web2.cloud.example.com", "db1.cloud.example.com", "lb1"
    }  # fmt: skip
    assert hosts["lb1"].vars == {"ansible_port": 2200, "region": "eu-west-1"}
    assert hosts["lb1"].sources == {"ansible_port": DYNAMIC_SOURCE, "region": DYNAMIC_SOURCE}
    assert hosts["web1.cloud.example.com"].groups == ("prod", "web")


def first_line_error(path: Path) -> str:
    with pytest.raises(InventoryError) as caught:
        load_ansible_inventory(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


INI_ERRORS = {
    "[web servers]\n": "2: invalid section [web servers]; write [group], [group:vars]",
    "[web:hosts2]\n": "2: section [web:hosts2] has unknown type 'hosts2'; use :vars or :children",
    "[web]\nweb1 port\n": "3: expected key=value after the host name, got 'port'; fix it",
    "[web]\nweb1 a='b\n": "3: cannot split host line (No closing quotation); close the quotes",
    "[web]\nweb1:\n": "3: host 'web1:' ends in ':'; give a port after it or remove it",
    "[web]\nweb[1:]\n": "3: host range [1:] must be [begin:end] or [begin:end:step]",
    "[web]\nweb[01:3]\n": "3: host range [01:3] must have begin and end of equal length",
    "[web]\n---\n": "3: '---' is not a host (this looks like YAML); name the file .yml",
    "[web:vars]\nx=1\n": "2: [web:vars] is for a group that is never declared; add a [web]",
    "[web:vars]\njust words\n": "3: expected key=value in a :vars section, got 'just words'",
    "[p:children]\nc\n": "3: [p:children] names group 'c' that is never declared; add a [c]",
    "[p:children]\nc x\n": "3: expected a group name in a :children section, got 'c x'",
    "[a:children]\nb\n[b:children]\na\n": "5: group 'a' as a child of 'b' makes a loop",
    "[a]\n[a:vars]\nansible_group_priority=high\n": (
        "4: ansible_group_priority of group 'a' is 'high', not a number; set it to an integer"
    ),
}


@pytest.mark.parametrize("text", sorted(INI_ERRORS))
def test_ini_errors(text: str, tmp_path: Path) -> None:
    path = write(tmp_path, {"hosts.ini": "# inventory\n" + text})
    assert first_line_error(path).startswith(f"{path}:{INI_ERRORS[text]}")


YAML_ERRORS = {
    "all:\n  hosts: [a, b]\n": "2: hosts of group 'all' must be a mapping, not a list",
    "all:\n  hosts:\n    123:\n": "3: host 123 must be a string; put it in quotes",
    "all:\n  hosts:\n    h1: [x]\n": "3: host 'h1' must map to its variables or to nothing",
    "all:\n  hosts:\n   h1:\n  - x\n": "4: invalid YAML (",
    "- all\n": "1: a YAML inventory must be a mapping of group names; start it with all:",
    "# nothing\n": " the YAML inventory is empty; add an all: group or remove the file",
}


@pytest.mark.parametrize("text", sorted(YAML_ERRORS))
def test_yaml_errors(text: str, tmp_path: Path) -> None:
    path = write(tmp_path, {"hosts.yml": text})
    expected = YAML_ERRORS[text]
    assert first_line_error(path).startswith(f"{path}:{expected}")


def test_a_vars_file_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, {"hosts": "h1\n", "host_vars/h1.yml": "- a\n- b\n"})
    assert first_line_error(path) == (
        f"{tmp_path}/host_vars/h1.yml: a vars file must be a mapping of variable: value; fix it"
    )


def test_missing_inventory_and_toml(tmp_path: Path) -> None:
    assert first_line_error(tmp_path / "nope") == (
        f"{tmp_path}/nope: no such inventory file or directory; check the path"
    )
    toml = write(tmp_path, {"hosts.toml": "[all.hosts]\n"})
    assert first_line_error(toml).endswith("convert it to INI or YAML")


# ----------------------------------------------------------------------------- dynamic


def test_a_plugin_configuration_goes_to_ansible(
    tmp_path: Path, ansible_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, {"cloud.yml": "plugin: no_such_plugin_here\n"})
    monkeypatch.setenv("ANSIBLE_CONFIG", ansible_env["ANSIBLE_CONFIG"])
    message = first_line_error(path)
    assert message.startswith(f"{path}: ansible-inventory --list failed: ")
    assert message.endswith("; fix the inventory source")


def test_a_failing_script_gives_the_last_stderr_line(
    tmp_path: Path, ansible_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, {"inv.sh": "#!/bin/sh\necho 'CMDB unreachable' >&2\nexit 3\n"})
    path.chmod(0o755)
    monkeypatch.setenv("ANSIBLE_CONFIG", ansible_env["ANSIBLE_CONFIG"])
    assert first_line_error(path) == (
        f"{path}: ansible-inventory --list failed: Completely failed to parse inventory "
        f"source {path}; fix the inventory source"
    )


def test_a_dynamic_inventory_without_ansible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    path = ANSIBLE / "dynamic" / "inventory.py"
    assert first_line_error(path) == (
        f"{path}: is a dynamic inventory and ansible-inventory is not installed; "
        "install ansible-core (pip install ansible-core) or use a static inventory"
    )


def fake_run(stdout: str = "", error: BaseException | None = None) -> Callable[..., Any]:
    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        if error is not None:
            raise error
        return subprocess.CompletedProcess(command, 0, stdout, "")

    return run


def test_dynamic_timeout_junk_and_tagged_values(tmp_path: Path) -> None:
    timeout = fake_run(error=subprocess.TimeoutExpired("ansible-inventory", 300))
    with pytest.raises(InventoryError, match=r"took over 300s; check the script"):
        load_dynamic(tmp_path, runner=timeout)
    with pytest.raises(InventoryError, match=r"printed no JSON \(Expecting value\)"):
        load_dynamic(tmp_path, runner=fake_run("[WARNING]: oops"))
    listing = {
        "_meta": {"hostvars": {"h1": {"a": {"__ansible_unsafe": "{{ x }}"},
                                      "b": {"__ansible_vault": "$ANSIBLE_VAULT;1.1"}}}},
        "all": {"children": ["ungrouped"]},
        "ungrouped": {"hosts": ["h1"]},
    }  # fmt: skip
    (host,) = load_dynamic(tmp_path, runner=fake_run(json.dumps(listing)))
    assert host.groups == ()
    assert host.vars["a"] == "{{ x }}"
    assert isinstance(host.vars["b"], VaultedValue)
    assert host.sources == {"a": DYNAMIC_SOURCE, "b": DYNAMIC_SOURCE}


# ----------------------------------------------------------------------------- connection


def host(**variables: Any) -> AnsibleHost:
    """A host whose every variable was set on its own line of hosts.ini."""
    return AnsibleHost(
        name="web1",
        groups=("web",),
        vars=variables,
        sources={k: f"hosts.ini:{n}" for n, k in enumerate(variables, start=1)},
    )


def test_connection_settings_from_the_proxy_fixture() -> None:
    hosts = by_name(load_ansible_inventory(ANSIBLE / "proxy" / "hosts.ini"))
    got = {name: connection_settings(h) for name, h in hosts.items()}
    common = {"user": "deploy", "identity_file": "~/.ssh/deploy_ed25519"}
    assert got["app1"].settings == {
        "address": "10.2.0.11",
        **common,
        "proxy_jump": "jump@bastion.example.com:2222",
    }
    assert got["app2"].settings["proxy_jump"] == "bastion1,bastion2"
    assert got["app3"].settings["proxy_jump"] == "ops@bastion.example.com:2022"
    assert got["app3"].sources["proxy_jump"] == "hosts.ini:5 (ProxyCommand as ProxyJump)"
    assert got["app4"].settings["proxy_jump"] == "bastion"
    assert got["app4"].settings["known_hosts"] == "/etc/driftcheck/known_hosts"
    assert got["app4"].sources["known_hosts"] == "hosts.ini:6"
    assert got["app1"].sources["user"] == "hosts.ini:11"
    assert "proxy_jump" not in got["app5"].settings
    assert got["app5"].warnings == (
        "app5: ansible_ssh_common_args (hosts.ini:7) is not followed: only a ProxyCommand "
        "'ssh -W %h:%p [-q] [-p PORT] [-i KEY] [user@]host' translates to ProxyJump; "
        "write -J HOST (ProxyJump) instead",
    )
    assert got["app6"].warnings == (
        "app6: ansible_ssh_common_args (hosts.ini:8) is not followed: "
        "StrictHostKeyChecking=no; driftcheck always checks host keys",
        "app6: ansible_ssh_common_args (hosts.ini:8) is not followed: "
        "UserKnownHostsFile=/dev/null; driftcheck always checks host keys",
        "app6: ansible_ssh_common_args (hosts.ini:8) is not followed: "
        "ForwardAgent/-A; driftcheck never forwards the SSH agent",
    )
    assert all(not c.warnings for n, c in got.items() if n not in ("app5", "app6"))


def test_aliases_resolve_as_the_ssh_plugin_does() -> None:
    # Ansible's config manager: among a setting's variables the last one listed wins.
    settings = connection_settings(
        host(ansible_host="new", ansible_ssh_host="old", ansible_ssh_port="2200",
             ansible_ssh_user="ops", ansible_private_key_file="~/.ssh/a",
             ansible_ssh_private_key_file="~/.ssh/b", unrelated="x")
    )  # fmt: skip
    assert settings.settings == {
        "address": "old", "port": 2200, "user": "ops", "identity_file": "~/.ssh/b"
    }  # fmt: skip
    assert settings.sources == {
        "address": "hosts.ini:2", "port": "hosts.ini:3", "user": "hosts.ini:4",
        "identity_file": "hosts.ini:6",
    }  # fmt: skip
    assert settings.warnings == ()
    assert connection_settings(host(color="red")).settings == {}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("-J hop", "hop"),
        ("-Jhop", "hop"),
        ("-o ProxyJump=hop", "hop"),
        ("-oProxyJump=hop", "hop"),
        ('-o "ProxyJump hop"', "hop"),
        ("-o 'proxyjump = hop'", "hop"),
        ("-q -o ServerAliveInterval=30 -J a@hop:2,b", "a@hop:2,b"),
        ("-o ProxyCommand='ssh -W %h:%p hop'", "hop"),
        ("-o ProxyCommand='ssh -q -W %h:%p -p 2022 u@hop'", "u@hop:2022"),
        ("-o 'ProxyCommand=/usr/bin/ssh -W %h:%p hop'", "hop"),
    ],
)
def test_proxy_jump_forms(args: str, expected: str) -> None:
    got = connection_settings(host(ansible_ssh_common_args=args))
    assert got.settings == {"proxy_jump": expected}
    assert got.warnings == ()


def test_the_first_ssh_option_wins() -> None:
    got = connection_settings(
        host(ansible_ssh_common_args="-J first", ansible_ssh_extra_args="-J second")
    )
    assert got.settings == {"proxy_jump": "first"}
    assert got.sources == {"proxy_jump": "hosts.ini:1"}


def test_a_proxy_command_key_is_not_carried() -> None:
    got = connection_settings(
        host(ansible_ssh_extra_args="-o ProxyCommand='ssh -i ~/.ssh/jump -W %h:%p hop'")
    )
    assert got.settings == {"proxy_jump": "hop"}
    assert got.warnings == (
        "web1: ansible_ssh_extra_args (hosts.ini:1) is not followed: the ProxyCommand's "
        "-i KEY for the jump host; ProxyJump uses your ssh config and agent for it",
    )


@pytest.mark.parametrize(
    "command",
    ["nc -X connect -x proxy:3128 %h %p", "ssh hop nc %h %p", "ssh -W %h:%p -l u hop",
     "ssh -W %h:%p", "ssh -W %h:%p -p x hop"],
)  # fmt: skip
def test_other_proxy_commands_are_a_warning(command: str) -> None:
    got = connection_settings(host(ansible_ssh_common_args=f"-o ProxyCommand='{command}'"))
    assert got.settings == {}
    assert len(got.warnings) == 1
    assert "translates to ProxyJump" in got.warnings[0]


SECRET = "hunter2-do-not-print"


@pytest.mark.parametrize(
    "name",
    ["ansible_password", "ansible_ssh_pass", "ansible_become_pass", "ansible_become_password",
     "ansible_private_key_passphrase"],
)  # fmt: skip
def test_passwords_are_a_warning_without_the_password(name: str) -> None:
    got = connection_settings(host(**{name: SECRET}))
    assert got.warnings == (
        f"web1: {name} (hosts.ini:1) is not followed: driftcheck logs in with SSH keys "
        "and runs sudo -n, never a password",
    )
    assert SECRET not in repr(got)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ("-o StrictHostKeyChecking=no", "StrictHostKeyChecking=no; driftcheck always checks"),
        ("-o StrictHostKeyChecking=accept-new", "StrictHostKeyChecking=accept-new;"),
        ("-oUserKnownHostsFile=/dev/null", "UserKnownHostsFile=/dev/null; driftcheck always"),
        ("-o ForwardAgent=yes", "ForwardAgent/-A; driftcheck never forwards the SSH agent"),
        ("-A", "ForwardAgent/-A; driftcheck never forwards the SSH agent"),
        ("-qA", "ForwardAgent/-A; driftcheck never forwards the SSH agent"),
    ],
)
def test_weakened_ssh_is_a_warning(args: str, why: str) -> None:
    got = connection_settings(host(ansible_ssh_extra_args=args))
    assert got.settings == {}
    (warning,) = got.warnings
    assert warning.startswith(f"web1: ansible_ssh_extra_args (hosts.ini:1) is not followed: {why}")


def test_host_key_checking_off_and_become_user() -> None:
    got = connection_settings(
        host(ansible_host_key_checking=False, ansible_become="yes", ansible_become_user="pg")
    )
    assert got.settings == {"become": "sudo"}
    assert got.sources == {"become": "hosts.ini:2"}
    assert got.warnings == (
        "web1: ansible_become_user (hosts.ini:3) is not followed: driftcheck runs sudo -n "
        "as root, never as another user",
        "web1: ansible_host_key_checking (hosts.ini:1) is not followed: driftcheck always "
        "checks host keys against known_hosts",
    )


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"ansible_become": True}, {"become": "sudo"}),
        ({"ansible_become": "true", "ansible_become_method": "sudo"}, {"become": "sudo"}),
        ({"ansible_become": "no", "ansible_become_method": "su"}, {}),
        ({"ansible_connection": "local"}, {"transport": "local"}),
        ({"ansible_connection": "ansible.builtin.paramiko_ssh"}, {"transport": "ssh"}),
        ({"ansible_connection": "smart"}, {"transport": "ssh"}),
        ({"ansible_port": 22}, {"port": 22}),
    ],
)
def test_become_transport_and_port(variables: dict[str, Any], expected: dict[str, Any]) -> None:
    assert connection_settings(host(**variables)).settings == expected


CONNECTION_ERRORS: list[tuple[dict[str, Any], str]] = [
    (
        {"ansible_port": "ssh"},
        "hosts.ini:1: host web1: ansible_port is 'ssh', not a port; set a number 1-65535",
    ),
    (
        {"ansible_ssh_port": 70000},
        "hosts.ini:1: host web1: ansible_ssh_port is 70000, not a port; set a number 1-65535",
    ),
    (
        {"ansible_port": True},
        "hosts.ini:1: host web1: ansible_port is True, not a port; set a number 1-65535",
    ),
    (
        {"ansible_become": "sure"},
        "hosts.ini:1: host web1: ansible_become is 'sure', not a boolean; set true or false",
    ),
    (
        {"ansible_become": True, "ansible_become_method": "su"},
        "hosts.ini:2: host web1: ansible_become_method=su is not supported (driftcheck "
        "becomes root with sudo -n only); use sudo or drop ansible_become",
    ),
    (
        {"ansible_connection": "docker"},
        "hosts.ini:1: host web1: ansible_connection=docker is not a transport driftcheck "
        "has (it connects over ssh or runs locally); use ssh or local, or leave the host out",
    ),
    (
        {"ansible_host": "{{ lookup('env', 'IP') }}"},
        "hosts.ini:1: host web1: ansible_host is a Jinja template, which driftcheck cannot "
        "evaluate; set it literally or use a dynamic inventory",
    ),
    (
        {"ansible_ssh_common_args": "-J {% if x %}a{% endif %}"},
        "hosts.ini:1: host web1: ansible_ssh_common_args is a Jinja template, which "
        "driftcheck cannot evaluate; set it literally or use a dynamic inventory",
    ),
    (
        {"ansible_user": VaultedValue("$ANSIBLE_VAULT;1.1;AES256")},
        "hosts.ini:1: host web1: ansible_user is vault-encrypted, which driftcheck cannot "
        "decrypt; set it literally or use a dynamic inventory",
    ),
    (
        {"ansible_ssh_extra_args": "-o 'ProxyJump=a"},
        "hosts.ini:1: host web1: ansible_ssh_extra_args cannot be split (No closing "
        "quotation); close the quotes",
    ),
]


@pytest.mark.parametrize(("variables", "message"), CONNECTION_ERRORS)
def test_connection_errors(variables: dict[str, Any], message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        connection_settings(host(**variables))
    assert str(caught.value) == message


def test_a_templated_password_is_only_a_warning() -> None:
    got = connection_settings(host(ansible_password="{{ vault_pw }}"))
    assert len(got.warnings) == 1
