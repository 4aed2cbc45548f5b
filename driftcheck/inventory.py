"""Load and validate the inventory YAML: hosts, environments, what to compare and collect.

Every mistake becomes one :class:`InventoryError` line naming the file, the line and
the fix. Types and unknown keys are checked by pydantic models; their error
locations are mapped back to YAML line numbers through the composed node tree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from driftcheck.ansible_hosts import ansible_drafts
from driftcheck.collectors import BY_NAME
from driftcheck.collectors.file_rules import exclude_error
from driftcheck.errors import InventoryError
from driftcheck.hostconfig import SETTINGS, HostDraft, HostResolver, Layer
from driftcheck.model import (
    DEFAULT_DIR_MAX_FILES,
    DEFAULT_FILE_MAX_BYTES,
    AppSource,
    CollectSettings,
    Host,
    SignoffGroup,
    SignoffPolicy,
)
from driftcheck.rules import KnownNames, Rules, RulesModel, compile_rules

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_URL = r"^https?://\S+$"
_PACKAGE = r"^[A-Za-z0-9][A-Za-z0-9+._:-]*$"
_PATTERN_HINTS = {
    _NAME: "; use letters, digits, '.', '_' and '-' only",
    _URL: "; write a full http:// or https:// URL, fetched on the host itself",
    _PACKAGE: "; give the package name as the package manager spells it",
}


_Text = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


_User = Annotated[str, Field(pattern=r"^[^\s@:]+$")]
_Hop = Annotated[str, Field(min_length=1, pattern=r"^\S+$")]


class HostSettings(_Strict):
    """Connection settings that ``defaults`` and ``environments.<env>.defaults``
    provide and each host may override."""

    user: _User | None = None
    port: Annotated[int, Field(ge=1, le=65535, strict=True)] | None = None
    identity_file: _Text | None = None
    identities_only: Annotated[bool, Field(strict=True)] | None = None
    known_hosts: _Text | None = None
    connect_timeout: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] | None = None
    command_timeout: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] | None = None
    transport: Literal["ssh", "local"] | None = None
    #: "sudo": collect under sudo -n; "none" undoes a default
    become: Literal["sudo", "none"] | None = None
    #: "[user@]host[:port]" or an inventory host name, or several (a list, or
    #: comma-separated as in OpenSSH); "none" undoes a default
    proxy_jump: _Hop | Annotated[list[_Hop], Field(min_length=1)] | None = None
    #: true: read ~/.ssh/config; a path: read that file; false: read none
    ssh_config: Annotated[bool, Field(strict=True)] | _Text | None = None


class HostEntry(HostSettings):
    """One host under ``environments.<env>.hosts``."""

    address: str | None = None
    roles: Annotated[list[Annotated[str, Field(pattern=_NAME)]], Field(min_length=1)]


class EnvironmentModel(_Strict):
    """One environment: its hosts by name, and settings for all of them."""

    defaults: HostSettings = HostSettings()
    hosts: dict[Annotated[str, Field(pattern=_NAME)], HostEntry] = {}


class AnsibleModel(_Strict):
    """Hosts taken from an Ansible inventory, its groups mapped to ours."""

    #: INI, YAML, a directory or a dynamic inventory; relative to this file
    inventory: _Text
    #: driftcheck environment -> the Ansible group (or groups) of its hosts
    environments: Annotated[
        dict[Annotated[str, Field(pattern=_NAME)], _Text | list[_Text]], Field(min_length=1)
    ]
    #: Ansible groups that are roles; default: every other group of those hosts
    roles: Annotated[list[_Text], Field(min_length=1)] | None = None


class CompareModel(_Strict):
    """Which environment is the reference and which must mirror it."""

    reference: str
    targets: Annotated[list[str], Field(min_length=1)]
    #: collector -> key globs that are volatile by default but must be compared here
    include_volatile: dict[str, list[str]] = {}


class AppSourceModel(_Strict):
    """Where an application's version comes from (exactly one of these)."""

    command: _Text | None = None
    file: _Text | None = None
    package: Annotated[str, Field(pattern=_PACKAGE)] | None = None
    url: Annotated[str, Field(pattern=_URL)] | None = None


class CollectModel(_Strict):
    """Parameters of the collectors."""

    files: list[str] = []
    exclude: list[str] = []
    apps: dict[Annotated[str, Field(pattern=_NAME)], _Text | AppSourceModel] = {}
    python: list[str] = []
    file_max_bytes: Annotated[int, Field(ge=0)] = DEFAULT_FILE_MAX_BYTES
    dir_max_files: Annotated[int, Field(ge=1)] = DEFAULT_DIR_MAX_FILES


class SignoffGroupModel(_Strict):
    """One group of the sign-off policy."""

    members: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    required: Annotated[int, Field(ge=1)] = 1


class SignoffModel(_Strict):
    """The ``signoff:`` section: the groups that must approve a release."""

    groups: Annotated[
        dict[Annotated[str, Field(pattern=_NAME)], SignoffGroupModel], Field(min_length=1)
    ]
    allow_waivers: bool = True
    valid_days: Annotated[int, Field(ge=1, le=3650)] = 7


class InventoryModel(_Strict):
    """The whole inventory file."""

    defaults: HostSettings = HostSettings()
    environments: dict[Annotated[str, Field(pattern=_NAME)], EnvironmentModel] = {}
    ansible: AnsibleModel | None = None
    compare: CompareModel
    collect: CollectModel = CollectModel()
    rules: RulesModel = RulesModel()
    signoff: SignoffModel | None = None


@dataclass(frozen=True)
class Inventory:
    """A validated inventory."""

    path: Path
    hosts: tuple[Host, ...]
    reference: str
    targets: tuple[str, ...]
    collect: CollectSettings
    include_volatile: tuple[tuple[str, tuple[str, ...]], ...] = ()
    rules: Rules = field(default_factory=Rules)
    #: one line each: settings found but not followed (ssh_config, Ansible)
    warnings: tuple[str, ...] = ()
    #: who must sign off a release (``signoff:``), if anyone
    signoff: SignoffPolicy | None = None
    #: the rules as written (plain data): what a sign-off's rules digest covers
    rules_document: Any = None

    def host(self, name: str) -> Host:
        """Return the host called ``name`` or raise a user-facing error."""
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise InventoryError(f"{self.path}: no host named {name!r}; known hosts: {known}")

    def roles(self) -> list[str]:
        """Every role of a target host, sorted: the units of comparison."""
        return sorted({r for h in self.hosts if h.environment in self.targets for r in h.roles})

    def hosts_in(self, environments: Sequence[str], role: str) -> list[Host]:
        """Hosts of the given environments that carry ``role``."""
        return [h for h in self.hosts if h.environment in environments and role in h.roles]


def load_inventory(path: str | Path) -> Inventory:
    """Read, validate and resolve the inventory at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(
            f"{path}: no such inventory file; pass -i PATH (see inventory.example.yaml)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read the inventory: {exc}") from None
    return parse_inventory(text, path)


def parse_inventory(text: str, path: Path) -> Inventory:
    """Validate inventory YAML ``text``; ``path`` is used in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(str(exc.problem or exc).split())
        raise InventoryError(
            f"{path}:{line}: not valid YAML: {problem}; fix the syntax there"
        ) from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise InventoryError(
            f"{path}: a YAML alias refers to itself; remove the recursive alias"
        ) from None
    if root is None or not isinstance(data, dict):
        raise InventoryError(
            f"{path}:1: the inventory must be a mapping with environments and compare; "
            "see inventory.example.yaml"
        )
    _reject_duplicate_keys(root, path)
    try:
        model = InventoryModel.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(_describe(exc, root, path)) from None
    return _resolve(model, root, path)


def _reject_duplicate_keys(root: yaml.Node, path: Path) -> None:
    """PyYAML silently keeps the last of duplicate keys; a duplicate host must fail."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases make the node tree a graph
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key, value in node.value:
                name = key.value
                if name in seen:
                    raise InventoryError(
                        f"{path}:{key.start_mark.line + 1}: duplicate key {name!r} "
                        f"(first at line {seen[name]}); every name must be unique, "
                        "rename or remove one"
                    )
                seen[name] = key.start_mark.line + 1
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _node_at(root: yaml.Node, loc: Sequence[int | str]) -> tuple[yaml.Node, bool]:
    """Follow ``loc`` down the node tree; return the deepest node reached and
    whether the last element named a mapping key (then the key node is returned)."""
    node = root
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    if i == len(loc) - 1:
                        return key, True
                    node = value
                    break
            else:
                return node, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node, False
            node = node.value[part]
        else:
            return node, False
    return node, False


def _dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_UNION_TAG = re.compile(r"^(int|float|str|bool|\[key\]|[a-z]+-[a-z]+(\[.*\])?|[A-Z]\w*Model)$")


def _describe(exc: ValidationError, root: yaml.Node, path: Path) -> str:
    """Turn the first pydantic error into one line with a line number and a fix."""

    # pydantic adds the tried member of a union ('int', 'constrained-str',
    # 'AppSourceModel') to locations; the deepest real location is the most
    # specific complaint (for "str or mapping", the mapping's own error).
    def real(loc: Sequence[int | str]) -> list[int | str]:
        return [p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p))]

    err = max(exc.errors(), key=lambda e: len(real(e["loc"])))
    loc = real(err["loc"])
    node, _ = _node_at(root, loc)
    line = node.start_mark.line + 1
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _dotted(loc[:-1])
        allowed = _allowed_keys(loc[:-1])
        return (
            f"{path}:{line}: {parent}: unknown key {loc[-1]!r}; "
            f"allowed keys here: {allowed} (check the spelling)"
        )
    if kind == "missing":
        parent_node, _ = _node_at(root, loc[:-1])
        return (
            f"{path}:{parent_node.start_mark.line + 1}: {_dotted(loc[:-1])}: "
            f"required key {loc[-1]!r} is missing; add it"
        )
    where = _dotted(loc)
    got = err.get("input")
    got_text = "" if isinstance(got, dict | list) else f" (got {got!r})"
    hint = ""
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(str(err.get("ctx", {}).get("pattern")), "")
    if kind.startswith(("date", "datetime")):
        hint = "; write the date as YYYY-MM-DD"
    message = err["msg"].removeprefix("Value error, ")
    return f"{path}:{line}: {where}: {message}{got_text}{hint}"


def _allowed_keys(loc: Sequence[int | str]) -> str:
    model: type[BaseModel] = InventoryModel
    trail = list(loc)
    # Walk the model tree along the location, skipping dict keys (host names, ...).
    while trail:
        part = trail.pop(0)
        field = model.model_fields.get(str(part))
        if field is None:
            continue
        annotation = field.annotation
        nested = _model_in(annotation)
        if nested is None:
            break
        model = nested
    return ", ".join(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _line(root: yaml.Node, *loc: int | str) -> int:
    return _node_at(root, list(loc))[0].start_mark.line + 1


def _resolve(model: InventoryModel, root: yaml.Node, path: Path) -> Inventory:
    """The validated model as an :class:`Inventory`, after the checks that need more
    than one part of the file (names that must exist, roles on both sides)."""
    warnings: list[str] = []
    drafts = _drafts(model, root, path, warnings)
    _check_compare(model, drafts, root, path)
    resolver = HostResolver(path.parent)
    hosts = resolver.resolve(drafts)
    _check_roles(model, hosts, root, path)
    collect = _resolve_collect(model.collect, root, path)
    for name in model.compare.include_volatile:
        if name not in BY_NAME:
            raise InventoryError(
                f"{path}:{_line(root, 'compare', 'include_volatile', name)}: "
                f"compare.include_volatile names unknown collector {name!r}; "
                f"use one of: {', '.join(BY_NAME)}"
            )
    include = tuple((n, tuple(g)) for n, g in model.compare.include_volatile.items())
    names = KnownNames(
        hosts=frozenset(h.name for h in hosts),
        roles=frozenset(r for h in hosts for r in h.roles),
        environments=tuple(model.environments),
        collectors=tuple(BY_NAME),
    )
    rules = compile_rules(model.rules, names, path, lambda kind, i: _line(root, "rules", kind, i))
    return Inventory(
        path,
        tuple(hosts),
        model.compare.reference,
        tuple(model.compare.targets),
        collect,
        include,
        rules,
        tuple(dict.fromkeys([*warnings, *resolver.warnings])),
        _signoff(model.signoff, root, path),
        model.rules.model_dump(mode="json"),
    )


def _signoff(model: SignoffModel | None, root: yaml.Node, path: Path) -> SignoffPolicy | None:
    """The sign-off policy; a group that requires more signatures than it has members
    can never be satisfied, so it is an error with its line."""
    if model is None:
        return None
    groups = []
    for name, group in model.groups.items():
        if group.required > len(group.members):
            raise InventoryError(
                f"{path}:{_line(root, 'signoff', 'groups', name)}: signoff group {name!r} "
                f"requires {group.required} signatures but has {len(group.members)} members; "
                "lower 'required' or add members"
            )
        groups.append(SignoffGroup(name, tuple(group.members), group.required))
    return SignoffPolicy(tuple(groups), model.allow_waivers, model.valid_days)


def _check_compare(
    model: InventoryModel, drafts: Sequence[HostDraft], root: yaml.Node, path: Path
) -> None:
    """compare.reference and compare.targets name distinct environments with hosts."""
    envs = [*model.environments, *(model.ansible.environments if model.ansible else ())]
    envs = list(dict.fromkeys(envs))
    populated = {d.environment for d in drafts}
    ref = model.compare.reference
    if ref not in envs:
        raise InventoryError(
            f"{path}:{_line(root, 'compare', 'reference')}: compare.reference {ref!r} is not "
            f"an environment; use one of: {', '.join(envs)}"
        )
    if len(set(model.compare.targets)) != len(model.compare.targets):
        raise InventoryError(
            f"{path}:{_line(root, 'compare', 'targets')}: compare.targets names an environment "
            "twice; list each once"
        )
    for env_name in [ref, *model.compare.targets]:
        if env_name in envs and env_name not in populated:
            where = (
                _line(root, "environments", env_name)
                if env_name in model.environments
                else _line(root, "ansible", "environments", env_name)
            )
            raise InventoryError(
                f"{path}:{where}: environment {env_name!r} has no hosts, so nothing would be "
                "compared; add its hosts"
            )
    for i, target in enumerate(model.compare.targets):
        if target not in envs:
            raise InventoryError(
                f"{path}:{_line(root, 'compare', 'targets', i)}: compare.targets has {target!r}, "
                f"which is not an environment; use one of: {', '.join(envs)}"
            )
        if target == ref:
            raise InventoryError(
                f"{path}:{_line(root, 'compare', 'targets', i)}: {target!r} is both the "
                "reference and a target; remove it from compare.targets"
            )


def _drafts(
    model: InventoryModel, root: yaml.Node, path: Path, warnings: list[str]
) -> list[HostDraft]:
    """Every host with its layers of settings; a name used twice fails."""
    defaults = _layer(model.defaults, root, path, "defaults")
    env_layers = {
        name: _layer(env.defaults, root, path, "environments", name, "defaults")
        for name, env in model.environments.items()
    }
    drafts: list[HostDraft] = []
    seen: dict[str, str] = {}
    for env_name, env in model.environments.items():
        for name, entry in env.hosts.items():
            where = f"{path}:{_line(root, 'environments', env_name, 'hosts', name)}"
            _unique(name, env_name, where, seen)
            own = _layer(entry, root, path, "environments", env_name, "hosts", name)
            layers = (own, env_layers[env_name], defaults)
            drafts.append(HostDraft(name, env_name, tuple(entry.roles), layers))
    ans = model.ansible
    if ans is not None:
        where = f"{path}:{_line(root, 'ansible', 'inventory')}"
        found = ansible_drafts(
            ans.inventory, ans.environments, ans.roles, (path.parent, where), warnings
        )
        for draft in found:
            _unique(draft.name, draft.environment, f"{where} (Ansible)", seen)
            rest = (env_layers.get(draft.environment, _EMPTY), defaults)
            drafts.append(replace(draft, layers=(*draft.layers, *rest)))
    return drafts


_EMPTY = Layer({}, {})


def _unique(name: str, env_name: str, where: str, seen: dict[str, str]) -> None:
    if name in seen:
        raise InventoryError(
            f"{where}: host {name!r} is also defined in environment {seen[name]!r}; host "
            "names must be unique, rename one"
        )
    seen[name] = env_name


def _layer(settings: BaseModel, root: yaml.Node, path: Path, *loc: str) -> Layer:
    """The settings one mapping of the file gives, each with its file:line."""
    values = {k: v for k in SETTINGS if (v := getattr(settings, k, None)) is not None}
    return Layer(values, {k: f"{path}:{_line(root, *loc, k)}" for k in values})


def _check_roles(model: InventoryModel, hosts: list[Host], root: yaml.Node, path: Path) -> None:
    """Every role of a target host has a host in the reference environment."""
    ref = model.compare.reference
    ref_roles = {r for h in hosts if h.environment == ref for r in h.roles}
    for host in hosts:
        if host.environment not in model.compare.targets:
            continue
        for i, role in enumerate(host.roles):
            if role not in ref_roles:
                env = model.environments.get(host.environment)
                if env is not None and host.name in env.hosts:
                    loc: tuple[str | int, ...] = ("environments", host.environment, "hosts")
                    line = _line(root, *loc, host.name, "roles", i)
                else:  # from the Ansible inventory: its groups gave the role
                    line = _line(root, "ansible", "inventory")
                raise InventoryError(
                    f"{path}:{line}: role {role!r} of host {host.name!r} has no host in the "
                    f"reference environment {ref!r}; give a {ref} host that role or fix the name"
                )


def _resolve_collect(collect: CollectModel, root: yaml.Node, path: Path) -> CollectSettings:
    """The collectors' parameters: absolute paths and valid exclusion globs only,
    duplicates dropped."""
    for i, file_path in enumerate(collect.files):
        if not file_path.startswith("/"):
            raise InventoryError(
                f"{path}:{_line(root, 'collect', 'files', i)}: collect.files has relative path "
                f"{file_path!r}; write it as an absolute path such as /{file_path.lstrip('./')}"
            )
        if "\n" in file_path or "\0" in file_path:
            raise InventoryError(
                f"{path}:{_line(root, 'collect', 'files', i)}: collect.files[{i}] contains a "
                "newline or NUL byte; remove it"
            )
    for i, pattern in enumerate(collect.exclude):
        why = exclude_error(pattern)
        if why is not None:
            raise InventoryError(
                f"{path}:{_line(root, 'collect', 'exclude', i)}: collect.exclude[{i}] "
                f"{pattern!r} {why}"
            )
    apps = tuple(_app_source(name, spec, root, path) for name, spec in collect.apps.items())
    for i, venv in enumerate(collect.python):
        if not venv.startswith("/"):
            raise InventoryError(
                f"{path}:{_line(root, 'collect', 'python', i)}: collect.python has relative path "
                f"{venv!r}; give the virtualenv's absolute path"
            )
    return CollectSettings(
        files=tuple(dict.fromkeys(collect.files)),
        exclude=tuple(dict.fromkeys(collect.exclude)),
        apps=apps,
        python=tuple(dict.fromkeys(collect.python)),
        file_max_bytes=collect.file_max_bytes,
        dir_max_files=collect.dir_max_files,
    )


_APP_KINDS: dict[str, Literal["command", "file", "package", "url"]] = {
    "command": "command",
    "file": "file",
    "package": "package",
    "url": "url",
}


def _app_source(name: str, spec: str | AppSourceModel, root: yaml.Node, path: Path) -> AppSource:
    if isinstance(spec, str):
        return AppSource(name, "command", spec)
    given = [(k, v) for k, v in spec.model_dump().items() if v is not None]
    if len(given) != 1:
        raise InventoryError(
            f"{path}:{_line(root, 'collect', 'apps', name)}: collect.apps.{name} needs exactly "
            "one of command, file, package, url"
        )
    kind, value = given[0]
    if kind == "file" and not value.startswith("/"):
        raise InventoryError(
            f"{path}:{_line(root, 'collect', 'apps', name)}: collect.apps.{name}.file must be "
            "an absolute path"
        )
    return AppSource(name, _APP_KINDS[kind], value)
