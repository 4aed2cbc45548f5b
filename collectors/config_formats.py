"""Parse configuration file contents into flat settings, so drift is per setting.

``settings(path, text)`` picks a format from the file's name (and, for ``.conf``,
its content), parses it and flattens nested values into ``section.key`` names.
Anything that does not parse cleanly returns ``None`` and the caller falls back to
comparing the text line by line; a parser that fails outright (a bug of ours or of
the library, on a file a real host ships) returns :class:`Unparsed` with the
reason, so one odd file is compared as text with a note and never stops a run.
Pure functions, no I/O.
"""

from __future__ import annotations

import configparser
import json
import math
import posixpath
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

#: A flat mapping of setting name -> JSON-serialisable value.
Settings = dict[str, Any]

_COMMENT = ("#", ";")


def _name(part: str) -> str:
    """Quote a key that would be ambiguous inside a dotted name."""
    return json.dumps(part) if not part or re.search(r"[.\s\[\]\"#]", part) else part


#: More settings than this in one file is not a config file a person maintains
#: (or a YAML alias bomb): it is compared as text instead.
MAX_SETTINGS = 20_000


class _TooManyError(Exception):
    pass


def flatten(value: Any, prefix: str = "") -> Settings:
    """Nested dicts and lists become ``a.b[0].c`` names; empty containers stay leaves."""
    out: Settings = {}
    _flatten(value, prefix, out)
    return out


def _flatten(value: Any, prefix: str, out: Settings) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            name = _name(str(key))
            _flatten(item, f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
    else:
        if len(out) >= MAX_SETTINGS:
            raise _TooManyError
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # NaN never equals itself and is not valid JSON
        out[prefix or "(value)"] = value if _is_json_scalar(value) else str(value)


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | dict | list)


def parse_ini(text: str) -> Settings | None:
    """INI with [sections]; keys before any section land in the DEFAULT section."""
    parser = configparser.ConfigParser(
        interpolation=None, strict=False, allow_no_value=True, delimiters=("=", ":")
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    # configparser raises AttributeError on an indented line after a key without a
    # value (allow_no_value), as in Debian's /etc/perl/Net/libnet.cfg: not INI then.
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError:
        try:
            parser.read_string("[DEFAULT]\n" + text)
        except (configparser.Error, AttributeError):
            return None
    except (configparser.Error, AttributeError):
        return None
    out: Settings = {}
    for key, value in parser.defaults().items():
        out[_name(key)] = value
    for section in parser.sections():
        for key, value in parser.items(section, raw=True):
            if key in parser.defaults() and parser.defaults()[key] == value:
                continue  # inherited from DEFAULT, already listed once
            out[f"{_name(section)}.{_name(key)}"] = value
    return out


def parse_yaml(text: str) -> Settings | None:
    """YAML (all documents; several documents get a [n] prefix)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        return None
    if not docs:
        return {}
    if len(docs) == 1:
        return flatten(docs[0])
    return flatten(docs)


def parse_json(text: str) -> Settings | None:
    """JSON."""
    try:
        return flatten(json.loads(text))
    except ValueError:
        return None


def parse_toml(text: str) -> Settings | None:
    """TOML."""
    try:
        return flatten(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return None


def _assignments(
    text: str, split: Callable[[str], tuple[str, str] | None], fold_case: bool = False
) -> Settings | None:
    """Line-oriented ``key<sep>value`` files; a repeated key becomes a list.

    Returns None when too few lines look like assignments to be this format.
    """
    out: Settings = {}
    seen = bad = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(_COMMENT):
            continue
        seen += 1
        pair = split(line)
        if pair is None:
            bad += 1
            continue
        key, value = pair
        key = key.lower() if fold_case else key
        if key in out:
            previous = out[key]
            out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[key] = value
    if seen and bad * 5 > seen:  # more than a fifth unrecognised: not this format
        return None
    return out


_ENV_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_KV_LINE = re.compile(r"^([A-Za-z0-9_][\w.\-/]*)\s*(?:=|:)\s*(.*)$")
_SPACE_LINE = re.compile(r"^([A-Za-z][\w.\-]*)\s+(.+)$")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_env(text: str) -> Settings | None:
    """Environment files: ``KEY=value`` with optional ``export`` and quotes."""

    def split(line: str) -> tuple[str, str] | None:
        m = _ENV_LINE.match(line)
        return (m[1], _unquote(m[2])) if m else None

    return _assignments(text, split)


def parse_sysctl_conf(text: str) -> Settings | None:
    """sysctl.conf: ``a.b.c = value`` (``a/b/c`` written as ``a.b.c``; '-' prefix ignored)."""

    def split(line: str) -> tuple[str, str] | None:
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            return None
        return key.strip().lstrip("-").replace("/", "."), value.strip()

    return _assignments(text, split)


def parse_keyvalue(text: str) -> Settings | None:
    """Generic ``key = value`` / ``key: value`` files without sections."""

    def split(line: str) -> tuple[str, str] | None:
        m = _KV_LINE.match(line)
        return (m[1], _unquote(m[2])) if m else None

    return _assignments(text, split)


_SSH_TOKEN = re.compile(r'(?:"[^"]*"|[^\s"])+')


def _ssh_tokens(value: str) -> str:
    """The arguments of an ssh_config line, joined by single spaces."""
    if value.count('"') % 2:
        return " ".join(value.split())  # an unbalanced quote: plain whitespace split
    return " ".join(_SSH_TOKEN.findall(value))


def parse_ssh(text: str) -> Settings | None:
    """sshd_config/ssh_config: case-insensitive ``Keyword value``; ``Match`` opens a block."""
    out: Settings = {}
    prefix = ""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?)(?:\s*=\s*|\s+)(.*)$", line)
        if m is None:
            return None
        # sshd splits arguments on whitespace (quotes keep one together): the same
        # tokens are the same setting however they are spaced.
        keyword, value = m[1].lower(), _ssh_tokens(m[2])
        if keyword in ("match", "host"):
            # Settings inside a Match/Host block apply conditionally: keep them apart.
            prefix = f"{keyword} {value}."
            continue
        lines.append(f"{prefix}{keyword}\t{value}")
    for line in lines:
        key, value = line.split("\t", 1)
        if key in out:
            previous = out[key]
            out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[key] = value
    return out


_NGINX_TOKEN = re.compile(
    r"""\s*(?:(\#[^\n]*)|("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[{};]|[^\s{};"']+))"""
)


def parse_nginx(text: str) -> Settings | None:
    """nginx-style ``directive args;`` and ``block args { ... }`` (also used by many others).

    Names are the block path: ``http.server[1].listen``; a block or directive that
    repeats in the same place is numbered in order of appearance.
    """
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _NGINX_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip():
                return None
            break
        pos = m.end()
        if m[2] is not None:
            tokens.append(m[2])
    tree: list[tuple[str, list[str], Any]] = []
    stack: list[list[tuple[str, list[str], Any]]] = [tree]
    words: list[str] = []
    for tok in tokens:
        if tok == ";":
            if not words:
                continue
            stack[-1].append((words[0], words[1:], None))
            words = []
        elif tok == "{":
            if not words:
                return None
            children: list[tuple[str, list[str], Any]] = []
            stack[-1].append((words[0], words[1:], children))
            stack.append(children)
            words = []
        elif tok == "}":
            if len(stack) == 1 or words:
                return None
            stack.pop()
        else:
            words.append(tok)
    if len(stack) != 1 or words:
        return None
    return _nginx_flatten(tree, "")


def _nginx_flatten(nodes: list[tuple[str, list[str], Any]], prefix: str) -> Settings:
    out: Settings = {}
    counts: dict[str, int] = {}
    for name, _args, _children in nodes:
        counts[name] = counts.get(name, 0) + 1
    index: dict[str, int] = {}
    for name, args, children in nodes:
        n = index.get(name, 0)
        index[name] = n + 1
        key = f"{prefix}{_name(name)}" + (f"[{n}]" if counts[name] > 1 else "")
        if children is None:
            out[key] = " ".join(args)
        else:
            if args:
                out[f"{key}(args)"] = " ".join(args)
            out.update(_nginx_flatten(children, key + "."))
    return out


Parser = Callable[[str], "Settings | None"]


def detect(path: str, text: str) -> tuple[str, Parser] | None:
    """The format of a file by its name (and a look at ``.conf`` contents)."""
    name = posixpath.basename(path).lower()
    directory = posixpath.dirname(path)
    ext = posixpath.splitext(name)[1]
    if ext in (".yaml", ".yml"):
        return "yaml", parse_yaml
    if ext == ".json":
        return "json", parse_json
    if ext == ".toml":
        return "toml", parse_toml
    if ext in (".ini", ".cfg", ".cnf"):
        return "ini", parse_ini
    if ext == ".env" or name in (".env", "environment") or directory == "/etc/default":
        return "env", parse_env
    if name in ("sshd_config", "ssh_config") or directory.endswith(
        ("/sshd_config.d", "/ssh_config.d")
    ):
        return "ssh", parse_ssh
    if name == "sysctl.conf" or directory.endswith("/sysctl.d"):
        return "sysctl", parse_sysctl_conf
    if "nginx" in path or (ext == ".conf" and re.search(r"^\s*[\w.-]+[^;\n]*\{\s*$", text, re.M)):
        return "nginx", parse_nginx
    if ext == ".conf":
        if re.search(r"^\s*\[[^\]]+\]\s*$", text, re.M):
            return "ini", parse_ini
        return "keyvalue", parse_keyvalue
    return None


@dataclass(frozen=True)
class Unparsed:
    """A file of a known format whose parser failed: compared as text, with ``why``."""

    fmt: str
    why: str


def settings(path: str, text: str) -> tuple[str, Settings] | Unparsed | None:
    """(format, flat settings) for a config file; None to compare it as text (no known
    format, or it does not parse cleanly); :class:`Unparsed` when the parser failed."""
    found = detect(path, text)
    if found is None:
        return None
    fmt, parser = found
    try:
        parsed = parser(text)
    except (_TooManyError, RecursionError):
        return None
    except Exception as exc:  # any other parser failure: this one file is compared as text
        return Unparsed(fmt, f"{fmt} parser failed: {type(exc).__name__}: {exc}")
    if parsed is None:
        return None
    return fmt, parsed


# -- text files compared on their content lines ----------------------------------


@dataclass(frozen=True)
class CommentSyntax:
    """How a line-oriented file marks comments: a line whose first non-blank
    character is one of ``prefixes`` is a comment, unless ``keep`` matches it."""

    prefixes: tuple[str, ...]
    keep: re.Pattern[str] | None = None

    def describe(self) -> str:
        """The prefixes as a report shows them: ``#`` or ``# and ;``."""
        return " and ".join(self.prefixes)


_HASH = CommentSyntax(("#",))
_HASH_SEMI = CommentSyntax(("#", ";"))
_PROPERTIES = CommentSyntax(("#", "!"))
# sudoers: "#include", "#includedir" and "#1000" (a uid in a user list) are not comments.
_SUDOERS = CommentSyntax(("#",), re.compile(r"^\s*#(?:include(?:dir)?\s|[0-9])"))
#: Files of ``#`` comments by base name (Debian, RHEL and Alpine /etc).
_HASH_NAMES = frozenset(
    {
        "hosts", "hosts.allow", "hosts.deny", "hosts.equiv", "fstab", "crypttab", "crontab",
        "anacrontab", "exports", "services", "protocols", "networks", "ethers", "shells",
        "inittab", "modules", "login.defs", "securetty", "sources.list", "locale.gen",
        "environment", "rpc", "mailcap", "aliases", "ftpusers", "ttytab", "wgetrc", "inputrc",
        "manpath.config", "mime.types", "ethertypes", "netconfig", "locale.alias",
    }
)  # fmt: skip
#: Directories whose files have ``#`` comments, whatever their names.
_HASH_DIRS = (
    "/cron.d", "/crontabs", "/var/spool/cron", "/logrotate.d", "/pam.d", "/modprobe.d",
    "/modules-load.d", "/sources.list.d", "/security", "/apt/apt.conf.d", "/udev/rules.d",
    "/tmpfiles.d", "/sysusers.d", "/default", "/iproute2", "/apt/preferences.d",
)  # fmt: skip
_HASH_EXTS = frozenset({".conf", ".cf", ".list", ".rules", ".yaml", ".yml", ".toml", ".env"})
_HASH_SEMI_EXTS = frozenset(
    {".ini", ".cfg", ".cnf", ".service", ".socket", ".timer", ".mount", ".automount",
     ".target", ".path", ".slice", ".swap", ".network", ".netdev", ".link"}
)  # fmt: skip


def comment_syntax(path: str) -> CommentSyntax | None:
    """The comment syntax of a text file, by its name; None when it has none we know
    (then every byte of it is compared)."""
    name = posixpath.basename(path).lower()
    directory = posixpath.dirname(path)
    ext = posixpath.splitext(name)[1]
    if name == "sudoers" or directory.endswith("/sudoers.d"):
        return _SUDOERS
    if ext == ".properties":
        return _PROPERTIES
    if name in ("resolv.conf", "gitconfig", "npmrc") or ext in _HASH_SEMI_EXTS:
        return _HASH_SEMI
    if name in _HASH_NAMES or ext in _HASH_EXTS or directory.endswith(_HASH_DIRS):
        return _HASH
    return None


def content_lines(text: str, syntax: CommentSyntax) -> str:
    """``text`` without its comment and blank lines, each kept line as it is.

    A ``#!`` first line is kept (it names the interpreter); a comment after content
    on the same line is kept too (in a crontab or a URL, ``#`` is not always one).
    """
    kept = []
    # split, not splitlines: a CR (or form feed) is part of the line, not its end.
    for i, line in enumerate(text.split("\n")):
        stripped = line.lstrip()
        if not stripped.strip():
            continue
        comment = stripped.startswith(syntax.prefixes) and not (i == 0 and line.startswith("#!"))
        if comment and (syntax.keep is None or not syntax.keep.match(line)):
            continue
        kept.append(line)
    return "".join(line + "\n" for line in kept)
