"""Hosts from an Ansible inventory, as drafts: Ansible groups mapped to our
environments and roles, its connection variables to our settings."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from driftcheck.ansible_inventory import AnsibleHost, connection_settings, load_ansible_inventory
from driftcheck.errors import InventoryError
from driftcheck.hostconfig import HostDraft, Layer

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def ansible_drafts(
    inventory: str,
    environments: Mapping[str, str | Sequence[str]],
    roles: Sequence[str] | None,
    where: tuple[Path, str],
    warnings: list[str],
) -> list[HostDraft]:
    """The hosts of Ansible inventory ``inventory`` that are in one of the groups
    ``environments`` maps to our environments, with ``roles`` (or all their other
    groups) as roles; ``where`` is the base directory for a relative path and the
    ``file:line`` named in errors."""
    base, at = where
    source = Path(inventory).expanduser()
    path = source if source.is_absolute() else base / source
    if not path.exists():
        raise InventoryError(
            f"{at}: ansible.inventory {inventory!r}: {path} does not exist; fix the path"
        )
    envs = {env: (g,) if isinstance(g, str) else tuple(g) for env, g in environments.items()}
    env_groups = {g for groups in envs.values() for g in groups}
    drafts = []
    for host in load_ansible_inventory(path):
        env = _environment(host, envs, at)
        if env is None:
            continue  # in none of the mapped groups: not part of the comparison
        host_roles = _roles(host, roles, env_groups, at)
        conn = connection_settings(host)
        warnings.extend(conn.warnings)
        layer = Layer(conn.settings, {k: f"ansible {v}" for k, v in conn.sources.items()})
        drafts.append(HostDraft(host.name, env, host_roles, (layer,)))
    return drafts


def _environment(host: AnsibleHost, envs: Mapping[str, Sequence[str]], where: str) -> str | None:
    """The one environment whose groups ``host`` is in (None: in none of them)."""
    mine = [env for env, groups in envs.items() if set(groups) & set(host.groups)]
    if len(mine) > 1:
        raise InventoryError(
            f"{where}: Ansible host {host.name!r} is in the groups of environments "
            f"{' and '.join(mine)}; a host belongs to one environment, fix the groups"
        )
    if mine and not _NAME.fullmatch(host.name):
        raise InventoryError(
            f"{where}: Ansible host name {host.name!r} cannot be a driftcheck host name; use "
            "letters, digits, '.', '_' and '-' only (set ansible_host for the address)"
        )
    return mine[0] if mine else None


def _roles(
    host: AnsibleHost, roles: Sequence[str] | None, env_groups: set[str], where: str
) -> tuple[str, ...]:
    """The host's role groups: those listed in ``ansible.roles``, else every group
    of it that is not an environment group."""
    mine = [g for g in host.groups if (g in roles if roles is not None else g not in env_groups)]
    if not mine:
        wanted = f"any of {', '.join(roles)}" if roles is not None else "any group besides its "
        wanted += "" if roles is not None else "environment's"
        raise InventoryError(
            f"{where}: Ansible host {host.name!r} is not in {wanted}, so it has no role to "
            "compare; add it to a role group or list its groups in ansible.roles"
        )
    bad = [g for g in mine if not _NAME.fullmatch(g)]
    if bad:
        raise InventoryError(
            f"{where}: Ansible group {bad[0]!r} cannot be a role name; use letters, digits, "
            "'.', '_' and '-' only, or leave it out of ansible.roles"
        )
    return tuple(mine)
