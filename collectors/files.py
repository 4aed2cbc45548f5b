"""``files``: configured files, globs and directories: metadata, checksum, content, settings.

Text files under the size limit are kept as content; when a file's format is
known (INI, YAML, JSON, TOML, env, sshd_config, sysctl.conf, nginx-style; see
``config_formats``) it is compared setting by setting instead, so a report says
which setting drifted and a comment or whitespace change is not drift; a text file
with a known comment syntax is compared on its content lines.
"""

from __future__ import annotations

import re
import shlex

from driftcheck.model import SETTING_SEP, CollectSettings, ParseResult
from driftcheck.redact import REDACTED, Redactor, is_secret_name

from . import config_formats
from .base import Collector, scrub_prefixed

# Output, per file: one header line, then its content lines each prefixed with "|"
# so that no content line can look like a header:
#   F<TAB>absent|unreadable<TAB>PATH
#   F<TAB>broken-link<TAB>TARGET<TAB>PATH
#   F<TAB>file|directory|other<TAB>MODE OWNER GROUP SIZE<TAB>SHA256|-<TAB>text|binary|large<TAB>PATH
#   L<TAB>TARGET                 (the path is a symlink to TARGET; the header describes TARGET)
#   N<TAB>noeol                  (after content whose last line has no newline)
# and T<TAB>ENTRY when a glob or directory has more files than dir_max_files.
_FUNCTIONS = """\
max={max_files}
nl='
'
_dc_file() {{
  p=$1; link=
  # A name with a newline would split into two lines of output (and a crafted
  # one could make us read another file): such names are never followed.
  case $p in *"$nl"*) return ;; esac
  if [ -L "$p" ]; then link=$(readlink -- "$p" 2>/dev/null); fi
  case $link in *"$nl"*|*"	"*) link='(target name with a newline or tab)' ;; esac
  if [ ! -e "$p" ]; then
    if [ -n "$link" ]; then printf 'F\\tbroken-link\\t%s\\t%s\\n' "$link" "$p"; return; fi
    # [ -e ] is also false when a parent directory cannot be searched: that is
    # "unreadable" (unknown), not "absent" (which would be reported as missing).
    case $(stat -L -c %a -- "$p" 2>&1 >/dev/null) in
      *"ermission denied"*) printf 'F\\tunreadable\\t%s\\n' "$p" ;;
      *) printf 'F\\tabsent\\t%s\\n' "$p" ;;
    esac
    return
  fi
  if [ ! -r "$p" ] || {{ [ -d "$p" ] && [ ! -x "$p" ]; }}; then
    printf 'F\\tunreadable\\t%s\\n' "$p"; return
  fi
  meta=$(stat -L -c '%a %U %G %s' -- "$p") || {{ printf 'F\\tunreadable\\t%s\\n' "$p"; return; }}
  if [ -d "$p" ]; then kind=directory
  elif [ ! -f "$p" ]; then kind=other
  else kind=file; fi
  if [ "$kind" != file ]; then
    printf 'F\\t%s\\t%s\\t-\\t-\\t%s\\n' "$kind" "$meta" "$p"
    if [ -n "$link" ]; then printf 'L\\t%s\\n' "$link"; fi
    return
  fi
  sum=$(sha256sum < "$p") || {{ printf 'F\\tunreadable\\t%s\\n' "$p"; return; }}
  size=${{meta##* }}
  if [ "$size" -gt {limit} ]; then kind=large
  elif [ "$(tr -d '\\000' < "$p" | wc -c)" -ne "$size" ]; then kind=binary
  else kind=text; fi
  printf 'F\\tfile\\t%s\\t%s\\t%s\\t%s\\n' "$meta" "${{sum%% *}}" "$kind" "$p"
  if [ -n "$link" ]; then printf 'L\\t%s\\n' "$link"; fi
  if [ "$kind" = text ]; then
    awk '{{print "|" $0}}' "$p"
    if [ -n "$(tail -c 1 "$p")" ]; then printf 'N\\tnoeol\\n'; fi
  fi
}}
# A directory: itself, then the files and symlinks below it (sorted, on the same
# filesystem, symlinked directories not followed), at most $max of them.
_dc_walk() {{
  _dc_file "$1"
  # Subdirectories find cannot enter: their files are unknown, not absent.
  find "$1" -xdev -mindepth 1 -type d ! -path "*$nl*" -print 2>/dev/null \\
    | while IFS= read -r d; do
        if [ ! -r "$d" ] || [ ! -x "$d" ]; then printf 'F\\tunreadable\\t%s\\n' "$d"; fi
      done
  find "$1" -xdev -mindepth 1 \\( -type f -o -type l \\) ! -path "*$nl*" -print 2>/dev/null \\
    | sort \\
    | awk -v m="$max" 'NR <= m {{ print }} NR == m + 1 {{ print "TRUNCATED"; exit }}' \\
    | while IFS= read -r f; do
        if [ "$f" = TRUNCATED ]; then printf 'T\\t%s\\n' "$1"; else _dc_file "$f"; fi
      done
}}
_dc_entry() {{
  if [ -d "$1" ] && [ ! -L "$1" ]; then _dc_walk "$1"; else _dc_file "$1"; fi
}}
# The directory a glob lists: if it cannot be read, the glob's matches are unknown.
_dc_globdir() {{
  if [ -d "$1" ] && {{ [ ! -r "$1" ] || [ ! -x "$1" ]; }}; then
    printf 'F\\tunreadable\\t%s\\n' "$1"
  fi
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
    """The sh functions the walk calls (``_dc_entry`` and the helpers it uses); other
    collectors reuse them to visit exactly the files this one reads."""
    return (
        _FUNCTIONS.format(max_files=int(settings.dir_max_files), limit=int(settings.file_max_bytes))
        + "\n"
    )


def walk_configured(settings: CollectSettings) -> str:
    """sh calling ``_dc_entry`` on every configured path, glob match and directory."""
    lines = []
    for configured in settings.files:
        entry = configured.rstrip("/") or "/"  # find would print //-joined names otherwise
        if _is_glob(entry):
            quoted = shlex.quote(entry)
            literal = re.split(r"[*?\[]", entry, maxsplit=1)[0]
            parent = literal.rsplit("/", 1)[0] or "/"
            lines.append(
                f"_dc_globdir {shlex.quote(parent)}\n"
                f"n=0; for p in {_glob_word(entry)}; do\n"
                '  [ -e "$p" ] || [ -L "$p" ] || continue\n'
                "  n=$((n + 1))\n"
                f'  if [ "$n" -gt "$max" ]; then printf \'T\\t%s\\n\' {quoted}; break; fi\n'
                '  _dc_entry "$p"\n'
                "done"
            )
        else:
            lines.append(f"_dc_entry {shlex.quote(entry)}")
    return "\n".join(lines) + "\n"


def _mode(text: str) -> str:
    return text.rjust(4, "0") if text.isdigit() else text


#: The key suffix of a comment-compared file's full text (volatile: shown, not compared).
FULL_TEXT = SETTING_SEP + "(text)"


def _text_facts(path: str, fact: dict[str, object], text: str) -> dict[str, object]:
    """Fill in a text file's fact; return the facts of its settings (or full text).

    A known format is compared setting by setting: its text, size and checksum would
    only repeat that drift (and make a comment change look like one). A file with a
    known comment syntax is compared on its content lines, and its full text is kept
    as the volatile ``PATH#(text)``; any other text is compared byte for byte.
    """
    parsed = config_formats.settings(path, text)
    if parsed is not None and not isinstance(parsed, config_formats.Unparsed):
        fmt, settings = parsed
        for key in ("content", "size", "sha256"):
            fact.pop(key, None)
        fact["format"] = fmt
        return {f"{path}{SETTING_SEP}{name}": value for name, value in settings.items()}
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
        """One ``F`` line: a file, directory, other, absent, unreadable or broken link."""
        self.finish()
        self.lines, self.noeol = [], False
        kind = parts[1]
        if kind in ("absent", "unreadable") and len(parts) >= 3:
            path = "\t".join(parts[2:])
            if kind == "unreadable":
                self.errors[path] = "permission denied (run as a user that can read it)"
            return
        if kind == "broken-link" and len(parts) >= 4:
            self.facts["\t".join(parts[3:])] = {"type": "symlink", "link": parts[2], "broken": True}
            return
        if kind not in ("file", "directory", "other") or len(parts) < 6:
            return
        meta = parts[2].split(" ")
        if len(meta) != 4:
            return
        self.path = "\t".join(parts[5:])
        mode, owner, group, size = meta
        fact: dict[str, object] = {
            "type": kind,
            "mode": _mode(mode),
            "owner": owner,
            "group": group,
        }
        if kind == "file":
            fact["size"] = int(size) if size.isdigit() else size
            fact["sha256"] = parts[3]
            if parts[4] == "text":
                fact["content"] = ""  # filled in by finish()
            else:
                fact["content_note"] = {"binary": "binary file", "large": "over size limit"}.get(
                    parts[4], parts[4]
                )
        self.facts[self.path] = fact
        self.current = fact


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
        if not text_value or REDACTED.search(text_value):
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


def scrub(raw: str, redactor: Redactor) -> str:
    """Scrub line by line, then redact what only the parsed settings reveal as secret."""
    raw = scrub_prefixed(raw, redactor)
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
    """Path -> {type, mode, owner, group, size, sha256, content | format, link?}
    and, for files in a known format, ``path#setting`` -> value.

    Absent paths produce no fact (so present-vs-absent is missing/extra drift);
    unreadable ones, and globs or directories with more files than the limit,
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
            if state.current is not None:
                state.current["link"] = line[2:]
        elif line.startswith("T\t"):
            state.errors[line[2:]] = (
                "more files than collect.dir_max_files; only the first ones (sorted) were read"
            )
        elif line.startswith("F\t") and len(line.split("\t")) > 2:
            state.header(line.split("\t"))
    state.finish()
    return ParseResult(dict(state.facts), state.errors)


COLLECTOR = Collector(
    name="files",
    description="configured files, globs and directories: mode, owner, group, symlink target, "
    "sha256, size, and content or per-setting values (secrets redacted)",
    shell=shell,
    parse=parse,
    requires=("stat",),
    timeout=lambda s: 30.0 + 2.0 * len(s.files),
    # The full text of a file compared on its content lines: a comment edit is no
    # drift, yet `driftcheck show` has the text (compare.include_volatile compares it).
    volatile=("*" + FULL_TEXT,),
    scrub=scrub,
)
