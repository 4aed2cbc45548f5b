"""``files``: configured files, globs and directories: metadata, checksum, content, settings.

Text files under the size limit are kept as content; when a file's format is
known (INI, YAML, JSON, TOML, env, sshd_config, sysctl.conf, nginx-style; see
``config_formats``) it is compared setting by setting instead, so a report says
which setting drifted and a comment or whitespace change is not drift; a text file
with a known comment syntax is compared on its content lines.

What the walk reads (see ``file_rules``): nothing under ``collect.exclude``; no
text of a sensitive file (shadow, private keys, credentials), only a checksum that
``scrub`` keys before it is stored; symlinks inside a directory or a glob are
described as links, never followed (only a path named itself is); subdirectories,
FIFOs, sockets and devices are described too.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from driftcheck.model import SETTING_SEP, CollectSettings, ParseResult
from driftcheck.redact import REDACTED, Redactor, is_harmless_value, is_secret_name
from driftcheck.script import HOST_MAX_BYTES, SECTION_MAX_BYTES

from . import config_formats, file_rules
from .base import Collector, scrub_prefixed

# Output, per path: one header line, then (text files only) the content lines, each
# prefixed with "|" so that no content line can look like a header:
#   F<TAB>absent|unreadable<TAB>PATH
#   F<TAB>link<TAB>TARGET<TAB>ok|broken|unknown<TAB>PATH    a symlink, not followed
#   F<TAB>KIND<TAB>MODE OWNER GROUP SIZE<TAB>SHA256|-<TAB>CLASS|-<TAB>PATH
#       KIND: file directory fifo socket char-device block-device other
#       CLASS (files): text binary large sensitive (no content printed but text's)
#   L<TAB>TARGET      after a header: PATH, named in collect.files, is a symlink to
#                     TARGET, and the header describes what it points to
#   N<TAB>noeol       after content whose last line has no newline
# and T<TAB>ENTRY when a glob or directory has more entries than dir_max_files.
# (Older scripts printed "F<TAB>broken-link<TAB>TARGET<TAB>PATH" and followed every
# symlink; the parser still reads that, so stored runs can be re-parsed.)
_FUNCTIONS = """\
max={max_files}
nl='
'
_dc_unreadable() {{ printf 'F\\tunreadable\\t%s\\n' "$1"; }}
# A symlink as a link: where it points and whether that exists; never followed.
_dc_link() {{
  t=$(readlink -- "$1" 2>/dev/null)
  case $t in *"$nl"*|*"	"*) t='(target name with a newline or tab)' ;; esac
  if [ -e "$1" ]; then s=ok
  else
    # [ -e ] is also false when a directory on the way cannot be searched: unknown.
    case $(stat -L -c %a -- "$1" 2>&1 >/dev/null) in
      *"ermission denied"*) s=unknown ;;
      *) s=broken ;;
    esac
  fi
  printf 'F\\tlink\\t%s\\t%s\\t%s\\n' "$t" "$s" "$1"
}}
# A path that does not exist: absent, or unknown when its directory is unsearchable.
_dc_absent() {{
  case $(stat -L -c %a -- "$1" 2>&1 >/dev/null) in
    *"ermission denied"*) _dc_unreadable "$1" ;;
    *) printf 'F\\tabsent\\t%s\\n' "$1" ;;
  esac
}}
# A regular file: checksum, and the text unless binary, over the limit or sensitive.
_dc_regular() {{
  p=$1; meta=$2; link=$3
  sum=$(sha256sum < "$p") || {{ _dc_unreadable "$p"; return; }}
  # A secret's text is never printed; its checksum is keyed on the controller.
  if _dc_sensitive "$p" || {{ [ -n "$link" ] && _dc_sensitive "$(readlink -f -- "$p")"; }}; then
    kind=sensitive
  elif [ "${{meta##* }}" -gt {limit} ]; then kind=large
  elif [ "$(tr -d '\\000' < "$p" | wc -c)" -ne "${{meta##* }}" ]; then kind=binary
  else kind=text; fi
  printf 'F\\tfile\\t%s\\t%s\\t%s\\t%s\\n' "$meta" "${{sum%% *}}" "$kind" "$p"
  if [ -n "$link" ]; then printf 'L\\t%s\\n' "$link"; fi
  if [ "$kind" = text ]; then
    awk '{{print "|" $0}}' "$p"
    if [ -n "$(tail -c 1 "$p")" ]; then printf 'N\\tnoeol\\n'; fi
  fi
}}
# One path. A symlink is described as a link, unless $2 is "follow" (a path named
# in collect.files itself): then what it points to is described, under its name.
_dc_file() {{
  p=$1; link=
  # A name with a newline would split into two lines of output (and a crafted
  # one could make us read another file): such names are never followed.
  case $p in *"$nl"*) return ;; esac
  if [ -L "$p" ]; then
    if [ "$2" != follow ] || [ ! -e "$p" ]; then _dc_link "$p"; return; fi
    link=$(readlink -- "$p" 2>/dev/null)
    case $link in *"$nl"*|*"	"*) link='(target name with a newline or tab)' ;; esac
  fi
  if [ ! -e "$p" ]; then _dc_absent "$p"; return; fi
  if [ -d "$p" ]; then kind=directory
    # Its entries cannot be listed: they are unknown, not absent.
    if [ ! -r "$p" ] || [ ! -x "$p" ]; then _dc_unreadable "$p"; return; fi
  elif [ -f "$p" ]; then kind=file
    if [ ! -r "$p" ]; then _dc_unreadable "$p"; return; fi
  elif [ -p "$p" ]; then kind=fifo
  elif [ -S "$p" ]; then kind=socket
  elif [ -c "$p" ]; then kind=char-device
  elif [ -b "$p" ]; then kind=block-device
  else kind=other; fi
  meta=$(stat -L -c '%a %U %G %s' -- "$p") || {{ _dc_unreadable "$p"; return; }}
  if [ "$kind" = file ]; then _dc_regular "$p" "$meta" "$link"; return; fi
  printf 'F\\t%s\\t%s\\t-\\t-\\t%s\\n' "$kind" "$meta" "$p"
  if [ -n "$link" ]; then printf 'L\\t%s\\n' "$link"; fi
}}
# A directory: itself, then every entry below it (sorted, on the same filesystem,
# symlinks not followed, excluded ones left out), at most $max of them.
_dc_walk() {{
  _dc_file "$1"
  [ -r "$1" ] && [ -x "$1" ] || return 0
  find "$1" -xdev -mindepth 1 ! -path "*$nl*" -print 2>/dev/null \\
    | _dc_keep \\
    | sort \\
    | awk -v m="$max" 'NR <= m {{ print }} NR == m + 1 {{ print "TRUNCATED"; exit }}' \\
    | while IFS= read -r f; do
        if [ "$f" = TRUNCATED ]; then printf 'T\\t%s\\n' "$1"; else _dc_file "$f"; fi
      done
}}
_dc_entry() {{
  if [ -d "$1" ] && [ ! -L "$1" ]; then _dc_walk "$1"; else _dc_file "$1" "$2"; fi
}}
# The directory a glob lists: if it cannot be read, the glob's matches are unknown.
_dc_globdir() {{
  if [ -d "$1" ] && {{ [ ! -r "$1" ] || [ ! -x "$1" ]; }}; then _dc_unreadable "$1"; fi
}}
"""


def _glob_word(pattern: str) -> str:
    """A shell word that expands ``pattern``'s * ? [ ] and nothing else.

    Every other character is backslash-escaped, so no $, `, quote or space in the
    inventory can do anything but match itself.
    """
    return "".join(c if c in "*?[]" else "\\" + c for c in pattern)


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def shell(settings: CollectSettings) -> str:
    """Stat, hash and print every configured path, glob match and directory member."""
    if not settings.files:
        return ":"
    return shell_functions(settings) + walk_configured(settings)


def shell_functions(settings: CollectSettings) -> str:
    """The sh functions the walk calls (``_dc_entry`` and the helpers it uses, the
    exclusion filter ``_dc_keep`` and the ``_dc_sensitive`` test); other collectors
    reuse them to visit exactly the files this one reads."""
    return (
        _FUNCTIONS.format(max_files=int(settings.dir_max_files), limit=int(settings.file_max_bytes))
        + file_rules.keep_function(settings.exclude)
        + file_rules.sensitive_function()
        + "\n"
    )


def _glob_entry(entry: str) -> str:
    """sh visiting the matches of one glob that are not excluded, at most $max."""
    quoted = shlex.quote(entry)
    literal = re.split(r"[*?\[]", entry, maxsplit=1)[0]
    parent = literal.rsplit("/", 1)[0] or "/"
    return (
        f"_dc_globdir {shlex.quote(parent)}\n"
        f"for p in {_glob_word(entry)}; do\n"
        '  [ -e "$p" ] || [ -L "$p" ] || continue\n'
        '  case $p in *"$nl"*) continue ;; esac\n'  # one name, one line
        "  printf '%s\\n' \"$p\"\n"
        "done | _dc_keep | {\n"
        "  n=0; while IFS= read -r p; do\n"
        "    n=$((n + 1))\n"
        f'    if [ "$n" -gt "$max" ]; then printf \'T\\t%s\\n\' {quoted}; break; fi\n'
        '    _dc_entry "$p"\n'
        "  done\n"
        "}"
    )


def walk_configured(settings: CollectSettings) -> str:
    """sh calling ``_dc_entry`` on every configured path, glob match and directory
    that ``collect.exclude`` does not exclude; a path named itself is followed if it
    is a symlink (``follow``), a glob's matches and a directory's entries are not."""
    lines = [":"]  # a function body, in config_origin, must not be empty
    for configured in settings.files:
        entry = configured.rstrip("/") or "/"  # find would print //-joined names otherwise
        if not _is_glob(entry):
            if not file_rules.is_excluded(entry, settings.exclude):
                lines.append(f"_dc_entry {shlex.quote(entry)} follow")
            continue
        # Every match of a glob is below the directory its fixed part names: when
        # that is excluded, so are they all. Other matches are filtered on the host.
        literal = re.split(r"[*?\[]", entry, maxsplit=1)[0]
        if not file_rules.is_excluded(literal.rsplit("/", 1)[0] or "/", settings.exclude):
            lines.append(_glob_entry(entry))
    return "\n".join(lines) + "\n"


def _mode(text: str) -> str:
    return text.rjust(4, "0") if text.isdigit() else text


#: What a sensitive file's fact says instead of its content.
SENSITIVE_NOTE = "sensitive: content not read"
#: The key suffix of a comment-compared file's full text (volatile: shown, not compared).
FULL_TEXT = SETTING_SEP + "(text)"
_KINDS = frozenset({"file", "directory", "fifo", "socket", "char-device", "block-device", "other"})
_NOT_TEXT = {"binary": "binary file", "large": "over size limit"}


def _text_facts(path: str, fact: dict[str, object], text: str) -> dict[str, object]:
    """Fill in a text file's fact; return the facts of its settings (or full text).

    A known format is compared setting by setting: its text, size and checksum would
    only repeat that drift (and make a comment change look like one). A file with a
    known comment syntax is compared on its content lines; both keep their full text
    as the volatile ``PATH#(text)``. Any other text is compared byte for byte.
    """
    parsed = config_formats.settings(path, text)
    if parsed is not None and not isinstance(parsed, config_formats.Unparsed):
        fmt, settings = parsed
        for key in ("content", "size", "sha256"):
            fact.pop(key, None)
        fact["format"] = fmt
        out: dict[str, object] = {
            f"{path}{SETTING_SEP}{name}": value for name, value in settings.items()
        }
        # The whole (scrubbed) text too, volatile: what `diff --file` and the HTML
        # report's file diffs show beside the settings that differ.
        out[path + FULL_TEXT] = text
        return out
    notes = [f"compared as text: {parsed.why}"] if parsed is not None else []
    syntax = config_formats.comment_syntax(path)
    if syntax is None:
        fact["content"] = text
        if notes:
            fact["content_note"] = notes[0]
        return {}
    lines = config_formats.content_lines(text, syntax)
    for key in ("size", "sha256"):
        fact.pop(key, None)
    fact["content"] = lines
    notes.append(f"compared without {syntax.describe()} comments and blank lines")
    fact["content_note"] = "; ".join(notes)
    return {path + FULL_TEXT: text} if lines != text else {}


def _regular(checksum: str, klass: str, size: str) -> tuple[dict[str, object], str]:
    """A regular file's fields after its metadata, and an error ("" when none)."""
    fields: dict[str, object] = {"size": int(size) if size.isdigit() else size}
    if klass == "sensitive":
        if not REDACTED.fullmatch(checksum):
            # Only scrub() keys the checksum; a plain one is never kept.
            return {}, "sensitive file whose checksum was not keyed (output not scrubbed)"
        fields["keyed_hash"] = checksum
        fields["content_note"] = SENSITIVE_NOTE
        return fields, ""
    fields["sha256"] = checksum
    if klass == "text":
        fields["content"] = ""  # filled in by finish()
    else:
        fields["content_note"] = _NOT_TEXT.get(klass, klass)
    return fields, ""


class _FileParser:
    """Folds the header and content lines of the section into facts."""

    def __init__(self) -> None:
        self.facts: dict[str, object] = {}
        self.errors: dict[str, str] = {}
        self.path = ""
        self.current: dict[str, object] | None = None
        self.lines: list[str] = []
        self.noeol = False

    def finish(self) -> None:
        """Attach the collected content to the current file; parse known formats."""
        fact, self.current = self.current, None
        if fact is None or fact.get("content") != "":
            return
        text = "\n".join(self.lines)
        text = text if self.noeol or not self.lines else text + "\n"
        self.facts.update(_text_facts(self.path, fact, text))

    def header(self, parts: list[str]) -> None:
        """One ``F`` line: an entry, a link, an absent or unreadable path."""
        self.finish()
        self.lines, self.noeol = [], False
        kind = parts[1]
        if kind in ("absent", "unreadable") and len(parts) >= 3:
            if kind == "unreadable":
                path = "\t".join(parts[2:])
                self.errors[path] = "permission denied (run as a user that can read it)"
        elif kind == "broken-link" and len(parts) >= 4:  # scripts before "link"
            self.facts["\t".join(parts[3:])] = {"type": "symlink", "link": parts[2], "broken": True}
        elif kind == "link" and len(parts) >= 5:
            self.link("\t".join(parts[4:]), parts[2], parts[3])
        elif kind in _KINDS and len(parts) >= 6:
            self.entry(parts)

    def link(self, path: str, target: str, state: str) -> None:
        """A symlink not followed (in a directory or a glob's matches)."""
        if state not in ("ok", "broken"):
            self.errors[path] = "cannot tell whether the symlink's target exists: permission denied"
            return
        known = self.facts.get(path)
        if isinstance(known, dict) and "target_type" in known and known.get("link") == target:
            return  # also named itself in collect.files: that fuller description stays
        self.facts[path] = {"type": "symlink", "link": target, "broken": state != "ok"}

    def entry(self, parts: list[str]) -> None:
        """A file, directory or special file: its metadata (and checksum, for a file)."""
        meta = parts[2].split(" ")
        if len(meta) != 4:
            return
        self.path = "\t".join(parts[5:])
        mode, owner, group, size = meta
        fact: dict[str, object] = {"type": parts[1], "mode": _mode(mode), "owner": owner}
        fact["group"] = group
        if parts[1] == "file":
            fields, error = _regular(parts[3], parts[4], size)
            if error:
                self.errors[self.path] = error
                return
            fact.update(fields)
        self.facts[self.path] = fact
        self.current = fact

    def followed(self, target: str) -> None:
        """An ``L`` line: the path just described is a symlink named in collect.files,
        and its header described what it points to."""
        fact = self.facts.get(self.path)
        if not isinstance(fact, dict) or fact is not self.current:
            return
        described = dict(fact)
        fact.clear()
        fact.update(type="symlink", link=target, broken=False, target_type=described.pop("type"))
        fact.update(described)


def _last_name(setting: str) -> str:
    parts = [p.strip('"') for p in re.split(r"[.\[\]]", setting) if p and not p.isdigit()]
    return parts[-1] if parts else ""


def _secret_values(path: str, lines: list[str]) -> set[str]:
    """Values of secret settings in a parsed config file that line scrubbing missed.

    The line scrubber sees ``password = x`` but not ``{"db": {"password": "x"}}`` on
    one line, ``password:`` with the value on the next line, YAML flow maps, TOML
    inline tables, or ``{name: DB_PASSWORD, value: x}`` pairs.
    """
    text = "\n".join(lines) + "\n"
    parsed = config_formats.settings(path, text)
    if parsed is None or isinstance(parsed, config_formats.Unparsed):
        return set()  # compared as text: the line scrubber has seen every line
    settings = parsed[1]
    found: set[str] = set()
    for name, value in settings.items():
        if value is None or isinstance(value, bool | dict | list):
            continue
        text_value = str(value)
        # Replaced everywhere in the file below: a harmless value ("no", a key's path)
        # would turn every "no" of an sshd_config into a token.
        if not text_value or REDACTED.search(text_value) or is_harmless_value(text_value):
            continue
        last = _last_name(name)
        secret = is_secret_name(last)
        if not secret and last in ("value", "val"):
            stem = name[: -len(last)]
            label = settings.get(stem + "name", settings.get(stem + "key"))
            secret = isinstance(label, str) and is_secret_name(label)
        if secret:
            # A value continued over lines (INI, YAML) is found line by line.
            found.update(part.strip() for part in text_value.split("\n") if part.strip())
    return found


def _is_secret_file(path: str, link: str | None, first_line: str | None) -> bool:
    """The controller's own check of a file the host sent as text: sensitive by its
    name, its symlink target's name, or a private key on its first line."""
    if file_rules.is_sensitive_name(path):
        return True
    if link is not None:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
        if file_rules.is_sensitive_name(target):
            return True
    return first_line is not None and file_rules.PEM_PRIVATE.match(first_line) is not None


def seal_sensitive(raw: str, redactor: Redactor) -> str:
    """Key the checksum of every sensitive file and drop any content sent for one.

    The host prints no content for what it finds sensitive; this is the second
    line of defence (an older script, a stored run, a host's odd tools): a header
    the controller finds sensitive loses its content lines here, before anything
    is parsed or stored. A plain sha256 of a short secret (a password file) could
    be brute-forced; the keyed one cannot without the local key, and still changes
    when the secret does.
    """
    lines = raw.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        parts = lines[i].split("\t")
        if parts[0] != "F" or len(parts) < 6 or parts[1] != "file":
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        link = lines[j][2:] if j < len(lines) and lines[j].startswith("L\t") else None
        j += link is not None
        body = j
        while j < len(lines) and (lines[j].startswith("|") or lines[j] == "N\tnoeol"):
            j += 1
        first = lines[body][1:] if body < j and lines[body].startswith("|") else None
        if parts[4] == "sensitive" or _is_secret_file("\t".join(parts[5:]), link, first):
            parts[4] = "sensitive"
            if not REDACTED.fullmatch(parts[3]):  # idempotent: never hash the token
                parts[3] = redactor.token(parts[3])
            lines[body:j] = []
            j = body
        out.append("\t".join(parts))
        out.extend(lines[i + 1 : j])
        i = j
    return "\n".join(out)


def scrub(raw: str, redactor: Redactor) -> str:
    """Seal sensitive files, scrub line by line, then redact what only the parsed
    settings reveal as secret."""
    raw = scrub_prefixed(seal_sensitive(raw, redactor), redactor)
    out = raw.split("\n")
    path, start = "", -1

    def redact_block(end: int) -> None:
        if start < 0 or not path:
            return
        block = [line[1:] for line in out[start:end]]
        for secret in sorted(_secret_values(path, block), key=len, reverse=True):
            pattern = re.compile(r"(?<![\w])" + re.escape(secret) + r"(?![\w])")
            token = redactor.token(secret)
            for i in range(start, end):
                out[i] = pattern.sub(token, out[i])

    for i, line in enumerate(out):
        if line.startswith("|"):
            if start < 0:
                start = i
            continue
        redact_block(i)
        start = -1
        if line.startswith("F\t"):
            path = line.rsplit("\t", 1)[-1]
    redact_block(len(out))
    return "\n".join(out)


def parse(raw: str) -> ParseResult:
    """Path -> {type, mode, owner, group, ...} and, for files in a known format,
    ``path#setting`` -> value (see the README, "What is compared").

    Absent paths produce no fact (so present-vs-absent is missing/extra drift);
    unreadable ones, and globs or directories with more entries than the limit,
    become errors (incomplete, never "same").
    """
    state = _FileParser()
    for line in raw.split("\n"):
        if line.startswith("|"):
            if state.current is not None:
                state.lines.append(line[1:])
        elif line == "N\tnoeol":
            state.noeol = True
        elif line.startswith("L\t"):
            state.followed(line[2:])
        elif line.startswith("T\t"):
            state.errors[line[2:]] = (
                "more entries than collect.dir_max_files; only the first ones (sorted) were read"
            )
        elif line.startswith("F\t") and len(line.split("\t")) > 2:
            state.header(line.split("\t"))
    state.finish()
    return ParseResult(dict(state.facts), state.errors)


def file_text(facts: dict[str, object], path: str) -> str | None:
    """The whole scrubbed text of ``path`` from the files collector's facts, or None
    when none was kept (binary, over the size limit, sensitive, not a file)."""
    text = facts.get(path + FULL_TEXT)
    if isinstance(text, str):
        return text
    fact = facts.get(path)
    content = fact.get("content") if isinstance(fact, dict) else None
    return content if isinstance(content, str) else None


def content_cap(settings: CollectSettings) -> int:
    """What the files section may send: room for one full directory of text files at
    the content limit (``file_max_bytes`` x ``dir_max_files``, 50 MiB with the
    defaults), never less than any section's cap and never more than half of what a
    whole host may send (32 MiB), so the other sections still fit."""
    allowed = settings.file_max_bytes * settings.dir_max_files
    return min(HOST_MAX_BYTES // 2, max(SECTION_MAX_BYTES, allowed))


COLLECTOR = Collector(
    name="files",
    description="configured files, globs and directories (minus collect.exclude): type, mode, "
    "owner, group, symlink target, sha256, size, and content or per-setting values (secrets "
    "redacted; sensitive files by keyed hash only)",
    shell=shell,
    parse=parse,
    requires=("stat",),
    timeout=lambda s: 30.0 + 2.0 * len(s.files),
    max_output=content_cap,
    # The full text of a file compared on its content lines: a comment edit is no
    # drift, yet `driftcheck show` has the text (compare.include_volatile compares it).
    volatile=("*" + FULL_TEXT,),
    scrub=scrub,
)
