"""How a host's connection settings resolve: host > environment defaults > defaults >
ssh_config > built-in, every value with where it came from; become, proxy_jump."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftcheck.become import sudo_refusal, sudoers_lines
from driftcheck.errors import InventoryError
from driftcheck.inventory import Inventory, parse_inventory
from driftcheck.model import Host, Jump


def inventory(tmp_path: Path, body: str, ssh_config: str | None = None) -> Inventory:
    if ssh_config is not None:
        (tmp_path / "ssh_config").write_text(ssh_config)
    text = body + "compare: {reference: production, targets: [staging]}\n"
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    return parse_inventory(text, path)


def error_of(tmp_path: Path, body: str, ssh_config: str | None = None) -> str:
    with pytest.raises(InventoryError) as exc:
        inventory(tmp_path, body, ssh_config)
    return str(exc.value)


TWO = """\
environments:
  production:
    defaults: {user: deploy, become: sudo}
    hosts:
      prod1: {roles: [web], address: 10.0.0.1}
  staging:
    hosts:
      stg1: {roles: [web], address: 10.0.1.1, user: admin}
"""


def test_environment_defaults_sit_between_host_and_defaults(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "defaults: {user: ops, connect_timeout: 3}\n" + TWO)
    prod, stg = inv.host("prod1"), inv.host("stg1")
    assert (prod.user, prod.become, prod.connect_timeout) == ("deploy", "sudo", 3.0)
    assert (stg.user, stg.become) == ("admin", None)
    path = tmp_path / "inv.yaml"
    assert prod.sources["user"] == f"{path}:4"
    assert prod.sources["connect_timeout"] == f"{path}:1"
    assert stg.sources["user"] == f"{path}:9"
    assert stg.sources["port"] == "built-in"


def test_identity_file_is_optional(tmp_path: Path) -> None:
    host = inventory(tmp_path, TWO).host("prod1")
    assert host.identity_file is None and not host.identities_only


def test_become_none_undoes_a_default(tmp_path: Path) -> None:
    inv = inventory(
        tmp_path, "defaults: {become: sudo}\n" + TWO.replace("user: admin", "become: none")
    )
    assert inv.host("stg1").become is None
    assert inv.host("prod1").become == "sudo"


@pytest.mark.parametrize(
    ("value", "line"),
    [("become: su", "become"), ("proxy_jump: 'a b'", "proxy_jump"), ("user: 'a@b'", "user")],
)
def test_bad_values_name_their_line(tmp_path: Path, value: str, line: str) -> None:
    message = error_of(tmp_path, TWO.replace("user: admin", value))
    assert message.startswith(f"{tmp_path / 'inv.yaml'}:8: "), message
    assert line in message


def test_unknown_key_lists_the_new_ones(tmp_path: Path) -> None:
    message = error_of(tmp_path, TWO.replace("user: admin", "sudo: true"))
    assert "unknown key 'sudo'" in message and "become" in message and "proxy_jump" in message


def jumps_of(tmp_path: Path, value: str, extra: str = "") -> tuple[Jump, ...]:
    body = TWO.replace("user: admin", f"user: admin, proxy_jump: {value}") + extra
    return inventory(tmp_path, body).host("stg1").jumps


def test_proxy_jump_forms(tmp_path: Path) -> None:
    assert jumps_of(tmp_path, "gw.example.com") == (Jump("gw.example.com", 22, "admin"),)
    assert jumps_of(tmp_path, "'ops@gw:2200,[2001:db8::1]:22'") == (
        Jump("gw", 2200, "ops"),
        Jump("2001:db8::1", 22, "admin"),
    )
    assert jumps_of(tmp_path, "[a, 'b@c']") == (Jump("a", 22, "admin"), Jump("c", 22, "b"))
    assert jumps_of(tmp_path, "none") == ()


def test_an_inventory_host_as_hop_brings_its_settings_and_its_own_jumps(tmp_path: Path) -> None:
    body = TWO.replace("address: 10.0.0.1}", "address: 10.0.0.1, proxy_jump: 'j@outer:2'}")
    body = body.replace("user: admin", "user: admin, proxy_jump: prod1")
    host = inventory(tmp_path, body).host("stg1")
    assert host.jumps == (Jump("outer", 2, "j"), Jump("10.0.0.1", 22, "deploy"))


def test_a_proxy_jump_loop_is_refused(tmp_path: Path) -> None:
    body = TWO.replace("address: 10.0.0.1}", "address: 10.0.0.1, proxy_jump: stg1}")
    body = body.replace("user: admin", "user: admin, proxy_jump: prod1")
    message = error_of(tmp_path, body)
    assert "goes round in a circle" in message and "prod1 -> stg1 -> prod1" in message


def test_a_bad_hop_names_its_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, TWO.replace("user: admin", "proxy_jump: 'a@b:99999'"))
    assert message.startswith(f"{tmp_path / 'inv.yaml'}:8: host 'stg1': proxy_jump hop")


SSH_CONFIG = """\
Host prod1
    HostName 192.0.2.10
    Port 2201
    User fromconfig
    IdentityFile /keys/prod
    ProxyJump bast
Host bast
    HostName bastion.example.org
    User jumper
    Port 2222
Host *
    StrictHostKeyChecking no
"""


def test_ssh_config_fills_what_the_inventory_leaves_open(tmp_path: Path) -> None:
    body = "defaults: {ssh_config: ssh_config}\n" + TWO.replace(", address: 10.0.0.1", "")
    inv = inventory(tmp_path, body, SSH_CONFIG)
    prod = inv.host("prod1")
    # The environment's user wins over the file's; the rest comes from the file.
    assert (prod.address, prod.port, prod.user) == ("192.0.2.10", 2201, "deploy")
    assert prod.identity_file == Path("/keys/prod")
    assert prod.jumps == (Jump("bastion.example.org", 2222, "jumper", Path("/keys/prod")),)
    assert prod.sources["address"] == f"ssh_config {tmp_path / 'ssh_config'}:2"
    assert prod.ssh_config == tmp_path / "ssh_config"
    assert inv.warnings == (
        f"{tmp_path / 'ssh_config'}:12: ignoring 'StrictHostKeyChecking no': driftcheck "
        "always checks host keys against known_hosts",
    )


def test_ssh_config_is_not_read_unless_asked(tmp_path: Path) -> None:
    inv = inventory(tmp_path, TWO.replace(", address: 10.0.0.1", ""), SSH_CONFIG)
    prod = inv.host("prod1")
    assert (prod.address, prod.port, prod.ssh_config) == ("prod1", 22, None)
    assert inv.warnings == ()


def test_a_missing_ssh_config_is_one_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "defaults: {ssh_config: nowhere}\n" + TWO)
    assert message == (
        f"{tmp_path / 'inv.yaml'}:1: ssh_config 'nowhere': {tmp_path / 'nowhere'} does not "
        "exist; fix the path or set ssh_config: false"
    )


def host(user: str, become: str | None) -> Host:
    return Host("h", "p", ("w",), "a", 22, user, None, Path("k"), 1, 1, "ssh", become=become)


def test_sudoers_lines_one_per_user_exactly_the_command() -> None:
    lines = sudoers_lines([host("deploy", "sudo"), host("deploy", "sudo"), host("root", None)])
    assert lines == [
        "deploy ALL=(root) NOPASSWD: /usr/bin/env -i PATH\\=/usr/local/sbin\\:/usr/local/bin"
        "\\:/usr/sbin\\:/usr/bin\\:/sbin\\:/bin LC_ALL\\=C sh -s"
    ]


@pytest.mark.parametrize(
    ("stderr", "says"),
    [
        ("sudo: a password is required\n", "sudo wants a password for 'dc'"),
        ("sudo: sorry, you must have a tty to run sudo\n", "requires a tty"),
        ("dc is not in the sudoers file.  This incident will be reported.\n", "may not run"),
        ("sh: 1: sudo: not found\n", "sudo is not installed"),
        ("sudo: unable to resolve host x: Name or service not known\n", ""),
        ("sudo: something new\n", "sudo refused to start the collection: sudo: something new"),
    ],
)
def test_sudo_refusals_in_one_line(stderr: str, says: str) -> None:
    got = sudo_refusal("sudo: unable to resolve host x\n" + stderr, "dc")
    assert (says in got) if says else got == "", got


ANSIBLE_INI = """\
[prod]
web1 ansible_host=10.0.0.1 ansible_user=deploy ansible_become=true
[stg]
web2 ansible_host=10.0.1.1 ansible_port=2222
[web:children]
prod
stg
[other]
spare1
"""


def ansible_inventory(tmp_path: Path, extra: str = "", ini: str = ANSIBLE_INI) -> Inventory:
    (tmp_path / "hosts.ini").write_text(ini)
    return inventory(
        tmp_path,
        "ansible:\n  inventory: hosts.ini\n"
        "  environments: {production: prod, staging: stg}\n" + extra,
    )


def test_ansible_groups_become_environments_and_roles(tmp_path: Path) -> None:
    inv = ansible_inventory(tmp_path, "defaults: {connect_timeout: 3}\n")
    assert [h.name for h in inv.hosts] == ["web1", "web2"]  # spare1 is in no environment
    web1, web2 = inv.host("web1"), inv.host("web2")
    assert (web1.environment, web1.roles, web1.address, web1.user, web1.become) == (
        "production",
        ("web",),
        "10.0.0.1",
        "deploy",
        "sudo",
    )
    assert (web2.environment, web2.port, web2.user, web2.connect_timeout) == (
        "staging",
        2222,
        "root",
        3.0,
    )
    assert web1.sources["user"] == "ansible hosts.ini:2"


def test_an_ansible_host_in_two_environments_is_refused(tmp_path: Path) -> None:
    ini = ANSIBLE_INI.replace("[stg]\n", "[stg]\nweb1\n")
    with pytest.raises(InventoryError, match="'web1' is in the groups of environments"):
        ansible_inventory(tmp_path, ini=ini)


def test_listed_roles_only(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="'web1' is not in any of db, so it has no role"):
        ansible_inventory(tmp_path, "  roles: [db]\n")


def test_a_missing_ansible_inventory_names_the_line(tmp_path: Path) -> None:
    body = "ansible:\n  inventory: nowhere.ini\n  environments: {production: prod, staging: stg}\n"
    message = error_of(tmp_path, body)
    assert message.startswith(f"{tmp_path / 'inv.yaml'}:2: ansible.inventory 'nowhere.ini'")


def test_a_role_missing_in_the_reference_points_at_the_ansible_line(tmp_path: Path) -> None:
    ini = ANSIBLE_INI + "[db]\nweb2\n"
    with pytest.raises(InventoryError) as exc:
        ansible_inventory(tmp_path, ini=ini)
    assert str(exc.value).startswith(f"{tmp_path / 'inv.yaml'}:2: role 'db' of host 'web2'")
