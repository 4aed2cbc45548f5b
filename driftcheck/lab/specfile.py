"""Lab specs in YAML: ``load_specs(path)`` turns a file into :class:`LabHostSpec` objects.

The file looks like::

    hosts:
      prod-web1: {environment: production, roles: [web], files: {/etc/app.conf: "..."},
                  sysctls: {net.core.somaxconn: "1024"}}
      stg-web1: {environment: staging, packages: {hello: "2.10-3", tzdata: null},
                 file_modes: {/etc/x: "0600"}, file_owners: {/etc/x: "root:adm"}, fault: down,
                 kernel_state: {/proc/modules: "dummy 16384 0 - Live 0x0000000000000000\\n"}}
      old-web1: {environment: production, release: bullseye}

It is read with ``yaml.compose`` rather than ``safe_load`` so that every
error can name its line, and so that scalars keep the text the person typed
(``version: 1.10`` stays "1.10", not the float 1.1).  Every problem is one
:class:`LabError` line ``PATH:LINE: what is wrong; how to fix``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from driftcheck.lab.errors import LabError
from driftcheck.lab.spec import (
    LabHostSpec,
    check_content,
    check_environment,
    check_fault,
    check_host_name,
    check_kernel_state,
    check_mode,
    check_owner,
    check_package,
    check_path,
    check_release,
    check_roles,
    check_sysctl,
)

_NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"


class _Reader:
    """Walks the composed YAML tree of one file, raising errors with its lines."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: Node | None, message: str) -> NoReturn:
        """Raise ``PATH:LINE: message`` for ``node`` (line 1 without one)."""
        line = node.start_mark.line + 1 if node is not None else 1
        raise LabError(f"{self.path}:{line}: {message}")

    def check(self, node: Node, func: Callable[..., Any], *args: object) -> Any:
        """Run a spec validator; its LabError gets ``node``'s line."""
        try:
            return func(*args)
        except LabError as exc:
            self.fail(node, str(exc))

    def mapping(self, node: Node, what: str, example: str) -> list[tuple[str, Node, Node]]:
        """(key, key node, value node) of a mapping with unique string keys."""
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping; write it like {example}")
        seen: dict[str, int] = {}
        items: list[tuple[str, Node, Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _NULL:
                self.fail(key_node, f"keys of {what} must be plain names; write it like {example}")
            key = str(key_node.value)
            if key in seen:
                self.fail(
                    key_node,
                    f"{key} appears twice in {what} (first on line {seen[key]}); keep one",
                )
            seen[key] = key_node.start_mark.line + 1
            items.append((key, key_node, value_node))
        return items

    def text(self, node: Node, what: str, example: str) -> str:
        """A non-null scalar as the text written in the file."""
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.fail(node, f"{what} must be a single value; write it like {example}")
        return str(node.value)

    def optional_text(self, node: Node, what: str, example: str) -> str | None:
        """Like :meth:`text`, but ``null`` / ``~`` / nothing is None."""
        if isinstance(node, ScalarNode) and node.tag == _NULL:
            return None
        return self.text(node, what, example)


def _mode(reader: _Reader, node: Node, host: str, path: str) -> int:
    what = f"the mode of {path} on host {host}"
    if isinstance(node, ScalarNode) and node.tag == _INT:
        # Unquoted 0600 is an octal int to YAML 1.1 but 600 is decimal: refuse
        # both rather than guess.
        reader.fail(node, f'{what} must be a quoted octal string; write it as "{node.value}"')
    text = reader.text(node, what, '"0600"')
    digits = text.removeprefix("0o")
    if not digits or len(digits) > 5 or any(c not in "01234567" for c in digits):
        reader.fail(node, f'{what} is {text!r}, not an octal mode; write it like "0640"')
    return int(reader.check(node, check_mode, host, path, int(digits, 8)))


def _roles(reader: _Reader, host: str, node: Node) -> tuple[str, ...]:
    example = "[web, app]"
    if isinstance(node, SequenceNode):
        roles = [reader.text(r, f"a role of host {host}", example) for r in node.value]
    else:
        roles = [reader.text(node, f"the roles of host {host}", example)]
    return tuple(reader.check(node, check_roles, host, roles))


def _paths(
    reader: _Reader, host: str, node: Node, field: str, example: str
) -> list[tuple[str, Node]]:
    """(path, value node) of a mapping keyed by paths inside the host."""
    result = []
    for path, key_node, value in reader.mapping(node, field, example):
        reader.check(key_node, check_path, host, path)
        result.append((path, value))
    return result


def _files(reader: _Reader, host: str, node: Node) -> dict[str, str]:
    files = {}
    for path, value in _paths(reader, host, node, "files", '{/etc/app.conf: "listen = 80"}'):
        content = reader.text(value, f"the content of {path}", '"listen = 80"')
        files[path] = reader.check(value, check_content, host, path, content)
    return files


def _file_modes(reader: _Reader, host: str, node: Node) -> dict[str, int]:
    example = '{/etc/app.conf: "0600"}'
    return {
        path: _mode(reader, value, host, path)
        for path, value in _paths(reader, host, node, "file_modes", example)
    }


def _file_owners(reader: _Reader, host: str, node: Node) -> dict[str, str]:
    owners = {}
    for path, value in _paths(reader, host, node, "file_owners", '{/etc/app.conf: "root:adm"}'):
        owner = reader.text(value, f"the owner of {path}", '"root:adm"')
        owners[path] = reader.check(value, check_owner, owner, f" for {path} on host {host}")
    return owners


def _sysctls(reader: _Reader, host: str, node: Node) -> dict[str, str]:
    sysctls = {}
    example = '{net.core.somaxconn: "1024"}'
    for key, key_node, value in reader.mapping(node, "sysctls", example):
        text = reader.text(value, f"the value of sysctl {key}", '"1024"')
        reader.check(key_node, check_sysctl, host, key, "1")
        sysctls[key] = reader.check(value, check_sysctl, host, key, text)
    return sysctls


def _packages(reader: _Reader, host: str, node: Node) -> dict[str, str | None]:
    packages = {}
    where = f" on host {host}"
    for package, key_node, value in reader.mapping(
        node, "packages", '{hello: "2.10-3", tzdata: null}'
    ):
        reader.check(key_node, check_package, package, None, where)
        version = reader.optional_text(value, f"the version of {package}", '"2.10-3"')
        packages[package] = reader.check(value, check_package, package, version, where)
    return packages


def _kernel_state(reader: _Reader, host: str, node: Node) -> dict[str, str]:
    kernel_state = {}
    example = '{/proc/cmdline: "root=/dev/vda1 ro quiet"}'
    for path, key_node, value in reader.mapping(node, "kernel_state", example):
        text = reader.text(value, f"the kernel_state text of {path}", '"root=/dev/vda1 ro"')
        # The path first, so an unsupported path is named at its own line.
        reader.check(key_node, check_kernel_state, host, path, "")
        kernel_state[path] = reader.check(value, check_kernel_state, host, path, text)
    return kernel_state


def _fault(reader: _Reader, host: str, node: Node) -> str | None:
    fault = reader.optional_text(node, f"the fault of host {host}", "down")
    checked: str | None = reader.check(node, check_fault, host, fault)
    return checked


def _release(reader: _Reader, host: str, node: Node) -> str | None:
    release = reader.optional_text(node, f"the release of host {host}", "trixie")
    checked: str | None = reader.check(node, check_release, host, release)
    return checked


#: How each optional host field is read, in the order the fields are checked.
_FIELD_READERS: Mapping[str, Callable[[_Reader, str, Node], Any]] = MappingProxyType(
    {
        "roles": _roles,
        "files": _files,
        "file_modes": _file_modes,
        "file_owners": _file_owners,
        "sysctls": _sysctls,
        "packages": _packages,
        "kernel_state": _kernel_state,
        "fault": _fault,
        "release": _release,
    }
)
_HOST_FIELDS = ("environment", *_FIELD_READERS)


def _host(reader: _Reader, name: str, name_node: Node, node: Node) -> LabHostSpec:
    reader.check(name_node, check_host_name, name)
    items = reader.mapping(node, f"host {name}", "{environment: staging, roles: [web]}")
    fields = {key: value for key, _, value in items}
    for key, key_node, _ in items:
        if key not in _HOST_FIELDS:
            close = difflib.get_close_matches(key, _HOST_FIELDS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use {', '.join(_HOST_FIELDS)}"
            reader.fail(key_node, f"unknown field {key!r} for host {name}; {hint}")
    if "environment" not in fields:
        reader.fail(node, f"host {name} has no environment; add e.g. environment: staging")
    env_node = fields["environment"]
    environment = reader.text(env_node, f"the environment of host {name}", "staging")
    reader.check(env_node, check_environment, name, environment)
    kwargs = {
        field: read(reader, name, fields[field])
        for field, read in _FIELD_READERS.items()
        if field in fields
    }
    try:
        return LabHostSpec(name, environment, **kwargs)
    except LabError as exc:  # what the field checks above cannot see
        reader.fail(name_node, str(exc))


def load_specs(path: Path) -> list[LabHostSpec]:
    """Read a YAML lab spec file; return its hosts in file order.

    Raises :class:`LabError` with one line ``PATH:LINE: what is wrong; how to
    fix`` for an unreadable file, invalid YAML or an invalid host.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise LabError(f"{path}:1: cannot read the lab spec ({reason}); check the path") from None
    reader = _Reader(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "syntax error"
        raise LabError(f"{path}:{line}: invalid YAML: {problem}; fix the syntax there") from None
    except yaml.YAMLError as exc:
        raise LabError(f"{path}:1: invalid YAML: {exc}; fix the syntax") from None
    if root is None:
        reader.fail(None, "the lab spec is empty; start it with 'hosts:' and one host below")
    top = reader.mapping(root, "the lab spec", "hosts: {stg-web1: {environment: staging}}")
    for key, key_node, _ in top:
        if key != "hosts":
            reader.fail(key_node, f"unknown top-level key {key!r}; the spec has only 'hosts:'")
    hosts_node = next((value for key, _, value in top if key == "hosts"), None)
    if hosts_node is None:
        reader.fail(root, "the lab spec has no 'hosts:'; add it with one host below")
    if isinstance(hosts_node, ScalarNode) and hosts_node.tag == _NULL:
        reader.fail(hosts_node, "'hosts:' is empty; add at least one host below it")
    hosts = reader.mapping(hosts_node, "hosts", "{stg-web1: {environment: staging}}")
    if not hosts:
        reader.fail(hosts_node, "'hosts:' is empty; add at least one host below it")
    return [_host(reader, name, name_node, node) for name, name_node, node in hosts]
