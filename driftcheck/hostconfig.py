"""Where each host's connection settings come from, and how they become a :class:`Host`.

A setting is taken from the first place that says something, in this order:
the host's own entry (or its Ansible variables), its environment's ``defaults``,
the inventory's ``defaults``, the ssh_config file (only when ``ssh_config`` asks
for one), driftcheck's built-in value. Every value keeps where it came from, so
``driftcheck hosts`` can show it and an error can point at it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from driftcheck.errors import InventoryError
from driftcheck.model import Host, Jump
from driftcheck.sshconfig import SSHConfig, SSHConfigEntry

BUILT_IN = "built-in"
_BUILTIN: Mapping[str, Any] = {
    "user": "root",
    "port": 22,
    "known_hosts": "~/.ssh/known_hosts",
    "connect_timeout": 10.0,
    "command_timeout": 120.0,
    "transport": "ssh",
    "identities_only": False,
}
#: The settings a host resolves, in the order ``driftcheck hosts`` shows them.
SETTINGS = (
    "address", "port", "user", "identity_file", "identities_only", "known_hosts", "become",
    "proxy_jump", "transport", "connect_timeout", "command_timeout", "ssh_config",
)  # fmt: skip
_HOP = re.compile(
    r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]\s]+\]|[^:@\s\[\]]+)(?::(?P<port>\d{1,5}))?"
)
#: OpenSSH stops following ProxyJump of ProxyJump hosts at some depth too.
_MAX_HOPS = 8


@dataclass(frozen=True)
class Layer:
    """Settings written in one place, each with where (``file:line``)."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]


@dataclass(frozen=True)
class HostDraft:
    """A host before its settings are resolved: its layers, most specific first."""

    name: str
    environment: str
    roles: tuple[str, ...]
    layers: tuple[Layer, ...]


@dataclass
class _Resolved:
    host: Host
    #: the raw proxy_jump hops and where they were written ((), "" when none)
    hops: tuple[str, ...] = ()
    hops_source: str = ""
    config: SSHConfig | None = None


@dataclass
class HostResolver:
    """Resolves drafts into hosts; ssh_config files are read once each."""

    #: the inventory's directory: relative ssh_config paths start here
    base: Path
    warnings: list[str] = field(default_factory=list)
    _configs: dict[Path, SSHConfig] = field(default_factory=dict)

    def resolve(self, drafts: Sequence[HostDraft]) -> list[Host]:
        """Every draft as a :class:`Host`, jump hosts resolved (inventory hosts named
        as hops included); warnings collect in :attr:`warnings`, each once."""
        resolved = {d.name: self._settle(d) for d in drafts}
        chains: dict[str, tuple[Jump, ...]] = {}
        for name in resolved:
            self._chain(name, resolved, chains, ())
        return [replace(r.host, jumps=chains[n]) for n, r in resolved.items()]

    def _warn(self, lines: Sequence[str]) -> None:
        self.warnings.extend(w for w in lines if w not in self.warnings)

    def _config(self, value: Any, source: str) -> SSHConfig | None:
        """The ssh_config the setting names: true is ~/.ssh/config, a path that file."""
        if value is None or value is False:
            return None
        raw = "~/.ssh/config" if value is True else str(value)
        path = _expand(raw, source)
        if not path.is_absolute():
            path = self.base / path
        if path not in self._configs:
            if not path.exists():
                raise InventoryError(
                    f"{source}: ssh_config {raw!r}: {path} does not exist; fix the path or "
                    "set ssh_config: false"
                )
            self._configs[path] = SSHConfig.load(path)
        return self._configs[path]

    def _settle(self, draft: HostDraft) -> _Resolved:
        """One host's settings from its layers, ssh_config and the built-in values."""
        layers = list(draft.layers)
        config_value, config_source = _pick(layers, "ssh_config")
        config = self._config(config_value, config_source)
        if config is not None:
            alias, _ = _pick(layers, "address")
            entry = config.lookup(str(alias or draft.name))
            self._warn(entry.warnings)
            layers.append(_config_layer(entry))
        layers.append(Layer(_BUILTIN, dict.fromkeys(_BUILTIN, BUILT_IN)))
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key in SETTINGS:
            values[key], sources[key] = _pick(layers, key)
        if values["address"] is None:
            # Like ssh itself, a host without an address is reached by its name.
            values["address"], sources["address"] = draft.name, "the host's name"
        host = Host(
            name=draft.name,
            environment=draft.environment,
            roles=draft.roles,
            address=str(values["address"]),
            port=int(values["port"]),
            user=str(values["user"]),
            identity_file=_path(values["identity_file"], sources["identity_file"]),
            known_hosts=_expand(str(values["known_hosts"]), sources["known_hosts"]),
            connect_timeout=float(values["connect_timeout"]),
            command_timeout=float(values["command_timeout"]),
            transport=str(values["transport"]),
            become=None if values["become"] in (None, "none") else str(values["become"]),
            identities_only=bool(values["identities_only"]),
            ssh_config=config.path if config is not None else None,
            sources={k: v for k, v in sources.items() if v},
        )
        hops = _hops(values["proxy_jump"])
        return _Resolved(host, hops, sources["proxy_jump"], config)

    def _chain(
        self,
        name: str,
        resolved: Mapping[str, _Resolved],
        chains: dict[str, tuple[Jump, ...]],
        visiting: tuple[str, ...],
    ) -> tuple[Jump, ...]:
        """The jump hosts of inventory host ``name``, first to last."""
        if name in chains:
            return chains[name]
        r = resolved[name]
        if name in visiting:
            loop = " -> ".join([*visiting, name])
            raise InventoryError(
                f"{r.hops_source}: proxy_jump goes round in a circle ({loop}); break the loop"
            )
        chain: tuple[Jump, ...] = ()
        for hop in r.hops:
            chain += self._hop(hop, r, resolved, chains, (*visiting, name))
        if len(chain) > _MAX_HOPS:
            raise InventoryError(
                f"{r.hops_source}: host {name!r} goes through {len(chain)} jump hosts; "
                f"at most {_MAX_HOPS} are followed"
            )
        chains[name] = chain
        return chain

    def _hop(
        self,
        hop: str,
        r: _Resolved,
        resolved: Mapping[str, _Resolved],
        chains: dict[str, tuple[Jump, ...]],
        visiting: tuple[str, ...],
    ) -> tuple[Jump, ...]:
        """One proxy_jump hop as jumps: an inventory host (with its own jumps), an
        ssh_config alias (likewise), or ``[user@]host[:port]``."""
        host = r.host
        if hop in resolved:
            jump_host = resolved[hop].host
            before = self._chain(hop, resolved, chains, visiting)
            jump = Jump(jump_host.address, jump_host.port, jump_host.user, jump_host.identity_file)
            return (*before, jump)
        m = _HOP.fullmatch(hop)
        port = int(m["port"]) if m and m["port"] else None
        if m is None or (port is not None and not 1 <= port <= 65535):
            raise InventoryError(
                f"{r.hops_source}: host {host.name!r}: proxy_jump hop {hop!r} is neither an "
                "inventory host nor [user@]host[:port]; fix it"
            )
        name = m["host"].strip("[]")
        entry = r.config.lookup(name) if r.config is not None else SSHConfigEntry()
        self._warn(entry.warnings)
        before = ()
        if entry.proxy_jump and len(visiting) < _MAX_HOPS:
            # The hop's own ProxyJump in ssh_config comes first, as with ssh -J.
            where = entry.sources.get("proxy_jump", r.hops_source)
            nested = _Resolved(host, _hops(entry.proxy_jump), where, r.config)
            for inner in nested.hops:
                before += self._hop(inner, nested, resolved, chains, (*visiting, hop))
        identity = entry.identity_files[0] if entry.identity_files else None
        jump = Jump(
            entry.hostname or name,
            port or entry.port or 22,
            m["user"] or entry.user or host.user,
            _path(identity, entry.sources.get("identity_files", "")) or host.identity_file,
        )
        return (*before, jump)


def _pick(layers: Sequence[Layer], key: str) -> tuple[Any, str]:
    """The first layer's value for ``key`` and where it came from; (None, "")."""
    for layer in layers:
        value = layer.values.get(key)
        if value is not None:
            return value, layer.sources.get(key, "")
    return None, ""


def _config_layer(entry: SSHConfigEntry) -> Layer:
    """What an ssh_config entry says, as driftcheck settings."""
    values: dict[str, Any] = {
        "address": entry.hostname,
        "port": entry.port,
        "user": entry.user,
        "identity_file": entry.identity_files[0] if entry.identity_files else None,
        "identities_only": entry.identities_only,
        "proxy_jump": entry.proxy_jump,
        "known_hosts": entry.known_hosts,
    }
    names = {"address": "hostname", "identity_file": "identity_files"}
    sources = {
        key: f"ssh_config {entry.sources[names.get(key, key)]}"
        for key in values
        if names.get(key, key) in entry.sources
    }
    return Layer({k: v for k, v in values.items() if v is not None}, sources)


def _hops(value: Any) -> tuple[str, ...]:
    """proxy_jump as a list of hops: a list, or one string comma-separated."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    hops = tuple(h.strip() for item in items for h in str(item).split(",") if h.strip())
    return () if hops in ((), ("none",)) else hops


def _expand(raw: str, source: str) -> Path:
    try:
        return Path(raw).expanduser()
    except RuntimeError as exc:  # "~nosuchuser/..."
        raise InventoryError(
            f"{source}: cannot expand {raw!r} ({exc}); write the path in full"
        ) from None


def _path(value: Any, source: str) -> Path | None:
    return _expand(str(value), source) if value else None


def host_settings(h: Host) -> list[tuple[str, str]]:
    """``(setting, value)`` for every setting of ``h``, as ``driftcheck hosts`` shows
    them (jump hosts first to last, "-" where there is none)."""
    values: dict[str, object] = {
        "address": h.address,
        "port": h.port,
        "user": h.user,
        "identity_file": h.identity_file or "- (ssh-agent, ~/.ssh/id_*)",
        "identities_only": "yes" if h.identities_only else "no",
        "known_hosts": h.known_hosts,
        "become": h.become or "-",
        "proxy_jump": ",".join(j.label() for j in h.jumps) or "-",
        "transport": h.transport,
        "connect_timeout": f"{h.connect_timeout:g}s",
        "command_timeout": f"{h.command_timeout:g}s",
        "ssh_config": h.ssh_config or "- (not read)",
    }
    return [(key, str(values[key])) for key in SETTINGS]
