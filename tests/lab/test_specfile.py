"""YAML lab specs: load_specs() on good files, and one-line PATH:LINE errors on bad ones.

These tests only parse files: no lab is built here (test_detached.py brings
up a lab from a YAML spec).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import driftcheck.lab
from driftcheck.lab import LabError, LabHostSpec, load_specs

GOOD = """\
# a comment
hosts:
  prod-web1: {environment: production, roles: [web], files: {/etc/myapp/app.conf: "..."}, sysctls: {net.core.somaxconn: "1024"}}
  stg-web1: {environment: staging, packages: {hello: "2.10-3", tzdata: null}, file_modes: {/etc/x: "0600"}, fault: down}
  stg-app1:
    environment: staging
    roles: app                       # one role may be a plain string
    files:
      /etc/myapp/app.conf: |
        listen = 8080
        workers = 4
    file_modes: {/etc/myapp/app.conf: "0o640", /etc/hosts: "644"}
    file_owners: {/etc/myapp/app.conf: "root:adm"}
    sysctls: {net.ipv4.ip_local_port_range: "1024 65000", net.core.somaxconn: 4096}
    packages: {foo: 1.10, bar: 1:2.3-4, baz: ~}
    fault: null
"""  # noqa: E501  (the first hosts are written on one line each, as people do)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_spec(tmp_path: Path) -> None:
    specs = load_specs(write(tmp_path, GOOD))
    assert specs == [
        LabHostSpec(
            "prod-web1",
            "production",
            roles=("web",),
            files={"/etc/myapp/app.conf": "..."},
            sysctls={"net.core.somaxconn": "1024"},
        ),
        LabHostSpec(
            "stg-web1",
            "staging",
            packages={"hello": "2.10-3", "tzdata": None},
            file_modes={"/etc/x": 0o600},
            fault="down",
        ),
        LabHostSpec(
            "stg-app1",
            "staging",
            roles=("app",),
            files={"/etc/myapp/app.conf": "listen = 8080\nworkers = 4\n"},
            file_modes={"/etc/myapp/app.conf": 0o640, "/etc/hosts": 0o644},
            file_owners={"/etc/myapp/app.conf": "root:adm"},
            sysctls={"net.ipv4.ip_local_port_range": "1024 65000", "net.core.somaxconn": "4096"},
            # Versions keep the text as written: 1.10 is not the float 1.1.
            packages={"foo": "1.10", "bar": "1:2.3-4", "baz": None},
        ),
    ]
    # Hosts come back in file order, and the defaults of LabHostSpec apply.
    assert [s.name for s in specs] == ["prod-web1", "stg-web1", "stg-app1"]
    assert specs[1].roles == ("web",)


BAD = [
    # (spec text, line, words the message must contain)
    ("", 1, ["empty", "hosts:"]),
    ("hosts:\n", 1, ["'hosts:' is empty"]),
    ("hosts: {}\n", 1, ["'hosts:' is empty"]),
    ("hosts: [a1]\n", 1, ["hosts must be a mapping"]),
    ("hots:\n  a1: {environment: staging}\n", 1, ["unknown top-level key 'hots'"]),
    ("- a\n- b\n", 1, ["the lab spec must be a mapping"]),
    ("hosts:\n  a1: {environment: staging\n", 3, ["invalid YAML", "fix the syntax"]),
    ("hosts:\n  a1:\n    environment: staging\n   roles: x\n", 4, ["invalid YAML"]),
    ("hosts:\n  a1: {roles: [web]}\n", 2, ["host a1 has no environment", "environment: staging"]),
    ("hosts:\n  a1: staging\n", 2, ["host a1 must be a mapping"]),
    (
        "hosts:\n  a1: {environment: staging}\n  b1: {environment: staging}\n"
        "  a1: {environment: production}\n",
        4,
        ["a1 appears twice", "line 2"],
    ),
    ("hosts:\n  bad_name: {environment: staging}\n", 2, ["invalid lab host name 'bad_name'"]),
    (
        "hosts:\n  a1:\n    environment: staging\n    enviroment: production\n",
        4,
        ["unknown field 'enviroment'", "did you mean environment?"],
    ),
    ("hosts:\n  a1: {environment: [x]}\n", 2, ["environment of host a1", "single value"]),
    ("hosts:\n  a1: {environment: staging, roles: []}\n", 2, ["roles of host a1"]),
    (
        "hosts:\n  a1:\n    environment: staging\n    files:\n      etc/app.conf: x\n",
        5,
        ["invalid path 'etc/app.conf'", "absolute path"],
    ),
    (
        "hosts:\n  a1:\n    environment: staging\n    files:\n      /etc/app.conf:\n",
        5,
        ["content of /etc/app.conf", "single value"],
    ),
    (
        "hosts:\n  a1:\n    environment: staging\n    file_modes:\n      /etc/x: 0600\n",
        5,
        ["quoted octal string", '"0600"'],
    ),
    (
        'hosts:\n  a1:\n    environment: staging\n    file_modes: {/etc/x: "0900"}\n',
        4,
        ["'0900', not an octal mode"],
    ),
    (
        'hosts:\n  a1:\n    environment: staging\n    file_modes: {/etc/x: "017777"}\n',
        4,
        ["not an octal mode"],
    ),
    (
        "hosts:\n  a1:\n    environment: staging\n\n"  # a blank line counts too
        '    file_owners: {/etc/x: "root; rm -rf /"}\n',
        5,
        ["invalid owner", "user:group"],
    ),
    (
        "hosts:\n  a1:\n    environment: staging\n    sysctls:\n      kernel.pid_max: 1\n",
        5,
        ["sysctl 'kernel.pid_max'", "only net"],
    ),
    (
        "hosts:\n  a1:\n    environment: staging\n    sysctls:\n      net.core.somaxconn: \n",
        5,
        ["value of sysctl net.core.somaxconn"],
    ),
    (
        "hosts:\n  a1:\n    environment: staging\n    packages:\n      Hello: null\n",
        5,
        ["invalid package name 'Hello'", "such as tzdata"],
    ),
    (
        'hosts:\n  a1:\n    environment: staging\n    packages:\n      hello: "2.10; rm"\n',
        5,
        ["invalid version '2.10; rm' for package hello", "apt-cache madison hello"],
    ),
    (
        "hosts:\n  a1:\n    environment: staging\n    packages: [hello]\n",
        4,
        ["packages must be a mapping", "tzdata: null"],
    ),
    (
        "hosts:\n  a1:\n    environment: staging\n    fault: flaky\n",
        4,
        ["unknown fault 'flaky'", "down, hang, wrong_host_key"],
    ),
]


@pytest.mark.parametrize(("text", "line", "words"), BAD)
def test_bad_spec_is_one_line_with_its_line_number(
    tmp_path: Path, text: str, line: int, words: list[str]
) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(LabError) as info:
        load_specs(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    # "what is wrong; how to fix"
    assert "; " in message.removeprefix(f"{path}:{line}: "), message
    for word in words:
        assert word in message, message


def test_unreadable_spec(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(LabError, match=r"nope\.yaml:1: cannot read the lab spec"):
        load_specs(missing)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LabError, match="not UTF-8"):
        load_specs(binary)


def test_public_interface() -> None:
    """Everything the lab offers is importable from driftcheck.lab, as before the split."""
    before_split = {
        "Lab",
        "LabHostSpec",
        "LabHost",
        "LabError",
        "require_root",
        "cleanup_stale",
        "STATE_DIR",
        "NETNS_PREFIX",
        "LAB_ADDRESS",
        "Fault",
    }
    added = {
        "DEB_CACHE",
        "LabInfo",
        "available_versions",
        "installed_version",
        "list_labs",
        "load_specs",
        "stop_detached",
    }
    assert set(driftcheck.lab.__all__) == before_split | added
    for name in driftcheck.lab.__all__:
        assert getattr(driftcheck.lab, name) is not None
    assert str(driftcheck.lab.STATE_DIR) == "/run/driftcheck-lab"
    assert driftcheck.lab.NETNS_PREFIX == "dclab-"
    assert driftcheck.lab.LAB_ADDRESS == "127.0.0.1"
