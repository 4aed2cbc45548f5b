"""Inventory validation: every mistake is one line naming the file, the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftcheck.errors import InventoryError
from driftcheck.inventory import load_inventory, parse_inventory
from driftcheck.model import AppSource
from tests.support.paths import REPO

ROOT = REPO

GOOD = """\
defaults:
  user: root
  port: 22
  known_hosts: /tmp/kh
environments:
  production:
    hosts:
      prod-web1: {address: 10.0.0.11, roles: [web]}
      prod-db1: {address: 10.0.0.21, roles: [db]}
  staging:
    hosts:
      stg-web1: {address: 10.0.1.11, roles: [web], port: 2222}
      stg-db1: {roles: [db], transport: local}
compare:
  reference: production
  targets: [staging]
collect:
  files: [/etc/nginx/nginx.conf]
  apps:
    myapp: "cat /opt/myapp/VERSION"
"""


def error_of(text: str) -> str:
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, Path("inv.yaml"))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_example_inventory_is_valid() -> None:
    inv = load_inventory(ROOT / "inventory.example.yaml")
    assert [h.name for h in inv.hosts] == ["prod-web1", "prod-web2", "stg-web1"]
    assert inv.host("stg-web1").port == 2222
    assert inv.host("prod-web1").port == 22
    assert inv.collect.apps == (AppSource("myapp", "command", "cat /opt/myapp/VERSION"),)


def test_defaults_apply_and_hosts_override() -> None:
    inv = parse_inventory(GOOD, Path("inv.yaml"))
    web = inv.host("stg-web1")
    assert (web.user, web.port, web.known_hosts, web.transport) == (
        "root",
        2222,
        Path("/tmp/kh"),
        "ssh",
    )
    assert web.command_timeout == 120 and web.connect_timeout == 10
    db = inv.host("stg-db1")
    assert db.transport == "local" and db.address == "stg-db1"
    assert inv.roles() == ["db", "web"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("port: 2222}", "prot: 2222}"),
            "inv.yaml:12: environments.staging.hosts.stg-web1: unknown key 'prot'",
        ),
        (("port: 22\n", "port: twenty\n"), "inv.yaml:3: defaults.port:"),
        (("port: 22\n", "port: 70000\n"), "inv.yaml:3: defaults.port:"),
        (
            ("roles: [db], transport: local", "roles: [cache]"),
            "inv.yaml:13: role 'cache' of host 'stg-db1' has no host in the reference environment",
        ),
        (
            ("files: [/etc/nginx/nginx.conf]", "files: [etc/nginx.conf]"),
            "inv.yaml:18: collect.files has relative path 'etc/nginx.conf'; "
            "write it as an absolute path such as /etc/nginx.conf",
        ),
        (
            ("stg-db1:", "prod-db1:"),
            "inv.yaml:13: host 'prod-db1' is also defined in environment 'production'",
        ),
        (
            ("reference: production", "reference: prod"),
            "inv.yaml:15: compare.reference 'prod' is not an environment",
        ),
        (("targets: [staging]", "targets: [staging, qa]"), "inv.yaml:16: compare.targets has 'qa'"),
        (
            ("transport: local", "transport: telnet"),
            "inv.yaml:13: environments.staging.hosts.stg-db1.transport:",
        ),
        (
            ("roles: [web], port", "roles: [], port"),
            "inv.yaml:12: environments.staging.hosts.stg-web1.roles:",
        ),
        (
            (
                "targets: [staging]",
                "targets: [staging]\n  include_volatile: {sysctl: [a], syscttl: [b]}",
            ),
            "inv.yaml:17: compare.include_volatile names unknown collector 'syscttl'",
        ),
        (
            ("  user: root\n", "  user: root\n  colour: blue\n"),
            "inv.yaml:3: defaults: unknown key 'colour'",
        ),
    ],
)
def test_mistakes_name_line_and_fix(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    assert error_of(GOOD.replace(old, new, 1)).startswith(expected)


def test_duplicate_host_in_one_environment_is_caught() -> None:
    text = GOOD.replace(
        "      prod-db1: {address: 10.0.0.21, roles: [db]}\n",
        "      prod-db1: {address: 10.0.0.21, roles: [db]}\n      prod-web1: {roles: [web]}\n",
    )
    assert error_of(text).startswith("inv.yaml:10: duplicate key 'prod-web1' (first at line 8)")


def test_missing_section() -> None:
    assert "required key 'compare' is missing" in error_of(GOOD.split("compare:", maxsplit=1)[0])


def test_yaml_syntax_error_has_a_line() -> None:
    assert error_of(GOOD.replace("targets: [staging]", "targets: [staging")).startswith(
        "inv.yaml:17: not valid YAML"
    )


@pytest.mark.parametrize("text", ["", "just a string", "- a\n- b\n"])
def test_not_a_mapping(text: str) -> None:
    assert "must be a mapping" in error_of(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory(tmp_path / "nope.yaml")


def test_app_sources() -> None:
    text = GOOD.replace(
        '    myapp: "cat /opt/myapp/VERSION"\n',
        '    myapp: "cat /opt/myapp/VERSION"\n'
        "    api: {url: 'http://localhost:8080/version'}\n"
        "    web: {file: /opt/web/VERSION}\n"
        "    nginx: {package: nginx}\n",
    )
    inv = parse_inventory(text, Path("inv.yaml"))
    assert [(a.name, a.kind, a.value) for a in inv.collect.apps] == [
        ("myapp", "command", "cat /opt/myapp/VERSION"),
        ("api", "url", "http://localhost:8080/version"),
        ("web", "file", "/opt/web/VERSION"),
        ("nginx", "package", "nginx"),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{file: /a, url: 'http://x/'}", "needs exactly one of command, file, package, url"),
        ("{}", "needs exactly one of command, file, package, url"),
        ("{file: VERSION}", "file must be an absolute path"),
        ("{url: 'ftp://x/'}", "collect.apps.web.url"),
        ("{pkg: nginx}", "unknown key 'pkg'"),
    ],
)
def test_bad_app_sources(entry: str, message: str) -> None:
    text = GOOD.replace('    myapp: "cat /opt/myapp/VERSION"\n', f"    web: {entry}\n")
    got = error_of(text)
    assert got.startswith("inv.yaml:20:") and message in got, got


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("port: 22\n", "port: 22\n  command_timeout: .inf\n", 1), "command_timeout"),
        (GOOD.replace("port: 22\n", "port: 22\n  connect_timeout: 1e300\n", 1), "connect_timeout"),
        (GOOD.replace("known_hosts: /tmp/kh", "known_hosts: ~nosuchuser/kh"), "cannot expand"),
        ("a: &x [*x]\n", "required key"),
        ('defaults: {user: "a\\0b"}\x00\n', "not valid YAML"),
    ],
)
def test_hostile_values_are_one_line_errors(text: str, message: str) -> None:
    assert message in error_of(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("targets: [staging]", "targets: [staging, staging]"), "names an environment twice"),
        (
            (
                "  staging:\n    hosts:\n"
                "      stg-web1: {address: 10.0.1.11, roles: [web], port: 2222}\n"
                "      stg-db1: {roles: [db], transport: local}\n",
                "  staging:\n    hosts: {}\n",
            ),
            "environment 'staging' has no hosts",
        ),
        (("port: 22\n", "port: true\n"), "defaults.port"),
    ],
)
def test_nothing_to_compare_is_an_error(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in GOOD
    assert message in error_of(GOOD.replace(old, new, 1))


EXCLUDE = "files: [/etc/nginx/nginx.conf]\n  exclude:\n    - /etc/ssl/private/\n    - X\n"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            "etc/ssl/*.key",
            "inv.yaml:21: collect.exclude[1] 'etc/ssl/*.key' is not absolute; write it from the "
            "root, such as /etc/ssl/*.key",
        ),
        ('"/etc/a\\nb"', "inv.yaml:21: collect.exclude[1] '/etc/a\\nb' contains a newline"),
        ('"/etc/a\\0b"', "inv.yaml:21: collect.exclude[1] '/etc/a\\x00b' contains a newline"),
        ("/", "inv.yaml:21: collect.exclude[1] '/' would exclude everything"),
        ('"/etc/[z-a]"', "inv.yaml:21: collect.exclude[1] '/etc/[z-a]' has a [...] set that is"),
        ("12", "inv.yaml:21: collect.exclude[1]: Input should be a valid string (got 12)"),
        ("{a: b}", "inv.yaml:21: collect.exclude[1]: Input should be a valid string"),
    ],
)
def test_bad_exclusions_name_line_and_fix(pattern: str, expected: str) -> None:
    text = GOOD.replace("files: [/etc/nginx/nginx.conf]\n", EXCLUDE.replace("X", pattern))
    assert error_of(text).startswith(expected)


def test_exclusions_are_kept_in_order_once() -> None:
    text = GOOD.replace(
        "files: [/etc/nginx/nginx.conf]\n",
        "files: [/etc/]\n  exclude: [/etc/ssl/private/, '/etc/**/*.dpkg-old', /etc/ssl/private/]\n",
    )
    inv = parse_inventory(text, Path("inv.yaml"))
    assert inv.collect.files == ("/etc/",)
    assert inv.collect.exclude == ("/etc/ssl/private/", "/etc/**/*.dpkg-old")
    assert parse_inventory(GOOD, Path("inv.yaml")).collect.exclude == ()
    scalar = GOOD.replace("files: [/etc/nginx/nginx.conf]\n", "exclude: /etc/ssl\n")
    assert error_of(scalar).startswith("inv.yaml:18: collect.exclude: Input should be a valid list")
