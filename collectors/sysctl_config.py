"""``sysctl_config``: what the sysctl configuration files set, resolved like the boot does.

The ``sysctl`` collector has the *runtime* values; this one has what the files
would set at the next boot, keyed by exactly the same dotted names, so a report
can say "net.core.somaxconn is 1024 at runtime but 4096 in the config
(/etc/sysctl.d/99-x.conf)" or "set at runtime, not persisted".

The shell only lists the files (and their lines) in every directory the tools
read; the parser resolves them the way the program that applies them at boot
does:

* ``systemd-sysctl`` (when systemd is the init system: ``/run/systemd/system``
  exists): ``*.conf`` in /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d,
  /usr/lib/sysctl.d and /lib/sysctl.d; a file name in an earlier directory
  hides the same name in a later one; files are read in file-name order
  across all directories; /etc/sysctl.conf is read only through a file in
  those directories (Debian and RHEL ship the symlink
  /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf).
* ``sysctl --system`` (procps-ng; everything else, OpenRC included when procps
  is installed): the same directories and rules, then /etc/sysctl.conf last.

In both, a later assignment of a key wins; ``#`` and ``;`` start comment lines
(there are no trailing comments: ``a = 1 # x`` sets "1 # x"); whitespace around
keys and values is dropped; ``-key = value`` means "ignore errors"; ``-key``
alone excludes the key from glob assignments; ``a.b.c`` and ``a/b/c`` name the
same key (whichever separator comes first is the separator, the other one is a
literal dot in a name, as in ``net.ipv4.conf.eth0/100.rp_filter``). Every
``*.conf`` entry claims its file name, even one that cannot be read (a
directory, a dangling symlink, a symlink to /dev/null that masks a vendor file).

Limits: Alpine without procps applies the files with a loop in OpenRC's sysctl
service whose order differs between OpenRC versions; those hosts are resolved
with the procps rules. Glob keys are not expanded (that needs the host's
/proc/sys): they are facts of their own, e.g. ``net.ipv4.conf.*.rp_filter``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from driftcheck.model import ParseResult
from driftcheck.redact import REDACTED, Redactor, is_secret_name

from .base import Collector

#: Directories the tools read, highest precedence first (the order matters).
DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"
SYSTEMD = "systemd-sysctl"
PROCPS = "sysctl --system"
#: A bigger sysctl file is not configuration: report it instead of reading it.
MAX_FILE_BYTES = 262144

# Output, one header line per entry, content lines prefixed with "|" so that no
# content can look like a header:
#   M<TAB>systemd-sysctl | sysctl --system      (who applies the files at boot)
#   F<TAB>PATH  then |LINE...                   (a readable regular file; only the
#                                               lines that are not blank or comments)
#   X<TAB>KIND<TAB>PATH                         (directory, dangling, masked, other)
#   U<TAB>PATH                                  (cannot be read)
#   L<TAB>SIZE<TAB>PATH                         (over MAX_FILE_BYTES)
SHELL = f"""\
# sd_booted(): systemd-sysctl applies the files only when systemd is init.
if [ -d /run/systemd/system ]; then printf 'M\\t{SYSTEMD}\\n'; else printf 'M\\t{PROCPS}\\n'; fi
# Only the lines the tools act on: comment and blank lines would be most of
# the output and say nothing (and comments may quote secrets).
_lines='{{ l = $0; sub(/^[ \\t\\r\\f\\v]+/, "", l) }} l != "" && l !~ /^[#;]/ {{ print "|" $0 }}'
_emit() {{
  if [ -d "$1" ]; then printf 'X\\tdirectory\\t%s\\n' "$1"
  elif [ ! -e "$1" ]; then printf 'X\\tdangling symlink\\t%s\\n' "$1"
  elif [ -c "$1" ]; then printf 'X\\tmasked\\t%s\\n' "$1"
  elif [ ! -f "$1" ]; then printf 'X\\tnot a regular file\\t%s\\n' "$1"
  elif [ ! -r "$1" ]; then printf 'U\\t%s\\n' "$1"
  else
    _size=$(wc -c < "$1" | tr -d ' ')
    case $_size in
      ''|*[!0-9]*) printf 'U\\t%s\\n' "$1" ;;
      *) if [ "$_size" -gt {MAX_FILE_BYTES} ]; then printf 'L\\t%s\\t%s\\n' "$_size" "$1"
         else printf 'F\\t%s\\n' "$1"; awk "$_lines" "$1"; fi ;;
    esac
  fi
}}
_found=
_seen=
for _d in {" ".join(DIRS)}; do
  [ -d "$_d" ] || continue
  _found=1
  # /lib is /usr/lib on merged-/usr systems: list each real directory once
  # (the same file names would be hidden by the first one anyway).
  _real=$(cd "$_d" 2>/dev/null && pwd -P) || _real=$_d
  case " $_seen " in *" $_real "*) continue ;; esac
  _seen="$_seen $_real"
  for _f in "$_d"/*.conf; do
    if [ -e "$_f" ] || [ -L "$_f" ]; then _emit "$_f"; fi
  done
done
if [ -e {SYSCTL_CONF} ] || [ -L {SYSCTL_CONF} ]; then _found=1; _emit {SYSCTL_CONF}; fi
if [ -z "$_found" ]; then
  echo "no sysctl configuration: neither {SYSCTL_CONF} nor a sysctl.d directory exists" >&2
  exit 193
fi
"""

_WHITESPACE = " \t\n\r\f\v"
_SWAP = str.maketrans("./", "/.")


def normalize_key(key: str) -> str:
    """The dotted name ``sysctl -a`` prints for a key as written in a file.

    Both tools treat the first separator as *the* separator: ``a.b/c.d`` is the
    path a/b.c/d, and ``a/b.c/d`` is that same path. ``sysctl -a`` prints a
    path with "/" as "." and a literal "." as "/". Empty and "." components go,
    as systemd's path_simplify() drops them.
    """
    key = key.strip(_WHITESPACE)
    first = re.search(r"[./]", key)
    path = key.translate(_SWAP) if first and first.group() == "." else key
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ".".join(p.replace(".", "/") for p in parts)


@dataclass
class _Entry:
    """One ``*.conf`` entry (or /etc/sysctl.conf) as listed by the shell."""

    path: str
    lines: list[str] = field(default_factory=list)


@dataclass
class _Setting:
    value: str | None
    file: str
    ignore_errors: bool


def _assignment(line: str, applier: str) -> tuple[str, str | None, bool] | None:
    """(key, value or None for a glob exclusion, ignore errors) of one line, or None."""
    text = line.strip(_WHITESPACE)
    if not text or text[0] in "#;":
        return None
    key, sep, value = text.partition("=")
    ignore = key.startswith("-")
    if ignore:
        key = key[1:]
        if applier == PROCPS and key[:1] in tuple(_WHITESPACE):
            # procps keeps the blank of "- key" in the name: no such key, nothing set.
            return None
    if not sep:
        if not ignore:
            return None  # "Line is not an assignment": both tools skip it
        name = normalize_key(key)
        return (name, None, False) if name else None
    name = normalize_key(key)
    return (name, value.strip(_WHITESPACE), ignore) if name else None


def _entries(raw: str) -> tuple[str, list[_Entry], dict[str, str]]:
    """The applier, every listed entry in output order, and unreadable files."""
    applier = PROCPS
    entries: list[_Entry] = []
    errors: dict[str, str] = {}
    current: _Entry | None = None
    for line in raw.split("\n"):
        if line.startswith("|"):
            if current is not None:
                current.lines.append(line[1:])
            continue
        tag, _, rest = line.partition("\t")
        current = None
        if tag == "M" and rest in (SYSTEMD, PROCPS):
            applier = rest
        elif tag == "F" and rest:
            current = _Entry(rest)
            entries.append(current)
        elif tag in ("X", "L") and "\t" in rest:
            kind, _, path = rest.partition("\t")
            entries.append(_Entry(path))
            if tag == "L":
                errors[path] = f"not read: {kind} bytes, over the {MAX_FILE_BYTES} byte limit"
        elif tag == "U" and rest:
            entries.append(_Entry(rest))
            errors[rest] = "permission denied (run as a user that can read it)"
    return applier, entries, errors


def _apply_order(applier: str, entries: list[_Entry]) -> list[_Entry]:
    """The files in the order the applier reads them."""
    winners: dict[str, tuple[int, _Entry]] = {}
    sysctl_conf: _Entry | None = None
    for entry in entries:
        directory, name = posixpath.split(entry.path)
        if entry.path == SYSCTL_CONF:
            sysctl_conf = entry
        elif directory in DIRS and name.endswith(".conf"):
            rank = DIRS.index(directory)
            # A name in a higher-precedence directory hides it everywhere below.
            if name not in winners or rank < winners[name][0]:
                winners[name] = (rank, entry)
    ordered = [winners[name][1] for name in sorted(winners)]
    if applier == PROCPS and sysctl_conf is not None:
        ordered.append(sysctl_conf)
    return ordered


def parse(raw: str) -> ParseResult:
    """Key -> {"value", "file"[, "ignore_errors"]}, as the boot would leave it.

    ``value`` is the text after "=" without surrounding whitespace; ``file`` is
    the file whose assignment wins; ``"ignore_errors": true`` when that
    assignment is written ``-key = value``. A key only excluded from globs
    (``-key`` alone, and never assigned) is {"value": null, "file": ...,
    "excluded": true}. Unreadable files are errors: the result is incomplete.
    """
    applier, entries, errors = _entries(raw)
    settings: dict[str, _Setting] = {}
    for entry in _apply_order(applier, entries):
        for line in entry.lines:
            parsed = _assignment(line, applier)
            if parsed is None:
                continue
            key, value, ignore = parsed
            old = settings.get(key)
            if applier == SYSTEMD:
                # systemd keeps the first of equal assignments (and its file) and
                # lets a later, different one (or "-key") replace it.
                if old is not None and old.value == value:
                    old.ignore_errors = old.ignore_errors or ignore
                    continue
                settings.pop(key, None)
            elif value is None and old is not None and old.value is not None:
                # procps writes every explicit assignment; "-key" only stops globs.
                continue
            settings[key] = _Setting(value, entry.path, ignore)
    facts: dict[str, dict[str, object]] = {}
    for key in sorted(settings):
        s = settings[key]
        fact: dict[str, object] = {"value": s.value, "file": s.file}
        if s.value is None:
            fact["excluded"] = True
        elif s.ignore_errors:
            fact["ignore_errors"] = True
        facts[key] = fact
    return ParseResult(facts, errors)


def _scrub_content(body: str, redactor: Redactor) -> str:
    """One content line with the value of a secret key (any key form) redacted."""
    key, sep, value = body.partition("=")
    name = normalize_key(key.lstrip(_WHITESPACE).removeprefix("-"))
    secret = value.strip(_WHITESPACE)
    if sep and secret and is_secret_name(name) and not REDACTED.fullmatch(secret):
        start = value.index(secret)
        return key + sep + value[:start] + redactor.token(secret) + value[start + len(secret) :]
    return redactor.scrub_line(body)


def scrub(raw: str, redactor: Redactor) -> str:
    """Redact the values of secret keys (net.ipv4.tcp_fastopen_key) in file content.

    The generic line scrubber does not know sysctl key forms ("-net.x = v",
    "net/ipv4/tcp_fastopen_key = v"), so secret keys are found by their
    normalised name; everything else still goes through the generic rules.
    """
    out = []
    for line in raw.split("\n"):
        out.append("|" + _scrub_content(line[1:], redactor) if line.startswith("|") else line)
    return "\n".join(out)


COLLECTOR = Collector(
    name="sysctl_config",
    description="kernel parameters set by /etc/sysctl.conf and sysctl.d files, resolved as "
    "systemd-sysctl or sysctl --system applies them (value and file)",
    shell=SHELL,
    parse=parse,
    timeout=30.0,
    scrub=scrub,
)
