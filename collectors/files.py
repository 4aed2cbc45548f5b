"""``files``: metadata, checksum and (text, small) content of configured files."""

from __future__ import annotations

import shlex

from driftcheck.inventory import CollectSettings
from driftcheck.model import ParseResult

from .base import Collector, scrub_prefixed

# Per path, one header line, then the content lines each prefixed with "|" so
# that no content line can look like a header:
#   F<TAB>absent|unreadable<TAB>PATH
#   F<TAB>file|directory|other<TAB>MODE OWNER GROUP SIZE<TAB>SHA256|-<TAB>text|binary|large<TAB>PATH
# and, after the content of a text file whose last line has no newline, "N<TAB>noeol".
_LOOP = """\
for p in {paths}; do
  if [ ! -e "$p" ]; then
    # [ -e ] is also false when a parent directory cannot be searched: that is
    # "unreadable" (unknown), not "absent" (which would be reported as missing).
    case $(stat -L -c %a -- "$p" 2>&1 >/dev/null) in
      *"ermission denied"*) printf 'F\\tunreadable\\t%s\\n' "$p" ;;
      *) printf 'F\\tabsent\\t%s\\n' "$p" ;;
    esac
    continue
  fi
  if [ ! -r "$p" ]; then printf 'F\\tunreadable\\t%s\\n' "$p"; continue; fi
  meta=$(stat -L -c '%a %U %G %s' -- "$p") || {{ printf 'F\\tunreadable\\t%s\\n' "$p"; continue; }}
  if [ -d "$p" ]; then printf 'F\\tdirectory\\t%s\\t-\\t-\\t%s\\n' "$meta" "$p"; continue; fi
  if [ ! -f "$p" ]; then printf 'F\\tother\\t%s\\t-\\t-\\t%s\\n' "$meta" "$p"; continue; fi
  sum=$(sha256sum < "$p") || {{ printf 'F\\tunreadable\\t%s\\n' "$p"; continue; }}
  size=${{meta##* }}
  if [ "$size" -gt {limit} ]; then kind=large
  elif [ "$(tr -d '\\000' < "$p" | wc -c)" -ne "$size" ]; then kind=binary
  else kind=text; fi
  printf 'F\\tfile\\t%s\\t%s\\t%s\\t%s\\n' "$meta" "${{sum%% *}}" "$kind" "$p"
  if [ "$kind" = text ]; then
    awk '{{print "|" $0}}' "$p"
    if [ -n "$(tail -c 1 "$p")" ]; then printf 'N\\tnoeol\\n'; fi
  fi
done
"""


def shell(settings: CollectSettings) -> str:
    """Stat, hash and print each configured path; nothing when none is configured."""
    if not settings.files:
        return ":"
    paths = " ".join(shlex.quote(p) for p in settings.files)
    return _LOOP.format(paths=paths, limit=int(settings.file_max_bytes))


def _mode(text: str) -> str:
    return text.rjust(4, "0") if text.isdigit() else text


def parse(raw: str) -> ParseResult:
    """Path -> {type, mode, owner, group, size, sha256, content?}.

    Absent paths produce no fact (so present-vs-absent is missing/extra drift);
    unreadable ones become errors (incomplete, never "same").
    """
    facts: dict[str, dict[str, object]] = {}
    errors: dict[str, str] = {}
    current: dict[str, object] | None = None
    lines: list[str] = []

    noeol = False

    def finish() -> None:
        if current is not None and current.get("content") == "":
            text = "\n".join(lines)
            current["content"] = text if noeol or not lines else text + "\n"

    for line in raw.split("\n"):
        if line.startswith("|"):
            if current is not None:
                lines.append(line[1:])
            continue
        if line == "N\tnoeol":
            noeol = True
            continue
        if not line.startswith("F\t"):
            continue
        finish()
        current, lines, noeol = None, [], False
        parts = line.split("\t")
        kind = parts[1] if len(parts) > 2 else ""
        if kind in ("absent", "unreadable") and len(parts) >= 3:
            path = "\t".join(parts[2:])
            if kind == "unreadable":
                errors[path] = "permission denied (run as a user that can read it)"
            continue
        if kind not in ("file", "directory", "other") or len(parts) < 6:
            continue
        meta = parts[2].split(" ")
        if len(meta) != 4:
            continue
        path = "\t".join(parts[5:])
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
                fact["content"] = ""
            else:
                fact["content_note"] = {"binary": "binary file", "large": "over size limit"}.get(
                    parts[4], parts[4]
                )
        facts[path] = fact
        current = fact
    finish()
    return ParseResult(dict(facts), errors)


COLLECTOR = Collector(
    name="files",
    description="configured files: sha256, size, mode, owner, group, text content (secrets "
    "redacted)",
    shell=shell,
    parse=parse,
    requires=("stat",),
    timeout=lambda s: 30.0 + 2.0 * len(s.files),
    scrub=scrub_prefixed,
)
