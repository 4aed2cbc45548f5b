"""Read an OpenSSH client config (``~/.ssh/config``) the way ``ssh`` itself does.

Pure: nothing here opens a connection, resolves a name or runs a command. The
semantics follow OpenSSH 9.2's ``readconf.c`` and ``man ssh_config``, checked
against ``ssh -G`` by tests/unit/test_sshconfig.py:

- keywords are case-insensitive; ``Keyword value``, ``Keyword=value``, quotes,
  backslash escapes and ``#`` comments are tokenized like ``argv_split``;
- for each keyword the first value obtained wins, ``IdentityFile`` accumulates;
- ``Host`` patterns (``*``, ``?``, ``!negation``) match the name as given;
  ``Match all|host|originalhost|user`` are evaluated, every other criterion is
  not (``exec`` is never run): such a block is skipped with a warning;
- ``Include`` globs, relative to ``~/.ssh`` as ssh does for a user config;
- ``%`` tokens, ``~`` and ``${VAR}`` are expanded where ssh expands them.

paramiko.SSHConfig is not used: it has no ``Include``, it *runs* ``Match exec``
commands (through invoke), resolves names for ``CanonicalizeHostname`` and keeps
no line numbers, which ``SSHConfigEntry.sources`` and the warnings need.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from driftcheck.errors import InventoryError

#: ssh's READCONF_MAX_DEPTH: deeper Include chains are an error.
MAX_INCLUDE_DEPTH = 16
#: ssh's SSH_MAX_IDENTITY_FILES.
MAX_IDENTITY_FILES = 100
DEFAULT_PORT = 22

#: Keywords driftcheck reads, with ssh's spelling for messages.
_KNOWN = {
    name.lower(): name
    for name in (
        "Host", "Match", "Include", "HostName", "Port", "User", "IdentityFile",
        "IdentitiesOnly", "ProxyJump", "ProxyCommand", "UserKnownHostsFile",
        "StrictHostKeyChecking", "ForwardAgent", "HostKeyAlias",
    )
}  # fmt: skip
#: Keywords that take exactly one argument (ssh: "extra arguments at end of line").
_SINGLE = {
    "hostname", "port", "user", "identityfile", "identitiesonly", "proxyjump",
    "stricthostkeychecking", "forwardagent", "hostkeyalias",
}  # fmt: skip
_FLAGS = {"yes": True, "true": True, "no": False, "false": False}
_STRICT = {"yes", "true", "no", "false", "ask", "off", "accept-new"}
_WEAK_STRICT = {"no", "false", "off", "accept-new"}
#: Match criteria evaluated here, and those ssh (9.2 or later) knows but driftcheck does not
#: evaluate: they depend on the local machine, on canonicalization or on running a command.
_MATCH_EVALUATED = {"host", "originalhost", "user"}
_MATCH_WITH_ARG = {"localuser", "localnetwork", "exec", "tagged", "version", "sessiontype",
                   "command"}  # fmt: skip
_MATCH_BARE = {"canonical", "final"}
#: The tokens of ``man ssh_config`` TOKENS for path-like keywords, and for HostName.
_PATH_TOKENS = frozenset("%CdhikLlnpru")
_HOSTNAME_TOKENS = frozenset("%h")


@dataclass(frozen=True)
class SSHConfigEntry:
    """What ssh_config says for one host name; None/() where it says nothing."""

    hostname: str | None = None
    port: int | None = None
    user: str | None = None
    identity_files: tuple[str, ...] = ()  # in order, ~ and %-tokens expanded like ssh does
    identities_only: bool | None = None
    proxy_jump: str | None = None  # raw ProxyJump value, e.g. "jump@bast:2222,b2"; "none" -> None
    known_hosts: str | None = None  # first UserKnownHostsFile, unless it is /dev/null
    #: field name -> "PATH:LINE" where its value came from
    sources: Mapping[str, str] = field(default_factory=dict)
    #: one line per directive in a matching block that driftcheck does NOT follow
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LocalFacts:
    """The local side that ssh's tokens refer to (%d %u %i %l %L), and ``~``."""

    user: str
    home: str  # pw_dir: what ssh uses for ~ and %d (not $HOME)
    uid: int
    hostname: str
    include_home: str  # $HOME: what ssh's glob() uses for ~ in Include

    @classmethod
    def current(cls) -> LocalFacts:
        """The facts of the process that runs driftcheck, as ssh would see them."""
        entry = pwd.getpwuid(os.getuid())
        return cls(
            user=entry.pw_name,
            home=entry.pw_dir,
            uid=os.getuid(),
            hostname=socket.gethostname(),
            include_home=os.environ.get("HOME", entry.pw_dir),
        )


@dataclass(frozen=True)
class _Line:
    """One directive: lowercased keyword, its arguments, and where it was."""

    path: str
    number: int
    keyword: str
    args: tuple[str, ...]
    rest: str  # the text after the keyword, as ProxyCommand and messages use it
    included: tuple[_File, ...] = ()  # for Include: the files it read, in glob order

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"

    @property
    def shown(self) -> str:
        """The directive as a user would write it, for warnings."""
        value = self.rest.strip() if self.keyword == "proxycommand" else " ".join(self.args)
        return f"{_KNOWN.get(self.keyword, self.keyword)} {value}"


@dataclass(frozen=True)
class _File:
    path: str
    lines: tuple[_Line, ...]


def _fail(where: str, message: str) -> InventoryError:
    return InventoryError(f"{where}: {message}")


# --- tokenizing -------------------------------------------------------------------------


def _split_keyword(text: str) -> tuple[str, str] | None:
    """The keyword and the rest, like ssh's strdelim(): one '=' may separate them."""
    text = text.lstrip(" \t")
    match = re.match(r"([^ \t\"'=]*)[ \t]*(=?)[ \t]*", text)
    assert match is not None  # the pattern can match the empty string
    keyword = match.group(1)
    if not keyword or keyword.startswith("#"):
        return None
    return keyword, text[match.end() :]


def _argv_split(text: str, where: str) -> tuple[str, ...]:
    """Arguments like ssh's argv_split(): quotes, backslash escapes, '#' starts a comment."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        quote, out = "", []
        while i < n:
            char = text[i]
            if (
                char == "\\"
                and i + 1 < n
                and (text[i + 1] in "'\"\\" or (not quote and text[i + 1] == " "))
            ):
                out.append(text[i + 1])
                i += 2
                continue
            if not quote and char in " \t":
                break
            if not quote and char in "'\"":
                quote = char
            elif quote and char == quote:
                quote = ""
            else:
                out.append(char)
            i += 1
        if quote:
            raise _fail(where, "invalid quotes")
        args.append("".join(out))
    return tuple(args)


# --- loading ----------------------------------------------------------------------------


def _read(path: str, stack: tuple[str, ...], local: LocalFacts, included_by: str) -> _File:
    """Parse one file, and every file it includes, into directives."""
    if len(stack) > MAX_INCLUDE_DEPTH:
        raise _fail(included_by, f"too many nested Includes (ssh allows {MAX_INCLUDE_DEPTH})")
    real = os.path.realpath(path)
    if real in stack:
        raise _fail(included_by, f"Include loop: {path} includes itself again")
    try:
        with open(path, "rb") as handle:
            if stack:  # ssh refuses included files others could have written
                _check_permissions(path, os.fstat(handle.fileno()), included_by)
            text = handle.read().decode("utf-8", errors="surrogateescape")
    except OSError as error:
        prefix = f"{included_by}: " if stack else ""
        raise InventoryError(
            f"{prefix}{path}: cannot read ssh config: {error.strerror or error}"
        ) from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _parse_line(raw, path, number)
        if line is not None and line.keyword == "include":
            files = tuple(
                _read(name, (*stack, real), local, line.where)
                for name in _include_paths(line, local)
            )
            line = _Line(line.path, line.number, line.keyword, line.args, line.rest, files)
        if line is not None:
            lines.append(line)
    return _File(path, tuple(lines))


def _check_permissions(path: str, stat: os.stat_result, where: str) -> None:
    if (stat.st_uid not in (0, os.getuid())) or stat.st_mode & 0o022:
        raise _fail(where, f"bad owner or permissions on {path} (ssh refuses to read it)")


def _include_paths(line: _Line, local: LocalFacts) -> list[str]:
    """The files one Include names: globbed, sorted, relative ones under ~/.ssh like ssh."""
    out: list[str] = []
    for arg in line.args:
        if not arg:
            raise _fail(line.where, "Include: empty argument")
        pattern = arg
        if arg == "~" or arg.startswith("~/"):
            pattern = local.include_home + arg[1:]
        elif arg.startswith("~"):
            pattern = os.path.expanduser(arg)
        elif not arg.startswith("/"):
            pattern = os.path.join(local.include_home, ".ssh", arg)
        # ssh's glob() sorts by strcmp and skips dot files for '*', as Python's does.
        out.extend(sorted(glob.glob(pattern)))
    return out


def _parse_line(raw: str, path: str, number: int) -> _Line | None:
    """One line checked the way ssh checks it even in blocks that do not apply."""
    where = f"{path}:{number}"
    split = _split_keyword(raw.rstrip(" \t\r\n\f"))
    if split is None:
        return None
    keyword, rest = split[0].lower(), split[1]
    if not rest:
        raise _fail(where, f"no argument after keyword '{split[0]}'")
    args = () if keyword == "proxycommand" else _argv_split(rest, where)
    line = _Line(path, number, keyword, args, rest)
    if keyword not in _KNOWN:
        return None  # Ciphers, ServerAliveInterval...: nothing driftcheck uses
    if keyword != "proxycommand" and not args:
        raise _fail(where, f"{_KNOWN[keyword]}: missing argument")
    if keyword in _SINGLE and len(args) > 1:
        raise _fail(where, f"{_KNOWN[keyword]}: extra arguments at end of line")
    _check_value(line)
    return line


def _check_value(line: _Line) -> None:
    """Reject the values ssh rejects, so a config ssh refuses is refused here too."""
    keyword, value = line.keyword, line.args[0] if line.args else ""
    if keyword == "port":
        _port(value, line.where)
    elif keyword == "identitiesonly" and value.lower() not in _FLAGS:
        raise _fail(line.where, f"IdentitiesOnly: unsupported option {value!r} (yes or no)")
    elif keyword == "stricthostkeychecking" and value.lower() not in _STRICT:
        raise _fail(line.where, f"StrictHostKeyChecking: unsupported option {value!r}")
    elif keyword == "match":
        _match_criteria(line)
    elif keyword == "host" and "" in line.args:
        raise _fail(line.where, "Host: empty pattern")


def _port(value: str, where: str) -> int:
    # Only numbers: ssh also looks service names up (getservbyname), which may leave the host.
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise _fail(where, f"bad port {value!r}: Port must be a number from 1 to 65535")
    return int(value)


def _match_criteria(line: _Line) -> list[tuple[str, bool, str | None]]:
    """A Match line as (criterion, negated, argument) triples, checked like ssh."""
    out: list[tuple[str, bool, str | None]] = []
    args = list(line.args)
    while args:
        token = args.pop(0)
        negated = token.startswith("!")
        name = token[1:].lower() if negated else token.lower()
        if name == "all":
            if any(c[0] not in _MATCH_BARE for c in out) or args:
                raise _fail(line.where, "Match: 'all' cannot be combined with other criteria")
            out.append((name, negated, None))
        elif name in _MATCH_BARE:
            out.append((name, negated, None))
        elif name in _MATCH_EVALUATED or name in _MATCH_WITH_ARG:
            if not args:
                raise _fail(line.where, f"Match: missing argument for {name!r}")
            out.append((name, negated, args.pop(0)))
        else:
            raise _fail(line.where, f"Match: unsupported criterion {token!r}")
    if not out:
        raise _fail(line.where, "Match: one or more criteria required")
    return out


# --- matching ---------------------------------------------------------------------------


def _match_pattern(string: str, pattern: str) -> bool:
    """ssh's match_pattern(): '*' and '?' wildcards, case-sensitive, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, string, re.DOTALL) is not None


def _match_list(string: str, patterns: str, lower: bool) -> bool:
    """ssh's match_pattern_list() == 1: a positive match and no negated one."""
    positive = False
    for item in patterns.split(","):
        negated = item.startswith("!")
        pattern = item[1:] if negated else item
        if _match_pattern(string, pattern.lower() if lower else pattern):
            if negated:
                return False
            positive = True
    return positive


def _host_matches(name: str, patterns: Sequence[str]) -> bool:
    """A Host line: any pattern matches the name as given and no negated one does."""
    matched = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if _match_pattern(name, pattern[1:]):
                return False
        elif _match_pattern(name, pattern):
            matched = True
    return matched


# --- evaluation -------------------------------------------------------------------------


class _State:
    """The values obtained so far for one lookup: first one wins, like ssh's options."""

    def __init__(self, name: str, local: LocalFacts) -> None:
        self.name = name
        self.local = local
        self.first: dict[str, _Line] = {}
        self.identities: list[_Line] = []
        self.warnings: list[str] = []

    def value(self, keyword: str) -> str | None:
        line = self.first.get(keyword)
        return line.args[0] if line is not None and line.args else None

    def apply(self, line: _Line) -> None:
        """Take one directive of an active block."""
        keyword = line.keyword
        if keyword == "identityfile":
            known = [i.args[0] for i in self.identities]
            if line.args[0] not in known:  # ssh drops a repeated path silently
                if len(known) >= MAX_IDENTITY_FILES:
                    raise _fail(line.where, f"more than {MAX_IDENTITY_FILES} IdentityFiles")
                self.identities.append(line)
            return
        if keyword == "proxyjump":
            # ssh's parse_jump(): ignored once either proxy is set; a real jump also sets
            # ProxyCommand to none, so a later ProxyCommand loses (after "none" it wins).
            if "proxyjump" in self.first or "proxycommand" in self.first:
                return
            if line.args[0].lower() != "none":
                self.first["proxycommand"] = line
        if keyword not in self.first:
            self.first[keyword] = line
            reason = _unfollowed(line)
            if reason:
                self.warnings.append(f"{line.where}: ignoring '{line.shown}': {reason}")

    def match_host(self) -> str:
        """The host a Match host line sees: HostName so far, %h expanded, not lowercased."""
        line = self.first.get("hostname")
        if line is None:
            return self.name
        return _expand(line.args[0], {"h": self.name}, _HOSTNAME_TOKENS, line.where)

    def match_user(self) -> str:
        return self.value("user") or self.local.user


def _evaluate_match(line: _Line, state: _State) -> bool:
    """Whether a Match block applies; a block that needs an unevaluated criterion does not."""
    unevaluated: list[str] = []
    for name, negated, arg in _match_criteria(line):
        if name == "all":
            result = True
        elif name == "host":
            result = _match_list(state.match_host(), arg or "", lower=True)
        elif name == "originalhost":
            result = _match_list(state.name, arg or "", lower=True)
        elif name == "user":
            result = _match_list(state.match_user(), arg or "", lower=False)
        else:
            unevaluated.append(name)
            continue
        if result == negated:
            return False  # every criterion must hold: this block cannot apply
    if unevaluated:
        state.warnings.append(
            f"{line.where}: skipping block 'Match {line.rest}': driftcheck does not evaluate "
            f"{', '.join(repr(u) for u in unevaluated)} (and never runs commands from ssh_config)"
        )
        return False
    return True


def _walk(file: _File, state: _State, active: bool, never: bool) -> None:
    """Apply a file's directives in order; an Include inherits, and restores, activity."""
    for line in file.lines:
        if line.keyword == "host":
            active = not never and _host_matches(state.name, line.args)
        elif line.keyword == "match":
            active = not never and _evaluate_match(line, state)
        elif line.keyword == "include":
            for included in line.included:
                # ssh parses files included from an inactive block, but none of their
                # blocks may match ("parse only"); Match in them must not leak out.
                _walk(included, state, active, never or not active)
        elif active:
            state.apply(line)


def _unfollowed(line: _Line) -> str | None:
    """Why driftcheck does not follow this (first obtained) directive, if it does not."""
    keyword, value = line.keyword, (line.args[0] if line.args else line.rest.strip())
    if keyword == "stricthostkeychecking" and value.lower() in _WEAK_STRICT:
        return "driftcheck always checks host keys against known_hosts"
    if keyword == "userknownhostsfile" and value in ("/dev/null", "none"):
        return "driftcheck always checks host keys against known_hosts"
    if keyword == "forwardagent" and value.lower() not in ("no", "false"):
        return "driftcheck never forwards the SSH agent to the hosts it inspects"
    if keyword == "proxycommand" and value != "none":
        return "driftcheck never runs commands from ssh_config (use ProxyJump)"
    if keyword == "hostkeyalias":
        return "driftcheck looks host keys up in known_hosts by the host's own name"
    return None


# --- expansion --------------------------------------------------------------------------


def _expand(
    text: str, tokens: Mapping[str, str], allowed: frozenset[str], where: str, env: bool = False
) -> str:
    """ssh's percent_expand() (and, with env, dollar_expand()): unknown tokens are errors."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "%":
            key = text[i + 1 : i + 2]
            if key == "%":
                out.append("%")
            elif key in allowed and key in tokens:
                out.append(tokens[key])
            else:
                raise _fail(where, f"unknown token '%{key}' in {text!r} (see man ssh_config)")
            i += 2
        elif env and text.startswith("${", i):
            end = text.find("}", i)
            if end == -1:
                raise _fail(where, f"unterminated '${{' in {text!r}")
            name = text[i + 2 : end]
            if name not in os.environ:
                raise _fail(where, f"environment variable {name!r} is not set ({text!r})")
            out.append(os.environ[name])
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _tilde(path: str, local: LocalFacts, where: str) -> str:
    """ssh's tilde_expand_filename(): ~ is the password database's home, not $HOME."""
    if not path.startswith("~"):
        return path
    user, slash, rest = path[1:].partition("/")
    if user:
        try:
            home = pwd.getpwnam(user).pw_dir
        except KeyError:
            raise _fail(where, f"no such user {user!r} in {path!r}") from None
    else:
        home = local.home
    return home.rstrip("/") + "/" + rest if slash or rest else home


def _path_tokens(state: _State, hostname: str, port: int, user: str) -> dict[str, str]:
    """The tokens of IdentityFile and UserKnownHostsFile, as ssh.c sets them up."""
    local = state.local
    short = local.hostname.split(".", 1)[0]
    return {
        "C": hashlib.sha1(
            f"{local.hostname}{hostname}{port}{user}".encode(), usedforsecurity=False
        ).hexdigest(),
        "d": local.home,
        "h": hostname,
        "i": str(local.uid),
        "k": state.value("hostkeyalias") or state.name,
        "L": short,
        "l": local.hostname,
        "n": state.name,
        "p": str(port),
        "r": user,
        "u": local.user,
    }


def _path(line: _Line, raw: str, tokens: Mapping[str, str], local: LocalFacts) -> str:
    return _expand(_tilde(raw, local, line.where), tokens, _PATH_TOKENS, line.where, env=True)


def _known_hosts(state: _State, tokens: Mapping[str, str]) -> str | None:
    """The first UserKnownHostsFile, expanded; None when it is /dev/null or none."""
    line = state.first.get("userknownhostsfile")
    if line is None or line.args[0] in ("/dev/null", "none"):
        return None  # the /dev/null case was warned about when it was obtained
    if len(line.args) > 1:
        state.warnings.append(
            f"{line.where}: ignoring '{' '.join(line.args[1:])}' of '{line.shown}': "
            "driftcheck checks host keys against the first file only"
        )
    return _path(line, line.args[0], tokens, state.local)


def _entry(state: _State) -> SSHConfigEntry:
    """The entry for what a walk obtained: values expanded as ssh expands them."""
    first = state.first
    hostname = None
    if "hostname" in first:
        # ssh lowercases the host name it connects to (and that %h then stands for).
        hostname = state.match_host().lower()
    port = _port(first["port"].args[0], first["port"].where) if "port" in first else None
    user = state.value("user")
    tokens = _path_tokens(
        state, hostname or state.name.lower(), port or DEFAULT_PORT, user or state.local.user
    )
    proxy = first.get("proxyjump")
    jump = None
    if proxy is not None and proxy.args[0].lower() != "none":
        jump = proxy.args[0]
    only = state.value("identitiesonly")
    sources = {
        name: first[keyword].where
        for name, keyword in (
            ("hostname", "hostname"), ("port", "port"), ("user", "user"),
            ("identities_only", "identitiesonly"),
        )
        if keyword in first
    }  # fmt: skip
    if jump is not None and proxy is not None:
        sources["proxy_jump"] = proxy.where
    if state.identities:
        sources["identity_files"] = ", ".join(line.where for line in state.identities)
    known_hosts = _known_hosts(state, tokens)
    if known_hosts is not None:
        sources["known_hosts"] = first["userknownhostsfile"].where
    return SSHConfigEntry(
        hostname=hostname,
        port=port,
        user=user,
        identity_files=tuple(
            _path(line, line.args[0], tokens, state.local) for line in state.identities
        ),
        identities_only=None if only is None else _FLAGS[only.lower()],
        proxy_jump=jump,
        known_hosts=known_hosts,
        sources=sources,
        warnings=tuple(state.warnings),
    )


class SSHConfig:
    """One OpenSSH client config file with its Includes, read once, looked up per host."""

    def __init__(self, path: Path, root: _File, local: LocalFacts) -> None:
        self.path = path
        self._root = root
        self._local = local

    @classmethod
    def load(cls, path: Path, *, local: LocalFacts | None = None) -> SSHConfig:
        """Read and check ``path`` and the files it includes.

        Raises InventoryError with one line: "PATH: cannot read ssh config: REASON" when
        a file cannot be read, "PATH:LINE: ..." for a line ssh would also reject (checked
        in every block, as ssh does, not only those of the hosts looked up).
        ``local`` (the local user, home and host name) is the running process's by default.
        """
        local = local or LocalFacts.current()
        return cls(path, _read(str(path), (), local, str(path)), local)

    def lookup(self, name: str) -> SSHConfigEntry:
        """What the config says for ``name``, as ``ssh -G -F PATH NAME`` would evaluate it.

        Raises InventoryError ("PATH:LINE: ...") when a value that applies cannot be
        expanded (an unknown %-token, an unset ${VARIABLE}, an unknown ~user).
        """
        state = _State(name, self._local)
        _walk(self._root, state, active=True, never=False)
        return _entry(state)
