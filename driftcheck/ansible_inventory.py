"""Read an Ansible inventory: its hosts, their groups and their variables as Ansible merges them.

Static inventories (INI, YAML, a directory of them, with ``group_vars/`` and ``host_vars/``
beside them) are parsed here, so driftcheck needs no Ansible at run time. Dynamic ones (an
executable script, a YAML plugin configuration) can only be evaluated by Ansible itself: they
go through ``ansible-inventory --list``. ansible-core is optional and GPL, so nothing here
imports it; the rules below were learnt from ansible-core 2.19's ``ini`` and ``yaml``
inventory plugins, its ``host_group_vars`` vars plugin and its ``VariableManager``, and the
tests check them against a real ``ansible-inventory --list`` on every fixture.

:func:`connection_settings` then maps the ``ansible_*`` connection variables of one host to
driftcheck's host settings, and says which of them driftcheck does not follow.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import string
import subprocess
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from driftcheck.errors import InventoryError

#: A variable's value and where it was set ("hosts.ini:12", "group_vars/web.yml", ...).
Sourced = tuple[Any, str]

DYNAMIC_SOURCE = "ansible-inventory"
#: Seconds a dynamic inventory may take; cloud plugins page through APIs, so be generous.
DYNAMIC_TIMEOUT = 300
#: What ``host_group_vars`` tries after NAME itself, in this order (C.YAML_FILENAME_EXTENSIONS).
VARS_EXTENSIONS = (".yml", ".yaml", ".json")
#: Files an inventory directory skips (manager.py's IGNORED_ALWAYS plus the default
#: INVENTORY_IGNORE_EXTS, i.e. REJECT_EXTS + .orig .cfg .retry).
IGNORED_ENTRIES = re.compile(
    r"^\.|^host_vars$|^group_vars$|^vars_plugins$"
    r"|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$"
)
YAML_INVENTORY_EXTENSIONS = ("", ".yml", ".yaml", ".json")
INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
INI_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")

# parse_address (ansible/parsing/utils/addresses.py): "host:port" splits only when the host
# part is a valid name or address; anything else stays the host's whole name.
_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I)
BRACKETED_HOSTPORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
IPV6ISH = re.compile(r"^[0-9a-f:.\[\]]*:[0-9a-f:.\[\]]*$", re.I)


@dataclass(frozen=True)
class AnsibleHost:
    """One inventory host as Ansible sees it."""

    name: str
    #: every group it belongs to, directly or through ``children``; sorted, without
    #: ``all`` and ``ungrouped``
    groups: tuple[str, ...]
    #: its variables merged with Ansible's precedence
    vars: Mapping[str, Any]
    #: variable -> where the winning value came from, relative to the inventory's directory
    sources: Mapping[str, str]


@dataclass(frozen=True)
class ConnectionVars:
    """driftcheck host settings taken from one host's Ansible connection variables."""

    settings: Mapping[str, Any]
    sources: Mapping[str, str]
    warnings: tuple[str, ...]


class VaultedValue(str):
    """An ``!vault`` value: only Ansible with the vault password can read it."""


def fail(where: str, message: str) -> InventoryError:
    """The one-line error ``WHERE: what is wrong; what to do``."""
    return InventoryError(f"{where}: {message}")


# ----------------------------------------------------------------------------- the model


@dataclass
class _Group:
    name: str
    vars: dict[str, Sourced] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    priority: int = 1


@dataclass
class _Host:
    name: str
    vars: dict[str, Sourced] = field(default_factory=dict)


class _Inventory:
    """The hosts and groups that Ansible's InventoryData would hold after parsing."""

    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {"all": _Group("all"), "ungrouped": _Group("ungrouped")}
        self.add_child("all", "ungrouped", "")
        self.hosts: dict[str, _Host] = {}

    def add_group(self, name: str) -> None:
        self.groups.setdefault(name, _Group(name))

    def add_host(self, name: str, group: str, port: int | None, source: str) -> None:
        if name not in self.hosts:
            self.hosts[name] = _Host(name)
            # Ansible sets ansible_port from "host:port" only when it first meets the host.
            if port:
                self.hosts[name].vars["ansible_port"] = (port, source)
        if name not in self.groups[group].hosts:
            self.groups[group].hosts.append(name)

    def add_child(self, parent: str, child: str, where: str) -> None:
        if child in self.groups[parent].children:
            return
        if parent == child or parent in self.descendants(child):
            raise fail(
                where,
                f"group {child!r} as a child of {parent!r} makes a loop; "
                "remove one of the two children entries",
            )
        self.groups[parent].children.append(child)
        if parent not in self.groups[child].parents:
            self.groups[child].parents.append(parent)

    def descendants(self, name: str) -> set[str]:
        out: set[str] = set()
        todo = [name]
        while todo:
            for child in self.groups[todo.pop()].children:
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out

    def ancestors(self, name: str) -> set[str]:
        out: set[str] = set()
        todo = [name]
        while todo:
            for parent in self.groups[todo.pop()].parents:
                if parent not in out:
                    out.add(parent)
                    todo.append(parent)
        return out

    def set_group_var(self, group: str, key: str, value: Any, source: str, where: str) -> None:
        if key == "ansible_group_priority":
            # Group.set_variable: the priority is the group's, not a variable.
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise fail(
                    where,
                    f"ansible_group_priority of group {group!r} is {value!r}, not a number; "
                    "set it to an integer",
                ) from None
            return
        self.groups[group].vars[key] = (value, source)

    def reconcile(self) -> None:
        """What InventoryData.reconcile_inventory does once every source is parsed."""
        for name in list(self.groups):
            if name != "all" and not self.groups[name].parents:
                self.add_child("all", name, "")
        ungrouped = self.groups["ungrouped"]
        for host in self.hosts:
            groups = self.host_groups(host)
            if "ungrouped" in groups and groups - {"all", "ungrouped"}:
                ungrouped.hosts.remove(host)
            elif not groups - {"all"}:
                ungrouped.hosts.append(host)

    def host_groups(self, host: str) -> set[str]:
        direct = {g.name for g in self.groups.values() if host in g.hosts}
        return direct.union(*(self.ancestors(g) for g in direct))

    def depths(self) -> dict[str, int]:
        """Each group's longest distance from ``all``: Ansible's Group.depth."""
        depth = {"all": 0}
        order = ["all"]
        while order:
            name = order.pop(0)
            for child in self.groups[name].children:
                if depth.get(child, -1) < depth[name] + 1:
                    depth[child] = depth[name] + 1
                    order.append(child)
        return depth


# ----------------------------------------------------------------------------- host patterns


def split_port(pattern: str) -> tuple[str, int | None]:
    """``web1:2222`` -> ("web1", 2222); the pattern itself when it has no valid port."""
    for regex in (BRACKETED_HOSTPORT, HOSTPORT):
        match = regex.match(pattern)
        if match:
            host, port = match.group(1), int(match.group(2))
            if HOSTNAME.match(host) or IPV6ISH.match(host):
                return host, port
            return pattern, None
    return pattern, None


def expand_range(pattern: str, where: str) -> list[str]:
    """``web[01:03]`` -> web01 web02 web03; ``[a:c]``, ``[1:9:2]`` and several ranges too."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    inner, _, tail = rest.partition("]")
    bounds = inner.split(":")
    if len(bounds) not in (2, 3) or not bounds[1]:
        raise fail(where, f"host range [{inner}] must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]
    step = int(bounds[2]) if len(bounds) == 3 and bounds[2].isdigit() else 1
    if begin[0] == "0" and len(begin) > 1 and len(begin) != len(end):
        raise fail(where, f"host range [{inner}] must have begin and end of equal length")
    width = len(begin) if begin[0] == "0" and len(begin) > 1 else 0
    if begin in string.ascii_letters and end in string.ascii_letters:
        i, j = string.ascii_letters.index(begin), string.ascii_letters.index(end)
        if i > j:
            raise fail(where, f"host range [{inner}] must have begin <= end")
        items = list(string.ascii_letters[i : j + 1 : step])
    elif begin.isdigit() and end.isdigit():
        items = [str(n).zfill(width) for n in range(int(begin), int(end) + 1, step)]
    else:
        raise fail(where, f"host range [{inner}] must be numbers or single letters")
    return [name for item in items for name in expand_range(f"{head}{item}{tail}", where)]


def expand_hosts(pattern: str, where: str) -> tuple[list[str], int | None]:
    """A host pattern's host names and the port it gives them, if any."""
    host, port = split_port(pattern)
    return expand_range(host, where), port


# ----------------------------------------------------------------------------- INI


def ini_value(text: str, where: str) -> Any:
    """A value as the INI plugin types it: a Python literal if it is one, else the string."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (TypeError, MemoryError, RecursionError):
        raise fail(where, f"value {text!r} cannot be read; quote it") from None
    return _plain(value)


def _plain(value: Any) -> Any:
    """literal_eval's types as Ansible keeps them: tuples and sets become lists, etc."""
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


@dataclass
class _IniState:
    inventory: _Inventory
    path: Path
    rel: str
    group: str = "ungrouped"
    kind: str = "hosts"
    #: group -> (line, kind, parents): groups named before they were declared
    pending: dict[str, tuple[int, str, list[str]]] = field(default_factory=dict)


def parse_ini(inventory: _Inventory, path: Path, rel: str) -> None:
    """Add one INI inventory file's hosts, groups and inline variables."""
    state = _IniState(inventory, path, rel)
    for number, raw in enumerate(_read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{path}:{number}"
        source = f"{rel}:{number}"
        section = INI_SECTION.match(line)
        if section:
            _ini_section(state, section, number, where)
        elif line.startswith("[") and line.endswith("]"):
            raise fail(
                where,
                f"invalid section {line}; write [group], [group:vars] or [group:children] "
                "with no spaces",
            )
        elif state.kind == "hosts":
            _ini_hosts(state, line, where, source)
        elif state.kind == "vars":
            key, value = _ini_variable(line, where)
            inventory.set_group_var(state.group, key, value, source, where)
        else:
            _ini_child(state, line, number, where)
    for name, (number, kind, parents) in state.pending.items():
        if kind == "vars":
            raise fail(
                f"{path}:{number}",
                f"[{name}:vars] is for a group that is never declared; "
                f"add a [{name}] or [{name}:children] section",
            )
        raise fail(
            f"{path}:{number}",
            f"[{parents[-1]}:children] names group {name!r} that is never declared; "
            f"add a [{name}] section",
        )


def _ini_section(state: _IniState, section: re.Match[str], number: int, where: str) -> None:
    # Kept as written: Ansible only rewrites invalid group names when its config says
    # so (TRANSFORM_INVALID_GROUP_CHARS, "never" by default).
    name = section.group(1)
    kind = section.group(2) or "hosts"
    if kind not in ("hosts", "children", "vars"):
        raise fail(
            where,
            f"section [{section.group(1)}:{kind}] has unknown type {kind!r}; "
            "use :vars or :children",
        )
    inventory = state.inventory
    if name not in inventory.groups:
        # [g:vars] may come before g is declared; Ansible checks at the end of the file.
        if kind == "vars" and name not in state.pending:
            state.pending[name] = (number, kind, [])
        inventory.add_group(name)
    if name in state.pending and kind != "vars":
        if state.pending[name][1] == "children":
            _ini_adopt(state, name, where)
        else:
            del state.pending[name]
    state.group, state.kind = name, kind


def _ini_adopt(state: _IniState, name: str, where: str) -> None:
    """A group named in [p:children] before its own section: link it to its parents now."""
    for parent in state.pending[name][2]:
        state.inventory.add_child(parent, name, where)
        if parent in state.pending and state.pending[parent][1] == "children":
            _ini_adopt(state, parent, where)
    del state.pending[name]


def _ini_hosts(state: _IniState, line: str, where: str, source: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as error:
        raise fail(where, f"cannot split host line ({error}); close the quotes") from None
    if not tokens:
        return
    pattern = tokens[0]
    names, port = expand_hosts(pattern, where)
    if pattern.endswith(":") and port is None:
        raise fail(where, f"host {pattern!r} ends in ':'; give a port after it or remove it")
    if "---" in (n.strip() for n in names):
        raise fail(where, "'---' is not a host (this looks like YAML); name the file .yml")
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise fail(where, f"expected key=value after the host name, got {token!r}; fix it")
        key, value = token.split("=", 1)
        variables[key] = ini_value(value, where)
    for name in names:
        state.inventory.add_host(name, state.group, port, source)
        for key, value in variables.items():
            state.inventory.hosts[name].vars[key] = (value, source)


def _ini_variable(line: str, where: str) -> tuple[str, Any]:
    # A :vars line is not shlex-split: "key = value" around the first "=", the rest typed.
    if "=" not in line:
        raise fail(where, f"expected key=value in a :vars section, got {line!r}; fix it")
    key, value = (part.strip() for part in line.split("=", 1))
    return key, ini_value(value, where)


def _ini_child(state: _IniState, line: str, number: int, where: str) -> None:
    match = INI_GROUP_NAME.match(line)
    if not match:
        raise fail(where, f"expected a group name in a :children section, got {line!r}; fix it")
    child = match.group(1)
    if child in state.inventory.groups:
        state.inventory.add_child(state.group, child, where)
    elif child in state.pending:
        state.pending[child][2].append(state.group)
    else:
        state.pending[child] = (number, "children", [state.group])


# ----------------------------------------------------------------------------- YAML


class _Constructor(yaml.constructor.SafeConstructor):
    """PyYAML's safe types plus Ansible's own tags."""


_Constructor.add_constructor(
    "!unsafe",
    lambda c, n: c.construct_scalar(n) if isinstance(n, yaml.ScalarNode) else None,
)
_Constructor.add_constructor(
    "!vault",
    lambda c, n: VaultedValue(c.construct_scalar(n)) if isinstance(n, yaml.ScalarNode) else None,
)


def yaml_node(path: Path) -> yaml.Node | None:
    """The YAML document of ``path`` as nodes, which know their line numbers."""
    try:
        return yaml.compose(_read_text(path), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise fail(where, f"invalid YAML ({error.problem}); fix the syntax") from None
    except yaml.YAMLError as error:
        raise fail(str(path), f"invalid YAML ({error}); fix the syntax") from None


def construct(node: yaml.Node) -> Any:
    """The Python value of a YAML node."""
    return _Constructor().construct_document(node)


def yaml_pairs(node: yaml.Node | None) -> list[tuple[Any, yaml.Node, yaml.Node | None]]:
    """A mapping node's (key, key node, value node); a plain string is one key with no value.

    A key given twice keeps its first place and its last value, as a dict would.
    """
    if node is None or node.tag == "tag:yaml.org,2002:null":
        return []
    if isinstance(node, yaml.ScalarNode):
        return [(construct(node), node, None)]
    pairs: dict[Any, tuple[yaml.Node, yaml.Node | None]] = {}
    for key_node, value_node in node.value:
        pairs[construct(key_node)] = (key_node, value_node)
    return [(key, k, v) for key, (k, v) in pairs.items()]


def _is_mapping(node: yaml.Node | None) -> bool:
    return (
        node is None or isinstance(node, yaml.MappingNode) or node.tag == "tag:yaml.org,2002:null"
    )


@dataclass
class _YamlFile:
    inventory: _Inventory
    path: Path
    rel: str

    def where(self, node: yaml.Node) -> str:
        return f"{self.path}:{node.start_mark.line + 1}"

    def source(self, node: yaml.Node) -> str:
        return f"{self.rel}:{node.start_mark.line + 1}"


def parse_yaml(inventory: _Inventory, path: Path, rel: str, root: yaml.Node | None) -> None:
    """Add one YAML inventory file's groups (all/children/hosts/vars, nested)."""
    if root is None or root.tag == "tag:yaml.org,2002:null":
        raise fail(str(path), "the YAML inventory is empty; add an all: group or remove the file")
    if not isinstance(root, yaml.MappingNode):
        raise fail(
            f"{path}:{root.start_mark.line + 1}",
            "a YAML inventory must be a mapping of group names; start it with all:",
        )
    state = _YamlFile(inventory, path, rel)
    for name, key_node, value_node in yaml_pairs(root):
        _yaml_group(state, name, key_node, value_node)


def _yaml_group(state: _YamlFile, name: Any, key: yaml.Node, data: yaml.Node | None) -> str:
    # Anything but a mapping (or nothing) is skipped with a warning by Ansible: so here too.
    if not _is_mapping(data) or not isinstance(name, str) or not name:
        return str(name)
    inventory = state.inventory
    inventory.add_group(name)
    sections = {k: v for k, _, v in yaml_pairs(data)}
    for section in ("vars", "children", "hosts"):
        value = sections.get(section)
        if value is not None and not _is_mapping(value) and not _is_string(value):
            raise fail(
                state.where(value),
                f"{section} of group {name!r} must be a mapping, not a list or value; "
                "write NAME: entries under it",
            )
    for section, _, value in yaml_pairs(data):
        if not (_is_mapping(value) or _is_string(value)) or section not in (
            "vars",
            "children",
            "hosts",
        ):
            continue
        for item, item_key, item_value in yaml_pairs(value):
            if section == "vars":
                inventory.set_group_var(
                    name,
                    str(item),
                    construct_value(item_value),
                    state.source(item_key),
                    state.where(item_key),
                )
            elif section == "children":
                child = _yaml_group(state, item, item_key, item_value)
                inventory.add_child(name, child, state.where(item_key))
            else:
                _yaml_hosts(state, name, item, item_key, item_value)
    return name


def _is_string(node: yaml.Node | None) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str"


def construct_value(node: yaml.Node | None) -> Any:
    """The value of an optional node: ``None`` for none."""
    return None if node is None else construct(node)


def _yaml_hosts(
    state: _YamlFile, group: str, pattern: Any, key: yaml.Node, value: yaml.Node | None
) -> None:
    where = state.where(key)
    if not isinstance(pattern, str):
        raise fail(where, f"host {pattern!r} must be a string; put it in quotes")
    names, port = expand_hosts(pattern, where)
    pairs = yaml_pairs(value) if _is_mapping(value) else None
    if pairs is None:
        raise fail(where, f"host {pattern!r} must map to its variables or to nothing; fix it")
    for name in names:
        state.inventory.add_host(name, group, port, state.source(key))
        for var, var_key, var_value in pairs:
            state.inventory.hosts[name].vars[str(var)] = (
                construct_value(var_value),
                state.source(var_key),
            )


# ----------------------------------------------------------------------------- files


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise fail(str(path), "is not UTF-8 text; convert it") from None
    except OSError as error:
        raise fail(str(path), f"cannot be read ({error.strerror}); check the path") from None


def is_dynamic(path: Path) -> bool:
    """Whether Ansible would run this source (script) or hand it to a plugin (``plugin:``)."""
    if path.is_file() and os.access(path, os.X_OK):
        return True
    if path.suffix not in YAML_INVENTORY_EXTENSIONS:
        return False
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and bool(data.get("plugin"))


def inventory_files(path: Path) -> list[Path]:
    """The files Ansible parses for this source: itself, or a directory's, recursively."""
    if not path.is_dir():
        return [path]
    out: list[Path] = []
    for entry in sorted(os.listdir(path)):
        if not IGNORED_ENTRIES.search(entry):
            out.extend(inventory_files(path / entry))
    return out


def parse_static_file(inventory: _Inventory, path: Path, base: Path) -> None:
    """Parse one static file the way Ansible picks a plugin: YAML by extension, else INI."""
    rel = path.relative_to(base).as_posix()
    if path.suffix in (".yml", ".yaml", ".json"):
        parse_yaml(inventory, path, rel, yaml_node(path))
        return
    if path.suffix == "":
        # The yaml plugin also accepts files without an extension; INI text rarely is a
        # YAML mapping, so whichever parses is what Ansible would have taken.
        try:
            root = yaml.compose(_read_text(path), Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            root = None
        if isinstance(root, yaml.MappingNode):
            parse_yaml(inventory, path, rel, root)
            return
    if path.suffix == ".toml":
        raise fail(
            str(path), "TOML inventories are not read by driftcheck; convert it to INI or YAML"
        )
    parse_ini(inventory, path, rel)


def vars_files(base: Path, subdir: str, name: str) -> list[Path]:
    """host_group_vars' files for one host or group: NAME, NAME.yml/.yaml/.json or NAME/**."""
    folder = base / subdir
    if name.startswith("/") or not folder.is_dir():
        return []
    for ext in ("", *VARS_EXTENSIONS):
        candidate = folder / f"{name}{ext}"
        if candidate.is_dir():
            return _vars_dir_files(candidate)
        if candidate.exists():
            return [candidate]
    return []


def _vars_dir_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        full = folder / entry
        ext = os.path.splitext(entry)[1]
        if full.is_dir() and not ext:
            out.extend(_vars_dir_files(full))
        elif full.is_file() and (not ext or ext in VARS_EXTENSIONS):
            out.append(full)
    return out


class _VarsFiles:
    """group_vars/ and host_vars/ beside the inventory, each file read once."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.cache: dict[Path, dict[str, Sourced]] = {}

    def load(self, subdir: str, name: str) -> dict[str, Sourced]:
        out: dict[str, Sourced] = {}
        for path in vars_files(self.base, subdir, name):
            if path not in self.cache:
                self.cache[path] = self._read(path)
            out.update(self.cache[path])
        return out

    def _read(self, path: Path) -> dict[str, Sourced]:
        if _read_text(path).lstrip().startswith("$ANSIBLE_VAULT;"):
            # A vault-encrypted vars file (group_vars/all/vault.yml is the usual layout)
            # needs the vault password: its variables are left out rather than failing the
            # whole inventory. A connection var templated from them is an error later.
            return {}
        node = yaml_node(path)
        data = None if node is None else construct(node)
        if not data:
            return {}
        if not isinstance(data, dict):
            raise fail(str(path), "a vars file must be a mapping of variable: value; fix it")
        rel = path.relative_to(self.base).as_posix()
        return {str(key): (value, rel) for key, value in data.items()}


# ----------------------------------------------------------------------------- merging


def merge_host(
    inventory: _Inventory, files: _VarsFiles, depth: Mapping[str, int], name: str
) -> AnsibleHost:
    """One host's variables in VariableManager.get_vars' order (the default precedence).

    Lowest first: inline vars of ``all``; inline vars of its other groups by (depth,
    ansible_group_priority, name); group_vars/all; group_vars of those groups in the same
    order; the host's inline vars; host_vars/. Later ones replace earlier ones whole
    (hash_behaviour=replace, Ansible's default).
    """
    groups = sorted(
        (inventory.groups[g] for g in inventory.host_groups(name) if g != "all"),
        key=lambda g: (depth.get(g.name, 0), g.priority, g.name),
    )
    merged: dict[str, Sourced] = dict(inventory.groups["all"].vars)
    for group in groups:
        merged.update(group.vars)
    merged.update(files.load("group_vars", "all"))
    for group in groups:
        merged.update(files.load("group_vars", group.name))
    merged.update(inventory.hosts[name].vars)
    merged.update(files.load("host_vars", name))
    return AnsibleHost(
        name=name,
        groups=tuple(sorted(g.name for g in groups if g.name != "ungrouped")),
        vars={key: value for key, (value, _) in merged.items()},
        sources={key: source for key, (_, source) in merged.items()},
    )


def load_ansible_inventory(path: Path) -> list[AnsibleHost]:
    """The hosts of the Ansible inventory at ``path`` (a file or a directory), in order.

    Static INI and YAML inventories are parsed here; dynamic ones (an executable script, a
    YAML file with a ``plugin:`` key, or a directory holding either) are run through
    ``ansible-inventory --list``. Raises :class:`InventoryError` with one line.
    """
    if not path.exists():
        raise fail(str(path), "no such inventory file or directory; check the path")
    files = inventory_files(path)
    if any(is_dynamic(f) for f in files):
        return load_dynamic(path)
    base = path if path.is_dir() else path.parent
    inventory = _Inventory()
    for file in files:
        parse_static_file(inventory, file, base)
    inventory.reconcile()
    vars_files_ = _VarsFiles(base)
    depth = inventory.depths()
    return [merge_host(inventory, vars_files_, depth, name) for name in inventory.hosts]


# ----------------------------------------------------------------------------- dynamic


def load_dynamic(path: Path, runner: Callable[..., Any] = subprocess.run) -> list[AnsibleHost]:
    """Let Ansible evaluate a dynamic inventory and read its ``--list`` JSON."""
    command = ["ansible-inventory", "-i", str(path), "--list"]
    try:
        proc = runner(
            command, capture_output=True, text=True, timeout=DYNAMIC_TIMEOUT, env=_dynamic_env()
        )
    except FileNotFoundError:
        raise fail(
            str(path),
            "is a dynamic inventory and ansible-inventory is not installed; "
            "install ansible-core (pip install ansible-core) or use a static inventory",
        ) from None
    except subprocess.TimeoutExpired:
        raise fail(
            str(path),
            f"ansible-inventory --list took over {DYNAMIC_TIMEOUT}s; "
            "check the script or plugin, or export a static inventory",
        ) from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        last = lines[-1].removeprefix("[ERROR]: ") if lines else f"exit status {proc.returncode}"
        raise fail(str(path), f"ansible-inventory --list failed: {last}; fix the inventory source")
    try:
        data = json.loads(proc.stdout, object_hook=_decode_tagged)
    except json.JSONDecodeError as error:
        raise fail(
            str(path), f"ansible-inventory --list printed no JSON ({error.msg}); run it by hand"
        ) from None
    return hosts_from_list(data, str(path))


def _dynamic_env() -> dict[str, str]:
    # The user's own Ansible configuration applies (plugins, credentials), but a source
    # that fails to parse must fail: by default ansible-inventory warns, lists no host
    # and exits 0, which would look like an empty inventory.
    return {
        **os.environ,
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
        "ANSIBLE_NOCOLOR": "1",
    }


def _decode_tagged(obj: dict[str, Any]) -> Any:
    # ansible-inventory's legacy profile writes unsafe and vaulted strings as tagged objects.
    if set(obj) == {"__ansible_unsafe"}:
        return str(obj["__ansible_unsafe"])
    if set(obj) == {"__ansible_vault"}:
        return VaultedValue(obj["__ansible_vault"])
    return obj


def hosts_from_list(data: Any, where: str) -> list[AnsibleHost]:
    """AnsibleHosts from ``ansible-inventory --list`` output (groups linked by children)."""
    if not isinstance(data, dict):
        raise fail(where, "ansible-inventory --list printed no JSON object; run it by hand")
    meta = data.get("_meta") or {}
    hostvars: dict[str, Any] = meta.get("hostvars") or {}
    inventory = _Inventory()
    groups = {name: body for name, body in data.items() if name != "_meta"}
    for name in groups:
        inventory.add_group(name)
    for name, body in groups.items():
        for child in (body or {}).get("children") or []:
            inventory.add_group(child)
            inventory.add_child(name, child, where)
        for host in (body or {}).get("hosts") or []:
            inventory.add_host(host, name, None, DYNAMIC_SOURCE)
    for host in hostvars:
        inventory.add_host(host, "all", None, DYNAMIC_SOURCE)
    out = []
    for host in inventory.hosts:
        member = inventory.host_groups(host) - {"all", "ungrouped"}
        values = hostvars.get(host) or {}
        out.append(
            AnsibleHost(
                name=host,
                groups=tuple(sorted(member)),
                vars=dict(values),
                sources=dict.fromkeys(values, DYNAMIC_SOURCE),
            )
        )
    return out


# ----------------------------------------------------------------------------- connection

#: setting -> the variables that set it, in the ssh connection plugin's order: as in
#: Ansible's config manager, the last one that is set (not None) wins.
ALIASES = {
    "address": ("ansible_host", "ansible_ssh_host"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "identity_file": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
}
#: In the order ssh gets them on its command line; ssh keeps an option's first value.
SSH_ARGS_VARS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")
SECRET_VARS = (
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_sudo_pass",
    "ansible_private_key",
    "ansible_ssh_private_key",
    "ansible_private_key_passphrase",
    "ansible_ssh_private_key_passphrase",
)
SSH_TRANSPORTS = ("ssh", "paramiko", "paramiko_ssh", "smart")
#: ssh(1)'s options that take an argument (everything else is a flag, e.g. -A, -q).
SSH_OPTS_WITH_ARG = set("BbcDEeFIiJLlmOoPpQRSWw")
TRUE_WORDS = ("y", "yes", "on", "1", "true", "t")
FALSE_WORDS = ("n", "no", "off", "0", "false", "f")


@dataclass
class _Connection:
    host: AnsibleHost
    settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: ssh keeps the first value of an option: later ones are not followed
    seen_ssh_options: set[str] = field(default_factory=set)

    def var(self, *names: str) -> tuple[str, Any, str] | None:
        """The winning (name, value, source) among aliases, refusing templates."""
        found = None
        for name in names:
            if self.host.vars.get(name) is not None:
                found = (name, self.host.vars[name], self.source(name))
        if found is not None:
            literal(self.host.name, *found)
        return found

    def source(self, name: str) -> str:
        return self.host.sources.get(name, DYNAMIC_SOURCE)

    def set(self, setting: str, value: Any, source: str) -> None:
        self.settings[setting] = value
        self.sources[setting] = source

    def warn(self, name: str, why: str, source: str | None = None) -> None:
        # Never the value: it may be a password.
        where = source or self.source(name)
        self.warnings.append(f"{self.host.name}: {name} ({where}) is not followed: {why}")


def literal(host: str, name: str, value: Any, source: str) -> None:
    """Refuse a value that only Ansible could evaluate (a template, a vaulted string)."""
    if isinstance(value, VaultedValue):
        raise fail(
            source,
            f"host {host}: {name} is vault-encrypted, which driftcheck cannot decrypt; "
            "set it literally or use a dynamic inventory",
        )
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        raise fail(
            source,
            f"host {host}: {name} is a Jinja template, which driftcheck cannot evaluate; "
            "set it literally or use a dynamic inventory",
        )


def connection_settings(host: AnsibleHost) -> ConnectionVars:
    """driftcheck host settings from one host's ``ansible_*`` connection variables.

    Keys of ``settings``: address, port, user, identity_file, become ("sudo"), proxy_jump,
    known_hosts, transport. Only variables that are set give a key. What driftcheck does not
    follow (passwords, agent forwarding, disabled host key checks, other ProxyCommands) is
    one warning line each; what it cannot do at all (another become method, a connection
    plugin other than ssh or local, a template) raises :class:`InventoryError`.
    """
    conn = _Connection(host)
    for setting, names in ALIASES.items():
        found = conn.var(*names)
        if found is not None:
            name, value, source = found
            if setting == "port":
                value = _port(host.name, name, value, source)
            conn.set(setting, value if setting == "port" else str(value), source)
    _transport(conn)
    _become(conn)
    for name in SSH_ARGS_VARS:
        if conn.var(name) is not None:
            _ssh_args(conn, name)
    for name in SECRET_VARS:
        if host.vars.get(name) is not None:
            conn.warn(name, "driftcheck logs in with SSH keys and runs sudo -n, never a password")
    checking = conn.var("ansible_host_key_checking", "ansible_ssh_host_key_checking")
    if checking is not None and _boolean(host.name, *checking) is False:
        conn.warn(checking[0], "driftcheck always checks host keys against known_hosts")
    return ConnectionVars(
        settings=dict(conn.settings), sources=dict(conn.sources), warnings=tuple(conn.warnings)
    )


def _port(host: str, name: str, value: Any, source: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise fail(source, f"host {host}: {name} is {value!r}, not a port; set a number 1-65535")
    return int(text)


def _boolean(host: str, name: str, value: Any, source: str) -> bool:
    """Ansible's boolean(): yes/no, true/false, on/off, 1/0 and friends."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise fail(source, f"host {host}: {name} is {value!r}, not a boolean; set true or false")


def _transport(conn: _Connection) -> None:
    found = conn.var("ansible_connection")
    if found is None:
        return
    name, value, source = found
    plugin = str(value).removeprefix("ansible.builtin.")
    if plugin == "local":
        conn.set("transport", "local", source)
    elif plugin in SSH_TRANSPORTS:
        conn.set("transport", "ssh", source)
    else:
        raise fail(
            source,
            f"host {conn.host.name}: {name}={value} is not a transport driftcheck has "
            "(it connects over ssh or runs locally); use ssh or local, or leave the host out",
        )


def _become(conn: _Connection) -> None:
    found = conn.var("ansible_become")
    if found is None or not _boolean(conn.host.name, *found):
        return
    method = conn.var("ansible_become_method")
    if method is not None and str(method[1]).removeprefix("ansible.builtin.") != "sudo":
        raise fail(
            method[2],
            f"host {conn.host.name}: {method[0]}={method[1]} is not supported "
            "(driftcheck becomes root with sudo -n only); use sudo or drop ansible_become",
        )
    conn.set("become", "sudo", found[2])
    user = conn.var("ansible_become_user", "ansible_sudo_user")
    if user is not None and str(user[1]) != "root":
        conn.warn(user[0], "driftcheck runs sudo -n as root, never as another user")


def ssh_options(tokens: list[str]) -> list[tuple[str, str]]:
    """ssh(1) command-line options as (letter, argument) pairs, getopt-style.

    ``-J X``, ``-JX``, ``-o K=V``, ``-oK=V`` and clusters such as ``-qA`` all parse; a
    word that is not an option is returned as ("", word).
    """
    out: list[tuple[str, str]] = []
    words = iter(tokens)
    for word in words:
        if not word.startswith("-") or word in ("-", "--"):
            out.append(("", word))
            continue
        for index, letter in enumerate(word[1:], start=1):
            if letter in SSH_OPTS_WITH_ARG:
                out.append((letter, word[index + 1 :] or next(words, "")))
                break
            out.append((letter, ""))
    return out


def ssh_config_option(text: str) -> tuple[str, str]:
    """``-o`` text as (lowercased keyword, value): ``K=V``, ``K V`` and ``K = V``."""
    match = re.match(r"\s*(\w+)\s*(?:=\s*|\s+)(.*)$", text, re.S)
    if not match:
        return text.strip().lower(), ""
    return match.group(1).lower(), match.group(2).strip().strip('"')


def _ssh_args(conn: _Connection, name: str) -> None:
    """Follow ProxyJump and UserKnownHostsFile in one ssh-args variable; warn on the rest."""
    source = conn.source(name)
    try:
        tokens = shlex.split(str(conn.host.vars[name]))
    except ValueError as error:
        raise fail(
            source, f"host {conn.host.name}: {name} cannot be split ({error}); close the quotes"
        ) from None
    for letter, argument in ssh_options(tokens):
        key, value = ("proxyjump", argument) if letter == "J" else ("", "")
        if letter == "o":
            key, value = ssh_config_option(argument)
        elif letter == "A":
            key, value = "forwardagent", "yes"
        _ssh_option(conn, name, source, key, value)


def _ssh_option(conn: _Connection, name: str, source: str, key: str, value: str) -> None:
    first = key not in conn.seen_ssh_options
    conn.seen_ssh_options.add(key)
    if key == "proxyjump" and first and value.lower() != "none":
        conn.set("proxy_jump", value, source)
    elif key == "proxycommand" and first and value.lower() != "none":
        _proxy_command(conn, name, source, value)
    elif key == "userknownhostsfile" and first:
        path = (value.split() or [""])[0]
        if path == "/dev/null":
            conn.warn(name, "UserKnownHostsFile=/dev/null; driftcheck always checks host keys")
        elif path:
            conn.set("known_hosts", path, source)
    elif key == "stricthostkeychecking" and value.lower() not in ("yes", "ask"):
        conn.warn(name, f"StrictHostKeyChecking={value}; driftcheck always checks host keys")
    elif key == "forwardagent" and value.lower() not in ("no", "false"):
        conn.warn(name, "ForwardAgent/-A; driftcheck never forwards the SSH agent")


def _proxy_command(conn: _Connection, name: str, source: str, command: str) -> None:
    """``ssh -W %h:%p [-q] [-p PORT] [-i KEY] [user@]bastion`` is a ProxyJump in disguise."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    parsed = ssh_options(words[1:]) if words and os.path.basename(words[0]) == "ssh" else []
    options = {letter: argument for letter, argument in parsed if letter}
    targets = [argument for letter, argument in parsed if not letter]
    if (
        options.get("W") != "%h:%p"
        or set(options) - {"W", "q", "p", "i"}
        or len(targets) != 1
        or not options.get("p", "22").isdigit()
    ):
        conn.warn(
            name,
            "only a ProxyCommand 'ssh -W %h:%p [-q] [-p PORT] [-i KEY] [user@]host' "
            "translates to ProxyJump; write -J HOST (ProxyJump) instead",
        )
        return
    port = f":{options['p']}" if "p" in options else ""
    conn.set("proxy_jump", f"{targets[0]}{port}", f"{source} (ProxyCommand as ProxyJump)")
    if "i" in options:
        conn.warn(
            name,
            "the ProxyCommand's -i KEY for the jump host; ProxyJump uses your ssh "
            "config and agent for it",
        )
